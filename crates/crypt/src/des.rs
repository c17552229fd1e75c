//! DES (FIPS 46-3) in ECB mode, as `crypt.desencode` / `crypt.desdecode` use it.
//!
//! The cipher is written from the standard's tables. Blocks are handled as big-endian
//! `u64`s (DES bit 1 is the most significant bit). The initial and final permutations
//! go through nibble lookup tables, and each S-box is merged with the P permutation
//! into a 64-entry `u32` table; all tables are generated at compile time from the
//! standard ones below, so there is no hand-expanded table to get wrong.
//!
//! Text framing (what the Lua functions do): every 8-byte block of the text is
//! encrypted on its own; the last, partial (possibly empty) block is completed with the
//! chosen [`Padding`], so the ciphertext is always 1 to 8 bytes longer than the text.
//! Decryption checks the padding and strips it.

use crate::{check_out, Error, Padding, Result};

/// Initial permutation: output bit `i` is input bit `IP[i]` (1-based, MSB first).
const IP: [u8; 64] = [
    58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, //
    62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8, //
    57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3, //
    61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
];

/// The permutation P applied to the S-box outputs.
const P: [u8; 32] = [
    16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, //
    2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25,
];

/// Permuted choice 1: 64-bit key to the 56-bit C|D register (drops the parity bits).
const PC1: [u8; 56] = [
    57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, //
    10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36, //
    63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, //
    14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4,
];

/// Permuted choice 2: 56-bit C|D register to a 48-bit round key.
const PC2: [u8; 48] = [
    14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, //
    23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2, //
    41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48, //
    44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
];

/// Left rotations of C and D before each round.
const SHIFTS: [u32; 16] = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];

/// The eight S-boxes, each as 4 rows of 16 (row = outer input bits, column = inner).
const S: [[u8; 64]; 8] = [
    [
        14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, //
        0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8, //
        4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, //
        15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13,
    ],
    [
        15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, //
        3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5, //
        0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, //
        13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9,
    ],
    [
        10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, //
        13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1, //
        13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, //
        1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12,
    ],
    [
        7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, //
        13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9, //
        10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, //
        3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14,
    ],
    [
        2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, //
        14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6, //
        4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, //
        11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3,
    ],
    [
        12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, //
        10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8, //
        9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, //
        4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13,
    ],
    [
        4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, //
        13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6, //
        1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, //
        6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12,
    ],
    [
        13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, //
        1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2, //
        7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, //
        2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11,
    ],
];

/// Applies a bit-selection table: output bit `i` (of `table.len()`, MSB first) is bit
/// `table[i]` (1-based, MSB first) of the `width`-bit `input`.
const fn permute(input: u64, width: u32, table: &[u8]) -> u64 {
    let mut out = 0u64;
    let mut i = 0;
    while i < table.len() {
        let bit = (input >> (width - table[i] as u32)) & 1;
        out = (out << 1) | bit;
        i += 1;
    }
    out
}

/// The inverse of a 64-entry permutation table (the final permutation from IP).
const fn invert(table: &[u8; 64]) -> [u8; 64] {
    let mut inv = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        inv[table[i] as usize - 1] = (i + 1) as u8;
        i += 1;
    }
    inv
}

/// Nibble lookup tables for a 64-bit permutation: entry `[k][v]` is the permutation of
/// a block whose only non-zero nibble is nibble `k` (from the top) with value `v`.
const fn nibble_tables(table: &[u8; 64]) -> [[u64; 16]; 16] {
    let mut t = [[0u64; 16]; 16];
    let mut k = 0;
    while k < 16 {
        let mut v = 0;
        while v < 16 {
            t[k][v] = permute((v as u64) << (60 - 4 * k), 64, table);
            v += 1;
        }
        k += 1;
    }
    t
}

/// S-box `i` followed by P, for every 6-bit input.
const fn sp_tables() -> [[u32; 64]; 8] {
    let mut t = [[0u32; 64]; 8];
    let mut i = 0;
    while i < 8 {
        let mut v = 0;
        while v < 64 {
            let row = ((v >> 4) & 2) | (v & 1);
            let col = (v >> 1) & 0xf;
            let s = S[i][row * 16 + col] as u64;
            t[i][v] = permute(s << (28 - 4 * i), 32, &P) as u32;
            v += 1;
        }
        i += 1;
    }
    t
}

static IP_TABLE: [[u64; 16]; 16] = nibble_tables(&IP);
static FP_TABLE: [[u64; 16]; 16] = nibble_tables(&invert(&IP));
static SP: [[u32; 64]; 8] = sp_tables();

fn permute64(x: u64, table: &[[u64; 16]; 16]) -> u64 {
    table.iter().enumerate().fold(0, |acc, (k, t)| {
        acc | t[((x >> (60 - 4 * k)) & 0xf) as usize]
    })
}

/// The round function f(R, K): expansion E, key mixing, S-boxes and P.
#[inline]
fn feistel(r: u32, key: &[u8; 8]) -> u32 {
    let mut out = 0;
    for (i, (sp, k)) in SP.iter().zip(key).enumerate() {
        // E's i-th 6-bit group is DES bits 4i..4i+5 of R (bit 0 meaning bit 32).
        let group = (r.rotate_left((4 * i as u32 + 31) % 32) >> 26) as u8;
        out ^= sp[((group ^ k) & 0x3f) as usize];
    }
    out
}

/// An expanded DES key: the sixteen 48-bit round keys, as eight 6-bit groups each.
/// `Copy` (so it never has a destructor: bindings may keep one across a `longjmp`).
#[derive(Clone, Copy)]
pub struct DesKey {
    rounds: [[u8; 8]; 16],
}

impl std::fmt::Debug for DesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DesKey(..)")
    }
}

impl DesKey {
    /// Expands an 8-byte key (parity bits are ignored, as DES does).
    ///
    /// Errors with `Invalid key size N, need 8 bytes` for any other length.
    pub fn new(key: &[u8]) -> Result<DesKey> {
        let key = crate::qword(key, Error::KeySize(key.len()))?;
        let cd = permute(u64::from_be_bytes(key), 64, &PC1);
        let mask = (1u64 << 28) - 1;
        let (mut c, mut d) = (cd >> 28, cd & mask);
        let mut rounds = [[0u8; 8]; 16];
        for (round, shift) in rounds.iter_mut().zip(SHIFTS) {
            c = ((c << shift) | (c >> (28 - shift))) & mask;
            d = ((d << shift) | (d >> (28 - shift))) & mask;
            let k = permute((c << 28) | d, 56, &PC2);
            for (i, group) in round.iter_mut().enumerate() {
                *group = ((k >> (42 - 6 * i)) & 0x3f) as u8;
            }
        }
        Ok(DesKey { rounds })
    }

    fn crypt<'a>(&self, block: [u8; 8], keys: impl Iterator<Item = &'a [u8; 8]>) -> [u8; 8] {
        let x = permute64(u64::from_be_bytes(block), &IP_TABLE);
        let (mut l, mut r) = ((x >> 32) as u32, x as u32);
        for k in keys {
            (l, r) = (r, l ^ feistel(r, k));
        }
        permute64(((r as u64) << 32) | l as u64, &FP_TABLE).to_be_bytes()
    }

    /// Encrypts one block.
    pub fn encrypt_block(&self, block: [u8; 8]) -> [u8; 8] {
        self.crypt(block, self.rounds.iter())
    }

    /// Decrypts one block.
    pub fn decrypt_block(&self, block: [u8; 8]) -> [u8; 8] {
        self.crypt(block, self.rounds.iter().rev())
    }

    /// Encrypts `text` with `padding` into `out`, which must be exactly
    /// [`encrypted_len`]`(text.len())` bytes.
    pub fn encrypt_into(&self, text: &[u8], padding: Padding, out: &mut [u8]) -> Result<()> {
        check_out(out, encrypted_len(text.len()))?;
        let blocks = text.chunks_exact(8);
        let tail = padding.fill(blocks.remainder());
        for (src, dst) in blocks.chain([&tail[..]]).zip(out.chunks_exact_mut(8)) {
            let mut block = [0u8; 8];
            block.copy_from_slice(src);
            dst.copy_from_slice(&self.encrypt_block(block));
        }
        Ok(())
    }

    /// Decrypts `cipher` into `out` (exactly `cipher.len()` bytes) and returns the
    /// length of the text once the padding is stripped.
    ///
    /// Errors: `Invalid des crypt text length N` unless the length is a positive
    /// multiple of 8; `Invalid des crypt text` when the padding does not check out.
    pub fn decrypt_into(&self, cipher: &[u8], padding: Padding, out: &mut [u8]) -> Result<usize> {
        check_cipher_len(cipher.len())?;
        check_out(out, cipher.len())?;
        self.decrypt_blocks(cipher, out);
        strip(out, padding)
    }

    fn decrypt_blocks(&self, cipher: &[u8], out: &mut [u8]) {
        for (src, dst) in cipher.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
            let mut block = [0u8; 8];
            block.copy_from_slice(src);
            dst.copy_from_slice(&self.decrypt_block(block));
        }
    }
}

/// The plaintext length of a decrypted buffer, or `Invalid des crypt text`.
fn strip(plain: &[u8], padding: Padding) -> Result<usize> {
    let last = plain
        .len()
        .checked_sub(8)
        .and_then(|at| plain.get(at..))
        .and_then(|b| <&[u8; 8]>::try_from(b).ok())
        .ok_or(Error::DesText)?;
    let pad = padding.padding_len(last).ok_or(Error::DesText)?;
    Ok(plain.len() - pad)
}

/// Ciphertext length for a text of `n` bytes: the next multiple of 8 above `n` (there
/// is always at least one padding byte). `n` is a slice length (at most `isize::MAX`),
/// so this cannot overflow.
pub fn encrypted_len(n: usize) -> usize {
    n.saturating_add(8) & !7
}

/// `Invalid des crypt text length N` unless `n` is a positive multiple of 8.
pub fn check_cipher_len(n: usize) -> Result<()> {
    if n == 0 || !n.is_multiple_of(8) {
        Err(Error::DesTextLength(n))
    } else {
        Ok(())
    }
}

/// `crypt.desencode(key, text [, mode])`: checks the key, then the padding mode (a
/// `crypt.padding` value), and encrypts.
pub fn des_encode(key: &[u8], text: &[u8], mode: i32) -> Result<Vec<u8>> {
    let key = DesKey::new(key)?;
    let padding = Padding::from_mode(mode)?;
    let mut out = vec![0u8; encrypted_len(text.len())];
    key.encrypt_into(text, padding, &mut out)?;
    Ok(out)
}

/// `crypt.desdecode(key, cipher [, mode])`: checks the key, the ciphertext length, the
/// padding mode, then decrypts and strips the padding.
pub fn des_decode(key: &[u8], cipher: &[u8], mode: i32) -> Result<Vec<u8>> {
    let key = DesKey::new(key)?;
    check_cipher_len(cipher.len())?;
    let padding = Padding::from_mode(mode)?;
    let mut out = vec![0u8; cipher.len()];
    let n = key.decrypt_into(cipher, padding, &mut out)?;
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> [u8; 8] {
        let v: Vec<u8> = (0..16)
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        v.try_into().unwrap()
    }

    /// Textbook known-answer tests (the worked example found in most DES references,
    /// and the FIPS 81 ECB sample).
    #[test]
    fn known_answers() {
        let k = DesKey::new(&h("133457799bbcdff1")).unwrap();
        assert_eq!(
            k.encrypt_block(h("0123456789abcdef")),
            h("85e813540f0ab405")
        );
        assert_eq!(
            k.decrypt_block(h("85e813540f0ab405")),
            h("0123456789abcdef")
        );
        let k = DesKey::new(&h("0123456789abcdef")).unwrap();
        assert_eq!(k.encrypt_block(*b"Now is t"), h("3fa40e8a984d4815"));
        assert_eq!(k.encrypt_block(*b"he time "), h("6a271787ab8883f9"));
        assert_eq!(k.encrypt_block(*b"for all "), h("893d51ec4b563b53"));
    }

    #[test]
    fn ip_and_fp_are_inverse() {
        for x in [
            0u64,
            1,
            0x0123_4567_89ab_cdef,
            u64::MAX,
            0x8000_0000_0000_0001,
        ] {
            assert_eq!(permute64(permute64(x, &IP_TABLE), &FP_TABLE), x);
            assert_eq!(permute64(x, &IP_TABLE), permute(x, 64, &IP));
        }
    }

    #[test]
    fn wrong_sizes_are_errors() {
        assert_eq!(DesKey::new(b"short").unwrap_err(), Error::KeySize(5));
        let k = DesKey::new(b"12345678").unwrap();
        let mut out = [0u8; 8];
        assert!(k.encrypt_into(b"abc", Padding::Pkcs7, &mut out).is_ok());
        assert!(k
            .encrypt_into(b"12345678", Padding::Pkcs7, &mut out)
            .is_err());
        assert_eq!(
            k.decrypt_into(b"1234567", Padding::Pkcs7, &mut out[..7]),
            Err(Error::DesTextLength(7))
        );
        assert_eq!(
            k.decrypt_into(b"", Padding::Pkcs7, &mut []),
            Err(Error::DesTextLength(0))
        );
    }

    #[test]
    fn round_trips_every_length_and_mode() {
        let key = b"\x01\x23\x45\x67\x89\xab\xcd\xef";
        let text: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        for n in 0..=text.len() {
            for mode in [0, 1] {
                let c = des_encode(key, &text[..n], mode).unwrap();
                assert_eq!(c.len(), (n + 8) & !7);
                assert_eq!(des_decode(key, &c, mode).unwrap(), &text[..n]);
            }
        }
    }
}
