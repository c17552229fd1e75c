//! The handle table: service addresses and local names.
//!
//! A handle is `harbor << 24 | local_id`. Local ids are allocated with upstream's
//! open-addressing scheme (a power-of-two slot array indexed by `id & (size-1)`, a
//! moving `index`, doubling when no candidate slot is free) so that the addresses seen
//! in logs match upstream's exactly. Lookups take a read lock and clone an `Arc`.
//! Names live in a sorted vector (binary search), as few and rarely changed.

use parking_lot::RwLock;
use std::sync::Arc;

pub const HANDLE_MASK: u32 = 0xff_ffff;
pub const HANDLE_REMOTE_SHIFT: u32 = 24;

/// Anything stored in the table must know its own handle.
pub trait Handled {
    fn handle(&self) -> u32;
}

struct Inner<T> {
    slots: Vec<Option<Arc<T>>>,
    index: u32,
    /// (name, handle), sorted by name.
    names: Vec<(String, u32)>,
}

pub struct HandleTable<T> {
    harbor: u32,
    /// Read-locked by every send: alone on its line.
    inner: crate::cache_line::CacheLine<RwLock<Inner<T>>>,
}

impl<T: Handled> HandleTable<T> {
    pub fn new(harbor: u32) -> Self {
        HandleTable {
            harbor: (harbor & 0xff) << HANDLE_REMOTE_SHIFT,
            inner: crate::cache_line::CacheLine(RwLock::new(Inner {
                slots: (0..4).map(|_| None).collect(),
                index: 1,
                names: Vec::new(),
            })),
        }
    }

    /// Allocate a handle and store the value `make(handle)` under it.
    pub fn register(&self, make: impl FnOnce(u32) -> Arc<T>) -> Arc<T> {
        let mut s = self.inner.write();
        loop {
            let size = s.slots.len() as u32;
            let mut h = s.index;
            for _ in 0..size {
                if h > HANDLE_MASK {
                    h = 1;
                }
                let slot = (h & (size - 1)) as usize;
                if s.slots[slot].is_none() {
                    let value = make(h | self.harbor);
                    s.slots[slot] = Some(value.clone());
                    s.index = h + 1;
                    return value;
                }
                h += 1;
            }
            // No free candidate: double and rehash by handle.
            let new_size = size * 2;
            let mut slots: Vec<Option<Arc<T>>> = (0..new_size).map(|_| None).collect();
            for v in s.slots.drain(..).flatten() {
                let idx = (v.handle() & (new_size - 1)) as usize;
                slots[idx] = Some(v);
            }
            s.slots = slots;
        }
    }

    /// The value registered under `handle`, if alive.
    pub fn grab(&self, handle: u32) -> Option<Arc<T>> {
        let s = self.inner.read();
        let slot = (handle as usize) & (s.slots.len() - 1);
        match &s.slots[slot] {
            Some(v) if v.handle() == handle => Some(v.clone()),
            _ => None,
        }
    }

    /// Remove `handle` and every name bound to it; returns the value if it was there.
    pub fn retire(&self, handle: u32) -> Option<Arc<T>> {
        let mut s = self.inner.write();
        let slot = (handle as usize) & (s.slots.len() - 1);
        let hit = matches!(&s.slots[slot], Some(v) if v.handle() == handle);
        if !hit {
            return None;
        }
        s.names.retain(|(_, h)| *h != handle);
        s.slots[slot].take()
    }

    /// Every live value (for ABORT).
    pub fn all(&self) -> Vec<Arc<T>> {
        self.inner.read().slots.iter().flatten().cloned().collect()
    }

    /// Look up a local name (stored without the leading dot).
    pub fn find_name(&self, name: &str) -> Option<u32> {
        let s = self.inner.read();
        s.names
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| s.names[i].1)
    }

    /// Bind `name` to `handle`; false when the name is already bound.
    pub fn bind_name(&self, name: &str, handle: u32) -> bool {
        let mut s = self.inner.write();
        match s.names.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(_) => false,
            Err(i) => {
                s.names.insert(i, (name.to_string(), handle));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Svc(u32);
    impl Handled for Svc {
        fn handle(&self) -> u32 {
            self.0
        }
    }

    fn reg(t: &HandleTable<Svc>) -> u32 {
        t.register(|h| Arc::new(Svc(h))).0
    }

    #[test]
    fn allocation_matches_upstream_sequence() {
        // The sample's observed sequence: 1..0xf, main (8) and bootstrap (2) exit,
        // then 0x10, 0x12 (0x11 skipped: slot 1 = logger), 0x18; the table is then
        // full, doubles to 32 slots and the search resumes at 0x19.
        let t = HandleTable::new(0);
        for want in 1..=0xf {
            assert_eq!(reg(&t), want);
        }
        assert!(t.retire(8).is_some());
        assert!(t.retire(2).is_some());
        assert_eq!(reg(&t), 0x10);
        assert_eq!(reg(&t), 0x12);
        assert_eq!(reg(&t), 0x18);
        assert_eq!(reg(&t), 0x19);
    }

    #[test]
    fn harbor_bits_and_grab() {
        let t = HandleTable::new(3);
        let h = reg(&t);
        assert_eq!(h, 0x0300_0001);
        assert_eq!(t.grab(h).unwrap().0, h);
        assert!(t.grab(0x0300_0002).is_none());
        assert!(t.retire(h).is_some());
        assert!(t.grab(h).is_none());
        assert!(t.retire(h).is_none());
    }

    #[test]
    fn names_bind_once_and_vanish_with_handle() {
        let t = HandleTable::new(0);
        let a = reg(&t);
        let b = reg(&t);
        assert!(t.bind_name("launcher", a));
        assert!(t.bind_name("alias", a));
        assert!(!t.bind_name("launcher", b));
        assert!(t.bind_name("zeta", b));
        assert_eq!(t.find_name("launcher"), Some(a));
        assert_eq!(t.find_name("zeta"), Some(b));
        t.retire(a);
        assert_eq!(t.find_name("launcher"), None);
        assert_eq!(t.find_name("alias"), None);
        assert_eq!(t.find_name("zeta"), Some(b));
    }
}
