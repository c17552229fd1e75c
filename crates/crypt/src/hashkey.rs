//! `crypt.hashkey`: skynet's 8-byte digest of a string, two 32-bit string hashes side
//! by side: Bernstein's djb2 (`h * 33 + c`, from 5381) in bytes 0..4 and Justin
//! Sobel's JS hash (`h ^= (h << 5) + c + (h >> 2)`, from 1315423911) in bytes 4..8,
//! each little-endian. Not a cryptographic hash; kept for compatibility (login tokens,
//! `hmac_hash`).

/// skynet's `hashkey` of `text`.
pub fn hashkey(text: &[u8]) -> [u8; 8] {
    let (djb, js) = text
        .iter()
        .fold((5381u32, 1_315_423_911u32), |(djb, js), &c| {
            let c = c as u32;
            let djb = djb.wrapping_add(djb << 5).wrapping_add(c);
            let js = js ^ (js << 5).wrapping_add(c).wrapping_add(js >> 2);
            (djb, js)
        });
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&djb.to_le_bytes());
    out[4..].copy_from_slice(&js.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_for_the_empty_string() {
        assert_eq!(hashkey(b"")[..4], 5381u32.to_le_bytes());
        assert_eq!(hashkey(b"")[4..], 1_315_423_911u32.to_le_bytes());
    }
}
