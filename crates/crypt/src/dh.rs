//! The 64-bit Diffie-Hellman of `crypt.dhexchange` / `crypt.dhsecret`: generator 5,
//! modulus P = 2^64 - 59 (the largest 64-bit prime). Keys are 8-byte strings read as
//! little-endian integers; zero keys are refused (`Can't be 0`).
//!
//! `dhexchange(k) = 5^k mod P` and `dhsecret(x, y) = x^y mod P`, so
//! `dhsecret(dhexchange(a), b) == dhsecret(dhexchange(b), a)`.
//!
//! Upstream's arithmetic, reproduced here: the base is reduced mod P only when it is
//! *greater* than P, and an exponent of 1 returns the base as is. So
//! `dhsecret(P, 1)` gives P itself (not 0), while `dhsecret(P, y)` is 0 for y > 1.
//! The exponent is used whole (not reduced mod P - 1).

use crate::{qword, Error, Result};

/// The modulus, 2^64 - 59.
pub const P: u64 = 0xffff_ffff_ffff_ffc5;
/// The generator used by `dhexchange`.
pub const G: u64 = 5;

fn mul_mod(a: u64, b: u64) -> u64 {
    ((a as u128 * b as u128) % P as u128) as u64
}

/// `base^exp mod P` with upstream's edge behaviour (see the module doc); `exp > 0`.
pub fn pow_mod(base: u64, exp: u64) -> u64 {
    let base = if base > P { base % P } else { base };
    if exp <= 1 {
        return base;
    }
    // Left to right over the bits below the top one.
    let top = 63 - exp.leading_zeros();
    (0..top).rev().fold(base, |acc, bit| {
        let sq = mul_mod(acc, acc);
        if exp >> bit & 1 == 1 {
            mul_mod(sq, base)
        } else {
            sq
        }
    })
}

/// `crypt.dhexchange(key)`: the public value `5^key mod P`.
///
/// Errors: `Invalid dh uint64 key` unless `key` is 8 bytes; `Can't be 0`.
pub fn dh_exchange(key: &[u8]) -> Result<[u8; 8]> {
    let k = u64::from_le_bytes(qword(key, Error::DhKey)?);
    if k == 0 {
        return Err(Error::Zero);
    }
    Ok(pow_mod(G, k).to_le_bytes())
}

/// `crypt.dhsecret(x, y)`: the shared secret `x^y mod P`.
///
/// Errors: `Invalid uint64 x` / `Invalid uint64 y` unless 8 bytes; `Can't be 0`.
pub fn dh_secret(x: &[u8], y: &[u8]) -> Result<[u8; 8]> {
    let x = u64::from_le_bytes(qword(x, Error::Uint64X)?);
    let y = u64::from_le_bytes(qword(y, Error::Uint64Y)?);
    if x == 0 || y == 0 {
        return Err(Error::Zero);
    }
    Ok(pow_mod(x, y).to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain repeated multiplication, for small exponents.
    fn naive(base: u64, exp: u64) -> u64 {
        let b = base % P;
        (1..exp).fold(b, |acc, _| mul_mod(acc, b))
    }

    #[test]
    fn matches_repeated_multiplication() {
        for base in [2u64, 5, 12345, P - 1, u64::MAX] {
            for exp in 1..70 {
                assert_eq!(pow_mod(base, exp), naive(base, exp), "{base}^{exp}");
            }
        }
    }

    #[test]
    fn fermat() {
        assert_eq!(pow_mod(5, P - 1), 1);
        assert_eq!(pow_mod(123_456_789, P - 1), 1);
    }

    #[test]
    fn upstream_edges() {
        assert_eq!(pow_mod(P, 1), P);
        assert_eq!(pow_mod(P, 2), 0);
        assert_eq!(pow_mod(P + 1, 1), 1);
        assert_eq!(dh_exchange(&[0; 8]), Err(Error::Zero));
        assert_eq!(dh_exchange(&[1; 7]), Err(Error::DhKey));
        assert_eq!(dh_secret(&[1; 8], &[0; 8]), Err(Error::Zero));
        assert_eq!(dh_secret(&[1; 9], &[0; 8]), Err(Error::Uint64X));
        assert_eq!(dh_secret(&[1; 8], &[0; 9]), Err(Error::Uint64Y));
    }
}
