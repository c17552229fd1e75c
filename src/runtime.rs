//! The runtime: the process-wide state and the operations on services (launch, send,
//! retire, destroy, log). The core (scheduler, commands, start-up) reaches it through
//! [`get`]; native services and Lua modules only through [`crate::api`]. It knows the
//! [`NativeService`] trait, not the services: start-up installs the registry
//! ([`ServiceFactory`]).
//!
//! Threads: `thread` workers ([`crate::scheduler`]), one timer thread ([`crate::timer`],
//! which also turns SIGHUP/SIGTERM flags into messages), one monitor thread, and the
//! socket thread. The main thread starts them and joins. The process ends when the last
//! service is gone (the harbor sink excluded).

use crate::context::{Context, NativeService};
use crate::handle::HandleTable;
use crate::message::{payload_free, payload_from, ptype, Message};
use crate::mq::Pushed;
use crate::remote::{Envelope, GLOBALNAME_LENGTH};
use crate::scheduler::Scheduler;
use crate::timer::{Timer, TimerEvent};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The process-wide state. Its fields are the core's (scheduler, command, start-up);
/// services and Lua modules go through [`crate::api`].
pub struct Runtime {
    /// This node's harbor id (0..=255).
    harbor: u32,
    pub(crate) handles: HandleTable<Context>,
    pub(crate) scheduler: Scheduler,
    pub(crate) timer: Timer,
    /// Time each callback (`profile` config key).
    pub(crate) profile: bool,
    pub(crate) workers: usize,
    live: AtomicUsize,
    logger: AtomicU32,
    exit_monitor: AtomicU32,
    /// The native harbor service (remote-message sink), 0 until it starts.
    harbor_service: AtomicU32,
    clock: Instant,
    /// Set by the signal handler, handled by the timer thread.
    pub(crate) sighup: AtomicBool,
    pub(crate) sigterm: AtomicBool,
    aborting: AtomicBool,
    socket: OnceLock<Arc<crate::socket::SocketServer>>,
    /// The native services a LAUNCH can name, installed by start-up.
    natives: ServiceFactory,
}

/// Makes the native service a `LAUNCH` names (None: no such module). Start-up installs
/// it ([`init`]), so the runtime knows the [`NativeService`] trait but none of the
/// implementations (`src/services/`, `src/sample/`).
pub type ServiceFactory = fn(&str) -> Option<Box<dyn NativeService>>;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Entries of the per-thread destination cache (a power of two).
const DEST_CACHE: usize = 32;

thread_local! {
    static DEST_CACHE_SLOTS: std::cell::RefCell<[Option<Arc<Context>>; DEST_CACHE]> =
        const { std::cell::RefCell::new([const { None }; DEST_CACHE]) };
}

/// Session of the marker that closes the logger at the end of an abort (never a
/// real session: those are positive).
const LOGGER_CLOSE_SESSION: i32 = -0x4c4f47;
/// Session of the marker [`Runtime::retire`] queues so the retired service is drained.
const RETIRE_SESSION: i32 = -0x524554;

/// The runtime. Panics if called before [`init`] (a programming error, not input).
pub fn get() -> &'static Runtime {
    RUNTIME.get().expect("runtime not initialised")
}

/// The runtime if it exists (tests of modules run without one).
pub fn try_get() -> Option<&'static Runtime> {
    RUNTIME.get()
}

/// Create the runtime. `harbor` is the node id, `workers` the worker count, `natives`
/// the registry of native services.
pub fn init(
    harbor: u32,
    workers: usize,
    profile: bool,
    natives: ServiceFactory,
) -> &'static Runtime {
    RUNTIME.get_or_init(|| Runtime {
        harbor,
        handles: HandleTable::new(harbor),
        scheduler: Scheduler::new(workers),
        timer: Timer::new(),
        profile,
        workers,
        live: AtomicUsize::new(0),
        logger: AtomicU32::new(0),
        exit_monitor: AtomicU32::new(0),
        harbor_service: AtomicU32::new(0),
        clock: Instant::now(),
        sighup: AtomicBool::new(false),
        sigterm: AtomicBool::new(false),
        aborting: AtomicBool::new(false),
        socket: OnceLock::new(),
        natives,
    })
}

/// The process's socket server.
pub fn socket_server() -> &'static Arc<crate::socket::SocketServer> {
    get().socket.get().expect("socket server not started")
}

/// Parse `:hex` (either case).
pub fn parse_hex_address(s: &str) -> Option<u32> {
    let h = s.strip_prefix(':')?;
    if h.is_empty() || h.len() > 8 {
        return None;
    }
    u32::from_str_radix(h, 16).ok()
}

/// Result of a send, mirroring upstream's return codes.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum SendError {
    /// No such destination (−1).
    NoDestination,
    /// Payload too large (−2).
    TooLarge,
}

/// Gives back the shared package a `PTYPE_MULTICAST` delivery refers to when the
/// receiver dies before reading it. Installed at startup by the composition root
/// (start.rs) so the runtime imports no Lua module; none: nothing to give back.
static DROPPED_MULTICAST: std::sync::OnceLock<unsafe fn(*const u8, usize)> =
    std::sync::OnceLock::new();

/// Install [`DROPPED_MULTICAST`] (once; later calls are ignored).
pub(crate) fn on_dropped_multicast(f: unsafe fn(*const u8, usize)) {
    let _ = DROPPED_MULTICAST.set(f);
}

impl Runtime {
    pub fn install_socket_server(&self, s: Arc<crate::socket::SocketServer>) {
        let _ = self.socket.set(s);
    }

    /// This node's harbor id.
    #[inline]
    pub fn harbor_id(&self) -> u32 {
        self.harbor & 0xff
    }

    /// The harbor service's handle (0 until it starts).
    #[inline]
    pub(crate) fn harbor_service(&self) -> u32 {
        self.harbor_service.load(Ordering::Acquire)
    }

    /// Nanoseconds on the runtime's monotonic clock.
    #[inline]
    pub fn clock_ns(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    pub fn logger_handle(&self) -> u32 {
        self.logger.load(Ordering::Acquire)
    }

    pub fn set_logger(&self, handle: u32) {
        self.logger.store(handle, Ordering::Release);
    }

    /// Send a log line from `source` to the logger.
    pub fn log(&self, source: u32, text: &str) {
        self.log_bytes(source, text.as_bytes());
    }

    /// Before the logger exists (startup errors) lines go to stderr instead.
    pub fn log_bytes(&self, source: u32, text: &[u8]) {
        let logger = self.logger_handle();
        if logger == 0 {
            eprintln!("[:{source:08x}] {}", String::from_utf8_lossy(text));
            return;
        }
        // SAFETY: a fresh block of `text.len()` bytes, handed to the message.
        let msg = unsafe { Message::new(source, 0, ptype::TEXT, payload_from(text), text.len()) };
        let _ = self.push(logger, msg);
    }

    /// Push a message into `dest`'s queue; hands it back when `dest` is gone.
    pub fn push(&self, dest: u32, msg: Message) -> Result<(), Message> {
        // A per-thread cache of recent destinations spares the handle table's shared
        // lock word and the service's reference count (cache-line bounces between
        // workers on every send). A cached entry is used only while its service is not
        // retired; handles are not reused until the 24-bit counter wraps, so a live
        // entry is always the right service. A push that races with a retire lands in
        // a queue that the retiring drain answers (or refuses once closed).
        let slot = (dest as usize) & (DEST_CACHE - 1);
        let msg = match DEST_CACHE_SLOTS.with(|c| match &c.borrow()[slot] {
            Some(ctx) if ctx.handle() == dest && !ctx.is_retired() => Ok(self.push_to(ctx, msg)),
            _ => Err(msg),
        }) {
            Ok(result) => return result,
            Err(msg) => msg,
        };
        match self.handles.grab(dest) {
            Some(ctx) => {
                let result = self.push_to(&ctx, msg);
                DEST_CACHE_SLOTS.with(|c| c.borrow_mut()[slot] = Some(ctx));
                result
            }
            None => Err(msg),
        }
    }

    /// Push into a known context's queue, scheduling it when it was idle.
    pub fn push_to(&self, ctx: &Arc<Context>, msg: Message) -> Result<(), Message> {
        match ctx.queue.push(msg)? {
            Pushed::Schedule => self.scheduler.schedule(ctx.clone()),
            Pushed::Queued => {}
        }
        Ok(())
    }

    /// Send from `from` (a service; its session counter serves ALLOCSESSION) with an
    /// explicit `source` handle. `ty` may carry the DONTCOPY / ALLOCSESSION tags. On
    /// DONTCOPY the payload is owned by the runtime from here on, success or not.
    ///
    /// Returns the session.
    ///
    /// # Safety
    /// Upstream's C contract: `data` is null or points at `size` readable bytes; with
    /// DONTCOPY it is a payload block whose ownership passes here. `from`, when given,
    /// is the calling service on the thread that holds its queue.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn send(
        &self,
        from: Option<&Context>,
        source: u32,
        dest: u32,
        ty: i32,
        session: i32,
        data: *mut u8,
        size: usize,
    ) -> Result<i32, SendError> {
        if size >= (1usize << 56) {
            // SAFETY: the caller's pointer contract.
            unsafe { free_if_owned(ty, data) };
            self.log(
                source,
                &format!("error: The message to {dest:x} is too large"),
            );
            return Err(SendError::TooLarge);
        }
        // SAFETY: the caller's pointer contract.
        let (session, data) = unsafe { own_payload(from, ty, session, data, size) };
        let ty8 = (ty & 0xff) as u8;
        if dest == 0 {
            if !data.is_null() {
                // SAFETY: `own_payload` made it ours.
                unsafe { payload_free(data) };
                self.log(source, "error: Destination address can't be 0");
                return Err(SendError::NoDestination);
            }
            return Ok(session);
        }
        if let Some(me) = from {
            if (ty8 == ptype::RESPONSE || ty8 == ptype::ERROR) && session > 0 {
                // SAFETY: `from` is the calling service, running on its own worker.
                unsafe { me.note_answered(dest, session) };
            } else if source != me.handle() && session > 0 {
                // A redirected request is now someone else's to answer.
                // SAFETY: as above.
                unsafe { me.note_answered(source, session) };
            }
        }
        // SAFETY: `own_payload` made `data` a block of `size` bytes owned here (or null).
        let msg = unsafe { Message::new(source, session, ty8, data, size) };
        match self.push(dest, msg) {
            Ok(()) => Ok(session),
            // Only a failed push looks at the harbor bits, so local sends pay nothing.
            Err(m) if self.is_remote(dest) => self.send_remote(dest, m),
            Err(mut m) => {
                m.free();
                Err(SendError::NoDestination)
            }
        }
    }

    /// Whether `dest` names a service on another node (upstream's
    /// `skynet_harbor_message_isremote`). A single node (harbor 0) has no remote
    /// handles: a send to one fails at once, as to any unknown handle.
    #[inline]
    fn is_remote(&self, dest: u32) -> bool {
        let h = dest >> crate::handle::HANDLE_REMOTE_SHIFT;
        self.harbor != 0 && h != 0 && h != self.harbor_id()
    }

    /// Hand a message for a remote handle to the harbor service, in an envelope.
    fn send_remote(&self, dest: u32, m: Message) -> Result<i32, SendError> {
        let harbor = self.harbor_service();
        // A Message has no destructor: its payload block moves into the envelope.
        let (source, session, ty, data, size) = (m.source, m.session, m.ty, m.data, m.size);
        // SAFETY: `data` is the message's payload block (or null), handed over.
        let env = unsafe { Envelope::to_handle(dest, source, session, ty as i32, data, size) };
        match if harbor == 0 {
            Err(env)
        } else {
            self.push(harbor, env)
        } {
            Ok(()) => Ok(session),
            Err(env) => {
                // SAFETY: `env` is the envelope message built above.
                unsafe { Envelope::discard(env) };
                Err(SendError::NoDestination)
            }
        }
    }

    /// Resolve a string address: `:hex`, `.name`, or a global name (routed to the
    /// harbor). Returns None for an unknown local name.
    pub fn resolve(&self, addr: &str) -> Option<Resolved> {
        if let Some(h) = parse_hex_address(addr) {
            return Some(Resolved::Handle(h));
        }
        if let Some(name) = addr.strip_prefix('.') {
            return self.handles.find_name(name).map(Resolved::Handle);
        }
        if let Ok(n) = addr.parse::<u32>() {
            return Some(Resolved::Handle(n));
        }
        Some(Resolved::Global)
    }

    /// Send to a string address (`skynet_sendname`).
    ///
    /// # Safety
    /// As [`Self::send`].
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn send_name(
        &self,
        from: Option<&Context>,
        source: u32,
        addr: &str,
        ty: i32,
        session: i32,
        data: *mut u8,
        size: usize,
    ) -> Result<i32, SendError> {
        match self.resolve(addr) {
            // SAFETY: the caller's contract, passed on.
            Some(Resolved::Handle(h)) => unsafe {
                self.send(from, source, h, ty, session, data, size)
            },
            // SAFETY: the caller's contract, passed on.
            Some(Resolved::Global) => unsafe {
                self.send_global(from, source, addr, ty, session, data, size)
            },
            None => {
                // SAFETY: the caller's contract.
                unsafe { free_if_owned(ty, data) };
                Err(SendError::NoDestination)
            }
        }
    }

    /// Route a send to a global name through the harbor service, in an envelope.
    ///
    /// # Safety
    /// As [`Self::send`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn send_global(
        &self,
        from: Option<&Context>,
        source: u32,
        name: &str,
        ty: i32,
        session: i32,
        data: *mut u8,
        size: usize,
    ) -> Result<i32, SendError> {
        let harbor = self.harbor_service();
        if harbor == 0 || name.len() >= GLOBALNAME_LENGTH {
            // SAFETY: the caller's pointer contract.
            unsafe { free_if_owned(ty, data) };
            return Err(SendError::NoDestination);
        }
        // SAFETY: the caller's pointer contract.
        let (session, data) = unsafe { own_payload(from, ty, session, data, size) };
        // SAFETY: `own_payload` made `data` a block owned here (or null).
        let msg = unsafe { Envelope::message(name, source, session, ty, data, size) };
        match self.push(harbor, msg) {
            Ok(()) => Ok(session),
            Err(m) => {
                // SAFETY: `m` is the envelope message built above.
                unsafe { Envelope::discard(m) };
                Err(SendError::NoDestination)
            }
        }
    }

    /// Launch `"<module> <args>"`; returns the new handle.
    pub fn launch(&self, cmdline: &str) -> Option<u32> {
        let (module, args) = split_launch(cmdline);
        let Some(mut svc) = (self.natives)(module) else {
            eprintln!("try open {module} failed : no such native module");
            self.log(0, &format!("error: launch {module} FAILED"));
            return None;
        };
        let ctx = self.handles.register(|h| Arc::new(Context::new(h)));
        self.live.fetch_add(1, Ordering::SeqCst);
        match svc.init(&ctx, args) {
            Ok(()) => {
                // SAFETY: the queue has not been scheduled yet; we are its only holder.
                unsafe { ctx.install(svc) };
                // The logger's own line is dropped, as upstream (it has no name yet).
                if self.logger_handle() != 0 {
                    self.log(
                        ctx.handle(),
                        &format!("LAUNCH {} {}", module, args.unwrap_or("")),
                    );
                }
                // Also when killed during init: a worker then drains it.
                self.scheduler.schedule(ctx.clone());
                Some(ctx.handle())
            }
            Err(e) => {
                if !e.is_empty() {
                    self.log(ctx.handle(), &e);
                }
                self.log(ctx.handle(), &format!("error: launch {module} FAILED"));
                self.handles.retire(ctx.handle());
                ctx.mark_retired();
                drop(svc);
                self.destroy(&ctx);
                None
            }
        }
    }

    /// Retire `handle`: unbind it and its names, tell the exit monitor, and schedule
    /// its queue so a worker drains and releases it. False if it was not alive.
    pub fn retire(&self, handle: u32) -> bool {
        let Some(ctx) = self.handles.retire(handle) else {
            return false;
        };
        ctx.mark_retired();
        let monitor = self.exit_monitor.load(Ordering::Acquire);
        if monitor != 0 {
            // SAFETY: no payload, no sending service.
            let _ = unsafe {
                self.send(
                    None,
                    handle,
                    monitor,
                    ptype::CLIENT as i32,
                    0,
                    std::ptr::null_mut(),
                    0,
                )
            };
        }
        // A marker message rather than "schedule if idle": a worker holding the queue
        // may be about to find it empty and let it go without seeing the retired flag
        // (it checked just before we set it). The marker keeps the queue non-empty, so
        // that worker pops it and then sees the flag; if the queue was idle, the push
        // schedules it. Either way exactly one worker drains it (see `dispatch`).
        let marker = Message::empty(0, RETIRE_SESSION, ptype::SYSTEM);
        let _ = self.push_to(&ctx, marker);
        true
    }

    /// Final teardown of a retired service, by the thread holding its queue: answer
    /// everything it owes with errors, drop its instance, and end the process when it
    /// was the last service.
    pub fn destroy(&self, ctx: &Arc<Context>) {
        let handle = ctx.handle();
        let queued = ctx.queue.close();
        // SAFETY: the caller holds the queue.
        let owed = unsafe { ctx.take_pending() };
        for mut msg in queued {
            if msg.ty == ptype::MULTICAST {
                // A multicast delivery holds a reference to a shared package: give it
                // back, or the package would outlive its other readers forever. It is
                // not a request (its session is the channel id): no error goes back.
                if let Some(release) = DROPPED_MULTICAST.get() {
                    // SAFETY: the payload is this message's own `size` bytes.
                    unsafe { release(msg.data, msg.size) };
                }
            } else if msg.source != 0 {
                self.send_error(handle, msg.source, msg.session);
            }
            msg.free();
        }
        for (source, session) in owed {
            self.send_error(handle, source, session);
        }
        // SAFETY: as above.
        let svc = unsafe { ctx.release_service() };
        drop(svc);
        // Whatever sockets it still owned die with it (upstream leaks them).
        if let Some(s) = self.socket.get() {
            s.close_owned(handle);
        }
        *ctx.logfile.lock() = None;
        if self.harbor_service.load(Ordering::Acquire) == handle {
            return; // not counted
        }
        match self.live.fetch_sub(1, Ordering::SeqCst) {
            1 => self.shutdown(),
            2 => self.close_logger_if_last(),
            _ => {}
        }
    }

    /// A `PTYPE_ERROR` without payload from `source` (gone) to `dest`.
    fn send_error(&self, source: u32, dest: u32, session: i32) {
        // SAFETY: no payload, no sending service.
        let _ = unsafe {
            self.send(
                None,
                source,
                dest,
                ptype::ERROR as i32,
                session,
                std::ptr::null_mut(),
                0,
            )
        };
    }

    /// The harbor sink does not keep the process alive.
    pub fn reserve_harbor(&self, handle: u32) {
        self.harbor_service.store(handle, Ordering::Release);
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.shutdown();
        }
    }

    /// Retire every service (`ABORT`, SIGTERM).
    ///
    /// Unlike upstream, which retires the logger with everyone else and loses the
    /// lines still queued for it, the logger goes last: once it is the only service
    /// left, a close marker is queued behind its pending lines (see [`Self::dispatch`]).
    pub fn abort(&self) {
        self.aborting.store(true, Ordering::SeqCst);
        let logger = self.logger_handle();
        for ctx in self.handles.all() {
            if ctx.handle() != logger {
                self.retire(ctx.handle());
            }
        }
        self.close_logger_if_last();
    }

    /// During an abort, when only the logger is left, queue its close marker.
    fn close_logger_if_last(&self) {
        if !self.aborting.load(Ordering::SeqCst) || self.live.load(Ordering::SeqCst) != 1 {
            return;
        }
        let logger = self.logger_handle();
        let marker = Message::empty(0, LOGGER_CLOSE_SESSION, ptype::SYSTEM);
        if logger == 0 || self.push(logger, marker).is_err() {
            for ctx in self.handles.all() {
                self.retire(ctx.handle());
            }
        }
    }

    fn shutdown(&self) {
        if let Some(s) = self.socket.get() {
            s.exit();
        }
        self.scheduler.quit();
    }

    pub fn set_exit_monitor(&self, handle: u32) {
        self.exit_monitor.store(handle, Ordering::Release);
    }

    pub fn exit_monitor(&self) -> u32 {
        self.exit_monitor.load(Ordering::Acquire)
    }

    /// Deliver one message to a service (on the worker holding its queue).
    #[inline]
    pub fn dispatch(&self, ctx: &Arc<Context>, msg: &mut Message) {
        // Runtime markers: SYSTEM from source 0 with a negative session (no service can
        // send from source 0; real sessions are positive).
        if msg.session < 0 && msg.source == 0 && msg.ty == ptype::SYSTEM {
            if msg.session == LOGGER_CLOSE_SESSION {
                self.retire(ctx.handle());
            }
            if msg.session == LOGGER_CLOSE_SESSION || msg.session == RETIRE_SESSION {
                return;
            }
        }
        // Single writer (this worker): plain load/store, no locked instruction.
        let count = &ctx.message_count;
        count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        ctx.log_message(msg, self.timer.now());
        // SAFETY: this worker holds the queue.
        unsafe { ctx.note_request(msg) };
        let start = if self.profile {
            self.clock_ns().max(1)
        } else {
            0
        };
        ctx.running_since.store(start, Ordering::Relaxed);
        // SAFETY: this worker holds the queue; the reference ends with the callback.
        let kept = match unsafe { ctx.service_mut() } {
            Some(svc) => svc.dispatch(ctx, msg),
            None => false,
        };
        if self.profile {
            ctx.cpu_ns
                .fetch_add(self.clock_ns() - start, Ordering::Relaxed);
            ctx.running_since.store(0, Ordering::Relaxed);
        }
        if !kept {
            msg.free();
        }
    }

    /// A timer expired: tell its owner.
    pub fn fire_timer(&self, ev: TimerEvent) {
        let msg = Message::empty(0, ev.session, ptype::RESPONSE);
        let _ = self.push(ev.handle, msg);
    }

    /// `TIMEOUT`: returns the session that will be answered after `ticks`.
    pub fn timeout(&self, ctx: &Context, ticks: i64) -> i32 {
        let session = ctx.new_session();
        let ev = TimerEvent {
            handle: ctx.handle(),
            session,
        };
        if ticks <= 0 {
            self.fire_timer(ev);
        } else {
            self.timer.add(ev, ticks as u64);
        }
        session
    }
}

/// The session and payload of a send from here on: a fresh session of `from` with
/// ALLOCSESSION (0 without a sender), and `data` itself with DONTCOPY, else a copy of
/// its `size` bytes.
///
/// # Safety
/// The pointer contract of [`Runtime::send`].
unsafe fn own_payload(
    from: Option<&Context>,
    ty: i32,
    session: i32,
    data: *mut u8,
    size: usize,
) -> (i32, *mut u8) {
    let session = if ty & ptype::TAG_ALLOCSESSION != 0 {
        from.map(|c| c.new_session()).unwrap_or(0)
    } else {
        session
    };
    let data = if ty & ptype::TAG_DONTCOPY != 0 || data.is_null() {
        data
    } else {
        // SAFETY: the caller lends `size` readable bytes.
        payload_from(unsafe { std::slice::from_raw_parts(data, size) })
    };
    (session, data)
}

/// Free `data` if the send handed it over (DONTCOPY) and it is not delivered.
///
/// # Safety
/// The pointer contract of [`Runtime::send`].
unsafe fn free_if_owned(ty: i32, data: *mut u8) {
    if ty & ptype::TAG_DONTCOPY != 0 && !data.is_null() {
        // SAFETY: ownership was handed over with DONTCOPY.
        unsafe { payload_free(data) }
    }
}

/// Where a string address leads.
pub enum Resolved {
    Handle(u32),
    Global,
}

/// Split `"<module> <args>"` per core.md §4.2.
pub fn split_launch(cmdline: &str) -> (&str, Option<&str>) {
    match cmdline.find([' ', '\t', '\r', '\n']) {
        Some(i) => {
            let module = &cmdline[..i];
            let rest = &cmdline[i + 1..];
            let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
            (module, Some(&rest[..end]))
        }
        None => (cmdline, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_line_splitting() {
        assert_eq!(
            split_launch("snlua bootstrap"),
            ("snlua", Some("bootstrap"))
        );
        assert_eq!(split_launch("snlua  x"), ("snlua", Some(" x")));
        assert_eq!(split_launch("logger"), ("logger", None));
        assert_eq!(split_launch("snlua a b\nrest"), ("snlua", Some("a b")));
        assert_eq!(split_launch("x\ty"), ("x", Some("y")));
    }

    /// Retiring a service whose queue a worker holds: the queue must stay reachable so
    /// a worker drains it and the callers it owes get errors. (Was tests/retire.rs;
    /// it needs the runtime's internals, so it lives here.)
    #[test]
    fn retire_while_a_worker_holds_the_empty_queue() {
        let rt = init(0, 1, false, |_| None);
        // A new queue starts "scheduled": exactly the state of a queue a worker holds
        // after dispatching its last message, just before its next (empty) pop.
        let ctx = rt.handles.register(|h| Arc::new(Context::new(h)));
        assert!(rt.retire(ctx.handle()));
        // The worker pops next. Before the fix this was None: the worker let the queue
        // go and nobody ever destroyed the retired service (owed callers hung forever).
        let mut popped = ctx
            .queue
            .pop()
            .expect("retired service lost: its queue went idle without a drain")
            .msg;
        // The marker is not delivered to the service; the worker then sees the flag.
        rt.dispatch(&ctx, &mut popped);
        assert!(ctx.is_retired());
        assert_eq!(ctx.message_count.load(Ordering::Relaxed), 0);
        // Retiring twice is refused; the handle is gone.
        assert!(!rt.retire(ctx.handle()));
        assert!(rt.handles.grab(ctx.handle()).is_none());
    }

    #[test]
    fn hex_addresses() {
        assert_eq!(parse_hex_address(":a"), Some(10));
        assert_eq!(parse_hex_address(":0000000A"), Some(10));
        assert_eq!(parse_hex_address("a"), None);
        assert_eq!(parse_hex_address(":zz"), None);
        assert_eq!(parse_hex_address(":"), None);
    }
}
