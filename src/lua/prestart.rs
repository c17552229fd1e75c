//! Lua states made ahead of time.
//!
//! Most of a service's start is making its Lua state: the standard libraries, the
//! preloads, the framework's searchers (see [`blank_state`]). None of that depends on
//! the service, so idle workers make a few in advance: when a service starts, it takes
//! one (moving it onto its own memory counter) instead of building it on the spawn's
//! critical path, and the start wakes an idle worker to make the next one.
//!
//! Invariants: a blank state in the pool is touched by no thread (it moves between
//! threads whole, like a service's state); it allocates through its own counter until
//! a service adopts it; the pool holds at most [`TARGET`] states (~16 KB each), made
//! only by threads with nothing else to do.

#![allow(non_snake_case)] // `L` is the Lua C API convention for a lua_State.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::host::{blank_state, AllocState};
use mlua::ffi::{self, lua_State};

/// States kept ready: two, so a burst of starts overlaps with the refill.
const TARGET: usize = 2;

/// A state with the standard libraries and nothing of any service yet.
pub(crate) struct Blank {
    L: *mut lua_State,
    /// Its counter until adopted: boxed, so the address the state holds is stable.
    alloc: Box<AllocState>,
}

// SAFETY: a blank state is owned by whoever holds the `Blank`: one thread at a time.
unsafe impl Send for Blank {}

impl Blank {
    /// The state and the counter it still allocates through: the caller moves it to
    /// its own counter (`lua_setallocf`) before the counter is dropped.
    pub(crate) fn into_parts(self) -> (*mut lua_State, Box<AllocState>) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so each field is moved out exactly once.
        unsafe { (this.L, std::ptr::read(&this.alloc)) }
    }
}

impl Drop for Blank {
    fn drop(&mut self) {
        // SAFETY: an unadopted state, held by nobody else.
        unsafe { ffi::lua_close(self.L) };
    }
}

static POOL: Mutex<Vec<Blank>> = Mutex::new(Vec::new());
/// `POOL.len()`, readable without the lock (idle workers check it on every idle turn).
static READY: AtomicUsize = AtomicUsize::new(0);
/// Asks an idle worker to run [`refill`] (installed by the runtime).
static WAKE: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Let service starts wake an idle worker to refill the pool.
pub fn set_waker(wake: fn()) {
    let _ = WAKE.set(wake);
}

/// A ready state, if any; asks for a replacement.
pub(crate) fn take() -> Option<Blank> {
    if READY.load(Ordering::Relaxed) == 0 {
        want_more();
        return None;
    }
    let blank = {
        let mut pool = POOL.lock();
        let b = pool.pop();
        READY.store(pool.len(), Ordering::Relaxed);
        b
    };
    want_more();
    blank
}

fn want_more() {
    if let Some(wake) = WAKE.get() {
        wake();
    }
}

/// Make states until [`TARGET`] are ready (idle workers; nothing to do when full).
pub fn refill() {
    while READY.load(Ordering::Relaxed) < TARGET {
        let alloc = Box::new(AllocState::new(0));
        // SAFETY: the counter is boxed into the `Blank` with the state, which is moved
        // off it before the box is dropped (`into_parts`) or closed with it (`Drop`).
        let Some(L) = (unsafe { blank_state(&alloc) }) else {
            return;
        };
        let blank = Blank { L, alloc };
        let mut pool = POOL.lock();
        if pool.len() >= TARGET {
            // Another worker filled it meanwhile: close ours outside the lock.
            drop(pool);
            return;
        }
        pool.push(blank);
        READY.store(pool.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool fills to TARGET, a taken state is a working Lua state with the
    /// libraries, and its bytes are on its own counter until adopted.
    #[test]
    fn refill_then_take() {
        refill();
        assert_eq!(READY.load(Ordering::Relaxed), TARGET);
        let blank = take().expect("a ready state");
        assert_eq!(READY.load(Ordering::Relaxed), TARGET - 1);
        let (L, alloc) = blank.into_parts();
        assert!(
            alloc.used.load(Ordering::Relaxed) > 0,
            "the state's bytes are counted"
        );
        // SAFETY: the state is ours; its counter (alloc) is alive until after the close.
        unsafe {
            assert_eq!(ffi::lua_getglobal(L, c"string".as_ptr()), ffi::LUA_TTABLE);
            assert_eq!(
                ffi::lua_getfield(L, -1, c"format".as_ptr()),
                ffi::LUA_TFUNCTION
            );
            ffi::lua_close(L);
        }
        drop(alloc);
        refill();
        assert_eq!(READY.load(Ordering::Relaxed), TARGET);
    }
}
