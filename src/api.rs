//! The service API: everything native services (`src/services/`, `src/sample/`) and
//! native Lua modules (`src/lua/`) may ask of the runtime. It plays the part of
//! upstream's `skynet.h`: send (by handle or name), command, timeout, log, time, env,
//! address lookup, the socket server, and the few calls a specific service needs
//! (retire, the harbor's reservation, the SIGNAL handler). Nothing else of the runtime
//! (handle table, scheduler, timer wheel, queues, the `Runtime` struct) is reachable
//! from those layers; `grep -rn "use crate::" src` shows them importing `api`, the Lua
//! layer and leaf modules (`message`, `socket`, `remote` for the harbor) only.
//!
//! # Design
//!
//! * Free functions over the process-wide runtime, each `#[inline]` and a direct call
//!   of the runtime's own method: no extra indirection, lock, allocation or copy on the
//!   message path (`skynet.core.send`, service replies).
//! * A service is named by its [`Context`], which the runtime hands to
//!   [`NativeService::init`] and [`NativeService::dispatch`]. To a service it is an
//!   opaque token with two methods: `handle()` (its own address) and `new_session()`.
//! * The trait [`NativeService`] and the message types are re-exported here, so a
//!   service needs this module, `message` (payload blocks) and, for network services,
//!   `socket`.
//!
//! # Invariants
//!
//! * The runtime exists before the first service starts and lives until the process
//!   ends; calling these functions without one is a programming error and panics,
//!   except [`log`]/[`log_bytes`], which drop the line (unit tests of Lua modules run
//!   without a runtime).
//! * `from`/`ctx` arguments are the *calling* service, on the thread that holds its
//!   queue (its worker, or the launching thread during `init`): the session counter and
//!   the owed-request bookkeeping behind them are not locked.
//! * Payload pointers follow upstream's C contract (see [`send`]).

use crate::runtime;
use crate::socket::SocketServer;

pub use crate::context::{Context, NativeService};
pub use crate::message::{ptype, Message};
pub use crate::runtime::{parse_hex_address, SendError};

/// Send a message from `source` to `dest` (`skynet_send`); returns the session.
///
/// `ty` is a `ptype` plus optional tags: `TAG_ALLOCSESSION` takes a fresh session of
/// `from` (0 without one), `TAG_DONTCOPY` hands `data` over instead of copying it.
/// `Err(NoDestination)` when `dest` is gone or 0, `Err(TooLarge)` past 2^56 bytes. A
/// reply (`RESPONSE`/`ERROR` with a session) or a redirected request (`source` other
/// than `from`) clears the request `from` owed.
///
/// # Safety
/// * `data` is null or points at `size` readable bytes; with `TAG_DONTCOPY` it is a
///   payload block (`message::payload_alloc`) whose ownership passes here, delivered
///   or not.
/// * `from`, when given, is the calling service on the thread that holds its queue.
#[inline]
#[allow(clippy::too_many_arguments)]
pub unsafe fn send(
    from: Option<&Context>,
    source: u32,
    dest: u32,
    ty: i32,
    session: i32,
    data: *mut u8,
    size: usize,
) -> Result<i32, SendError> {
    // SAFETY: the caller keeps the contract above, which is the runtime's.
    unsafe { runtime::get().send(from, source, dest, ty, session, data, size) }
}

/// Send to a string address (`skynet_sendname`): `:hex`, `.localname`, a decimal
/// handle, or a global name (through the harbor service).
///
/// # Safety
/// As [`send`].
#[inline]
#[allow(clippy::too_many_arguments)]
pub unsafe fn send_name(
    from: Option<&Context>,
    source: u32,
    addr: &str,
    ty: i32,
    session: i32,
    data: *mut u8,
    size: usize,
) -> Result<i32, SendError> {
    // SAFETY: as `send`.
    unsafe { runtime::get().send_name(from, source, addr, ty, session, data, size) }
}

/// Run a text command for `ctx` (`skynet_command`: TIMEOUT, REG, NAME, EXIT, KILL,
/// LAUNCH, GETENV, STAT, ...); `None` is upstream's NULL result.
#[inline]
pub fn command(ctx: &Context, cmd: &str, param: Option<&str>) -> Option<String> {
    crate::command::run(runtime::get(), ctx, cmd, param)
}

/// `TIMEOUT`: a fresh session of `ctx` answered by a `PTYPE_RESPONSE` after `ticks`
/// centiseconds (at once when `ticks <= 0`).
#[inline]
pub fn timeout(ctx: &Context, ticks: i64) -> i32 {
    runtime::get().timeout(ctx, ticks)
}

/// Log `text` as service `source` (`skynet_error`).
#[inline]
pub fn log(source: u32, text: &str) {
    log_bytes(source, text.as_bytes());
}

/// Log raw bytes as service `source`.
#[inline]
pub fn log_bytes(source: u32, text: &[u8]) {
    if let Some(rt) = runtime::try_get() {
        rt.log_bytes(source, text);
    }
}

/// Centiseconds since the node started (`skynet_now`).
#[inline]
pub fn now() -> u64 {
    runtime::get().timer.now()
}

/// Wall-clock UNIX seconds when the node started (`skynet_starttime`).
#[inline]
pub fn starttime() -> u64 {
    runtime::get().timer.start_time()
}

/// Monotonic clock in nanoseconds (`skynet.hpc`).
#[inline]
pub fn hpc() -> u64 {
    crate::timer::hpc()
}

/// A value of the string environment (config file, SETENV).
#[inline]
pub fn getenv(key: &str) -> Option<String> {
    crate::env::get(key)
}

/// The handle behind `:hex`, `.localname` or a decimal handle (`skynet_queryname`);
/// None for an unknown local name and for global names.
#[inline]
pub fn query_name(addr: &str) -> Option<u32> {
    match runtime::get().resolve(addr)? {
        runtime::Resolved::Handle(h) => Some(h),
        runtime::Resolved::Global => None,
    }
}

/// Messages waiting in the queue of local service `handle` (None: no such service).
/// Ours: lets a producer see that its consumer is falling behind (cluster senders).
#[inline]
pub fn queue_len(handle: u32) -> Option<usize> {
    runtime::get().handles.grab(handle).map(|c| c.queue.len())
}

/// The harbor id of `handle` and whether it lives on another node (`skynet_isremote`).
#[inline]
pub fn is_remote(handle: u32) -> (u32, bool) {
    let harbor = handle >> crate::handle::HANDLE_REMOTE_SHIFT;
    let local = runtime::get().harbor_id();
    (harbor, harbor != 0 && harbor != local)
}

/// The process's socket server.
#[inline]
pub fn socket_server() -> &'static SocketServer {
    runtime::socket_server()
}

/// Retire `handle` without a log line (EXIT logs `KILL self`): it gets no further
/// messages, what it owes is answered with errors. False if it was not alive.
#[inline]
pub fn retire(handle: u32) -> bool {
    runtime::get().retire(handle)
}

/// Make `ctx` the harbor service: sends to global names go to it, and it does not keep
/// the process alive (`skynet_harbor_start`). For the `harbor` service only.
#[inline]
pub fn reserve_harbor(ctx: &Context) {
    runtime::get().reserve_harbor(ctx.handle());
}

/// Install `ctx`'s `SIGNAL` handler, callable from any thread (first one wins).
#[inline]
pub fn set_signal_handler(ctx: &Context, handler: impl Fn(i32) + Send + Sync + 'static) {
    let _ = ctx.signal_handler.set(Box::new(handler));
}
