//! Low-level reader for one encoded struct: the `u16` field count, the field words and
//! the data blobs they reference (spec §4.1).
//!
//! Shared by the bundle loader and the typed decoder. Every length is checked against
//! the remaining input before use, with 64-bit arithmetic, so no input can cause an
//! out-of-bounds access, an overflow or an allocation.

use crate::error::{Error, Result};

/// One field as found on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawValue<'a> {
    /// Value stored in the field word itself (`word / 2 - 1`, 0 ..= 32766).
    Inline(u32),
    /// Value stored as a length-prefixed blob in the data part.
    Data(&'a [u8]),
}

/// Cursor over the fields of one struct.
pub(crate) struct RawFields<'a> {
    buf: &'a [u8],
    word_count: usize,
    next_word: usize,
    data_pos: usize,
    tag: i64,
}

/// Reads a little-endian `u16` at `pos`; the caller guarantees bounds.
fn u16_at(buf: &[u8], pos: usize) -> u16 {
    u16::from_le_bytes([buf[pos], buf[pos + 1]])
}

/// Reads a little-endian `u32` at `pos`; the caller guarantees bounds.
pub(crate) fn u32_at(buf: &[u8], pos: usize) -> u32 {
    u32::from_le_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]])
}

impl<'a> RawFields<'a> {
    /// Validates the header of the struct at the start of `buf`.
    pub(crate) fn open(buf: &'a [u8]) -> Result<Self> {
        if buf.len() < 2 {
            return Err(Error::decode(format!(
                "struct needs at least 2 bytes, got {}",
                buf.len()
            )));
        }
        let word_count = u16_at(buf, 0) as usize;
        let data_pos = 2 + 2 * word_count;
        if data_pos > buf.len() {
            return Err(Error::decode(format!(
                "field part of {word_count} words exceeds the {} byte input",
                buf.len()
            )));
        }
        Ok(RawFields {
            buf,
            word_count,
            next_word: 0,
            data_pos,
            tag: -1,
        })
    }

    /// Number of field words in the header.
    pub(crate) fn word_count(&self) -> usize {
        self.word_count
    }

    /// Next present field as `(tag, value)`, or `None` after the last word.
    /// Skip words are consumed transparently; data blobs are bounds-checked.
    pub(crate) fn next_field(&mut self) -> Result<Option<(i64, RawValue<'a>)>> {
        while self.next_word < self.word_count {
            let word = u16_at(self.buf, 2 + 2 * self.next_word) as u32;
            self.next_word += 1;
            self.tag += 1;
            if word & 1 == 1 {
                self.tag += ((word - 1) / 2) as i64;
                continue;
            }
            if word != 0 {
                return Ok(Some((self.tag, RawValue::Inline(word / 2 - 1))));
            }
            let blob = read_blob(self.buf, &mut self.data_pos)?;
            return Ok(Some((self.tag, RawValue::Data(blob))));
        }
        Ok(None)
    }

    /// Bytes consumed so far (header plus every data blob read). After `next_field`
    /// returned `None` this is the size of the whole struct.
    pub(crate) fn consumed(&self) -> usize {
        self.data_pos
    }
}

/// Reads `u32 length` + payload at `*pos`, advancing `*pos`.
pub(crate) fn read_blob<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8]> {
    let remaining = buf.len() - *pos;
    if remaining < 4 {
        return Err(Error::decode(format!(
            "data blob length prefix needs 4 bytes, {remaining} left"
        )));
    }
    let len = u32_at(buf, *pos) as u64;
    if len > (remaining - 4) as u64 {
        return Err(Error::decode(format!(
            "data blob of {len} bytes exceeds the {} bytes left",
            remaining - 4
        )));
    }
    let start = *pos + 4;
    let end = start + len as usize;
    *pos = end;
    Ok(&buf[start..end])
}

/// Iterates a concatenation of blobs (string arrays, struct arrays, bundle lists).
/// The sequence must be exact: a trailing partial blob is an error.
pub struct Blobs<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Blobs<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Blobs { buf, pos: 0 }
    }
}

impl<'a> Iterator for Blobs<'a> {
    type Item = Result<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        match read_blob(self.buf, &mut self.pos) {
            Ok(b) => Some(Ok(b)),
            Err(e) => {
                self.pos = self.buf.len();
                Some(Err(e))
            }
        }
    }
}
