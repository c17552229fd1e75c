//! `crypt.hexencode` / `crypt.hexdecode`.
//!
//! Encoding is lowercase. Decoding follows upstream's digit arithmetic exactly: a
//! character `c` outside `'0'..='9'` is worth `c - 'a' + 10` (mod 256) and rejected
//! only if that exceeds 16. So besides `0-9a-f` it accepts `'g'` (16) and the six
//! characters before `'a'` plus `"WXYZ"` (`'W'..='`'` are 0..9), and a byte is
//! `(hi << 4 | lo)` cut to 8 bits. Uppercase `A-F` is rejected, as upstream does.

use crate::{check_out, Error, Result};

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Output size of [`encode_into`].
pub fn encoded_len(n: usize) -> usize {
    n.saturating_mul(2)
}

/// Lowercase hex of `data` into `out` (exactly [`encoded_len`] bytes).
pub fn encode_into(data: &[u8], out: &mut [u8]) -> Result<()> {
    check_out(out, encoded_len(data.len()))?;
    for (pair, &b) in out.chunks_exact_mut(2).zip(data) {
        pair[0] = DIGITS[(b >> 4) as usize];
        pair[1] = DIGITS[(b & 0xf) as usize];
    }
    Ok(())
}

/// `crypt.hexencode(data)`.
pub fn hex_encode(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len(data.len())];
    // The buffer has the right size by construction.
    let _ = encode_into(data, &mut out);
    out
}

/// Output size of [`decode_into`] for a text of `n` bytes, or `Invalid hex text size N`
/// if `n` is odd.
pub fn decoded_len(n: usize) -> Result<usize> {
    if n % 2 == 1 {
        Err(Error::HexSize(n))
    } else {
        Ok(n / 2)
    }
}

/// Upstream's value of a hex digit, `None` when rejected (see the module doc).
fn digit(c: u8) -> Option<u8> {
    let v = if c.is_ascii_digit() {
        c - b'0'
    } else {
        c.wrapping_sub(b'a').wrapping_add(10)
    };
    (v <= 16).then_some(v)
}

/// Decodes `text` into `out` (exactly [`decoded_len`] bytes).
///
/// Errors: `Invalid hex text size N` (odd length), `Invalid hex text`.
pub fn decode_into(text: &[u8], out: &mut [u8]) -> Result<()> {
    check_out(out, decoded_len(text.len())?)?;
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (hi, lo) = digit(pair[0]).zip(digit(pair[1])).ok_or(Error::HexText)?;
        *o = ((hi as u32) << 4 | lo as u32) as u8;
    }
    Ok(())
}

/// `crypt.hexdecode(text)`.
pub fn hex_decode(text: &[u8]) -> Result<Vec<u8>> {
    let mut out = vec![0u8; decoded_len(text.len())?];
    decode_into(text, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data: Vec<u8> = (0..=255).collect();
        let text = hex_encode(&data);
        assert_eq!(&text[..8], b"00010203");
        assert_eq!(hex_decode(&text).unwrap(), data);
    }

    #[test]
    fn upstream_digit_rules() {
        assert_eq!(hex_decode(b"abc"), Err(Error::HexSize(3)));
        assert_eq!(hex_decode(b"zz"), Err(Error::HexText));
        assert_eq!(hex_decode(b"AB"), Err(Error::HexText));
        assert_eq!(hex_decode(b"0 "), Err(Error::HexText));
        // Accepted by upstream's arithmetic.
        assert_eq!(hex_decode(b"g0").unwrap(), [0x00]);
        assert_eq!(hex_decode(b"ag").unwrap(), [0xb0]);
        assert_eq!(hex_decode(b"W`").unwrap(), [0x09]);
        assert_eq!(hex_decode(b"").unwrap(), b"");
    }
}
