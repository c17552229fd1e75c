//! A service instance ("context"): its handle, message queue, native module instance,
//! session counter and statistics.
//!
//! Ownership: the handle table and the global queue hold `Arc<Context>`s. The module
//! instance (`NativeService`, e.g. a Lua state) sits in an `UnsafeCell` and is touched
//! only by the thread that holds the service's queue (one worker at a time, or the
//! launching thread during `init` before the queue is first scheduled). Retiring a
//! service removes its handle and pushes a marker message into its queue (so a worker
//! that holds the queue cannot let it go idle unnoticed); the worker that next runs it
//! drains it (error replies) and drops the instance.
//!
//! Project decision (core.md §9.7): besides queued requests, the runtime remembers the
//! requests a service has received and not yet answered; when the service is retired
//! each of them is answered with `PTYPE_ERROR`, so callers of a killed service get
//! `call failed` instead of hanging. The bookkeeping is a small hash set touched once
//! per request and once per reply, on the service's own worker.

use crate::cache_line::CacheLine;
use crate::message::{ptype, Message};
use crate::mq::MessageQueue;
use parking_lot::Mutex;
use std::cell::UnsafeCell;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;

/// A service implemented in Rust (upstream: a C service module's create/init/signal).
///
/// The runtime calls `init` once on the launching thread, then `dispatch` for each
/// message, never concurrently for one service (a service's queue is held by one
/// worker at a time), so implementations need no locking of their own. They reach the
/// runtime through [`crate::api`]. The `SIGNAL` command runs on any thread, so a
/// service that handles it installs a handler ([`crate::api::set_signal_handler`]).
pub trait NativeService: Send {
    /// `param` is the text after the module name (None when there was no delimiter).
    fn init(&mut self, ctx: &Arc<Context>, param: Option<&str>) -> Result<(), String>;

    /// Handle one message. Return `true` when the service took ownership of
    /// `msg.data` (kept or forwarded it); otherwise the runtime frees it.
    fn dispatch(&mut self, ctx: &Arc<Context>, msg: &mut Message) -> bool;
}

/// A multiply-shift hasher for the (source, session) keys of pending requests.
#[derive(Default)]
pub struct KeyHasher(u64);
impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}
type PendingSet = HashSet<u64, BuildHasherDefault<KeyHasher>>;

fn request_key(source: u32, session: i32) -> u64 {
    ((source as u64) << 32) | session as u32 as u64
}

/// One service. To services (through [`crate::api`]) an opaque token with two methods,
/// [`Context::handle`] and [`Context::new_session`]; the rest is the runtime's.
pub struct Context {
    handle: u32,
    /// Written by every sender: kept off the line of the fields its holder touches.
    pub(crate) queue: CacheLine<MessageQueue>,
    service: UnsafeCell<Option<Box<dyn NativeService>>>,
    pending: UnsafeCell<PendingSet>,
    session: AtomicI32,
    retired: AtomicBool,
    endless: AtomicBool,
    /// Nanoseconds spent in this service's callbacks.
    pub(crate) cpu_ns: AtomicU64,
    /// Start of the callback now running (runtime clock ns), 0 when idle.
    pub(crate) running_since: AtomicU64,
    pub(crate) message_count: AtomicU64,
    logging: AtomicBool,
    pub(crate) logfile: Mutex<Option<std::fs::File>>,
    /// The module's `SIGNAL` entry, callable from any thread.
    pub(crate) signal_handler: std::sync::OnceLock<Box<dyn Fn(i32) + Send + Sync>>,
}

// SAFETY: the UnsafeCell fields are only accessed by the single thread that holds the
// service's queue (see the module doc); everything else is atomic or locked.
unsafe impl Sync for Context {}
// SAFETY: as above; the native instance is `Send`.
unsafe impl Send for Context {}

impl crate::handle::Handled for Context {
    fn handle(&self) -> u32 {
        self.handle
    }
}

impl Context {
    pub(crate) fn new(handle: u32) -> Context {
        Context {
            handle,
            queue: CacheLine(MessageQueue::new()),
            service: UnsafeCell::new(None),
            pending: UnsafeCell::new(PendingSet::default()),
            session: AtomicI32::new(0),
            retired: AtomicBool::new(false),
            endless: AtomicBool::new(false),
            cpu_ns: AtomicU64::new(0),
            running_since: AtomicU64::new(0),
            message_count: AtomicU64::new(0),
            logging: AtomicBool::new(false),
            logfile: Mutex::new(None),
            signal_handler: std::sync::OnceLock::new(),
        }
    }

    #[inline]
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// A fresh positive session number (wraps to 1).
    pub fn new_session(&self) -> i32 {
        let s = self.session.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if s <= 0 {
            self.session.store(1, Ordering::Relaxed);
            1
        } else {
            s
        }
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    pub(crate) fn mark_retired(&self) {
        self.retired.store(true, Ordering::Release);
    }

    pub(crate) fn set_endless(&self) {
        self.endless.store(true, Ordering::Relaxed);
    }

    pub(crate) fn take_endless(&self) -> bool {
        self.endless.swap(false, Ordering::Relaxed)
    }

    pub(crate) fn set_logging(&self, on: bool) {
        self.logging.store(on, Ordering::Release);
    }

    /// Install the module instance.
    ///
    /// # Safety
    /// Caller holds the queue (launching thread before scheduling).
    pub(crate) unsafe fn install(&self, svc: Box<dyn NativeService>) {
        // SAFETY: the caller holds the queue: no other access to the cell.
        unsafe { *self.service.get() = Some(svc) };
    }

    /// The module instance.
    ///
    /// # Safety
    /// Caller holds the queue; the reference must not outlive that.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn service_mut(&self) -> Option<&mut Box<dyn NativeService>> {
        // SAFETY: the caller holds the queue: no other access to the cell.
        unsafe { (*self.service.get()).as_mut() }
    }

    /// Drop the module instance (closing e.g. its Lua state).
    ///
    /// # Safety
    /// Caller holds the queue.
    pub(crate) unsafe fn release_service(&self) -> Option<Box<dyn NativeService>> {
        // SAFETY: the caller holds the queue: no other access to the cell.
        unsafe { (*self.service.get()).take() }
    }

    /// Remember a request received (dispatch side). A multicast delivery is not a
    /// request: its session is the channel id and nobody waits for an answer.
    ///
    /// # Safety
    /// Caller holds the queue.
    #[inline]
    pub(crate) unsafe fn note_request(&self, msg: &Message) {
        if msg.session > 0
            && msg.source != 0
            && msg.ty != ptype::RESPONSE
            && msg.ty != ptype::ERROR
            && msg.ty != ptype::MULTICAST
        {
            // SAFETY: the caller holds the queue: no other access to the cell.
            unsafe { (*self.pending.get()).insert(request_key(msg.source, msg.session)) };
        }
    }

    /// Forget a request because a reply (or a redirect) left this service.
    ///
    /// # Safety
    /// Called from this service's own code (its queue is held).
    #[inline]
    pub(crate) unsafe fn note_answered(&self, requester: u32, session: i32) {
        // SAFETY: the caller holds the queue: no other access to the cell.
        let set = unsafe { &mut *self.pending.get() };
        if !set.is_empty() {
            set.remove(&request_key(requester, session));
        }
    }

    /// Take every request still owed (source, session).
    ///
    /// # Safety
    /// Caller holds the queue.
    pub(crate) unsafe fn take_pending(&self) -> Vec<(u32, i32)> {
        // SAFETY: the caller holds the queue: no other access to the cell.
        let set = unsafe { &mut *self.pending.get() };
        set.drain()
            .map(|k| ((k >> 32) as u32, k as u32 as i32))
            .collect()
    }

    /// Append a record to the per-service message log, if one is open.
    #[inline]
    pub(crate) fn log_message(&self, msg: &Message, now: u64) {
        if !self.logging.load(Ordering::Relaxed) {
            return;
        }
        crate::command::write_message_log(self, msg, now);
    }
}
