//! `crypt.base64encode` / `crypt.base64decode` (standard alphabet, `+/`, `=` padding).
//!
//! Decoding reproduces upstream's lenient reader, group by group:
//!
//! * characters outside the alphabet and `=` are skipped wherever they appear;
//! * a group is the next four kept characters; running out of text fills the group
//!   with `=`, so missing padding is accepted (`"aGVsbG8"` decodes like `"aGVsbG8="`);
//! * a group with one `=` must have it last and zero low bits in its third character
//!   (2 bytes out); with two `=`, they must be last and the second character's low
//!   four bits zero (1 byte out); no `=` gives 3 bytes; anything else, including a
//!   group of only skipped characters at the end, is `Invalid base64 text`;
//! * decoding continues after a padded group (`"YQ==YQ=="` is `"aa"`).

use crate::{check_out, Error, Result};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Output size of [`encode_into`]: 4 characters per started group of 3 bytes.
pub fn encoded_len(n: usize) -> usize {
    n.div_ceil(3).saturating_mul(4)
}

/// Base64 of `data` into `out` (exactly [`encoded_len`] bytes).
pub fn encode_into(data: &[u8], out: &mut [u8]) -> Result<()> {
    check_out(out, encoded_len(data.len()))?;
    for (chunk, quad) in data.chunks(3).zip(out.chunks_exact_mut(4)) {
        let mut b = [0u8; 3];
        b[..chunk.len()].copy_from_slice(chunk);
        let v = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for (i, o) in quad.iter_mut().enumerate() {
            *o = if i <= chunk.len() {
                ALPHABET[(v >> (18 - 6 * i) & 0x3f) as usize]
            } else {
                b'='
            };
        }
    }
    Ok(())
}

/// `crypt.base64encode(data)`.
pub fn base64_encode(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len(data.len())];
    // The buffer has the right size by construction.
    let _ = encode_into(data, &mut out);
    out
}

/// Size of the buffer [`decode_into`] needs for a text of `n` bytes (an upper bound:
/// 3 bytes per started group of 4 characters).
pub fn decoded_max(n: usize) -> usize {
    n.div_ceil(4).saturating_mul(3)
}

/// One character of a group.
#[derive(Clone, Copy, PartialEq)]
enum Sym {
    Value(u32),
    Pad,
}

fn sym(c: u8) -> Option<Sym> {
    match c {
        b'A'..=b'Z' => Some(Sym::Value((c - b'A') as u32)),
        b'a'..=b'z' => Some(Sym::Value((c - b'a') as u32 + 26)),
        b'0'..=b'9' => Some(Sym::Value((c - b'0') as u32 + 52)),
        b'+' => Some(Sym::Value(62)),
        b'/' => Some(Sym::Value(63)),
        b'=' => Some(Sym::Pad),
        _ => None,
    }
}

/// Decodes `text` into `out` (exactly [`decoded_max`] bytes); returns the number of
/// bytes written. `Invalid base64 text` on malformed input (see the module doc).
pub fn decode_into(text: &[u8], out: &mut [u8]) -> Result<usize> {
    check_out(out, decoded_max(text.len()))?;
    let mut written = 0;
    let mut pos = 0;
    // A group starts while any character, kept or skipped, is left, so a trailing run
    // of skipped characters makes an all-padding (invalid) group.
    while pos < text.len() {
        let mut group = [Sym::Pad; 4];
        for slot in group.iter_mut() {
            while let Some(&c) = text.get(pos) {
                pos += 1;
                if let Some(s) = sym(c) {
                    *slot = s;
                    break;
                }
            }
        }
        let (bytes, n) = group_bytes(group)?;
        let dst = out.get_mut(written..written + n).ok_or(Error::Base64Text)?;
        dst.copy_from_slice(&bytes[..n]);
        written += n;
    }
    Ok(written)
}

/// The bytes of one complete group (up to three, and how many).
fn group_bytes(g: [Sym; 4]) -> Result<([u8; 3], usize)> {
    use Sym::{Pad, Value};
    match g {
        [Value(a), Value(b), Value(c), Value(d)] => {
            let [_, x, y, z] = (a << 18 | b << 12 | c << 6 | d).to_be_bytes();
            Ok(([x, y, z], 3))
        }
        [Value(a), Value(b), Value(c), Pad] if c & 3 == 0 => {
            let [_, _, x, y] = (a << 10 | b << 4 | c >> 2).to_be_bytes();
            Ok(([x, y, 0], 2))
        }
        [Value(a), Value(b), Pad, Pad] if b & 0xf == 0 => Ok(([(a << 2 | b >> 4) as u8, 0, 0], 1)),
        _ => Err(Error::Base64Text),
    }
}

/// `crypt.base64decode(text)`.
pub fn base64_decode(text: &[u8]) -> Result<Vec<u8>> {
    let mut out = vec![0u8; decoded_max(text.len())];
    let n = decode_into(text, &mut out)?;
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 §10.
    #[test]
    fn rfc4648() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in cases {
            assert_eq!(base64_encode(plain.as_bytes()), enc.as_bytes());
            assert_eq!(base64_decode(enc.as_bytes()).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn upstream_leniency() {
        let d = |s: &str| base64_decode(s.as_bytes());
        assert_eq!(d("aGVsbG8").unwrap(), b"hello");
        assert_eq!(d("aG\nVs bG8=").unwrap(), b"hello");
        assert_eq!(d("YQ").unwrap(), b"a");
        assert_eq!(d("YQ==YQ==").unwrap(), b"aa");
        assert_eq!(d("-_.~").unwrap_err(), Error::Base64Text);
        assert_eq!(d("aGVsbG8=\n").unwrap_err(), Error::Base64Text);
        assert_eq!(d("Y").unwrap_err(), Error::Base64Text);
        assert_eq!(d("YR==").unwrap_err(), Error::Base64Text);
        assert_eq!(d("Zm9=").unwrap_err(), Error::Base64Text);
        assert_eq!(d("=QQQ").unwrap_err(), Error::Base64Text);
        assert_eq!(d("Y=Q=").unwrap_err(), Error::Base64Text);
    }
}
