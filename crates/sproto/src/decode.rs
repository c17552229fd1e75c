//! Schema-driven decoder (spec §4.4).
//!
//! The decoder walks the wire fields of a struct and hands every field the type
//! declares to a [`StructSink`] as a [`FieldValue`]. Nested structs and arrays are
//! handed over as lazy readers, so the sink decides how to materialise them (a Lua
//! binding creates tables directly, [`crate::value`] builds a [`crate::Value`] tree).
//!
//! All validation happens here, before the sink sees a value: lengths are checked
//! against the remaining input, inline values on data-only fields, wrong scalar widths,
//! malformed array payloads and nested structs that do not consume exactly their blob
//! are errors. Unknown tags are skipped (forward compatibility); trailing bytes after
//! the top-level struct are ignored and reported through the consumed size.

use crate::encode::MAX_DEPTH;
use crate::error::{Error, Result};
use crate::raw::{Blobs, RawFields, RawValue};
use crate::schema::{Container, Field, FieldType, Sproto, Type};

/// Receives decoded fields.
pub trait StructSink {
    /// Called for each field present on the wire and declared by the type, in wire
    /// (ascending tag) order.
    fn field<'a>(&mut self, field: &'a Field, value: FieldValue<'a>) -> Result<()>;
}

/// One decoded field value. Integers of decimal fields are the raw wire integers
/// (convert with [`Field::decimal_from_wire`]).
pub enum FieldValue<'a> {
    Integer(i64),
    Boolean(bool),
    Double(f64),
    /// String or binary.
    Bytes(&'a [u8]),
    Struct(StructReader<'a>),
    /// Any array or map field.
    Array(ArrayReader<'a>),
}

/// A nested struct not yet decoded.
pub struct StructReader<'a> {
    sp: &'a Sproto,
    ty: &'a Type,
    bytes: &'a [u8],
    depth: usize,
}

impl<'a> StructReader<'a> {
    /// The struct's type.
    pub fn struct_type(&self) -> &'a Type {
        self.ty
    }
    /// Decodes into `sink`; the struct must occupy its whole blob.
    pub fn decode<S: StructSink + ?Sized>(self, sink: &mut S) -> Result<()> {
        let used = decode_struct(self.sp, self.ty, self.bytes, self.depth, sink)?;
        if used != self.bytes.len() {
            return Err(Error::decode(format!(
                "nested {} uses {used} of its {} bytes",
                self.ty.name(),
                self.bytes.len()
            )));
        }
        Ok(())
    }
}

/// Elements of an array field, by element type.
pub enum ArrayReader<'a> {
    Integers(Scalars<'a>),
    Doubles(Scalars<'a>),
    Booleans(std::slice::Iter<'a, u8>),
    Bytes(Blobs<'a>),
    Structs(StructArray<'a>),
}

/// Fixed-width elements of an integer or double array (4-byte elements are
/// sign-extended; for doubles the 64 bits are then reinterpreted, like upstream).
pub struct Scalars<'a> {
    data: &'a [u8],
    width: usize,
}

impl Scalars<'_> {
    fn next_bits(&mut self) -> Option<i64> {
        if self.data.len() < self.width || self.width == 0 {
            return None;
        }
        let (head, rest) = self.data.split_at(self.width);
        self.data = rest;
        Some(if self.width == 4 {
            i32::from_le_bytes(head.try_into().expect("4 bytes")) as i64
        } else {
            i64::from_le_bytes(head.try_into().expect("8 bytes"))
        })
    }
    /// Remaining element count.
    pub fn remaining(&self) -> usize {
        self.data.len().checked_div(self.width).unwrap_or(0)
    }
    /// Next element as an integer.
    pub fn next_integer(&mut self) -> Option<i64> {
        self.next_bits()
    }
    /// Next element as a double.
    pub fn next_double(&mut self) -> Option<f64> {
        self.next_bits().map(|b| f64::from_bits(b as u64))
    }
}

/// Elements of a struct array (or of either map kind).
pub struct StructArray<'a> {
    sp: &'a Sproto,
    ty: &'a Type,
    blobs: Blobs<'a>,
    depth: usize,
}

impl<'a> Iterator for StructArray<'a> {
    type Item = Result<StructReader<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        let blob = self.blobs.next()?;
        Some(blob.map(|bytes| StructReader {
            sp: self.sp,
            ty: self.ty,
            bytes,
            depth: self.depth,
        }))
    }
}

fn scalar_array<'a>(data: &'a [u8], field: &Field) -> Result<Scalars<'a>> {
    if data.len() <= 1 {
        return Ok(Scalars {
            data: &[],
            width: 0,
        });
    }
    let width = data[0] as usize;
    if width != 4 && width != 8 {
        return Err(Error::decode(format!(
            "array {} has element size {width}",
            field.name()
        )));
    }
    if !(data.len() - 1).is_multiple_of(width) {
        return Err(Error::decode(format!(
            "array {} payload of {} bytes is not a multiple of {width}",
            field.name(),
            data.len() - 1
        )));
    }
    Ok(Scalars {
        data: &data[1..],
        width,
    })
}

fn value_of<'a>(
    sp: &'a Sproto,
    field: &'a Field,
    raw: RawValue<'a>,
    depth: usize,
) -> Result<FieldValue<'a>> {
    let single = field.container == Container::Single;
    let data = match raw {
        RawValue::Inline(v) => {
            return match (single, field.ty) {
                (true, FieldType::Integer) => Ok(FieldValue::Integer(v as i64)),
                (true, FieldType::Boolean) => Ok(FieldValue::Boolean(v != 0)),
                _ => Err(Error::decode(format!(
                    "inline value for field {} which needs data",
                    field.name()
                ))),
            }
        }
        RawValue::Data(d) => d,
    };
    if single {
        return match field.ty {
            FieldType::Integer | FieldType::Double => {
                let bits = match data.len() {
                    4 => i32::from_le_bytes(data.try_into().expect("4 bytes")) as i64,
                    8 => i64::from_le_bytes(data.try_into().expect("8 bytes")),
                    n => {
                        return Err(Error::decode(format!(
                            "field {} has a {n}-byte number",
                            field.name()
                        )))
                    }
                };
                Ok(if field.ty == FieldType::Integer {
                    FieldValue::Integer(bits)
                } else {
                    FieldValue::Double(f64::from_bits(bits as u64))
                })
            }
            FieldType::Boolean => Err(Error::decode(format!(
                "boolean field {} in the data part",
                field.name()
            ))),
            FieldType::String | FieldType::Binary => Ok(FieldValue::Bytes(data)),
            FieldType::Struct(i) => Ok(FieldValue::Struct(StructReader {
                sp,
                ty: &sp.types[i],
                bytes: data,
                depth: depth + 1,
            })),
        };
    }
    Ok(FieldValue::Array(match field.ty {
        FieldType::Integer => ArrayReader::Integers(scalar_array(data, field)?),
        FieldType::Double => ArrayReader::Doubles(scalar_array(data, field)?),
        FieldType::Boolean => ArrayReader::Booleans(data.iter()),
        FieldType::String | FieldType::Binary => ArrayReader::Bytes(Blobs::new(data)),
        FieldType::Struct(i) => ArrayReader::Structs(StructArray {
            sp,
            ty: &sp.types[i],
            blobs: Blobs::new(data),
            depth: depth + 1,
        }),
    }))
}

fn decode_struct<S: StructSink + ?Sized>(
    sp: &Sproto,
    ty: &Type,
    bytes: &[u8],
    depth: usize,
    sink: &mut S,
) -> Result<usize> {
    let mut raw = RawFields::open(bytes)?;
    while let Some((tag, value)) = raw.next_field()? {
        let Some(index) = ty.field_index_by_tag(tag) else {
            continue;
        };
        if depth >= MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        let field = &ty.fields[index];
        sink.field(field, value_of(sp, field, value, depth)?)?;
    }
    Ok(raw.consumed())
}

/// Decodes one value of type `type_index` from the start of `bytes`. Returns the
/// number of bytes the top-level struct occupies (trailing bytes are ignored).
pub fn decode<S: StructSink + ?Sized>(
    sp: &Sproto,
    type_index: usize,
    bytes: &[u8],
    sink: &mut S,
) -> Result<usize> {
    let ty = sp
        .types
        .get(type_index)
        .ok_or_else(|| Error::TypeNotFound(format!("#{type_index}")))?;
    decode_struct(sp, ty, bytes, 0, sink)
}
