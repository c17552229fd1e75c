//! Schema-driven encoder (spec §4.1–4.3, §4.5).
//!
//! The encoder walks the fields of a type in tag order and asks a [`StructSource`] for
//! each one; the source answers by calling exactly one method of the [`FieldWriter`]
//! (or none, meaning "absent"). This callback shape lets a Lua binding read straight
//! from Lua tables: no intermediate value tree is built per message.
//!
//! Layout strategy: on entering a struct the encoder reserves the largest header the
//! type can need (`2 + 2 * max_words`), appends data blobs after it, fills the header
//! words as fields are answered, and finally moves the data part down over the unused
//! header words. Integer arrays are written with 8-byte elements and compacted to 4
//! bytes in place when every element fits an `i32`. The output is therefore built in
//! one buffer with a single memmove per struct.
//!
//! Invariants for callers that may be unwound through (Lua `longjmp`): the encoder's own
//! stack frames own nothing with a destructor; all output lives in the caller's buffer.
//! On an `Err`, the buffer is truncated back to its length on entry.

use crate::error::{Error, Result};
use crate::schema::{Container, Field, FieldType, Sproto, Type};

/// Structs nested this deep (the top level is depth 0) cannot have their fields
/// encoded or decoded (`The table is too deep`).
pub const MAX_DEPTH: usize = 64;
/// Largest encoded message (`object is too large`).
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// Supplies field values to the encoder.
pub trait StructSource {
    /// Called once for each declared field of the struct, in ascending tag order.
    /// Call one method of `w` to give the field a value, or none to leave it absent.
    fn write_field(&mut self, w: FieldWriter<'_>) -> Result<()>;
}

/// What a source did with one field.
enum Outcome {
    Absent,
    Inline(u32),
    Data,
}

/// Shared encoder state threaded through the recursion.
struct Sink<'a> {
    sp: &'a Sproto,
    out: &'a mut Vec<u8>,
    /// Length of `out` when the top-level message started.
    base: usize,
}

impl Sink<'_> {
    fn ensure_room(&self, extra: usize) -> Result<()> {
        if self.out.len() - self.base + extra > MAX_MESSAGE_SIZE {
            Err(Error::TooLarge)
        } else {
            Ok(())
        }
    }
}

/// Writes the value of one field. Obtained from the encoder in
/// [`StructSource::write_field`]; each method consumes it.
pub struct FieldWriter<'a> {
    sink: &'a mut Sink<'a>,
    depth: usize,
    owner: &'a Type,
    field: &'a Field,
    outcome: &'a mut Outcome,
}

fn mismatch(owner: &Type, field: &Field, what: &str) -> Error {
    Error::Encode(format!(
        "{}.{}: a {what} was written to a field of type {:?}{}",
        owner.name(),
        field.name(),
        field.field_type(),
        if field.is_array() { " (array)" } else { "" }
    ))
}

impl<'a> FieldWriter<'a> {
    /// The field being written.
    pub fn field(&self) -> &'a Field {
        self.field
    }
    /// The type that declares the field.
    pub fn owner(&self) -> &'a Type {
        self.owner
    }
    /// The schema.
    pub fn sproto(&self) -> &'a Sproto {
        self.sink.sp
    }

    fn expect(&self, ty: FieldType) -> Result<()> {
        let f = self.field;
        let ok = f.container == Container::Single
            && (f.ty == ty || (ty == FieldType::String && f.ty == FieldType::Binary));
        if ok {
            Ok(())
        } else {
            Err(mismatch(self.owner, f, &format!("{ty:?}")))
        }
    }

    fn data(self, bytes: &[u8]) -> Result<()> {
        self.sink.ensure_room(4 + bytes.len())?;
        let out = &mut *self.sink.out;
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
        *self.outcome = Outcome::Data;
        Ok(())
    }

    /// Integer or decimal field (for decimals pass [`Field::decimal_to_wire`]).
    pub fn integer(self, v: i64) -> Result<()> {
        self.expect(FieldType::Integer)?;
        if (0..=0x7ffe).contains(&v) {
            *self.outcome = Outcome::Inline(v as u32);
            Ok(())
        } else if let Ok(small) = i32::try_from(v) {
            self.data(&small.to_le_bytes())
        } else {
            self.data(&v.to_le_bytes())
        }
    }

    /// Boolean field.
    pub fn boolean(self, v: bool) -> Result<()> {
        self.expect(FieldType::Boolean)?;
        *self.outcome = Outcome::Inline(v as u32);
        Ok(())
    }

    /// Double field.
    pub fn double(self, v: f64) -> Result<()> {
        self.expect(FieldType::Double)?;
        self.data(&v.to_bits().to_le_bytes())
    }

    /// String or binary field.
    pub fn bytes(self, v: &[u8]) -> Result<()> {
        self.expect(FieldType::String)?;
        self.data(v)
    }

    /// Struct field: `src` supplies the nested struct's fields.
    pub fn structure<S: StructSource + ?Sized>(self, src: &mut S) -> Result<()> {
        let FieldType::Struct(index) = self.field.ty else {
            return Err(mismatch(self.owner, self.field, "struct"));
        };
        if self.field.container != Container::Single {
            return Err(mismatch(self.owner, self.field, "struct"));
        }
        let sp = self.sink.sp;
        self.sink.ensure_room(4)?;
        let at = self.sink.out.len();
        self.sink.out.extend_from_slice(&[0; 4]);
        encode_struct(&mut *self.sink, &sp.types[index], self.depth + 1, src)?;
        patch_len(self.sink.out, at);
        *self.outcome = Outcome::Data;
        Ok(())
    }

    /// Any array or map field: `fill` pushes the elements (map entries are pushed as
    /// element structs). An empty array is present and distinct from an absent field.
    pub fn array<F>(self, fill: F) -> Result<()>
    where
        F: FnOnce(&mut ArrayWriter<'_>) -> Result<()>,
    {
        if !self.field.is_array() {
            return Err(mismatch(self.owner, self.field, "array"));
        }
        self.sink.ensure_room(4)?;
        let at = self.sink.out.len();
        self.sink.out.extend_from_slice(&[0; 4]);
        let mut sub = Sink {
            sp: self.sink.sp,
            out: &mut *self.sink.out,
            base: self.sink.base,
        };
        let mut a = ArrayWriter {
            sink: &mut sub,
            depth: self.depth,
            owner: self.owner,
            field: self.field,
            payload: at + 4,
            count: 0,
            all_i32: true,
        };
        fill(&mut a)?;
        a.finish();
        patch_len(self.sink.out, at);
        *self.outcome = Outcome::Data;
        Ok(())
    }
}

fn patch_len(out: &mut [u8], at: usize) {
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Appends the elements of one array field.
pub struct ArrayWriter<'a> {
    sink: &'a mut Sink<'a>,
    depth: usize,
    owner: &'a Type,
    field: &'a Field,
    payload: usize,
    count: usize,
    all_i32: bool,
}

impl<'a> ArrayWriter<'a> {
    /// The array field being written.
    pub fn field(&self) -> &'a Field {
        self.field
    }
    /// The type that declares the field.
    pub fn owner(&self) -> &'a Type {
        self.owner
    }
    /// The schema.
    pub fn sproto(&self) -> &'a Sproto {
        self.sink.sp
    }
    /// Elements pushed so far.
    pub fn len(&self) -> usize {
        self.count
    }
    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn expect(&self, ty: FieldType) -> Result<()> {
        let f = self.field;
        if f.ty == ty || (ty == FieldType::String && f.ty == FieldType::Binary) {
            Ok(())
        } else {
            Err(mismatch(self.owner, f, &format!("{ty:?} element")))
        }
    }

    /// Element of an integer or decimal array (decimals: [`Field::decimal_to_wire`]).
    pub fn push_integer(&mut self, v: i64) -> Result<()> {
        self.expect(FieldType::Integer)?;
        self.sink.ensure_room(9)?;
        if self.count == 0 {
            self.sink.out.push(8);
        }
        self.sink.out.extend_from_slice(&v.to_le_bytes());
        self.all_i32 &= i32::try_from(v).is_ok();
        self.count += 1;
        Ok(())
    }

    /// Element of a boolean array.
    pub fn push_boolean(&mut self, v: bool) -> Result<()> {
        self.expect(FieldType::Boolean)?;
        self.sink.ensure_room(1)?;
        self.sink.out.push(v as u8);
        self.count += 1;
        Ok(())
    }

    /// Element of a double array.
    pub fn push_double(&mut self, v: f64) -> Result<()> {
        self.expect(FieldType::Double)?;
        self.sink.ensure_room(9)?;
        if self.count == 0 {
            self.sink.out.push(8);
        }
        self.sink.out.extend_from_slice(&v.to_bits().to_le_bytes());
        self.count += 1;
        Ok(())
    }

    /// Element of a string or binary array.
    pub fn push_bytes(&mut self, v: &[u8]) -> Result<()> {
        self.expect(FieldType::String)?;
        self.sink.ensure_room(4 + v.len())?;
        let out = &mut *self.sink.out;
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
        self.count += 1;
        Ok(())
    }

    /// Element of a struct array or map (for `*T()` maps, a two-field struct whose
    /// first field is the key and second the value).
    pub fn push_struct<S: StructSource + ?Sized>(&mut self, src: &mut S) -> Result<()> {
        let FieldType::Struct(index) = self.field.ty else {
            return Err(mismatch(self.owner, self.field, "struct element"));
        };
        let sp = self.sink.sp;
        self.sink.ensure_room(4)?;
        let at = self.sink.out.len();
        self.sink.out.extend_from_slice(&[0; 4]);
        encode_struct(&mut *self.sink, &sp.types[index], self.depth + 1, src)?;
        patch_len(self.sink.out, at);
        self.count += 1;
        Ok(())
    }

    /// Compacts an all-`i32` integer array to 4-byte elements.
    fn finish(&mut self) {
        if self.field.ty != FieldType::Integer || self.count == 0 || !self.all_i32 {
            return;
        }
        let out = &mut *self.sink.out;
        let p = self.payload;
        out[p] = 4;
        for i in 0..self.count {
            let src = p + 1 + 8 * i;
            let v = i64::from_le_bytes(out[src..src + 8].try_into().expect("8 bytes"));
            let dst = p + 1 + 4 * i;
            out[dst..dst + 4].copy_from_slice(&(v as i32).to_le_bytes());
        }
        out.truncate(p + 1 + 4 * self.count);
    }
}

fn encode_struct<S: StructSource + ?Sized>(
    sink: &mut Sink<'_>,
    ty: &Type,
    depth: usize,
    src: &mut S,
) -> Result<()> {
    let start = sink.out.len();
    let header = 2 + 2 * ty.max_words;
    sink.ensure_room(header)?;
    sink.out.resize(start + header, 0);
    let mut words = 0usize;
    let mut last_tag: i64 = -1;
    for field in &ty.fields {
        if depth >= MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        let mut outcome = Outcome::Absent;
        // Reborrow the sink for the writer's lifetime only.
        let mut sub = Sink {
            sp: sink.sp,
            out: &mut *sink.out,
            base: sink.base,
        };
        src.write_field(FieldWriter {
            sink: &mut sub,
            depth,
            owner: ty,
            field,
            outcome: &mut outcome,
        })?;
        let word = match outcome {
            Outcome::Absent => continue,
            Outcome::Inline(v) => (v + 1) * 2,
            Outcome::Data => 0,
        };
        let gap = field.tag as i64 - last_tag - 1;
        let out = &mut *sink.out;
        if gap > 0 {
            let at = start + 2 + 2 * words;
            out[at..at + 2].copy_from_slice(&((gap * 2 - 1) as u16).to_le_bytes());
            words += 1;
        }
        let at = start + 2 + 2 * words;
        out[at..at + 2].copy_from_slice(&(word as u16).to_le_bytes());
        words += 1;
        last_tag = field.tag as i64;
    }
    let out = &mut *sink.out;
    out[start..start + 2].copy_from_slice(&(words as u16).to_le_bytes());
    let used = 2 + 2 * words;
    if used < header {
        out.copy_within(start + header.., start + used);
        out.truncate(out.len() - (header - used));
    }
    Ok(())
}

/// Encodes one value of type `type_index`, appending to `out`. Returns the number of
/// bytes appended. On error `out` is left as it was.
pub fn encode<S: StructSource + ?Sized>(
    sp: &Sproto,
    type_index: usize,
    src: &mut S,
    out: &mut Vec<u8>,
) -> Result<usize> {
    let ty = sp
        .types
        .get(type_index)
        .ok_or_else(|| Error::TypeNotFound(format!("#{type_index}")))?;
    let base = out.len();
    let mut sink = Sink { sp, out, base };
    let r = encode_struct(&mut sink, ty, 0, src);
    match r {
        Ok(()) => Ok(out.len() - base),
        Err(e) => {
            out.truncate(base);
            Err(e)
        }
    }
}
