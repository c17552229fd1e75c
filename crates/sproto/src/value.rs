//! A self-contained value model ([`Value`]) with encode/decode adapters.
//!
//! `Value` mirrors what a Lua table can hold, so that this crate can reproduce the
//! reference Lua binding's behaviour without Lua:
//!
//! * encoding ([`ValueSource`]) applies lsproto's coercions: integer fields accept
//!   integral doubles and numeric strings; decimal and double fields accept anything,
//!   non-numbers silently becoming 0; strings must be strings; struct fields accept any
//!   table, a string behaves like an empty struct, other scalars are an error
//!   ("attempt to index a number value"); arrays stop at the first `Nil`;
//! * decoding ([`ValueBuilder`]) produces `Struct` for structs, `Array` for arrays,
//!   `Map` for both map kinds, `Double` for decimal fields.
//!
//! Error texts are the ones the Lua binding raises (`Person.age[0] is not an integer
//! (Is a string)`).

use crate::decode::{ArrayReader, FieldValue, StructSink};
use crate::encode::{FieldWriter, StructSource};
use crate::error::{Error, Result};
use crate::schema::{Container, Field, FieldType, Sproto, Type};

/// A dynamically typed value, shaped like a Lua value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Nil,
    Boolean(bool),
    Integer(i64),
    Double(f64),
    /// Byte string (strings and binaries).
    String(Vec<u8>),
    /// Named fields (a decoded struct), in tag order when decoded.
    Struct(Vec<(String, Value)>),
    /// Sequence (Lua keys 1..n).
    Array(Vec<Value>),
    /// Arbitrary keys (decoded maps), in insertion order.
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// A string value from text.
    pub fn str(s: &str) -> Value {
        Value::String(s.as_bytes().to_vec())
    }

    /// A struct value from `(name, value)` pairs.
    pub fn structure<'k>(fields: impl IntoIterator<Item = (&'k str, Value)>) -> Value {
        Value::Struct(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    /// The Lua type name of this value.
    pub fn lua_type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Boolean(_) => "boolean",
            Value::Integer(_) | Value::Double(_) => "number",
            Value::String(_) => "string",
            Value::Struct(_) | Value::Array(_) | Value::Map(_) => "table",
        }
    }

    fn is_table(&self) -> bool {
        matches!(self, Value::Struct(_) | Value::Array(_) | Value::Map(_))
    }

    /// `t[name]` for a string key (None when absent or nil).
    pub fn get(&self, name: &str) -> Option<&Value> {
        let v = match self {
            Value::Struct(fs) => fs.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            Value::Map(kv) => kv
                .iter()
                .find(|(k, _)| matches!(k, Value::String(s) if s == name.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        };
        v.filter(|v| !matches!(v, Value::Nil))
    }

    /// `t[i]` for an integer key (1-based), None when absent or nil.
    fn index(&self, i: i64) -> Option<&Value> {
        let v = match self {
            Value::Array(a) => usize::try_from(i - 1).ok().and_then(|i| a.get(i)),
            Value::Map(kv) => kv.iter().find(|(k, _)| key_eq(k, i)).map(|(_, v)| v),
            _ => None,
        };
        v.filter(|v| !matches!(v, Value::Nil))
    }

    /// `(key, value)` pairs in iteration order, skipping nils (what `pairs` yields).
    fn pairs(&self) -> Vec<(Value, &Value)> {
        let mut out = Vec::new();
        match self {
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    out.push((Value::Integer(i as i64 + 1), v));
                }
            }
            Value::Struct(fs) => {
                for (k, v) in fs {
                    out.push((Value::str(k), v));
                }
            }
            Value::Map(kv) => {
                for (k, v) in kv {
                    out.push((k.clone(), v));
                }
            }
            _ => {}
        }
        out.retain(|(_, v)| !matches!(v, Value::Nil));
        out
    }
}

fn key_eq(k: &Value, i: i64) -> bool {
    match k {
        Value::Integer(k) => *k == i,
        Value::Double(d) => *d == i as f64,
        _ => false,
    }
}

/// Lua's string-to-number conversion (decimal/hex integers, decimal floats).
pub fn lua_str_to_number(s: &[u8]) -> Option<Value> {
    let s = std::str::from_utf8(s).ok()?;
    let t = s.trim_matches(|c: char| " \t\n\r\x0b\x0c".contains(c));
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut v: u64 = 0;
            for b in hex.bytes() {
                v = v
                    .wrapping_mul(16)
                    .wrapping_add((b as char).to_digit(16)? as u64);
            }
            let v = v as i64;
            return Some(Value::Integer(if neg { v.wrapping_neg() } else { v }));
        }
        return None;
    }
    if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = t.parse::<i64>() {
            return Some(Value::Integer(v));
        }
    }
    if t.contains(['n', 'N']) || t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok().map(Value::Double)
}

/// `lua_tointegerx`: integers, integral floats, and strings converting to those.
pub fn to_integer(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        Value::Double(d) => {
            let in_range = *d >= -9223372036854775808.0 && *d < 9223372036854775808.0;
            (d.fract() == 0.0 && in_range).then_some(*d as i64)
        }
        Value::String(s) => lua_str_to_number(s).and_then(|n| to_integer(&n)),
        _ => None,
    }
}

/// `lua_tonumberx`: numbers and numeric strings.
pub fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Double(d) => Some(*d),
        Value::String(s) => lua_str_to_number(s).and_then(|n| to_number(&n)),
        _ => None,
    }
}

fn type_error(owner: &Type, field: &Field, index: usize, expected: &str, v: &Value) -> Error {
    Error::Encode(format!(
        "{}.{}[{index}] is not {expected} (Is a {})",
        owner.name(),
        field.name(),
        v.lua_type_name()
    ))
}

fn index_error(v: &Value) -> Error {
    Error::Encode(format!("attempt to index a {} value", v.lua_type_name()))
}

/// Encodes a [`Value`] (the top-level value and every struct) with lsproto semantics.
pub struct ValueSource<'v>(pub &'v Value);

impl ValueSource<'_> {
    /// `value[name]` with Lua indexing rules.
    fn lookup(&self, name: &str) -> Result<Option<&Value>> {
        match self.0 {
            v if v.is_table() => Ok(v.get(name)),
            Value::String(_) => Ok(None),
            v => Err(index_error(v)),
        }
    }
}

/// The integer (after decimal scaling) a scalar converts to for an integer field.
fn integer_of(owner: &Type, field: &Field, index: usize, v: &Value) -> Result<i64> {
    if field.precision().is_some() {
        Ok(field.decimal_to_wire(to_number(v).unwrap_or(0.0)))
    } else {
        to_integer(v).ok_or_else(|| type_error(owner, field, index, "an integer", v))
    }
}

fn bool_of(owner: &Type, field: &Field, index: usize, v: &Value) -> Result<bool> {
    match v {
        Value::Boolean(b) => Ok(*b),
        _ => Err(type_error(owner, field, index, "a boolean", v)),
    }
}

fn bytes_of<'v>(owner: &Type, field: &Field, index: usize, v: &'v Value) -> Result<&'v [u8]> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(type_error(owner, field, index, "a string", v)),
    }
}

/// Writes one non-array value.
fn write_single(w: FieldWriter<'_>, v: &Value) -> Result<()> {
    let (owner, field) = (w.owner(), w.field());
    match field.field_type() {
        FieldType::Integer => w.integer(integer_of(owner, field, 0, v)?),
        FieldType::Boolean => w.boolean(bool_of(owner, field, 0, v)?),
        FieldType::Double => w.double(to_number(v).unwrap_or(0.0)),
        FieldType::String | FieldType::Binary => w.bytes(bytes_of(owner, field, 0, v)?),
        FieldType::Struct(_) => w.structure(&mut ValueSource(v)),
    }
}

impl StructSource for ValueSource<'_> {
    fn write_field(&mut self, w: FieldWriter<'_>) -> Result<()> {
        let Some(v) = self.lookup(w.field().name())? else {
            return Ok(());
        };
        if !w.field().is_array() {
            return write_single(w, v);
        }
        let (owner, field) = (w.owner(), w.field());
        if !v.is_table() {
            return Err(Error::Encode(format!(
                "{}.{}(1) should be a table or an userdata with metamethods (Is a {})",
                owner.name(),
                field.name(),
                v.lua_type_name()
            )));
        }
        match field.container() {
            Container::Array => w.array(|a| {
                let mut i = 1;
                while let Some(e) = v.index(i) {
                    let n = i as usize;
                    match field.field_type() {
                        FieldType::Integer => a.push_integer(integer_of(owner, field, n, e)?)?,
                        FieldType::Boolean => a.push_boolean(bool_of(owner, field, n, e)?)?,
                        FieldType::Double => a.push_double(to_number(e).unwrap_or(0.0))?,
                        FieldType::String | FieldType::Binary => {
                            a.push_bytes(bytes_of(owner, field, n, e)?)?
                        }
                        FieldType::Struct(_) => a.push_struct(&mut ValueSource(e))?,
                    }
                    i += 1;
                }
                Ok(())
            }),
            Container::KeyMap { .. } => w.array(|a| {
                for (_, e) in v.pairs() {
                    a.push_struct(&mut ValueSource(e))?;
                }
                Ok(())
            }),
            Container::PairMap => w.array(|a| {
                for (k, e) in v.pairs() {
                    a.push_struct(&mut PairSource { key: &k, value: e })?;
                }
                Ok(())
            }),
            Container::Single => unreachable!("checked is_array"),
        }
    }
}

/// Element of a `*T()` map: first field of `T` gets the key, second the value.
struct PairSource<'v> {
    key: &'v Value,
    value: &'v Value,
}

impl StructSource for PairSource<'_> {
    fn write_field(&mut self, w: FieldWriter<'_>) -> Result<()> {
        let first = w.owner().fields()[0].tag() == w.field().tag();
        let v = if first { self.key } else { self.value };
        if w.field().is_array() {
            // A value field that is itself an array: reuse the general path.
            let wrapper = Value::Struct(vec![(w.field().name().to_string(), v.clone())]);
            return ValueSource(&wrapper).write_field(w);
        }
        write_single(w, v)
    }
}

/// Builds a [`Value::Struct`] from decoded fields.
#[derive(Default)]
pub struct ValueBuilder {
    /// Fields decoded so far, in wire order.
    pub fields: Vec<(String, Value)>,
}

fn normalize_key(k: Value) -> Value {
    match k {
        Value::Double(d) if d.fract() == 0.0 && d.abs() < 9.2e18 => Value::Integer(d as i64),
        k => k,
    }
}

fn map_insert(map: &mut Vec<(Value, Value)>, key: Value, value: Value) {
    let key = normalize_key(key);
    match map.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => map.push((key, value)),
    }
}

fn decode_struct_value(r: crate::decode::StructReader<'_>) -> Result<Vec<(String, Value)>> {
    let mut b = ValueBuilder::default();
    r.decode(&mut b)?;
    Ok(b.fields)
}

fn take(fields: &mut Vec<(String, Value)>, name: &str) -> Option<Value> {
    let i = fields.iter().position(|(k, _)| k == name)?;
    Some(fields.swap_remove(i).1)
}

fn array_value(field: &Field, reader: ArrayReader<'_>) -> Result<Value> {
    Ok(match reader {
        ArrayReader::Integers(mut s) => {
            let mut out = Vec::with_capacity(s.remaining());
            while let Some(i) = s.next_integer() {
                out.push(match field.precision() {
                    Some(_) => Value::Double(field.decimal_from_wire(i)),
                    None => Value::Integer(i),
                });
            }
            Value::Array(out)
        }
        ArrayReader::Doubles(mut s) => {
            let mut out = Vec::with_capacity(s.remaining());
            while let Some(d) = s.next_double() {
                out.push(Value::Double(d));
            }
            Value::Array(out)
        }
        ArrayReader::Booleans(bytes) => {
            Value::Array(bytes.map(|&b| Value::Boolean(b != 0)).collect())
        }
        ArrayReader::Bytes(blobs) => Value::Array(
            blobs
                .map(|b| b.map(|b| Value::String(b.to_vec())))
                .collect::<Result<_>>()?,
        ),
        ArrayReader::Structs(elems) => match field.container() {
            Container::KeyMap { key_tag, key_field } => {
                let mut map = Vec::new();
                for e in elems {
                    let e = e?;
                    let key_name = e.struct_type().fields()[key_field].name().to_string();
                    let fields = decode_struct_value(e)?;
                    let key = fields
                        .iter()
                        .find(|(k, _)| *k == key_name)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| {
                            Error::Map(format!(
                                "Can't find main index (tag={key_tag}) in [{}]",
                                field.name()
                            ))
                        })?;
                    map_insert(&mut map, key, Value::Struct(fields));
                }
                Value::Map(map)
            }
            Container::PairMap => {
                // Reproduces lsproto's reuse of one scratch table per field: an entry
                // without a value inherits the previous entry's value.
                let mut map = Vec::new();
                let mut previous_value: Option<Value> = None;
                for e in elems {
                    let e = e?;
                    let fs = e.struct_type().fields();
                    let (key_name, value_name) =
                        (fs[0].name().to_string(), fs[1].name().to_string());
                    let mut fields = decode_struct_value(e)?;
                    let key = take(&mut fields, &key_name).ok_or_else(|| {
                        Error::Map(format!("Can't find key field in [{}]", field.name()))
                    })?;
                    let value = take(&mut fields, &value_name)
                        .or_else(|| previous_value.clone())
                        .ok_or_else(|| {
                            Error::Map(format!("Can't find value field in [{}]", field.name()))
                        })?;
                    previous_value = Some(value.clone());
                    map_insert(&mut map, key, value);
                }
                Value::Map(map)
            }
            _ => Value::Array(
                elems
                    .map(|e| e.and_then(decode_struct_value).map(Value::Struct))
                    .collect::<Result<_>>()?,
            ),
        },
    })
}

impl StructSink for ValueBuilder {
    fn field<'a>(&mut self, field: &'a Field, value: FieldValue<'a>) -> Result<()> {
        let v = match value {
            FieldValue::Integer(i) => match field.precision() {
                Some(_) => Value::Double(field.decimal_from_wire(i)),
                None => Value::Integer(i),
            },
            FieldValue::Boolean(b) => Value::Boolean(b),
            FieldValue::Double(d) => Value::Double(d),
            FieldValue::Bytes(b) => Value::String(b.to_vec()),
            FieldValue::Struct(r) => Value::Struct(decode_struct_value(r)?),
            FieldValue::Array(r) => array_value(field, r)?,
        };
        self.fields.push((field.name().to_string(), v));
        Ok(())
    }
}

impl Sproto {
    /// Encodes `value` as type `type_name`, returning the wire bytes.
    pub fn encode_value(&self, type_name: &str, value: &Value) -> Result<Vec<u8>> {
        let index = self.require_type(type_name)?;
        let mut out = Vec::new();
        crate::encode::encode(self, index, &mut ValueSource(value), &mut out)?;
        Ok(out)
    }

    /// Decodes a `type_name` from the start of `bytes`: `(value, consumed bytes)`.
    pub fn decode_value(&self, type_name: &str, bytes: &[u8]) -> Result<(Value, usize)> {
        let index = self.require_type(type_name)?;
        let mut b = ValueBuilder::default();
        let used = crate::decode::decode(self, index, bytes, &mut b)?;
        Ok((Value::Struct(b.fields), used))
    }

    /// lsproto's `default`: every field with its zero value; struct fields as
    /// `{ __type = "<Type>" }`, arrays as `{ __array = <element default> }` where a
    /// struct element is its type name.
    pub fn default_value(&self, type_index: usize) -> Value {
        let ty = &self.types[type_index];
        let scalar = |f: &Field| match f.field_type() {
            FieldType::Integer if f.precision().is_some() => Value::Double(0.0),
            FieldType::Integer => Value::Integer(0),
            FieldType::Boolean => Value::Boolean(false),
            FieldType::Double => Value::Double(0.0),
            FieldType::String | FieldType::Binary => Value::String(Vec::new()),
            FieldType::Struct(i) => Value::str(self.types[i].name()),
        };
        Value::Struct(
            ty.fields()
                .iter()
                .map(|f| {
                    let v = match (f.is_array(), f.field_type()) {
                        (true, _) => Value::structure([("__array", scalar(f))]),
                        (false, FieldType::Struct(i)) => {
                            Value::structure([("__type", Value::str(self.types[i].name()))])
                        }
                        (false, _) => scalar(f),
                    };
                    (f.name().to_string(), v)
                })
                .collect(),
        )
    }
}
