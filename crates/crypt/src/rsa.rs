//! RSA public-key encryption with OAEP padding (RFC 8017, SHA-1 and MGF1-SHA1), as
//! MySQL's `caching_sha2_password` full authentication uses it to send a password
//! over a plain connection. Public keys come as PEM: `BEGIN PUBLIC KEY`
//! (SubjectPublicKeyInfo) or `BEGIN RSA PUBLIC KEY` (PKCS#1).
//!
//! Only the public operation exists (no secrets are held), so constant time is not a
//! concern here. Arithmetic: little-endian `u32` limbs, Montgomery multiplication.

use crate::base64::base64_decode;
use crate::sha1::{sha1, Sha1, DIGEST_LEN};

/// Why a key or a message was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum RsaError {
    Pem,
    Der,
    Modulus,
    TooLong { max: usize },
}

impl std::fmt::Display for RsaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RsaError::Pem => f.write_str("bad PEM public key"),
            RsaError::Der => f.write_str("bad DER in the public key"),
            RsaError::Modulus => f.write_str("unsupported RSA modulus"),
            RsaError::TooLong { max } => {
                write!(f, "message too long for the key (max {max} bytes)")
            }
        }
    }
}

/// An RSA public key: big-endian modulus and exponent without leading zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
}

// ---------------------------------------------------------------- DER / PEM

struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The next element with tag `tag`: its contents.
    fn take(&mut self, tag: u8) -> Result<&'a [u8], RsaError> {
        let b = self.0;
        if b.len() < 2 || b[0] != tag {
            return Err(RsaError::Der);
        }
        let (len, head) = match b[1] {
            n @ 0..=0x7f => (n as usize, 2),
            0x81..=0x84 => {
                let k = (b[1] & 0x7f) as usize;
                if b.len() < 2 + k {
                    return Err(RsaError::Der);
                }
                let len = b[2..2 + k]
                    .iter()
                    .fold(0usize, |a, &x| (a << 8) | x as usize);
                (len, 2 + k)
            }
            _ => return Err(RsaError::Der),
        };
        if b.len() - head < len {
            return Err(RsaError::Der);
        }
        self.0 = &b[head + len..];
        Ok(&b[head..head + len])
    }
}

fn strip_zeros(mut b: &[u8]) -> Vec<u8> {
    while let [0, rest @ ..] = b {
        b = rest;
    }
    b.to_vec()
}

fn pkcs1(der: &[u8]) -> Result<PublicKey, RsaError> {
    let mut seq = Der(Der(der).take(0x30)?);
    let n = strip_zeros(seq.take(0x02)?);
    let e = strip_zeros(seq.take(0x02)?);
    if n.is_empty() || e.is_empty() || n[n.len() - 1] & 1 == 0 {
        return Err(RsaError::Modulus);
    }
    Ok(PublicKey { n, e })
}

/// Parses a PEM public key (SubjectPublicKeyInfo or PKCS#1).
pub fn parse_public_pem(pem: &[u8]) -> Result<PublicKey, RsaError> {
    let text = std::str::from_utf8(pem).map_err(|_| RsaError::Pem)?;
    let mut body = String::new();
    let mut kind = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("-----BEGIN ") {
            kind = Some(rest.trim_end_matches('-').to_string());
        } else if line.starts_with("-----END ") {
            break;
        } else if kind.is_some() {
            body.push_str(line);
        }
    }
    let der = base64_decode(body.as_bytes()).map_err(|_| RsaError::Pem)?;
    match kind.as_deref() {
        Some("RSA PUBLIC KEY") => pkcs1(&der),
        Some("PUBLIC KEY") => {
            let mut spki = Der(Der(&der).take(0x30)?);
            spki.take(0x30)?; // algorithm identifier
            let bits = spki.take(0x03)?;
            match bits {
                [0, key @ ..] => pkcs1(key),
                _ => Err(RsaError::Der),
            }
        }
        _ => Err(RsaError::Pem),
    }
}

// ---------------------------------------------------------------- arithmetic

fn limbs(be: &[u8], len: usize) -> Vec<u32> {
    let mut out = vec![0u32; len];
    for (i, &b) in be.iter().rev().enumerate() {
        out[i / 4] |= (b as u32) << (8 * (i % 4));
    }
    out
}

fn ge(a: &[u32], b: &[u32]) -> bool {
    for i in (0..a.len()).rev() {
        if a[i] != b[i] {
            return a[i] > b[i];
        }
    }
    true
}

fn sub_in_place(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0i64;
    for i in 0..a.len() {
        let d = a[i] as i64 - b[i] as i64 - borrow;
        a[i] = d as u32;
        borrow = (d < 0) as i64;
    }
}

/// a * b * R^-1 mod n (Montgomery, CIOS), all `s` limbs; `n0` = -n^-1 mod 2^32.
fn mont_mul(a: &[u32], b: &[u32], n: &[u32], n0: u32) -> Vec<u32> {
    let s = n.len();
    let mut t = vec![0u32; s + 2];
    for &ai in a.iter().take(s) {
        let mut carry = 0u64;
        for j in 0..s {
            let x = t[j] as u64 + ai as u64 * b[j] as u64 + carry;
            t[j] = x as u32;
            carry = x >> 32;
        }
        let x = t[s] as u64 + carry;
        t[s] = x as u32;
        t[s + 1] = (x >> 32) as u32;
        let m = t[0].wrapping_mul(n0);
        let x = t[0] as u64 + m as u64 * n[0] as u64;
        let mut carry = x >> 32;
        for j in 1..s {
            let x = t[j] as u64 + m as u64 * n[j] as u64 + carry;
            t[j - 1] = x as u32;
            carry = x >> 32;
        }
        let x = t[s] as u64 + carry;
        t[s - 1] = x as u32;
        t[s] = t[s + 1] + (x >> 32) as u32;
        t[s + 1] = 0;
    }
    let mut r = t[..s + 1].to_vec();
    let mut nn = n.to_vec();
    nn.push(0);
    if ge(&r, &nn) {
        sub_in_place(&mut r, &nn);
    }
    r.truncate(s);
    r
}

/// base^exp mod n for big-endian inputs (n odd, base < n); big-endian, n's length.
pub fn mod_pow(base: &[u8], exp: &[u8], n: &[u8]) -> Vec<u8> {
    let s = n.len().div_ceil(4);
    let nl = limbs(n, s);
    // n0 = -n^-1 mod 2^32 by Newton's iteration (n odd).
    let mut inv: u32 = 1;
    for _ in 0..5 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(nl[0].wrapping_mul(inv)));
    }
    let n0 = inv.wrapping_neg();
    // R^2 mod n by doubling 1, 2 * 32 * s times.
    let mut r2 = vec![0u32; s + 1];
    r2[0] = 1;
    let mut nn = nl.clone();
    nn.push(0);
    for _ in 0..64 * s {
        let mut carry = 0u32;
        for x in r2.iter_mut() {
            let v = (*x as u64) << 1 | carry as u64;
            *x = v as u32;
            carry = (v >> 32) as u32;
        }
        if ge(&r2, &nn) {
            sub_in_place(&mut r2, &nn);
        }
    }
    r2.truncate(s);
    let b = mont_mul(&limbs(base, s), &r2, &nl, n0);
    let mut one = vec![0u32; s];
    one[0] = 1;
    let mut acc = mont_mul(&one, &r2, &nl, n0);
    for &byte in exp {
        for bit in (0..8).rev() {
            acc = mont_mul(&acc, &acc, &nl, n0);
            if byte >> bit & 1 == 1 {
                acc = mont_mul(&acc, &b, &nl, n0);
            }
        }
    }
    let out = mont_mul(&acc, &one, &nl, n0);
    let mut be = vec![0u8; n.len()];
    for (i, byte) in be.iter_mut().rev().enumerate() {
        *byte = (out[i / 4] >> (8 * (i % 4))) as u8;
    }
    be
}

// ---------------------------------------------------------------- OAEP

fn mgf1(seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + DIGEST_LEN);
    let mut counter: u32 = 0;
    while out.len() < len {
        let mut h = Sha1::new();
        h.update(seed);
        h.update(&counter.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// RSAES-OAEP-ENCRYPT (SHA-1, empty label) of `msg` with `seed` (20 random bytes).
pub fn oaep_encrypt(
    key: &PublicKey,
    msg: &[u8],
    seed: &[u8; DIGEST_LEN],
) -> Result<Vec<u8>, RsaError> {
    let k = key.n.len();
    if k < 2 * DIGEST_LEN + 2 {
        return Err(RsaError::Modulus);
    }
    let max = k - 2 * DIGEST_LEN - 2;
    if msg.len() > max {
        return Err(RsaError::TooLong { max });
    }
    let mut db = Vec::with_capacity(k - DIGEST_LEN - 1);
    db.extend_from_slice(&sha1(b""));
    db.resize(k - DIGEST_LEN - 1 - msg.len() - 1, 0);
    db.push(1);
    db.extend_from_slice(msg);
    for (d, m) in db.iter_mut().zip(mgf1(seed, k - DIGEST_LEN - 1)) {
        *d ^= m;
    }
    let mut masked_seed = *seed;
    for (s, m) in masked_seed.iter_mut().zip(mgf1(&db, DIGEST_LEN)) {
        *s ^= m;
    }
    let mut em = Vec::with_capacity(k);
    em.push(0);
    em.extend_from_slice(&masked_seed);
    em.extend_from_slice(&db);
    Ok(mod_pow(&em, &key.e, &key.n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_mod_pow() {
        // 4^13 mod 497 = 445; 7^560 mod 561 = 1 (Carmichael)
        assert_eq!(mod_pow(&[4], &[13], &[0x01, 0xf1]), vec![0x01, 0xbd]);
        assert_eq!(mod_pow(&[7], &[0x02, 0x30], &[0x02, 0x31]), vec![0, 1]);
        // a modulus spanning several limbs: (2^64+1)^2 mod (2^96 - 3)... checked by
        // the identity x^1 = x
        let n = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfd,
        ];
        let x = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5];
        assert_eq!(mod_pow(&x, &[1], &n), x.to_vec());
    }

    #[test]
    fn refuses_bad_keys() {
        assert_eq!(parse_public_pem(b"nothing"), Err(RsaError::Pem));
        assert_eq!(
            parse_public_pem(b"-----BEGIN PUBLIC KEY-----\nMAMCAQ==\n-----END PUBLIC KEY-----\n"),
            Err(RsaError::Der)
        );
    }
}
