//! The loaded schema ([`Sproto`]): types, fields and protocols, plus the binary bundle
//! reader ([`Sproto::from_bundle`]) and writer ([`Sproto::to_bundle`]).
//!
//! Invariants established at load time and relied upon by the codec (so that encoding
//! and decoding never need to re-check them):
//!
//! * every struct reference (`FieldType::Struct(i)`, protocol request/response) is a valid
//!   index into [`Sproto::types`];
//! * fields of a type are sorted by strictly ascending tag, tags are `<= MAX_TAG`;
//! * a main-key map (`*T(k)`) names a field of `T` that is a builtin scalar;
//!   a two-field map (`*T()`) element type has exactly two fields and its first
//!   (smaller-tag) field is a builtin scalar;
//! * decimal precision is at most [`MAX_DECIMAL_PRECISION`];
//! * protocols are sorted by tag, so tag lookups are binary searches.
//!
//! The writer emits exactly the canonical layout of the reference parser (spec §3), so
//! `from_bundle(b)?.to_bundle() == b` for every parser-produced bundle.

use std::collections::HashMap;
use std::ffi::{CStr, CString};

use crate::error::{Error, Result};
use crate::raw::{Blobs, RawFields, RawValue};

/// Largest field or protocol tag (the bundle stores `(tag + 1) * 2` in a `u16`).
pub const MAX_TAG: u32 = 32766;
/// Largest supported `integer(N)` precision (10^N must fit a C `int` upstream).
pub const MAX_DECIMAL_PRECISION: u32 = 9;

/// Element type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Signed 64-bit integer; see [`Field::precision`] for `integer(N)` decimals.
    Integer,
    Boolean,
    Double,
    String,
    /// Same wire format as `String`, flagged differently in the bundle.
    Binary,
    /// A user type: index into [`Sproto::types`].
    Struct(usize),
}

impl FieldType {
    /// True for the builtin scalar types (everything but `Struct`).
    pub fn is_builtin(self) -> bool {
        !matches!(self, FieldType::Struct(_))
    }

    /// The `buildin` code of the bundle (None for structs).
    fn builtin_code(self) -> Option<u32> {
        match self {
            FieldType::Integer => Some(0),
            FieldType::Boolean => Some(1),
            FieldType::String | FieldType::Binary => Some(2),
            FieldType::Double => Some(3),
            FieldType::Struct(_) => None,
        }
    }
}

/// How many values a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// One value.
    Single,
    /// `*T`: a sequence.
    Array,
    /// `*T(k)`: a struct array exposed as a map keyed by field `key_tag` of each element.
    KeyMap {
        /// Tag of the key field in the element type.
        key_tag: u32,
        /// Index of the key field in the element type's field list.
        key_field: usize,
    },
    /// `*T()`: two-field struct array exposed as `{ key = value }`.
    PairMap,
}

/// A field of a [`Type`].
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub(crate) name: String,
    /// `name` NUL-terminated, for C APIs (`lua_getfield`) without per-call allocation.
    pub(crate) c_name: CString,
    pub(crate) tag: u32,
    pub(crate) ty: FieldType,
    pub(crate) precision: Option<u32>,
    pub(crate) scale: i64,
    pub(crate) container: Container,
}

impl Field {
    /// Builds a field; `name` must not contain NUL bytes.
    pub(crate) fn new(
        name: String,
        tag: u32,
        ty: FieldType,
        precision: Option<u32>,
        container: Container,
    ) -> Field {
        let c_name = CString::new(name.as_bytes()).expect("field names contain no NUL");
        Field {
            name,
            c_name,
            tag,
            ty,
            precision,
            scale: 10i64.pow(precision.unwrap_or(0)),
            container,
        }
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The name as a NUL-terminated C string.
    pub fn c_name(&self) -> &CStr {
        &self.c_name
    }
    pub fn tag(&self) -> u32 {
        self.tag
    }
    pub fn field_type(&self) -> FieldType {
        self.ty
    }
    pub fn container(&self) -> Container {
        self.container
    }
    /// True for every container other than `Single` (arrays and both map kinds).
    pub fn is_array(&self) -> bool {
        self.container != Container::Single
    }
    /// `Some(N)` for `integer(N)` decimal fields.
    pub fn precision(&self) -> Option<u32> {
        self.precision
    }
    /// 10^N for decimal fields, 1 otherwise.
    pub fn decimal_scale(&self) -> i64 {
        self.scale
    }
    /// Converts a number to the wire integer of a decimal field: `round(v * 10^N)`,
    /// half away from zero, computed in `f64` like upstream (saturating on overflow).
    pub fn decimal_to_wire(&self, v: f64) -> i64 {
        (v * self.scale as f64).round() as i64
    }
    /// Converts the wire integer of a decimal field back to a number (`v / 10^N`).
    pub fn decimal_from_wire(&self, v: i64) -> f64 {
        v as f64 / self.scale as f64
    }
}

/// A record type.
#[derive(Debug, Clone, PartialEq)]
pub struct Type {
    pub(crate) name: String,
    pub(crate) fields: Vec<Field>,
    /// Upper bound of header words an encoding can need (fields + gaps).
    pub(crate) max_words: usize,
    /// `Some(first_tag)` when tags are consecutive, enabling direct indexing.
    pub(crate) contiguous_from: Option<u32>,
}

impl Type {
    pub(crate) fn new(name: String, fields: Vec<Field>) -> Type {
        let mut max_words = 0;
        let mut last: i64 = -1;
        for f in &fields {
            if f.tag as i64 > last + 1 {
                max_words += 1;
            }
            max_words += 1;
            last = f.tag as i64;
        }
        let contiguous_from = match fields.first() {
            Some(first)
                if fields
                    .iter()
                    .enumerate()
                    .all(|(i, f)| f.tag == first.tag + i as u32) =>
            {
                Some(first.tag)
            }
            Some(_) => None,
            None => Some(0),
        };
        Type {
            name,
            fields,
            max_words,
            contiguous_from,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    /// Fields in ascending tag order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }
    /// Index of the field with this tag.
    pub fn field_index_by_tag(&self, tag: i64) -> Option<usize> {
        if let Some(base) = self.contiguous_from {
            let i = tag - base as i64;
            return (i >= 0 && (i as usize) < self.fields.len()).then_some(i as usize);
        }
        if !(0..=MAX_TAG as i64).contains(&tag) {
            return None;
        }
        self.fields
            .binary_search_by_key(&(tag as u32), |f| f.tag)
            .ok()
    }
    /// Index of the field with this name.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

/// An RPC message definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub(crate) name: String,
    pub(crate) tag: u32,
    pub(crate) request: Option<usize>,
    pub(crate) response: Option<usize>,
    pub(crate) confirm: bool,
}

impl Protocol {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn tag(&self) -> u32 {
        self.tag
    }
    /// Request type index.
    pub fn request(&self) -> Option<usize> {
        self.request
    }
    /// Response type index.
    pub fn response(&self) -> Option<usize> {
        self.response
    }
    /// True for `response nil`: a response exists but carries no data.
    pub fn confirm(&self) -> bool {
        self.confirm
    }
}

/// A protocol named either way.
#[derive(Debug, Clone, Copy)]
pub enum ProtoKey<'a> {
    Name(&'a str),
    Tag(i64),
}

impl std::fmt::Display for ProtoKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtoKey::Name(n) => f.write_str(n),
            ProtoKey::Tag(t) => write!(f, "{t}"),
        }
    }
}

/// A loaded schema. Immutable, `Send + Sync`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sproto {
    pub(crate) types: Vec<Type>,
    pub(crate) protocols: Vec<Protocol>,
    type_by_name: HashMap<String, usize>,
    proto_by_name: HashMap<String, usize>,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::InvalidBundle(detail.into())
}

fn utf8_name(bytes: &[u8]) -> Result<String> {
    if bytes.contains(&0) {
        return Err(bad("name contains a NUL byte"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| bad("name is not UTF-8"))
}

fn inline(value: RawValue<'_>, what: &str) -> Result<u32> {
    match value {
        RawValue::Inline(v) => Ok(v),
        RawValue::Data(_) => Err(bad(format!("{what} must be an inline value"))),
    }
}

/// Field record as read, before cross-type validation.
struct RawField {
    field: Field,
    struct_index: Option<u32>,
    key_tag: Option<u32>,
    map: bool,
}

fn read_field(record: &[u8]) -> Result<RawField> {
    let mut r = RawFields::open(record)?;
    let (mut name, mut builtin, mut type_word, mut tag) = (None, None, None, None);
    let (mut array, mut key_tag, mut map) = (false, None, false);
    while let Some((t, v)) = r.next_field()? {
        match t {
            0 => match v {
                RawValue::Data(d) => name = Some(utf8_name(d)?),
                RawValue::Inline(_) => return Err(bad("field name must be data")),
            },
            1 => builtin = Some(inline(v, "field buildin")?),
            2 => type_word = Some(inline(v, "field type")?),
            3 => tag = Some(inline(v, "field tag")?),
            4 => array = inline(v, "field array")? != 0,
            5 => key_tag = Some(inline(v, "field key")?),
            6 => map = inline(v, "field map")? != 0,
            _ => return Err(bad(format!("unknown field meta tag {t}"))),
        }
    }
    let name = name.ok_or_else(|| bad("field without name"))?;
    let tag = tag.ok_or_else(|| bad(format!("field {name} without tag")))?;
    let (ty, precision, struct_index) = match builtin {
        Some(0) => match type_word {
            Some(p) if p > MAX_DECIMAL_PRECISION => {
                return Err(bad(format!("decimal precision {p} of {name} too large")))
            }
            p => (FieldType::Integer, p, None),
        },
        Some(1) => (FieldType::Boolean, None, None),
        Some(2) if type_word == Some(1) => (FieldType::Binary, None, None),
        Some(2) => (FieldType::String, None, None),
        Some(3) => (FieldType::Double, None, None),
        Some(b) => return Err(bad(format!("unknown buildin {b} for field {name}"))),
        None => {
            let index = type_word.ok_or_else(|| bad(format!("field {name} without type")))?;
            (FieldType::Struct(index as usize), None, Some(index))
        }
    };
    let container = if array {
        Container::Array
    } else if key_tag.is_some() || map {
        return Err(bad(format!("map key on non-array field {name}")));
    } else {
        Container::Single
    };
    Ok(RawField {
        field: Field::new(name, tag, ty, precision, container),
        struct_index,
        key_tag,
        map,
    })
}

fn read_type(record: &[u8]) -> Result<(String, Vec<RawField>)> {
    let mut r = RawFields::open(record)?;
    let (mut name, mut fields) = (None, Vec::new());
    while let Some((t, v)) = r.next_field()? {
        let RawValue::Data(d) = v else {
            return Err(bad("type record members must be data"));
        };
        match t {
            0 => name = Some(utf8_name(d)?),
            1 => {
                for rec in Blobs::new(d) {
                    fields.push(read_field(rec?)?);
                }
            }
            _ => return Err(bad(format!("unknown type meta tag {t}"))),
        }
    }
    let name = name.ok_or_else(|| bad("type without name"))?;
    for pair in fields.windows(2) {
        if pair[1].field.tag <= pair[0].field.tag {
            return Err(bad(format!("tags not ascending in type {name}")));
        }
    }
    Ok((name, fields))
}

fn read_protocol(record: &[u8], type_count: usize) -> Result<Protocol> {
    let mut r = RawFields::open(record)?;
    let mut p = Protocol {
        name: String::new(),
        tag: 0,
        request: None,
        response: None,
        confirm: false,
    };
    let (mut has_name, mut has_tag) = (false, false);
    let index = |v: RawValue<'_>, what: &str| -> Result<usize> {
        let i = inline(v, what)? as usize;
        if i >= type_count {
            return Err(bad(format!("{what} type index {i} out of range")));
        }
        Ok(i)
    };
    while let Some((t, v)) = r.next_field()? {
        match t {
            0 => match v {
                RawValue::Data(d) => {
                    p.name = utf8_name(d)?;
                    has_name = true;
                }
                RawValue::Inline(_) => return Err(bad("protocol name must be data")),
            },
            1 => {
                p.tag = inline(v, "protocol tag")?;
                has_tag = true;
            }
            2 => p.request = Some(index(v, "request")?),
            3 => p.response = Some(index(v, "response")?),
            4 => p.confirm = inline(v, "protocol confirm")? != 0,
            _ => return Err(bad(format!("unknown protocol meta tag {t}"))),
        }
    }
    if !has_name || !has_tag {
        return Err(bad("protocol without name or tag"));
    }
    Ok(p)
}

impl Sproto {
    /// Builds a schema from already validated parts (used by the parser).
    pub(crate) fn from_parts(types: Vec<Type>, mut protocols: Vec<Protocol>) -> Sproto {
        protocols.sort_by_key(|p| p.tag);
        let mut type_by_name = HashMap::with_capacity(types.len());
        for (i, t) in types.iter().enumerate() {
            type_by_name.entry(t.name.clone()).or_insert(i);
        }
        let mut proto_by_name = HashMap::with_capacity(protocols.len());
        for (i, p) in protocols.iter().enumerate() {
            proto_by_name.entry(p.name.clone()).or_insert(i);
        }
        Sproto {
            types,
            protocols,
            type_by_name,
            proto_by_name,
        }
    }

    /// Parses schema text (see [`crate::parser::parse`]) and loads the result.
    pub fn parse(text: &str) -> Result<Sproto> {
        Sproto::from_bundle(&crate::parser::parse(text, "=text")?)
    }

    /// Loads a binary bundle. Rejects everything the reference loader rejects, and
    /// additionally anything that would make encoding or decoding ill-defined (see the
    /// module invariants).
    pub fn from_bundle(bundle: &[u8]) -> Result<Sproto> {
        if bundle.len() < 4 {
            return Err(bad(format!(
                "bundle of {} bytes is too short",
                bundle.len()
            )));
        }
        let mut group = RawFields::open(bundle)?;
        if group.word_count() > 2 {
            return Err(bad("group has more than two members"));
        }
        let (mut type_list, mut proto_list) = (None, None);
        while let Some((t, v)) = group.next_field()? {
            match (t, v) {
                (0, RawValue::Data(d)) => type_list = Some(d),
                (1, RawValue::Data(d)) => proto_list = Some(d),
                _ => return Err(bad(format!("unexpected group member {t}"))),
            }
        }
        let mut raw_types = Vec::new();
        for rec in Blobs::new(type_list.unwrap_or(&[])) {
            raw_types.push(read_type(rec?)?);
        }
        let type_count = raw_types.len();
        let mut protocols = Vec::new();
        for rec in Blobs::new(proto_list.unwrap_or(&[])) {
            let p = read_protocol(rec?, type_count)?;
            if p.tag > MAX_TAG {
                return Err(bad(format!("protocol tag {} too large", p.tag)));
            }
            protocols.push(p);
        }
        // Second pass: resolve struct references and map keys.
        let field_tags: Vec<Vec<(u32, bool)>> = raw_types
            .iter()
            .map(|(_, fs)| {
                fs.iter()
                    .map(|f| (f.field.tag, f.field.ty.is_builtin() && !f.field.is_array()))
                    .collect()
            })
            .collect();
        let mut types = Vec::with_capacity(type_count);
        for (name, raw_fields) in raw_types {
            let mut fields = Vec::with_capacity(raw_fields.len());
            for rf in raw_fields {
                let mut f = rf.field;
                if let Some(i) = rf.struct_index {
                    if i as usize >= type_count {
                        return Err(bad(format!("field {} refers to type {i}", f.name)));
                    }
                }
                if rf.key_tag.is_some() || rf.map {
                    let FieldType::Struct(elem) = f.ty else {
                        return Err(bad(format!("map field {} of a builtin type", f.name)));
                    };
                    let elem_fields = &field_tags[elem];
                    if rf.map {
                        let ok = elem_fields.len() == 2
                            && elem_fields[0].1
                            && rf.key_tag.is_none_or(|k| k == elem_fields[0].0);
                        if !ok {
                            return Err(bad(format!("invalid two-field map {}", f.name)));
                        }
                        f.container = Container::PairMap;
                    } else {
                        let key_tag = rf.key_tag.unwrap_or_default();
                        let key_field = elem_fields
                            .iter()
                            .position(|&(tag, builtin)| tag == key_tag && builtin)
                            .ok_or_else(|| bad(format!("invalid map key of {}", f.name)))?;
                        f.container = Container::KeyMap { key_tag, key_field };
                    }
                }
                fields.push(f);
            }
            types.push(Type::new(name, fields));
        }
        Ok(Sproto::from_parts(types, protocols))
    }

    /// All types, in bundle order (sorted by name for parser output).
    pub fn types(&self) -> &[Type] {
        &self.types
    }
    /// All protocols, sorted by tag.
    pub fn protocols(&self) -> &[Protocol] {
        &self.protocols
    }
    /// The type at `index`.
    pub fn type_at(&self, index: usize) -> &Type {
        &self.types[index]
    }
    /// Index of the type with this full name (first one if duplicated).
    pub fn type_index(&self, name: &str) -> Option<usize> {
        self.type_by_name.get(name).copied()
    }
    /// Index of the type, or `Error::TypeNotFound`.
    pub fn require_type(&self, name: &str) -> Result<usize> {
        self.type_index(name)
            .ok_or_else(|| Error::TypeNotFound(name.to_string()))
    }
    /// Index (into [`Sproto::protocols`]) of the protocol with this tag.
    pub fn protocol_by_tag(&self, tag: i64) -> Option<usize> {
        if !(0..=MAX_TAG as i64).contains(&tag) {
            return None;
        }
        self.protocols
            .binary_search_by_key(&(tag as u32), |p| p.tag)
            .ok()
    }
    /// Index of the protocol with this name.
    pub fn protocol_by_name(&self, name: &str) -> Option<usize> {
        self.proto_by_name.get(name).copied()
    }
    /// Looks a protocol up by name or tag; `Error::ProtocolNotFound` otherwise.
    pub fn protocol(&self, key: ProtoKey<'_>) -> Result<&Protocol> {
        let index = match key {
            ProtoKey::Name(n) => self.protocol_by_name(n),
            ProtoKey::Tag(t) => self.protocol_by_tag(t),
        };
        index
            .map(|i| &self.protocols[i])
            .ok_or_else(|| Error::ProtocolNotFound(key.to_string()))
    }

    /// Serializes the schema in the canonical bundle layout of the reference parser.
    pub fn to_bundle(&self) -> Vec<u8> {
        write_bundle(&self.types, &self.protocols)
    }
}

fn push_word(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&(((value + 1) * 2) as u16).to_le_bytes());
}

const SKIP: [u8; 2] = [1, 0];
const DATA: [u8; 2] = [0, 0];

fn push_blob(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends a blob whose payload is produced by `fill`.
fn with_blob(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    fill(out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

fn write_field(out: &mut Vec<u8>, f: &Field, types: &[Type]) {
    with_blob(out, |out| {
        let count = match f.container {
            Container::Single => 4u16,
            Container::Array => 5,
            Container::KeyMap { .. } => 6,
            Container::PairMap => 7,
        };
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&DATA);
        match f.ty.builtin_code() {
            Some(code) => {
                push_word(out, code);
                match (f.ty, f.precision) {
                    (FieldType::Integer, Some(p)) => push_word(out, p),
                    (FieldType::Binary, _) => push_word(out, 1),
                    _ => out.extend_from_slice(&SKIP),
                }
            }
            None => {
                out.extend_from_slice(&SKIP);
                let FieldType::Struct(i) = f.ty else {
                    unreachable!()
                };
                push_word(out, i as u32);
            }
        }
        push_word(out, f.tag);
        match f.container {
            Container::Single => {}
            Container::Array => push_word(out, 1),
            Container::KeyMap { key_tag, .. } => {
                push_word(out, 1);
                push_word(out, key_tag);
            }
            Container::PairMap => {
                push_word(out, 1);
                let FieldType::Struct(elem) = f.ty else {
                    unreachable!()
                };
                push_word(out, types[elem].fields[0].tag);
                push_word(out, 1);
            }
        }
        push_blob(out, f.name.as_bytes());
    });
}

/// Canonical bundle of the given types (in index order) and protocols (tag order).
pub(crate) fn write_bundle(types: &[Type], protocols: &[Protocol]) -> Vec<u8> {
    let mut out = Vec::new();
    if types.is_empty() {
        out.extend_from_slice(&[0, 0]);
        return out;
    }
    if protocols.is_empty() {
        out.extend_from_slice(&[1, 0, 0, 0]);
    } else {
        out.extend_from_slice(&[2, 0, 0, 0, 0, 0]);
    }
    with_blob(&mut out, |out| {
        for t in types {
            with_blob(out, |out| {
                if t.fields.is_empty() {
                    out.extend_from_slice(&[1, 0, 0, 0]);
                    push_blob(out, t.name.as_bytes());
                } else {
                    out.extend_from_slice(&[2, 0, 0, 0, 0, 0]);
                    push_blob(out, t.name.as_bytes());
                    with_blob(out, |out| {
                        for f in &t.fields {
                            write_field(out, f, types);
                        }
                    });
                }
            });
        }
    });
    if !protocols.is_empty() {
        with_blob(&mut out, |out| {
            for p in protocols {
                with_blob(out, |out| write_protocol(out, p));
            }
        });
    }
    out
}

fn write_protocol(out: &mut Vec<u8>, p: &Protocol) {
    let request = |out: &mut Vec<u8>| match p.request {
        Some(r) => push_word(out, r as u32),
        None => out.extend_from_slice(&SKIP),
    };
    if let Some(s) = p.response {
        out.extend_from_slice(&[4, 0, 0, 0]);
        push_word(out, p.tag);
        request(out);
        push_word(out, s as u32);
    } else if p.confirm {
        out.extend_from_slice(&[5, 0, 0, 0]);
        push_word(out, p.tag);
        request(out);
        out.extend_from_slice(&SKIP);
        push_word(out, 1);
    } else if let Some(r) = p.request {
        out.extend_from_slice(&[3, 0, 0, 0]);
        push_word(out, p.tag);
        push_word(out, r as u32);
    } else {
        out.extend_from_slice(&[2, 0, 0, 0]);
        push_word(out, p.tag);
    }
    push_blob(out, p.name.as_bytes());
}
