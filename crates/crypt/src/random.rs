//! `crypt.randomkey`: 8 random bytes from the operating system (`/dev/urandom`).
//!
//! Upstream draws them from C's `random()`; any 8 bytes are valid, so only the source
//! differs. As upstream does, a key whose bytes XOR to zero gets its lowest bit set
//! (upstream's guard against an all-zero key, which `dhexchange` refuses).

use std::fs::File;
use std::io::Read;
use std::sync::OnceLock;

/// The system's random device, opened once per process.
fn device() -> Option<&'static File> {
    static DEV: OnceLock<Option<File>> = OnceLock::new();
    DEV.get_or_init(|| File::open("/dev/urandom").ok()).as_ref()
}

/// Fallback when there is no random device: std's per-process random hasher keys
/// mixed with the time and a counter.
fn fallback() -> [u8; 8] {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish().to_le_bytes()
}

/// Applies upstream's rule: bytes that XOR to zero get bit 0 of byte 0 set.
pub fn fix_key(mut key: [u8; 8]) -> [u8; 8] {
    if key.iter().fold(0, |x, b| x ^ b) == 0 {
        key[0] |= 1;
    }
    key
}

/// `crypt.randomkey()`.
pub fn random_key() -> [u8; 8] {
    let mut key = [0u8; 8];
    let filled = device().is_some_and(|mut f| f.read_exact(&mut key).is_ok());
    if !filled {
        key = fallback();
    }
    fix_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_and_are_never_zero() {
        let a = random_key();
        let b = random_key();
        assert_ne!(a, b);
        assert_eq!(fix_key([0; 8]), [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(fix_key([3, 3, 0, 0, 0, 0, 0, 0]), [3, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(fix_key([2, 2, 0, 0, 0, 0, 0, 0]), [3, 2, 0, 0, 0, 0, 0, 0]);
        assert!(fallback() != fallback());
    }
}
