//! Schema text parser: `.sproto` text -> canonical binary bundle (spec §2, §3).
//!
//! Two phases:
//!
//! 1. A backtracking recursive-descent matcher that implements the reference PEG
//!    grammar literally (ordered choice, possessive repetition, restore on failure). It
//!    remembers the furthest newline it ever consumed; a syntax error reports
//!    `1 + newlines up to there`, which is exactly the reference parser's line count.
//! 2. Semantic checks in the reference order (redefinitions while collecting, then
//!    protocol checks, then field type resolution, then map/decimal checks while
//!    laying out the bundle), with the reference error texts. Every semantic error also
//!    carries the line of the offending definition.
//!
//! Deliberate deviations (inputs the reference accepts but which are garbage): more than
//! one `*` before a type is a syntax error; a two-field-map key that is itself an array
//! is rejected (`Invalid map index`); `integer(N)` with N > 9 is rejected (the reference
//! overflows a C `int`); a protocol inline type that collides with an explicitly nested
//! type is reported as `redefined` instead of silently overwritten; `response X`
//! followed by `response nil` is `redefine response`.

use std::collections::HashMap;
use std::fmt;

use crate::schema::{
    write_bundle, Container, Field, FieldType, Protocol, Type, MAX_DECIMAL_PRECISION, MAX_TAG,
};

/// Why the parser rejected a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Chunk name as given to [`parse`] (`=text` by default).
    pub source: String,
    /// 1-based line: where matching stopped (syntax) or of the offending definition.
    pub line: usize,
    /// True for grammar errors, false for semantic ones.
    pub syntax: bool,
    /// The reason (reference parser text for semantic errors).
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.syntax {
            write!(f, "syntax error at [{}] line ({})", self.source, self.line)
        } else {
            write!(
                f,
                "{} at [{}] line ({})",
                self.reason, self.source, self.line
            )
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses schema `text` into a bundle. `source` names the text in error messages.
pub fn parse(text: &str, source: &str) -> Result<Vec<u8>, ParseError> {
    let mut m = Matcher {
        s: text.as_bytes(),
        pos: 0,
        furthest_newline: 0,
    };
    let items = m.schema();
    let items = match items {
        Some(items) if m.pos == m.s.len() => items,
        _ => {
            let line = 1 + count_newlines(&m.s[..m.furthest_newline]);
            return Err(ParseError {
                source: source.to_string(),
                line,
                syntax: true,
                reason: "syntax error".into(),
            });
        }
    };
    let line_of = |pos: usize| 1 + count_newlines(&text.as_bytes()[..pos]);
    build(items)
        .map(|(types, protocols)| write_bundle(&types, &protocols))
        .map_err(|(pos, reason)| ParseError {
            source: source.to_string(),
            line: line_of(pos),
            syntax: false,
            reason,
        })
}

fn count_newlines(s: &[u8]) -> usize {
    s.iter().filter(|&&b| b == b'\n').count()
}

// ---------------------------------------------------------------------------------
// Phase 1: grammar

enum Item {
    Type(TypeDef),
    Proto(ProtoDef),
}

enum Member {
    Field(FieldDef),
    Type(TypeDef),
}

struct TypeDef {
    name: String,
    members: Vec<Member>,
    pos: usize,
}

#[derive(Clone)]
enum Suffix {
    /// `(word)` or `()`.
    Key(Option<String>),
    /// `(digits)`, saturated.
    Number(u64),
}

struct FieldDef {
    name: String,
    tag: u64,
    array: bool,
    type_name: String,
    suffix: Option<Suffix>,
    pos: usize,
}

enum SubTarget {
    Named(String),
    Inline(Vec<Member>),
}

struct Sub {
    is_request: bool,
    target: SubTarget,
    pos: usize,
}

struct ProtoDef {
    name: String,
    tag: u64,
    subs: Vec<Sub>,
    pos: usize,
}

struct Matcher<'a> {
    s: &'a [u8],
    pos: usize,
    /// Position just after the furthest newline consumed so far.
    furthest_newline: usize,
}

fn is_alpha(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

impl Matcher<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_str(&mut self, lit: &str) -> bool {
        if self.s[self.pos..].starts_with(lit.as_bytes()) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    fn newline(&mut self) -> bool {
        let len = if self.s[self.pos..].starts_with(b"\n") {
            1
        } else if self.s[self.pos..].starts_with(b"\r\n") {
            2
        } else {
            return false;
        };
        self.pos += len;
        self.furthest_newline = self.furthest_newline.max(self.pos);
        true
    }

    /// One blank: space, tab, newline or a `#` comment (through its newline).
    fn blank(&mut self) -> bool {
        match self.peek() {
            Some(b' ') | Some(b'\t') => {
                self.pos += 1;
                true
            }
            Some(b'#') => {
                self.pos += 1;
                loop {
                    if self.pos >= self.s.len() || self.newline() {
                        return true;
                    }
                    self.pos += 1;
                }
            }
            _ => self.newline(),
        }
    }

    fn blanks0(&mut self) {
        while self.blank() {}
    }

    fn blanks1(&mut self) -> bool {
        let mut any = false;
        while self.blank() {
            any = true;
        }
        any
    }

    fn word(&mut self) -> Option<String> {
        let start = self.pos;
        if !self.peek().is_some_and(is_alpha) {
            return None;
        }
        while self
            .peek()
            .is_some_and(|b| is_alpha(b) || b.is_ascii_digit())
        {
            self.pos += 1;
        }
        Some(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn dotted_name(&mut self) -> Option<String> {
        let mut name = self.word()?;
        loop {
            let save = self.pos;
            if self.eat(b'.') {
                if let Some(w) = self.word() {
                    name.push('.');
                    name.push_str(&w);
                    continue;
                }
            }
            self.pos = save;
            return Some(name);
        }
    }

    fn tag(&mut self) -> Option<u64> {
        let start = self.pos;
        let mut v: u64 = 0;
        while let Some(d) = self.peek().filter(u8::is_ascii_digit) {
            v = v.saturating_mul(10).saturating_add((d - b'0') as u64);
            self.pos += 1;
        }
        (self.pos > start).then_some(v)
    }

    /// Runs `f`; on failure restores the position.
    fn attempt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let save = self.pos;
        let r = f(self);
        if r.is_none() {
            self.pos = save;
        }
        r
    }

    /// `blank0 (pat blanks)* pat* blank0` with PEG semantics.
    fn multi<T>(&mut self, mut pat: impl FnMut(&mut Self) -> Option<T>) -> Vec<T> {
        let mut out = Vec::new();
        self.blanks0();
        loop {
            let save = self.pos;
            match pat(self) {
                Some(x) if self.blanks1() => out.push(x),
                _ => {
                    self.pos = save;
                    break;
                }
            }
        }
        loop {
            let save = self.pos;
            match pat(self) {
                Some(x) => out.push(x),
                None => {
                    self.pos = save;
                    break;
                }
            }
        }
        self.blanks0();
        out
    }

    fn schema(&mut self) -> Option<Vec<Item>> {
        self.blanks0();
        let items = self.multi(|m| {
            m.attempt(|m| m.typedef().map(Item::Type))
                .or_else(|| m.attempt(|m| m.protocol().map(Item::Proto)))
        });
        self.blanks0();
        Some(items)
    }

    fn struct_body(&mut self) -> Option<Vec<Member>> {
        if !self.eat(b'{') {
            return None;
        }
        let members = self.multi(|m| {
            m.attempt(|m| m.field().map(Member::Field))
                .or_else(|| m.attempt(|m| m.typedef().map(Member::Type)))
        });
        self.eat(b'}').then_some(members)
    }

    fn typedef(&mut self) -> Option<TypeDef> {
        let pos = self.pos;
        if !self.eat(b'.') {
            return None;
        }
        let name = self.word()?;
        self.blanks0();
        let members = self.struct_body()?;
        Some(TypeDef { name, members, pos })
    }

    fn suffix(&mut self) -> Option<Suffix> {
        self.attempt(|m| {
            m.eat(b'(').then_some(())?;
            m.blanks0();
            let w = m.word();
            m.blanks0();
            m.eat(b')').then_some(Suffix::Key(w))
        })
        .or_else(|| {
            self.attempt(|m| {
                m.eat(b'(').then_some(())?;
                m.blanks0();
                let n = m.tag()?;
                m.blanks0();
                m.eat(b')').then_some(Suffix::Number(n))
            })
        })
    }

    fn field(&mut self) -> Option<FieldDef> {
        let pos = self.pos;
        let name = self.word()?;
        if !self.blanks1() {
            return None;
        }
        let tag = self.tag()?;
        self.blanks0();
        if !self.eat(b':') {
            return None;
        }
        self.blanks0();
        let array = self.eat(b'*');
        let type_name = self.dotted_name()?;
        let suffix = self.suffix();
        while self.suffix().is_some() {}
        Some(FieldDef {
            name,
            tag,
            array,
            type_name,
            suffix,
            pos,
        })
    }

    fn protocol(&mut self) -> Option<ProtoDef> {
        let pos = self.pos;
        let name = self.word()?;
        if !self.blanks1() {
            return None;
        }
        let tag = self.tag()?;
        self.blanks0();
        if !self.eat(b'{') {
            return None;
        }
        let subs = self.multi(|m| m.attempt(|m| m.sub()));
        self.eat(b'}').then_some(ProtoDef {
            name,
            tag,
            subs,
            pos,
        })
    }

    fn sub(&mut self) -> Option<Sub> {
        let pos = self.pos;
        let is_request = if self.eat_str("request") {
            true
        } else if self.eat_str("response") {
            false
        } else {
            return None;
        };
        if !self.blanks1() {
            return None;
        }
        let target = match self.attempt(|m| m.dotted_name()) {
            Some(n) => SubTarget::Named(n),
            None => SubTarget::Inline(self.struct_body()?),
        };
        Some(Sub {
            is_request,
            target,
            pos,
        })
    }
}

// ---------------------------------------------------------------------------------
// Phase 2: semantics

/// (byte position of the offending definition, reason)
type SemResult<T> = Result<T, (usize, String)>;

struct PendingField {
    name: String,
    tag: u64,
    array: bool,
    type_name: String,
    suffix: Option<Suffix>,
    pos: usize,
}

struct PendingType {
    fields: Vec<PendingField>,
}

struct PendingProto {
    tag: u64,
    request: Option<String>,
    response: Option<String>,
    confirm: bool,
    pos: usize,
}

#[derive(Default)]
struct Collected {
    types: HashMap<String, PendingType>,
    protos: Vec<(String, PendingProto)>,
}

impl Collected {
    fn add_type(&mut self, full: String, members: Vec<Member>, pos: usize) -> SemResult<()> {
        let mut fields: Vec<PendingField> = Vec::new();
        for member in members {
            match member {
                Member::Field(f) => {
                    if fields.iter().any(|o| o.name == f.name) {
                        return Err((f.pos, format!("redefine {} in type {full}", f.name)));
                    }
                    if fields.iter().any(|o| o.tag == f.tag) {
                        return Err((f.pos, format!("redefine tag {} in type {full}", f.tag)));
                    }
                    fields.push(PendingField {
                        name: f.name,
                        tag: f.tag,
                        array: f.array,
                        type_name: f.type_name,
                        suffix: f.suffix,
                        pos: f.pos,
                    });
                }
                Member::Type(t) => {
                    let nested = format!("{full}.{}", t.name);
                    if self.types.contains_key(&nested) {
                        return Err((t.pos, format!("redefined {nested}")));
                    }
                    self.add_type(nested, t.members, t.pos)?;
                }
            }
        }
        fields.sort_by_key(|f| f.tag);
        if self.types.contains_key(&full) {
            return Err((pos, format!("redefined {full}")));
        }
        self.types.insert(full, PendingType { fields });
        Ok(())
    }

    fn add_proto(&mut self, p: ProtoDef) -> SemResult<()> {
        if self.protos.iter().any(|(n, _)| *n == p.name) {
            return Err((p.pos, format!("redefined {}", p.name)));
        }
        let mut out = PendingProto {
            tag: p.tag,
            request: None,
            response: None,
            confirm: false,
            pos: p.pos,
        };
        for sub in p.subs {
            let which = if sub.is_request {
                "request"
            } else {
                "response"
            };
            let type_name = match sub.target {
                SubTarget::Named(n) if n == "nil" => {
                    if !sub.is_request {
                        if out.response.is_some() {
                            return Err((
                                sub.pos,
                                format!("redefine response in protocol {}", p.name),
                            ));
                        }
                        out.confirm = true;
                    }
                    continue;
                }
                SubTarget::Named(n) => n,
                SubTarget::Inline(members) => {
                    let full = format!("{}.{which}", p.name);
                    if self.types.contains_key(&full) {
                        return Err((sub.pos, format!("redefined {full}")));
                    }
                    self.add_type(full.clone(), members, sub.pos)?;
                    full
                }
            };
            let slot = if sub.is_request {
                &mut out.request
            } else {
                out.confirm = false;
                &mut out.response
            };
            if slot.is_some() {
                return Err((sub.pos, format!("redefine {which} in protocol {}", p.name)));
            }
            *slot = Some(type_name);
        }
        self.protos.push((p.name, out));
        Ok(())
    }
}

fn builtin(name: &str) -> Option<FieldType> {
    Some(match name {
        "integer" => FieldType::Integer,
        "boolean" => FieldType::Boolean,
        "string" => FieldType::String,
        "binary" => FieldType::Binary,
        "double" => FieldType::Double,
        _ => return None,
    })
}

/// Scope resolution of a field's type name used inside type `scope` (spec §2.4).
fn resolve(index: &HashMap<&str, usize>, scope: &str, name: &str) -> Option<usize> {
    let mut scope = scope;
    loop {
        if let Some(&i) = index.get(format!("{scope}.{name}").as_str()) {
            return Some(i);
        }
        match scope.rfind('.') {
            Some(dot) => scope = &scope[..dot],
            None => return index.get(name).copied(),
        }
    }
}

fn build(items: Vec<Item>) -> SemResult<(Vec<Type>, Vec<Protocol>)> {
    let mut c = Collected::default();
    for item in items {
        match item {
            Item::Type(t) => {
                if c.types.contains_key(&t.name) {
                    return Err((t.pos, format!("redefined {}", t.name)));
                }
                c.add_type(t.name, t.members, t.pos)?;
            }
            Item::Proto(p) => c.add_proto(p)?,
        }
    }

    let mut names: Vec<String> = c.types.keys().cloned().collect();
    names.sort();
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();

    // Protocol checks.
    let mut protocols = Vec::new();
    let mut seen_tags: HashMap<u64, &str> = HashMap::new();
    for (name, p) in &c.protos {
        if seen_tags.insert(p.tag, name).is_some() {
            return Err((p.pos, format!("redefined protocol tag {} at {name}", p.tag)));
        }
        let lookup = |t: &Option<String>, which: &str| -> SemResult<Option<usize>> {
            match t {
                None => Ok(None),
                Some(t) => index.get(t.as_str()).copied().map(Some).ok_or_else(|| {
                    (
                        p.pos,
                        format!("Undefined {which} type {t} in protocol {name}"),
                    )
                }),
            }
        };
        let request = lookup(&p.request, "request")?;
        let response = lookup(&p.response, "response")?;
        protocols.push(Protocol {
            name: name.clone(),
            tag: p.tag as u32,
            request,
            response,
            confirm: p.confirm,
        });
    }

    // Field type resolution.
    let mut resolved: Vec<Vec<(FieldType, &PendingField)>> = Vec::with_capacity(names.len());
    for name in &names {
        let t = &c.types[name];
        let mut fields = Vec::with_capacity(t.fields.len());
        for f in &t.fields {
            let ty = match builtin(&f.type_name) {
                Some(b) => b,
                None => {
                    FieldType::Struct(resolve(&index, name, &f.type_name).ok_or_else(|| {
                        (
                            f.pos,
                            format!("Undefined type {} in type {name}", f.type_name),
                        )
                    })?)
                }
            };
            fields.push((ty, f));
        }
        resolved.push(fields);
    }

    // Layout checks: tags, decimals, maps.
    let mut types = Vec::with_capacity(names.len());
    for (ti, name) in names.iter().enumerate() {
        let mut fields = Vec::with_capacity(resolved[ti].len());
        for &(ty, f) in &resolved[ti] {
            fields.push(make_field(ty, f, &resolved)?);
        }
        types.push(Type::new(name.clone(), fields));
    }
    for (name, p) in &c.protos {
        if p.tag > MAX_TAG as u64 {
            return Err((
                p.pos,
                format!("protocol tag {} of {name} too large (max {MAX_TAG})", p.tag),
            ));
        }
    }
    protocols.sort_by_key(|p| p.tag);
    if types.is_empty() && !protocols.is_empty() {
        return Err((c.protos[0].1.pos, "protocols need at least one type".into()));
    }
    Ok((types, protocols))
}

fn make_field(
    ty: FieldType,
    f: &PendingField,
    resolved: &[Vec<(FieldType, &PendingField)>],
) -> SemResult<Field> {
    if f.tag > MAX_TAG as u64 {
        return Err((
            f.pos,
            format!(
                "tag {} of field {} too large (max {MAX_TAG})",
                f.tag, f.name
            ),
        ));
    }
    let mut precision = None;
    let mut container = if f.array {
        Container::Array
    } else {
        Container::Single
    };
    let invalid_key = |k: &str| (f.pos, format!("Invalid map index :{k}"));
    match (&f.suffix, f.array, ty) {
        (None, _, _) => {}
        (Some(Suffix::Number(n)), _, FieldType::Integer) => {
            if *n > MAX_DECIMAL_PRECISION as u64 {
                return Err((
                    f.pos,
                    format!(
                        "decimal precision {n} of {} too large (max {MAX_DECIMAL_PRECISION})",
                        f.name
                    ),
                ));
            }
            precision = Some(*n as u32);
        }
        (Some(Suffix::Number(n)), true, FieldType::Struct(_)) => {
            return Err(invalid_key(&n.to_string()));
        }
        (Some(Suffix::Number(_)), _, _) => {
            return Err((
                f.pos,
                format!("decimal precision on non-integer field {}", f.name),
            ));
        }
        (Some(Suffix::Key(_)), false, _) => {}
        (Some(Suffix::Key(key)), true, FieldType::Struct(elem)) => {
            let elem_fields = &resolved[elem];
            match key {
                Some(k) => {
                    let key_field = elem_fields
                        .iter()
                        .position(|(t, ef)| ef.name == *k && t.is_builtin() && !ef.array)
                        .ok_or_else(|| invalid_key(k))?;
                    container = Container::KeyMap {
                        key_tag: elem_fields[key_field].1.tag as u32,
                        key_field,
                    };
                }
                None => {
                    if elem_fields.len() != 2 {
                        return Err((
                            f.pos,
                            format!(
                                "Invalid map definition: {}, must only have two fields",
                                f.name
                            ),
                        ));
                    }
                    let (kt, kf) = elem_fields[0];
                    if !kt.is_builtin() || kf.array {
                        return Err(invalid_key(&kf.name));
                    }
                    container = Container::PairMap;
                }
            }
        }
        (Some(Suffix::Key(_)), true, _) => {
            return Err((f.pos, format!("map key suffix on builtin array {}", f.name)));
        }
    }
    Ok(Field::new(
        f.name.clone(),
        f.tag as u32,
        ty,
        precision,
        container,
    ))
}
