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
        let surplus = {
            let mut pool = POOL.lock();
            if pool.len() >= TARGET {
                Some(blank) // another worker filled it meanwhile
            } else {
                pool.push(blank);
                READY.store(pool.len(), Ordering::Relaxed);
                None
            }
        };
        if surplus.is_some() {
            return; // closed here, outside the lock
        }
    }
}
