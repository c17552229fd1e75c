//! The immutable data behind `skynet.sharedata` and `skynet.sharetable`: a tree of
//! tables built once from a Lua table and then read, never written, by every service of
//! the process. No Lua here (the Lua side is `sharedata.rs`), only `std`.
//!
//! A [`Doc`] owns every table of one version (`tables[0]` is the root) and one byte
//! arena holding every string (each distinct string once). A [`Table`] has an array part
//! (keys `1..=n`, `n` the border the source table reported; holes are [`Value::Nil`]) and
//! a hash part: keys and values in the source's traversal order plus an open-addressing
//! index (linear probing, load at most 1/2) over them.
//!
//! # Invariants
//!
//! * After [`Builder::finish`] a `Doc` is never written again except its two atomics:
//!   `life` and `dirty`. Readers on any thread may read it without locks as long as they
//!   hold a reference.
//! * `life` is `2 * refs + host`: `host` (bit 0) is the builder's own hold, dropped once
//!   by [`Doc::drop_host`]; `refs` are counted holds taken by [`Doc::retain`] and given
//!   back by [`Doc::release`]. The doc is freed by whichever of those two calls brings
//!   `life` to 0, exactly once (it can never rise from 0: that would need a hold).
//! * A `*const Table` handed out is `&doc.tables[i]`; it carries a back pointer to its
//!   doc and a magic word (cleared when the doc is freed), so a pointer that came from
//!   elsewhere is refused before anything else is read from it, in the common cases.
//! * Nothing here panics on any input the builder accepts: indexes are checked with
//!   `get`, sizes with checked arithmetic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

/// Marks a live [`Table`].
const MAGIC: u64 = 0x5348_4152_4544_4f43; // "SHAREDOC"

/// Deepest nesting the builder accepts (the source is walked recursively).
pub const MAX_DEPTH: usize = 200;

/// Number of live docs and the bytes they hold (process-wide, for tests and `stat`).
static LIVE_DOCS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// `(docs, bytes)` alive in the process.
pub fn live() -> (usize, usize) {
    (
        LIVE_DOCS.load(Ordering::Relaxed),
        LIVE_BYTES.load(Ordering::Relaxed),
    )
}

/// A string in the doc's arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    off: u32,
    len: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Nil,
    Int(i64),
    Real(f64),
    Bool(bool),
    Str(Span),
    /// Index into `Doc::tables`.
    Table(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Int(i64),
    Str(Span),
}

/// A key as a reader asks for it.
#[derive(Clone, Copy, Debug)]
pub enum Probe<'a> {
    Int(i64),
    Str(&'a [u8]),
}

/// One table of a doc.
pub struct Table {
    magic: u64,
    doc: *const Doc,
    array: Box<[Value]>,
    keys: Box<[Key]>,
    vals: Box<[Value]>,
    /// 0 = empty, else index into `keys` + 1. Empty or a power of two.
    slots: Box<[u32]>,
}

/// One immutable version of a data set.
pub struct Doc {
    life: AtomicI64,
    dirty: AtomicBool,
    bytes: usize,
    strings: Box<[u8]>,
    tables: Box<[Table]>,
}

// SAFETY: a Doc is immutable after `finish` except for its atomics; the raw back
// pointers in its tables point into the doc itself.
unsafe impl Send for Doc {}
// SAFETY: as above.
unsafe impl Sync for Doc {}

fn mix(h: u64) -> u64 {
    (h ^ (h >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn hash_bytes(s: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ s.len() as u64;
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    mix(h)
}

fn hash_int(k: i64) -> u64 {
    mix((k as u64) ^ 0x2545_F491_4F6C_DD1D)
}

impl Doc {
    /// The root table.
    pub fn root(&self) -> *const Table {
        self.tables.as_ptr()
    }

    /// Bytes held (approximate: every allocation of the doc).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn table(&self, i: u32) -> Option<&Table> {
        self.tables.get(i as usize)
    }

    pub fn str(&self, s: Span) -> &[u8] {
        let start = s.off as usize;
        self.strings
            .get(start..start + s.len as usize)
            .unwrap_or(&[])
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release)
    }

    /// Counted holds (the host's hold not included).
    pub fn refs(&self) -> i64 {
        self.life.load(Ordering::Acquire) >> 1
    }

    /// Takes a hold; returns the new count.
    pub fn retain(&self) -> i64 {
        (self.life.fetch_add(2, Ordering::AcqRel) + 2) >> 1
    }

    /// Gives a hold back; frees the doc when it was the last one and the host's hold is
    /// gone. Returns the new count.
    ///
    /// # Safety
    /// `doc` must be live and the caller must own the hold it gives back; `doc` must not
    /// be used afterwards by this caller.
    pub unsafe fn release(doc: *const Doc) -> i64 {
        // SAFETY: live per the contract.
        let now = unsafe { (*doc).life.fetch_sub(2, Ordering::AcqRel) } - 2;
        if now == 0 {
            // SAFETY: life reached 0: no hold and no host remain; we are the only user.
            unsafe { Doc::free(doc) };
        }
        now >> 1
    }

    /// Drops the host's hold (once; later calls do nothing); frees the doc when no
    /// counted hold remains.
    ///
    /// # Safety
    /// `doc` must be live.
    pub unsafe fn drop_host(doc: *const Doc) {
        // SAFETY: live per the contract.
        let before = unsafe { (*doc).life.fetch_and(!1, Ordering::AcqRel) };
        if before == 1 {
            // SAFETY: the host's hold was the last one.
            unsafe { Doc::free(doc) };
        }
    }

    /// Whether the host's hold is still there.
    #[cfg(test)]
    pub fn hosted(&self) -> bool {
        self.life.load(Ordering::Acquire) & 1 == 1
    }

    unsafe fn free(doc: *const Doc) {
        // SAFETY: `doc` came from `Box::into_raw` in `finish` and nobody else uses it.
        let mut b = unsafe { Box::from_raw(doc as *mut Doc) };
        for t in b.tables.iter_mut() {
            // SAFETY: a plain write to memory we own; volatile so that it is not elided
            // as a dead store before the free (a stale pointer then finds no magic).
            unsafe { std::ptr::write_volatile(&mut t.magic, 0) };
        }
        LIVE_DOCS.fetch_sub(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(b.bytes, Ordering::Relaxed);
        drop(b);
    }
}

impl Table {
    /// The table behind a pointer handed out by this module, or `None` when the pointer
    /// does not look like one (null, or no magic word).
    ///
    /// # Safety
    /// `p` must be null or point to readable memory of at least `size_of::<Table>()`
    /// bytes; when it is a table of a doc, that doc must be live.
    pub unsafe fn from_ptr<'a>(p: *const Table) -> Option<&'a Table> {
        if p.is_null() || !(p as usize).is_multiple_of(std::mem::align_of::<Table>()) {
            return None;
        }
        // SAFETY: readable per the contract.
        let t = unsafe { &*p };
        (t.magic == MAGIC).then_some(t)
    }

    /// The doc this table belongs to.
    pub fn doc(&self) -> &Doc {
        // SAFETY: the back pointer is set by `finish` and the doc outlives its tables.
        unsafe { &*self.doc }
    }

    pub fn doc_ptr(&self) -> *const Doc {
        self.doc
    }

    /// Size of the array part (what `#` gives).
    pub fn array_len(&self) -> usize {
        self.array.len()
    }

    /// Number of hash entries.
    pub fn hash_len(&self) -> usize {
        self.keys.len()
    }

    fn key_eq(&self, k: Key, p: Probe) -> bool {
        match (k, p) {
            (Key::Int(a), Probe::Int(b)) => a == b,
            (Key::Str(s), Probe::Str(b)) => self.doc().str(s) == b,
            _ => false,
        }
    }

    /// Position of `p` in the hash part.
    fn find(&self, p: Probe) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let h = match p {
            Probe::Int(k) => hash_int(k),
            Probe::Str(s) => hash_bytes(s),
        };
        let mut i = (h as usize) & mask;
        for _ in 0..self.slots.len() {
            let s = *self.slots.get(i)?;
            if s == 0 {
                return None;
            }
            let e = (s - 1) as usize;
            if self.key_eq(*self.keys.get(e)?, p) {
                return Some(e);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// The value at `p` (`Nil` when absent).
    pub fn get(&self, p: Probe) -> Value {
        if let Probe::Int(k) = p {
            if k >= 1 && (k as u64) <= self.array.len() as u64 {
                return self
                    .array
                    .get(k as usize - 1)
                    .copied()
                    .unwrap_or(Value::Nil);
            }
        }
        match self.find(p) {
            Some(e) => self.vals.get(e).copied().unwrap_or(Value::Nil),
            None => Value::Nil,
        }
    }

    /// The array slot `i` (1-based), `Nil` outside the array part.
    pub fn get_array(&self, i: usize) -> Value {
        i.checked_sub(1)
            .and_then(|i| self.array.get(i))
            .copied()
            .unwrap_or(Value::Nil)
    }

    /// The `e`-th hash entry.
    pub fn entry(&self, e: usize) -> Option<(Key, Value)> {
        Some((*self.keys.get(e)?, *self.vals.get(e)?))
    }

    fn first_from_array(&self, from: usize) -> Option<Key> {
        for i in from..self.array.len() {
            if !matches!(self.array.get(i), Some(Value::Nil) | None) {
                return Some(Key::Int(i as i64 + 1));
            }
        }
        self.keys.first().copied()
    }

    /// The key after `after` in traversal order (array part first, holes skipped, then
    /// the hash part in the source's order); `None` at the end or when `after` is not a
    /// key of this table.
    pub fn next_key(&self, after: Option<Probe>) -> Option<Key> {
        match after {
            None => self.first_from_array(0),
            Some(Probe::Int(k)) if k >= 1 && (k as u64) <= self.array.len() as u64 => {
                self.first_from_array(k as usize)
            }
            Some(p) => {
                let e = self.find(p)?;
                self.keys.get(e + 1).copied()
            }
        }
    }
}

/// Why a build failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// A table contains itself.
    Cycle,
    /// Deeper than [`MAX_DEPTH`].
    TooDeep,
    /// More than 4 GiB of strings or 2^32 tables.
    TooLarge,
}

#[derive(Default)]
struct TableB {
    array: Vec<Value>,
    keys: Vec<Key>,
    vals: Vec<Value>,
}

/// Outcome of [`Builder::begin`].
pub enum Begun {
    /// A fresh table with this index: fill it, then call [`Builder::end`].
    New(u32),
    /// This source table was already built (it is shared within the data): reuse it.
    Done(u32),
}

/// Collects tables and strings, then freezes them into a [`Doc`].
#[derive(Default)]
pub struct Builder {
    tables: Vec<TableB>,
    strings: Vec<u8>,
    interned: HashMap<Box<[u8]>, Span>,
    /// source identity -> table index; `u32::MAX` while being built.
    seen: HashMap<usize, u32>,
}

const BUILDING: u32 = u32::MAX;

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Adds `s` to the arena (once per distinct string).
    pub fn intern(&mut self, s: &[u8]) -> Result<Span, BuildError> {
        if let Some(sp) = self.interned.get(s) {
            return Ok(*sp);
        }
        let off = u32::try_from(self.strings.len()).map_err(|_| BuildError::TooLarge)?;
        let len = u32::try_from(s.len()).map_err(|_| BuildError::TooLarge)?;
        if (off as u64) + (len as u64) > u32::MAX as u64 {
            return Err(BuildError::TooLarge);
        }
        self.strings.extend_from_slice(s);
        let sp = Span { off, len };
        self.interned.insert(s.into(), sp);
        Ok(sp)
    }

    /// Starts the table whose source identity is `id` with an array part of `narray`
    /// slots, all `Nil` until set.
    pub fn begin(&mut self, id: usize, narray: usize, depth: usize) -> Result<Begun, BuildError> {
        match self.seen.get(&id) {
            Some(&BUILDING) => return Err(BuildError::Cycle),
            Some(&i) => return Ok(Begun::Done(i)),
            None => {}
        }
        if depth > MAX_DEPTH {
            return Err(BuildError::TooDeep);
        }
        let i = u32::try_from(self.tables.len()).map_err(|_| BuildError::TooLarge)?;
        if i == BUILDING {
            return Err(BuildError::TooLarge);
        }
        self.tables.push(TableB {
            array: vec![Value::Nil; narray],
            ..TableB::default()
        });
        self.seen.insert(id, BUILDING);
        Ok(Begun::New(i))
    }

    /// Sets array slot `k` (1-based, within the size given to `begin`).
    pub fn set_array(&mut self, t: u32, k: usize, v: Value) {
        if let Some(slot) = self
            .tables
            .get_mut(t as usize)
            .and_then(|tb| tb.array.get_mut(k.wrapping_sub(1)))
        {
            *slot = v;
        }
    }

    /// Adds a hash entry (keys are unique: they come from one Lua table).
    pub fn push(&mut self, t: u32, k: Key, v: Value) {
        if let Some(tb) = self.tables.get_mut(t as usize) {
            tb.keys.push(k);
            tb.vals.push(v);
        }
    }

    /// Finishes the table started with `begin(id, ..)`.
    pub fn end(&mut self, id: usize, t: u32) {
        self.seen.insert(id, t);
    }

    fn str_of(&self, s: Span) -> &[u8] {
        let start = s.off as usize;
        self.strings
            .get(start..start + s.len as usize)
            .unwrap_or(&[])
    }

    fn index(&self, keys: &[Key]) -> Box<[u32]> {
        if keys.is_empty() {
            return Box::new([]);
        }
        let cap = (keys.len() * 2).next_power_of_two();
        let mask = cap - 1;
        let mut slots = vec![0u32; cap];
        for (e, k) in keys.iter().enumerate() {
            let h = match *k {
                Key::Int(i) => hash_int(i),
                Key::Str(s) => hash_bytes(self.str_of(s)),
            };
            let mut i = (h as usize) & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = e as u32 + 1;
        }
        slots.into_boxed_slice()
    }

    /// Freezes everything into a doc with the host's hold set and no counted hold.
    /// Table 0 (the first one begun) is the root; there must be one.
    pub fn finish(mut self) -> *const Doc {
        if self.tables.is_empty() {
            self.tables.push(TableB::default());
        }
        let mut bytes = std::mem::size_of::<Doc>() + self.strings.len();
        let built = std::mem::take(&mut self.tables);
        let mut tables = Vec::with_capacity(built.len());
        for tb in built {
            let slots = self.index(&tb.keys);
            bytes += std::mem::size_of::<Table>()
                + tb.array.len() * std::mem::size_of::<Value>()
                + tb.keys.len() * (std::mem::size_of::<Key>() + std::mem::size_of::<Value>())
                + slots.len() * 4;
            tables.push(Table {
                magic: MAGIC,
                doc: std::ptr::null(),
                array: tb.array.into_boxed_slice(),
                keys: tb.keys.into_boxed_slice(),
                vals: tb.vals.into_boxed_slice(),
                slots,
            });
        }
        let doc = Box::into_raw(Box::new(Doc {
            life: AtomicI64::new(1),
            dirty: AtomicBool::new(false),
            bytes,
            strings: std::mem::take(&mut self.strings).into_boxed_slice(),
            tables: tables.into_boxed_slice(),
        }));
        // SAFETY: just allocated, not shared yet.
        unsafe {
            for t in (*doc).tables.iter_mut() {
                t.doc = doc;
            }
        }
        LIVE_DOCS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
        doc
    }
}

#[cfg(test)]
#[allow(clippy::undocumented_unsafe_blocks)] // tests: pointers from the Doc just built
mod tests {
    use super::*;

    fn sample() -> *const Doc {
        let mut b = Builder::new();
        let Begun::New(root) = b.begin(1, 3, 0).unwrap() else {
            panic!()
        };
        b.set_array(root, 1, Value::Int(10));
        b.set_array(root, 3, Value::Real(2.5));
        let name = b.intern(b"name").unwrap();
        let v = b.intern(b"skynet\0rs").unwrap();
        b.push(root, Key::Str(name), Value::Str(v));
        b.push(root, Key::Int(-7), Value::Bool(true));
        let Begun::New(child) = b.begin(2, 0, 1).unwrap() else {
            panic!()
        };
        for i in 0..100 {
            let k = b.intern(format!("k{i}").as_bytes()).unwrap();
            b.push(child, Key::Str(k), Value::Int(i));
        }
        b.end(2, child);
        let sub = b.intern(b"sub").unwrap();
        b.push(root, Key::Str(sub), Value::Table(child));
        assert!(matches!(b.begin(2, 0, 1), Ok(Begun::Done(1))));
        assert_eq!(b.begin(1, 0, 1).err(), Some(BuildError::Cycle));
        b.end(1, root);
        b.finish()
    }

    #[test]
    fn lookup_and_order() {
        let doc = sample();
        let d = unsafe { &*doc };
        let root = unsafe { Table::from_ptr(d.root()) }.unwrap();
        assert_eq!(root.array_len(), 3);
        assert_eq!(root.get(Probe::Int(1)), Value::Int(10));
        assert_eq!(root.get(Probe::Int(2)), Value::Nil);
        assert_eq!(root.get(Probe::Int(-7)), Value::Bool(true));
        let Value::Str(s) = root.get(Probe::Str(b"name")) else {
            panic!()
        };
        assert_eq!(d.str(s), b"skynet\0rs");
        let Value::Table(c) = root.get(Probe::Str(b"sub")) else {
            panic!()
        };
        let child = d.table(c).unwrap();
        for i in 0..100 {
            assert_eq!(
                child.get(Probe::Str(format!("k{i}").as_bytes())),
                Value::Int(i)
            );
        }
        assert_eq!(child.get(Probe::Str(b"k100")), Value::Nil);
        // traversal: 1, 3 (hole skipped), then hash entries in insertion order
        let mut keys = vec![];
        let mut k = root.next_key(None);
        while let Some(key) = k {
            keys.push(key);
            let p = match key {
                Key::Int(i) => Probe::Int(i),
                Key::Str(s) => Probe::Str(d.str(s)),
            };
            k = root.next_key(Some(p));
        }
        assert_eq!(keys.len(), 5);
        assert_eq!(keys[0], Key::Int(1));
        assert_eq!(keys[1], Key::Int(3));
        assert_eq!(keys[3], Key::Int(-7));
        assert_eq!(root.next_key(Some(Probe::Str(b"nope"))), None);
        unsafe { Doc::drop_host(doc) };
    }

    #[test]
    fn holds() {
        let doc = sample();
        let d = unsafe { &*doc };
        assert_eq!(d.retain(), 1);
        assert_eq!(d.retain(), 2);
        unsafe { Doc::drop_host(doc) };
        unsafe { Doc::drop_host(doc) }; // second call: no effect
        assert!(!d.hosted());
        assert_eq!(unsafe { Doc::release(doc) }, 1);
        assert_eq!(unsafe { Doc::release(doc) }, 0); // freed here
    }
}
