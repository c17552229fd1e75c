//! The MACs of `skynet.crypt`:
//!
//! * [`hmac_sha1`]: standard HMAC-SHA1 (RFC 2104), any key and text length;
//! * [`hmac64`]: skynet's 64-bit MAC of two 8-byte values: the message block is
//!   the words `x1 x0 y1 y0` (each half little-endian) repeated four times, put through
//!   MD5's 64 steps from the standard IV with no padding and no feed-forward; the
//!   result is `C^D` then `A^B`, little-endian;
//! * [`hmac64_md5`]: `md5(x .. y .. x .. y .. x .. y)` with its two 8-byte halves
//!   XORed together;
//! * [`hmac_hash`]: `hmac64(hashkey(text), key)`.

use crate::{hashkey, md5, qword, sha1, Error, Result};

/// HMAC-SHA1 of `text` under `key` (`crypt.hmac_sha1(key, text)`).
pub fn hmac_sha1(key: &[u8], text: &[u8]) -> [u8; sha1::DIGEST_LEN] {
    let mut block = [0u8; sha1::BLOCK_LEN];
    if key.len() > sha1::BLOCK_LEN {
        block[..sha1::DIGEST_LEN].copy_from_slice(&sha1::sha1(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let keyed = |pad: u8| block.map(|b| b ^ pad);
    let mut inner = sha1::Sha1::new();
    inner.update(&keyed(0x36));
    inner.update(text);
    let mut outer = sha1::Sha1::new();
    outer.update(&keyed(0x5c));
    outer.update(&inner.finalize());
    outer.finalize()
}

/// The two little-endian 32-bit halves of an 8-byte value.
fn halves(v: &[u8; 8]) -> [u32; 2] {
    [
        u32::from_le_bytes([v[0], v[1], v[2], v[3]]),
        u32::from_le_bytes([v[4], v[5], v[6], v[7]]),
    ]
}

fn qword_of(lo: u32, hi: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&lo.to_le_bytes());
    out[4..].copy_from_slice(&hi.to_le_bytes());
    out
}

fn mac64(x: &[u8; 8], y: &[u8; 8]) -> [u8; 8] {
    let ([x0, x1], [y0, y1]) = (halves(x), halves(y));
    let mut w = [0u32; 16];
    for chunk in w.chunks_exact_mut(4) {
        chunk.copy_from_slice(&[x1, x0, y1, y0]);
    }
    let [a, b, c, d] = md5::steps(md5::INIT, &w);
    qword_of(c ^ d, a ^ b)
}

/// `crypt.hmac64(x, y)`; both must be 8 bytes (`Invalid uint64 x` / `... y`).
pub fn hmac64(x: &[u8], y: &[u8]) -> Result<[u8; 8]> {
    let x = qword(x, Error::Uint64X)?;
    let y = qword(y, Error::Uint64Y)?;
    Ok(mac64(&x, &y))
}

/// `crypt.hmac64_md5(x, y)`; both must be 8 bytes (`Invalid uint64 x` / `... y`).
pub fn hmac64_md5(x: &[u8], y: &[u8]) -> Result<[u8; 8]> {
    let x = qword(x, Error::Uint64X)?;
    let y = qword(y, Error::Uint64Y)?;
    let mut msg = [0u8; 48];
    for chunk in msg.chunks_exact_mut(16) {
        chunk[..8].copy_from_slice(&x);
        chunk[8..].copy_from_slice(&y);
    }
    let m = md5::md5(&msg);
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        *o = m[i] ^ m[i + 8];
    }
    Ok(out)
}

/// `crypt.hmac_hash(key, text)`: `key` must be 8 bytes (`Invalid uint64 key`).
pub fn hmac_hash(key: &[u8], text: &[u8]) -> Result<[u8; 8]> {
    let key = qword(key, Error::Uint64Key)?;
    Ok(mac64(&hashkey(text), &key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: &[u8]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 2202 HMAC-SHA1 cases 1, 2, 6 (short key, text; key longer than a block).
    #[test]
    fn rfc2202() {
        assert_eq!(
            hex(&hmac_sha1(&[0x0b; 20], b"Hi There")),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
        assert_eq!(
            hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex(&hmac_sha1(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    #[test]
    fn size_errors() {
        assert_eq!(hmac64(b"1234567", b"12345678"), Err(Error::Uint64X));
        assert_eq!(hmac64(b"12345678", b""), Err(Error::Uint64Y));
        assert_eq!(hmac64_md5(b"", b""), Err(Error::Uint64X));
        assert_eq!(hmac_hash(b"123456789", b""), Err(Error::Uint64Key));
    }

    #[test]
    fn hmac_hash_is_hmac64_of_hashkey() {
        let key = *b"abcdefgh";
        for text in [&b""[..], b"x", b"hello world"] {
            assert_eq!(
                hmac_hash(&key, text).unwrap(),
                hmac64(&hashkey(text), &key).unwrap()
            );
        }
    }
}
