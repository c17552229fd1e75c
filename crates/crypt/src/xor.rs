//! `crypt.xor_str(text, key)`: `text` XORed with `key` repeated to its length.

use crate::{check_out, Error, Result};

/// XORs `text` with the repeated `key` into `out` (exactly `text.len()` bytes).
/// `Can't xor empty string` when `key` is empty.
pub fn xor_into(text: &[u8], key: &[u8], out: &mut [u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::XorEmpty);
    }
    check_out(out, text.len())?;
    for ((o, t), k) in out.iter_mut().zip(text).zip(key.iter().cycle()) {
        *o = t ^ k;
    }
    Ok(())
}

/// `crypt.xor_str(text, key)`.
pub fn xor_str(text: &[u8], key: &[u8]) -> Result<Vec<u8>> {
    let mut out = vec![0u8; text.len()];
    xor_into(text, key, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_the_key() {
        assert_eq!(
            xor_str(b"\x01\x02\x03", b"\x01\x01").unwrap(),
            b"\x00\x03\x02"
        );
        assert_eq!(xor_str(b"", b"k").unwrap(), b"");
        assert_eq!(xor_str(b"abc", b""), Err(Error::XorEmpty));
    }
}
