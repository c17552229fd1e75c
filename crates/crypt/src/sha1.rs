//! SHA-1 (FIPS 180-4 / RFC 3174), for `crypt.sha1` and `crypt.hmac_sha1`.

/// Digest size in bytes.
pub const DIGEST_LEN: usize = 20;
/// Block size in bytes (also HMAC's key block).
pub const BLOCK_LEN: usize = 64;

const INIT: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];

/// An incremental SHA-1 computation.
#[derive(Clone, Debug)]
pub struct Sha1 {
    state: [u32; 5],
    /// Bytes hashed so far (the message length goes into the padding in bits, mod 2^64).
    len: u64,
    buf: [u8; BLOCK_LEN],
    buffered: usize,
}

impl Default for Sha1 {
    fn default() -> Self {
        Sha1::new()
    }
}

impl Sha1 {
    pub fn new() -> Sha1 {
        Sha1 {
            state: INIT,
            len: 0,
            buf: [0; BLOCK_LEN],
            buffered: 0,
        }
    }

    /// Feeds more message bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.buffered > 0 {
            let take = (BLOCK_LEN - self.buffered).min(data.len());
            self.buf[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
            if self.buffered < BLOCK_LEN {
                return;
            }
            let block = self.buf;
            compress(&mut self.state, &block);
            self.buffered = 0;
        }
        let blocks = data.chunks_exact(BLOCK_LEN);
        let rest = blocks.remainder();
        for block in blocks {
            let mut b = [0u8; BLOCK_LEN];
            b.copy_from_slice(block);
            compress(&mut self.state, &b);
        }
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    /// Pads the message and returns its digest.
    pub fn finalize(mut self) -> [u8; DIGEST_LEN] {
        let bits = self.len.wrapping_mul(8);
        let mut pad = [0u8; BLOCK_LEN + 8];
        pad[0] = 0x80;
        // 0x80, zeros to 56 mod 64, then the 64-bit big-endian bit length.
        let zeros = (BLOCK_LEN + 55 - self.buffered) % BLOCK_LEN;
        let n = 1 + zeros;
        pad[n..n + 8].copy_from_slice(&bits.to_be_bytes());
        let len = self.len;
        self.update(&pad[..n + 8]);
        self.len = len;
        let mut out = [0u8; DIGEST_LEN];
        for (dst, word) in out.chunks_exact_mut(4).zip(self.state) {
            dst.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

/// SHA-1 of `data` (`crypt.sha1`).
pub fn sha1(data: &[u8]) -> [u8; DIGEST_LEN] {
    let mut h = Sha1::new();
    h.update(data);
    h.finalize()
}

fn compress(state: &mut [u32; 5], block: &[u8; BLOCK_LEN]) {
    let mut w = [0u32; 80];
    for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
        *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    for t in 16..80 {
        w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
    }
    let [mut a, mut b, mut c, mut d, mut e] = *state;
    // One loop per 20-step stage, so each has a fixed function and constant.
    let mut step = |f: fn(u32, u32, u32) -> u32, k: u32, w: &[u32]| {
        for &wt in w {
            let temp = a
                .rotate_left(5)
                .wrapping_add(f(b, c, d))
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(wt);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
    };
    step(|b, c, d| (b & c) | (!b & d), 0x5a82_7999, &w[..20]);
    step(|b, c, d| b ^ c ^ d, 0x6ed9_eba1, &w[20..40]);
    step(
        |b, c, d| (b & c) | (b & d) | (c & d),
        0x8f1b_bcdc,
        &w[40..60],
    );
    step(|b, c, d| b ^ c ^ d, 0xca62_c1d6, &w[60..]);
    for (s, v) in state.iter_mut().zip([a, b, c, d, e]) {
        *s = s.wrapping_add(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: &[u8]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// FIPS 180 / RFC 3174 test vectors.
    #[test]
    fn standard_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            hex(&sha1(&vec![b'a'; 1_000_000])),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for split in [0, 1, 55, 56, 63, 64, 65, 128, 200, 300] {
            let mut h = Sha1::new();
            h.update(&data[..split]);
            h.update(&data[split..]);
            assert_eq!(h.finalize(), sha1(&data), "split {split}");
        }
    }
}
