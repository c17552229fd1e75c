//! `skynet.multicast.core`: the shared, reference-counted message of `skynet.multicast`
//! and the `multicastd` service (contract: services.md "Multicast").
//!
//! A published message becomes one *package*: the packed bytes (a payload block) plus a
//! reference count. The channel service sends every subscriber the same 8 bytes, the
//! package's address, as a `PTYPE_MULTICAST` message whose session is the channel id;
//! each subscriber reads the message through the package and gives its reference back
//! with `close`. The last `close` frees the bytes and the package, exactly once. No
//! subscriber copies the message.
//!
//! Functions (upstream's set): `pack(msg, sz)` -> package, 8; `unpack(msg, sz)` (a
//! delivery) -> package, msg, sz; `bind(package, n)` -> package (n references, once);
//! `close(package)`; `remote(package)` -> msg, sz (takes the bytes back out of an
//! unbound package, for forwarding to another node); `packremote(msg, sz)` -> package, 8
//! (a package over a copy of borrowed bytes); `nextid(id)` -> the next channel id of the
//! same node. Ours only: `live()` -> number of live packages, their bytes (tests).
//!
//! # Package layout
//!
//! The package's first field is its own address. Upstream's `multicastd.lua` turns the
//! `pack` result into the delivery with `skynet.tostring(package, 8)`, which reads the
//! 8 bytes *at* that address; here those bytes are the address itself, so no separate
//! pointer box is allocated (upstream allocates one per publish).
//!
//! # Invariants
//!
//! * Every package is in [`LIVE`] from `pack` until it is freed. Each function that is
//!   handed a package (from a message payload or a lightuserdata) checks it there first,
//!   so a stray or stale address is a Lua error, not a use after free.
//! * The reference count only changes under the [`LIVE`] lock, and the package leaves
//!   the set under the same lock section that sees the count reach zero: two
//!   subscribers on two workers cannot both free it.
//! * Lua errors are `longjmp`s: no frame holds a value with a destructor (the lock
//!   guard included) when a Lua API call that can raise runs.

#![allow(non_snake_case)]
#![deny(unsafe_op_in_unsafe_fn)]

use crate::lua::ffi::raise_owned as raise;
use crate::message::{payload_alloc, payload_free};
use mlua::ffi::{self, lua_State};
use std::collections::HashSet;
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

/// Size of a delivery: one package address.
const DELIVERY: usize = std::mem::size_of::<*mut Package>();

#[repr(C)]
struct Package {
    /// Its own address: the bytes a delivery carries (see the module doc).
    this: *mut Package,
    /// References still to be closed; 0 until `bind`.
    refs: i64,
    size: u32,
    /// A payload block owned by the package.
    data: *mut u8,
}

/// Addresses of the live packages.
static LIVE: LazyLock<Mutex<HashSet<usize>>> = LazyLock::new(|| Mutex::new(HashSet::new()));
/// Bytes held by live packages (their messages).
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

fn live() -> MutexGuard<'static, HashSet<usize>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new unbound package owning `data`.
fn new_package(data: *mut u8, size: u32) -> *mut Package {
    let p = Box::into_raw(Box::new(Package {
        this: std::ptr::null_mut(),
        refs: 0,
        size,
        data,
    }));
    // SAFETY: p was just allocated and is not shared yet.
    unsafe { (*p).this = p };
    LIVE_BYTES.fetch_add(size as usize, Ordering::Relaxed);
    live().insert(p as usize);
    p
}

/// Frees a package that has already left [`LIVE`]; `with_data` also frees its bytes.
///
/// # Safety
/// `p` came from [`new_package`], was removed from [`LIVE`] by the caller, and nobody
/// else can reach it any more.
unsafe fn free_package(p: *mut Package, with_data: bool) {
    // SAFETY: per the contract, p is a unique, valid Box pointer.
    let pkg = unsafe { Box::from_raw(p) };
    LIVE_BYTES.fetch_sub(pkg.size as usize, Ordering::Relaxed);
    if with_data {
        // SAFETY: data is the package's own payload block.
        unsafe { payload_free(pkg.data) };
    }
}

/// What closing one reference found.
enum Closed {
    /// References remain.
    Kept,
    /// That was the last one: the package is freed.
    Freed,
    /// The package was not bound (or over-closed): freed anyway, as upstream, and the
    /// count it reached is reported.
    Invalid(i64),
    /// Not a live package.
    Unknown,
}

/// Gives back one reference of `p`. With `bound_only`, a package that is not bound is
/// left alone (reported as `Unknown`).
fn close_ref(p: *mut Package, bound_only: bool) -> Closed {
    let mut set = live();
    if !set.contains(&(p as usize)) {
        return Closed::Unknown;
    }
    // SAFETY: p is live and its count is only read or written under this lock.
    if bound_only && unsafe { (*p).refs } <= 0 {
        return Closed::Unknown;
    }
    // SAFETY: p is live (in the set) and its count is only touched under this lock.
    let left = unsafe {
        (*p).refs -= 1;
        (*p).refs
    };
    if left > 0 {
        return Closed::Kept;
    }
    set.remove(&(p as usize));
    drop(set);
    // SAFETY: removed from the set under the lock that saw the count reach zero.
    unsafe { free_package(p, true) };
    if left < 0 {
        Closed::Invalid(left)
    } else {
        Closed::Freed
    }
}

/// The package address carried by a delivery (`size` bytes at `data`), if it names a
/// live package.
///
/// # Safety
/// `data` points to at least `size` readable bytes.
unsafe fn delivery_target(data: *const u8, size: usize) -> Option<*mut Package> {
    if data.is_null() || size != DELIVERY {
        return None;
    }
    // SAFETY: size bytes are readable; the payload need not be aligned.
    let p = unsafe { std::ptr::read_unaligned(data as *const *mut Package) };
    live().contains(&(p as usize)).then_some(p)
}

/// The runtime drops a queued `PTYPE_MULTICAST` message (its receiver is gone before
/// reading it): when the payload is a delivery of a live, bound package, give back the
/// reference it carried, so the package is still freed once every other subscriber has
/// read it. Any other payload is left alone.
///
/// # Safety
/// `data` points to at least `size` readable bytes (or is null).
pub unsafe fn release_dropped(data: *const u8, size: usize) {
    // SAFETY: forwarded contract.
    if let Some(p) = unsafe { delivery_target(data, size) } {
        close_ref(p, true);
    }
}

/// Number of live packages and the bytes of their messages.
pub fn live_packages() -> (usize, usize) {
    (live().len(), LIVE_BYTES.load(Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------
// Lua binding

/// The size argument at `idx`, which must fit 32 bits.
unsafe fn size_arg(L: *mut lua_State, idx: c_int) -> u32 {
    // SAFETY: L is the running state.
    let n = unsafe { ffi::luaL_checkinteger(L, idx) };
    match u32::try_from(n) {
        Ok(n) => n,
        // SAFETY: as above.
        Err(_) => unsafe { raise(L, "Size should be 32bit integer".into()) },
    }
}

/// A package argument: must be a live package.
unsafe fn package_arg(L: *mut lua_State, idx: c_int) -> *mut Package {
    // SAFETY: L is the running state.
    let p = unsafe { ffi::lua_touserdata(L, idx) } as *mut Package;
    if p.is_null() || !live().contains(&(p as usize)) {
        // SAFETY: as above.
        unsafe { raise(L, "Invalid multicast package".into()) }
    }
    p
}

unsafe fn push_package(L: *mut lua_State, p: *mut Package) -> c_int {
    // SAFETY: L is the running state.
    unsafe {
        ffi::lua_pushlightuserdata(L, p as *mut c_void);
        ffi::lua_pushinteger(L, DELIVERY as ffi::lua_Integer);
    }
    2
}

/// `pack(msg, sz)`: a package taking ownership of the payload `msg` (e.g. from
/// `skynet.pack`). A string is copied (ours; upstream needs a pointer).
unsafe extern "C-unwind" fn l_pack(L: *mut lua_State) -> c_int {
    // SAFETY: L is the running state; argument reads may raise before anything is owned.
    unsafe {
        if ffi::lua_type(L, 1) == ffi::LUA_TSTRING {
            let mut len = 0usize;
            let s = ffi::lua_tolstring(L, 1, &mut len) as *const u8;
            if u32::try_from(len).is_err() {
                raise(L, "Size should be 32bit integer".into());
            }
            let data = payload_alloc(len);
            std::ptr::copy_nonoverlapping(s, data, len);
            return push_package(L, new_package(data, len as u32));
        }
        let data = ffi::lua_touserdata(L, 1) as *mut u8;
        let size = size_arg(L, 2);
        push_package(L, new_package(data, size))
    }
}

/// `packremote(msg, sz)`: a package over a copy of borrowed bytes (a message that came
/// from another node: the runtime frees the original).
unsafe extern "C-unwind" fn l_packremote(L: *mut lua_State) -> c_int {
    // SAFETY: L is the running state; `msg` points to `sz` readable bytes (the message
    // being dispatched), as upstream requires.
    unsafe {
        let src = ffi::lua_touserdata(L, 1) as *const u8;
        let size = size_arg(L, 2);
        let data = payload_alloc(size as usize);
        if size > 0 && !src.is_null() {
            std::ptr::copy_nonoverlapping(src, data, size as usize);
        }
        push_package(L, new_package(data, size))
    }
}

/// `unpack(msg, sz)`: a delivery -> package, msg, sz. The message stays valid until the
/// package is closed.
unsafe extern "C-unwind" fn l_unpack(L: *mut lua_State) -> c_int {
    // SAFETY: L is the running state; `msg` is the payload being dispatched (`sz` bytes)
    // or a Lua string.
    unsafe {
        let (data, size) = if ffi::lua_type(L, 1) == ffi::LUA_TSTRING {
            let mut len = 0usize;
            let s = ffi::lua_tolstring(L, 1, &mut len) as *const u8;
            (s, len as ffi::lua_Integer)
        } else {
            (
                ffi::lua_touserdata(L, 1) as *const u8,
                ffi::luaL_checkinteger(L, 2),
            )
        };
        if size != DELIVERY as ffi::lua_Integer {
            raise(L, format!("Invalid multicast package size {size}"));
        }
        let Some(p) = delivery_target(data, DELIVERY) else {
            raise(L, "Invalid multicast package".into());
        };
        // p holds at least the reference this delivery carries: it stays live.
        let (msg, sz) = ((*p).data, (*p).size);
        ffi::lua_pushlightuserdata(L, p as *mut c_void);
        ffi::lua_pushlightuserdata(L, msg as *mut c_void);
        ffi::lua_pushinteger(L, sz as ffi::lua_Integer);
    }
    3
}

/// `bind(package, n)`: the package will be delivered `n` times; returns the package.
unsafe extern "C-unwind" fn l_bind(L: *mut lua_State) -> c_int {
    // SAFETY: L is the running state.
    unsafe {
        let p = package_arg(L, 1);
        let n = ffi::luaL_checkinteger(L, 2);
        if n < 1 {
            raise(L, format!("Invalid multicast package reference {n}"));
        }
        let bound = {
            let set = live();
            // Count changes happen under this lock only.
            if !set.contains(&(p as usize)) {
                None
            } else if (*p).refs != 0 {
                Some(false)
            } else {
                (*p).refs = n;
                Some(true)
            }
        };
        match bound {
            None => raise(L, "Invalid multicast package".into()),
            Some(false) => raise(L, "Can't bind a multicast package more than once".into()),
            Some(true) => {}
        }
        ffi::lua_pushlightuserdata(L, p as *mut c_void);
    }
    1
}

/// `close(package)`: gives back one reference; the last frees the message.
unsafe extern "C-unwind" fn l_close(L: *mut lua_State) -> c_int {
    // SAFETY: L is the running state.
    unsafe {
        let p = ffi::lua_touserdata(L, 1) as *mut Package;
        match close_ref(p, false) {
            Closed::Kept | Closed::Freed => 0,
            Closed::Invalid(n) => raise(L, format!("Invalid multicast package reference {n}")),
            Closed::Unknown => raise(L, "Invalid multicast package".into()),
        }
    }
}

/// `remote(package)`: an unbound package's message, handed back (msg, sz) for the
/// caller to send on; the package is freed.
unsafe extern "C-unwind" fn l_remote(L: *mut lua_State) -> c_int {
    // SAFETY: L is the running state.
    unsafe {
        let p = package_arg(L, 1);
        let taken = {
            let mut set = live();
            if set.contains(&(p as usize)) && (*p).refs == 0 {
                set.remove(&(p as usize));
                true
            } else {
                false
            }
        };
        if !taken {
            raise(
                L,
                "Can't take the message of a bound multicast package".into(),
            );
        }
        let (data, size) = ((*p).data, (*p).size);
        // Removed from the set above; the bytes now belong to the caller.
        free_package(p, false);
        ffi::lua_pushlightuserdata(L, data as *mut c_void);
        ffi::lua_pushinteger(L, size as ffi::lua_Integer);
    }
    2
}

/// `nextid(id)`: the next channel id of the node in the low 8 bits; the top bit of the
/// 32-bit id is kept clear (the id travels as a positive session).
unsafe extern "C-unwind" fn l_nextid(L: *mut lua_State) -> c_int {
    // SAFETY: L is the running state.
    unsafe {
        let id = ffi::luaL_checkinteger(L, 1) as u32;
        let next = id.wrapping_add(256) & 0x7fff_ffff;
        ffi::lua_pushinteger(L, next as ffi::lua_Integer);
    }
    1
}

/// `live()` -> packages, bytes (ours, for tests and leak checks).
unsafe extern "C-unwind" fn l_live(L: *mut lua_State) -> c_int {
    let (n, bytes) = live_packages();
    // SAFETY: L is the running state.
    unsafe {
        ffi::lua_pushinteger(L, n as ffi::lua_Integer);
        ffi::lua_pushinteger(L, bytes as ffi::lua_Integer);
    }
    2
}

/// `require "skynet.multicast.core"`.
///
/// # Safety
/// `L` must be a valid Lua state.
pub unsafe extern "C-unwind" fn luaopen_skynet_multicast_core(L: *mut lua_State) -> c_int {
    let fns: &[(&CStr, ffi::lua_CFunction)] = &[
        (c"pack", l_pack),
        (c"unpack", l_unpack),
        (c"bind", l_bind),
        (c"close", l_close),
        (c"remote", l_remote),
        (c"packremote", l_packremote),
        (c"nextid", l_nextid),
        (c"live", l_live),
    ];
    // SAFETY: L is a valid state (caller's contract).
    unsafe {
        ffi::lua_createtable(L, 0, fns.len() as c_int);
        for (name, f) in fns {
            ffi::lua_pushcfunction(L, *f);
            ffi::lua_setfield(L, -2, name.as_ptr());
        }
    }
    1
}
