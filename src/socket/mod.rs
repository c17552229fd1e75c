//! The socket server: one poll loop doing all network I/O for every service.
//!
//! # Design
//!
//! * The loop (`looper.rs`) is an edge-triggered mio poll loop, driven one of two ways.
//!   [`SocketServer::new`] spawns a socket thread that runs it. [`SocketServer::new_shared`]
//!   spawns nothing: callers turn it with [`SocketServer::poll`], one at a time (the
//!   loop sits behind a mutex; `poll` only ever `try_lock`s it). The runtime uses
//!   shared mode and lets an idle worker park in the poll, so a socket event is read
//!   and its service run on the same thread, with no hand-off. Parking is announced
//!   (`parked`) before the caller's last "any other work?" check, and
//!   [`SocketServer::unpark`] writes the waker only when a poller is parked, so a
//!   wake-up is never lost and never sent twice per park.
//! * Requests from any thread go through a mutex-protected queue plus a
//!   mio [`Waker`](mio::Waker); the waker is only written when the queue goes from
//!   empty to non-empty, so bursts of requests cost one wake-up.
//! * Events are delivered to the socket's owner through the [`Sink`] given at
//!   construction, one call per event, immediately (never batched), on the thread
//!   turning the loop. The payload is a [`crate::message::payload_alloc`] block
//!   holding a [`SocketMessage`] followed by at most 128 bytes of inline text
//!   (`socket.md` §2). DATA/UDP data blocks are payload blocks owned by the receiver.
//! * Socket ids: a global counter from 1 (wrapping inside the positive `i32` range);
//!   an id is usable only if its slot `id % 65536` is free.
//! * Every slot has a small mutex-protected [`SlotState`] shared between callers and
//!   the loop: the id, a coarse state, the fd, the number of send requests in
//!   flight and whether the loop holds unsent data. A send from any thread
//!   writes **directly** to the fd when nothing is in flight or queued (the common
//!   request/response case costs no thread hop); otherwise, and for the leftover of a
//!   partial direct write, it queues a request and bumps the in-flight count under the
//!   slot lock, which keeps per-socket byte order.
//! * Reads: one `read` per readiness per loop turn into a block of the socket's
//!   adaptive read size (starts at 4 KiB, x4 when a read fills it, up to 1 MiB; halves
//!   when less than half is used, never below 1 KiB); a filled read puts the socket on
//!   a ready list (read again next turn, after the other sockets), which is also how
//!   edge-triggered readiness is never lost. Mostly-empty blocks are shrunk before
//!   delivery.
//! * Accept: the spare-fd trick (`sys::ReserveFd`) drops a pending connection on
//!   EMFILE/ENFILE so the listener neither spins nor dies; an ERROR goes to its owner.
//! * Listen backlog: never below 1024 (the kernel caps it at `somaxconn`).
//!
//! # Invariants
//!
//! * Only the loop (whichever thread turns it) creates or frees slot contents other than reserving an id;
//!   a slot is marked free (under its lock) before its fd is closed, so a direct write
//!   never touches a recycled fd.
//! * At most one CLOSE per socket; no event at all for a socket after its slot is free.
//! * `SlotState::queued` counts `Send` requests of the slot's current id that the
//!   loop has not yet taken; direct writes happen only when it is 0 and
//!   `wb_nonempty` is false.

mod looper;
pub mod sys;

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::message::payload_free;

/// `SKYNET_SOCKET_TYPE_DATA`.
pub const SOCKET_DATA: i32 = 1;
/// `SKYNET_SOCKET_TYPE_CONNECT`.
pub const SOCKET_CONNECT: i32 = 2;
/// `SKYNET_SOCKET_TYPE_CLOSE`.
pub const SOCKET_CLOSE: i32 = 3;
/// `SKYNET_SOCKET_TYPE_ACCEPT`.
pub const SOCKET_ACCEPT: i32 = 4;
/// `SKYNET_SOCKET_TYPE_ERROR`.
pub const SOCKET_ERROR: i32 = 5;
/// `SKYNET_SOCKET_TYPE_UDP`.
pub const SOCKET_UDP: i32 = 6;
/// `SKYNET_SOCKET_TYPE_WARNING`.
pub const SOCKET_WARNING: i32 = 7;

/// Maximum number of sockets alive at once (slot count).
pub const MAX_SOCKET: usize = 1 << 16;
/// Inline text in a socket message is truncated to this many bytes.
pub const MAX_INLINE: usize = 128;
/// Backlog size that triggers the first WARNING.
pub const WARNING_SIZE: usize = 1024 * 1024;
/// Minimum listen backlog actually used.
pub const MIN_BACKLOG: i32 = 1024;

/// The C layout of a `PTYPE_SOCKET` payload header; inline text follows it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SocketMessage {
    pub kind: i32,
    pub id: i32,
    pub ud: i32,
    pub buffer: *mut u8,
}

/// Size of the header before the inline text.
pub const HEADER_SIZE: usize = std::mem::size_of::<SocketMessage>();

/// Receives every event: `(owner handle, payload block, payload size)`. The callee
/// owns the payload (and, for DATA/UDP, the data block it points at).
pub type Sink = Arc<dyn Fn(u32, *mut u8, usize) + Send + Sync>;

/// Data handed to a send function.
pub enum Buffer<'a> {
    /// Borrowed bytes: copied only if they cannot be written at once.
    Slice(&'a [u8]),
    /// Owned bytes.
    Vec(Vec<u8>),
    /// A `payload_alloc`/malloc block; the server frees it in every case.
    Raw { ptr: *mut u8, len: usize },
}

/// An owned output buffer.
pub(crate) enum OwnedBuf {
    Vec(Vec<u8>),
    Raw(*mut u8, usize),
}

// SAFETY: a Raw block is exclusively owned by this value.
unsafe impl Send for OwnedBuf {}

impl OwnedBuf {
    fn bytes(&self) -> &[u8] {
        match self {
            OwnedBuf::Vec(v) => v,
            OwnedBuf::Raw(p, n) if !p.is_null() && *n > 0 => {
                // SAFETY: the block holds n bytes and is owned by self.
                unsafe { std::slice::from_raw_parts(*p, *n) }
            }
            OwnedBuf::Raw(..) => &[],
        }
    }
}

impl Drop for OwnedBuf {
    fn drop(&mut self) {
        if let OwnedBuf::Raw(p, _) = self {
            // SAFETY: owned malloc block (or null).
            unsafe { payload_free(*p) };
        }
    }
}

/// A queued output buffer: bytes from `off` on are still to be written.
pub(crate) struct WBuf {
    buf: OwnedBuf,
    off: usize,
    to: Option<SocketAddr>,
}

impl WBuf {
    fn rest(&self) -> &[u8] {
        &self.buf.bytes()[self.off..]
    }
}

enum Data<'a> {
    Borrowed(&'a [u8]),
    Owned(OwnedBuf),
}

impl<'a> Data<'a> {
    fn new(b: Buffer<'a>) -> Data<'a> {
        match b {
            Buffer::Slice(s) => Data::Borrowed(s),
            Buffer::Vec(v) => Data::Owned(OwnedBuf::Vec(v)),
            Buffer::Raw { ptr, len } => Data::Owned(OwnedBuf::Raw(ptr, len)),
        }
    }
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Borrowed(s) => s,
            Data::Owned(o) => o.bytes(),
        }
    }
    /// Keep the bytes from `off` on as an owned buffer.
    fn into_wbuf(self, off: usize, to: Option<SocketAddr>) -> WBuf {
        match self {
            Data::Borrowed(s) => WBuf {
                buf: OwnedBuf::Vec(s[off..].to_vec()),
                off: 0,
                to,
            },
            Data::Owned(o) => WBuf { buf: o, off, to },
        }
    }
}

/// Coarse socket state visible to every thread.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    Invalid,
    /// Id allocated, creation request in flight.
    Reserved,
    PListen,
    Listen,
    Connecting,
    /// Accepted, not started: reads nothing, sends dropped.
    PAccept,
    Connected,
    /// Close with pending output, or write side shut after an error: sends refused.
    NoWrite,
    Udp,
    Bind,
}

pub(crate) struct SlotState {
    pub id: i32,
    pub state: State,
    pub fd: RawFd,
    pub queued: u32,
    pub wb_nonempty: bool,
    pub v6: bool,
    /// Bytes written directly by callers, and when (centiseconds, see [`SocketInfo`]).
    pub dw_bytes: u64,
    pub dw_time: u64,
}

pub(crate) struct Slot(pub Mutex<SlotState>);

/// One socket as seen by `info()` (`socket.md` §3.4). Times are centiseconds since
/// the socket server started (the process start, give or take a few ms).
#[derive(Debug, Clone, Default)]
pub struct SocketInfo {
    pub id: i32,
    pub owner: u32,
    /// `"LISTEN"`, `"TCP"`, `"UDP"`, `"BIND"` or `"CLOSING"`.
    pub kind: &'static str,
    pub read: u64,
    pub write: u64,
    pub wbuffer: u64,
    pub rtime: u64,
    pub wtime: u64,
    pub reading: bool,
    pub writing: bool,
    pub accept: u64,
    /// Local address of a listener, `ip:port`.
    pub sock: Option<String>,
    /// Peer of a TCP socket, `ip:port`.
    pub peer: Option<String>,
}

/// Requests executed by the loop.
pub(crate) enum Req {
    Listen {
        id: i32,
        owner: u32,
        fd: OwnedFd,
    },
    Connect {
        id: i32,
        owner: u32,
        host: String,
        port: u16,
    },
    Start {
        id: i32,
        owner: u32,
    },
    Pause {
        id: i32,
    },
    Close {
        id: i32,
        shutdown: bool,
    },
    Send {
        id: i32,
        buf: WBuf,
        low: bool,
    },
    Udp {
        id: i32,
        owner: u32,
        fd: OwnedFd,
    },
    Bind {
        id: i32,
        owner: u32,
        fd: RawFd,
    },
    /// The service `owner` is gone: close every socket it still owns.
    CloseOwner {
        owner: u32,
    },
    Info(std::sync::mpsc::Sender<Vec<SocketInfo>>),
    Exit,
}

/// The process's socket server (see the module docs).
pub struct SocketServer {
    slots: Box<[Slot]>,
    next_id: AtomicI32,
    reqs: Mutex<Vec<Req>>,
    waker: mio::Waker,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Shared mode: the loop, run by whichever thread holds this lock (None after exit).
    looper: Mutex<Option<looper::Looper>>,
    shared: bool,
    /// Shared mode: a thread is blocked (or about to block) in the poll.
    parked: AtomicBool,
    /// An [`SocketServer::unpark`] wrote the waker since the last turn ended.
    unpark_sent: AtomicBool,
    /// [`SocketServer::now_cs`] when the last shared-mode turn ended.
    turn_ended: AtomicU64,
    /// Shared mode: how long a poll that may park first polls without waiting (ns).
    spin_ns: AtomicU64,
    /// The last park (or spin) ended with socket work, not an unpark or a timeout.
    io_woke: AtomicBool,
    born: std::time::Instant,
    /// Services that ever asked for a socket (listen, connect, start, udp, bind), so
    /// [`SocketServer::close_owned`] costs nothing for the many that never did.
    owners: Mutex<std::collections::HashSet<u32>>,
}

pub(crate) fn slot_of(id: i32) -> usize {
    (id as u32 as usize) % MAX_SOCKET
}

/// Encode a UDP address string (`socket.md` §2.2).
pub fn udp_address_encode(a: &SocketAddr) -> Vec<u8> {
    let mut v = Vec::with_capacity(19);
    match a {
        SocketAddr::V4(x) => {
            v.push(1);
            v.extend_from_slice(&x.port().to_be_bytes());
            v.extend_from_slice(&x.ip().octets());
        }
        SocketAddr::V6(x) => {
            v.push(2);
            v.extend_from_slice(&x.port().to_be_bytes());
            v.extend_from_slice(&x.ip().octets());
        }
    }
    v
}

/// Decode a UDP address string; None if malformed.
pub fn udp_address_decode(b: &[u8]) -> Option<SocketAddr> {
    match (b.first(), b.len()) {
        (Some(1), 7) => {
            let port = u16::from_be_bytes([b[1], b[2]]);
            let ip: [u8; 4] = b[3..7].try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(ip.into(), port)))
        }
        (Some(2), 19) => {
            let port = u16::from_be_bytes([b[1], b[2]]);
            let ip: [u8; 16] = b[3..19].try_into().ok()?;
            Some(SocketAddr::V6(SocketAddrV6::new(ip.into(), port, 0, 0)))
        }
        _ => None,
    }
}

/// Build an event payload: header + inline text (truncated to [`MAX_INLINE`]).
pub fn make_message(kind: i32, id: i32, ud: i32, buffer: *mut u8, text: &[u8]) -> (*mut u8, usize) {
    let text = &text[..text.len().min(MAX_INLINE)];
    let size = HEADER_SIZE + text.len();
    let p = crate::message::payload_alloc(size);
    let m = SocketMessage {
        kind,
        id,
        ud,
        buffer,
    };
    // SAFETY: p has room for size + 1 bytes; unaligned write is allowed by
    // write_unaligned (malloc is aligned anyway).
    unsafe {
        std::ptr::write_unaligned(p as *mut SocketMessage, m);
        std::ptr::copy_nonoverlapping(text.as_ptr(), p.add(HEADER_SIZE), text.len());
    }
    (p, size)
}

impl SocketServer {
    /// Create the server and spawn its thread.
    pub fn new(sink: Sink) -> io::Result<Arc<SocketServer>> {
        let (srv, looper) = Self::build(sink, false)?;
        let h = std::thread::Builder::new()
            .name("socket".into())
            .spawn(move || looper.run())?;
        *srv.thread.lock() = Some(h);
        Ok(srv)
    }

    /// Create the server in shared mode: no thread of its own; callers drive the loop
    /// with [`SocketServer::poll`] (the runtime's idle workers do).
    pub fn new_shared(sink: Sink) -> io::Result<Arc<SocketServer>> {
        let (srv, looper) = Self::build(sink, true)?;
        *srv.looper.lock() = Some(looper);
        Ok(srv)
    }

    fn build(sink: Sink, shared: bool) -> io::Result<(Arc<SocketServer>, looper::Looper)> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), looper::WAKER)?;
        let slots = (0..MAX_SOCKET)
            .map(|_| {
                Slot(Mutex::new(SlotState {
                    id: 0,
                    state: State::Invalid,
                    fd: -1,
                    queued: 0,
                    wb_nonempty: false,
                    v6: false,
                    dw_bytes: 0,
                    dw_time: 0,
                }))
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let srv = Arc::new(SocketServer {
            slots,
            next_id: AtomicI32::new(0),
            born: std::time::Instant::now(),
            reqs: Mutex::new(Vec::new()),
            waker,
            thread: Mutex::new(None),
            looper: Mutex::new(None),
            shared,
            parked: AtomicBool::new(false),
            unpark_sent: AtomicBool::new(false),
            turn_ended: AtomicU64::new(0),
            spin_ns: AtomicU64::new(0),
            io_woke: AtomicBool::new(false),
            owners: Mutex::new(std::collections::HashSet::new()),
        });
        let looper = looper::Looper::new(srv.clone(), poll, sink);
        Ok((srv, looper))
    }

    /// Shared mode: run one loop turn on the calling thread, unless another thread is
    /// running one (then return false at once). With `park` the turn may block until
    /// an event, a request or [`SocketServer::unpark`]; `may_park` is asked after the
    /// park is announced, so an `unpark` racing with it is never lost (the caller's
    /// "is there other work" check goes there).
    pub fn poll(&self, park: bool, may_park: &dyn Fn() -> bool) -> bool {
        let Some(mut g) = self.looper.try_lock() else {
            return false;
        };
        let Some(l) = g.as_mut() else {
            return false;
        };
        if l.exiting() {
            // `exit` is waiting for the lock: let it have the loop.
            return false;
        }
        let mut timeout = match park {
            true => l.idle_timeout(),
            false => Some(std::time::Duration::ZERO),
        };
        let spin = self.spin_ns.load(Ordering::Relaxed);
        // Spin only while sockets are what wakes the poller (request/response traffic
        // over TCP): when pushes from other workers do, a spinner would just steal
        // their services off warm cores.
        if timeout != Some(std::time::Duration::ZERO)
            && spin > 0
            && self.io_woke.load(Ordering::Relaxed)
        {
            // Spin before parking: a reply due within microseconds is then read
            // without the thread (and, on a VM, the CPU) going to sleep and being woken.
            let until = std::time::Instant::now() + std::time::Duration::from_nanos(spin);
            let done = loop {
                if l.turn(Some(std::time::Duration::ZERO)) {
                    break true;
                }
                if !may_park() {
                    self.io_woke.store(false, Ordering::Relaxed);
                    break true;
                }
                if std::time::Instant::now() >= until {
                    break false;
                }
                // Yield, not just spin: a runnable thread (another process on a shared
                // core) gets the CPU, and this one stays out of the idle state.
                std::thread::yield_now();
            };
            if done {
                self.turn_ended.store(self.now_cs(), Ordering::Relaxed);
                return true;
            }
        }
        if timeout != Some(std::time::Duration::ZERO) {
            // A fresh park: an unpark aimed at an earlier one (its waker write consumed
            // by a spin turn, say) must not make this one deaf.
            self.unpark_sent.store(false, Ordering::SeqCst);
            self.parked.store(true, Ordering::SeqCst);
            if !may_park() {
                timeout = Some(std::time::Duration::ZERO);
            }
        }
        // `turn` clears `parked` as soon as the poll returns; `unpark_sent` is reset
        // by the next park.
        let io = l.turn(timeout);
        if timeout != Some(std::time::Duration::ZERO) {
            self.io_woke.store(io, Ordering::Relaxed);
        }
        self.turn_ended.store(self.now_cs(), Ordering::Relaxed);
        true
    }

    /// Shared mode: poll without waiting for up to `spin` before parking (0: park at
    /// once).
    pub fn set_spin(&self, spin: std::time::Duration) {
        self.spin_ns.store(
            spin.as_nanos().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    /// Shared mode: end a parked [`SocketServer::poll`] early (one waker write per park).
    pub fn unpark(&self) {
        if self.parked.load(Ordering::SeqCst) && !self.unpark_sent.swap(true, Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }

    /// Shared mode: a thread is parked in [`SocketServer::poll`].
    pub fn parked(&self) -> bool {
        self.parked.load(Ordering::SeqCst)
    }

    /// Shared mode: no thread is polling, and none has for at least `cs` centiseconds.
    pub fn poll_stale(&self, cs: u64) -> bool {
        self.shared
            && !self.looper.is_locked()
            && self.now_cs() >= self.turn_ended.load(Ordering::Relaxed) + cs
    }

    /// Ask the loop to stop, closing every socket without events, and wait for it.
    pub fn exit(&self) {
        self.push(Req::Exit);
        if self.shared {
            // Whoever polls takes the Exit (or we do); then nobody polls again.
            let l = self.looper.lock().take();
            if let Some(mut l) = l {
                // Requests queued before the Exit are carried out (as the socket
                // thread's last turn does), then every socket is closed.
                l.turn(Some(std::time::Duration::ZERO));
                l.close_all();
            }
            return;
        }
        let h = self.thread.lock().take();
        if let Some(h) = h {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }

    /// Remember that `owner` may own sockets (see [`SocketServer::close_owned`]).
    fn note_owner(&self, owner: u32) {
        self.owners.lock().insert(owner);
    }

    /// The service `owner` is gone: close (flushing output) every socket it still
    /// owns, without events. A service that never asked for a socket costs one set
    /// lookup.
    pub fn close_owned(&self, owner: u32) {
        if self.owners.lock().remove(&owner) {
            self.push(Req::CloseOwner { owner });
        }
    }

    fn push(&self, r: Req) {
        let mut q = self.reqs.lock();
        let was_empty = q.is_empty();
        q.push(r);
        drop(q);
        if was_empty {
            let _ = self.waker.wake();
        }
    }

    pub(crate) fn take_requests(&self, into: &mut Vec<Req>) {
        std::mem::swap(&mut *self.reqs.lock(), into);
    }

    pub(crate) fn slot(&self, id: i32) -> &Slot {
        &self.slots[slot_of(id)]
    }

    /// Reserve a fresh id (state Reserved); None when all 65536 slots are busy.
    pub(crate) fn reserve_id(&self, fd: RawFd, v6: bool) -> Option<i32> {
        for _ in 0..MAX_SOCKET {
            let mut id = self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & 0x7fff_ffff;
            if id == 0 {
                id = self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & 0x7fff_ffff;
                if id == 0 {
                    continue;
                }
            }
            let mut st = self.slots[slot_of(id)].0.lock();
            if st.state == State::Invalid {
                st.id = id;
                st.state = State::Reserved;
                st.fd = fd;
                st.queued = 0;
                st.wb_nonempty = false;
                st.v6 = v6;
                st.dw_bytes = 0;
                st.dw_time = 0;
                return Some(id);
            }
        }
        None
    }

    fn release_reserved(&self, id: i32) {
        let mut st = self.slot(id).0.lock();
        if st.id == id {
            st.state = State::Invalid;
            st.fd = -1;
        }
    }

    /// Bind and listen synchronously (in the caller); the CONNECT (ud = port) follows.
    /// `backlog` is raised to at least [`MIN_BACKLOG`] and capped by `somaxconn`.
    pub fn listen(&self, owner: u32, host: &str, port: u16, backlog: i32) -> io::Result<i32> {
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        let addrs = sys::resolve(host, port, true, false).map_err(io::Error::other)?;
        let addr = addrs[0];
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM.nonblocking().cloexec(),
            None,
        )?;
        sock.set_reuse_address(true)?;
        sock.bind(&addr.into())?;
        let backlog = backlog.max(MIN_BACKLOG).min(sys::somaxconn().max(1));
        sock.listen(backlog)?;
        let fd = OwnedFd::from(sock);
        let id = self
            .reserve_id(std::os::fd::AsRawFd::as_raw_fd(&fd), addr.is_ipv6())
            .ok_or_else(|| io::Error::other("reach skynet socket number limit"))?;
        self.note_owner(owner);
        self.push(Req::Listen { id, owner, fd });
        Ok(id)
    }

    /// Start an outgoing connection; CONNECT or ERROR follows. None if no slot is free.
    pub fn connect(&self, owner: u32, host: &str, port: u16) -> Option<i32> {
        let id = self.reserve_id(-1, false)?;
        self.note_owner(owner);
        self.push(Req::Connect {
            id,
            owner,
            host: host.to_string(),
            port,
        });
        Some(id)
    }

    /// Take ownership of `id` and (re)start reading/accepting.
    pub fn start(&self, owner: u32, id: i32) {
        self.note_owner(owner);
        self.push(Req::Start { id, owner });
    }

    /// Stop reading `id` until the next `start`.
    pub fn pause(&self, id: i32) {
        self.push(Req::Pause { id });
    }

    /// Flush pending output, then close (`socket.md` §2.1).
    pub fn close(&self, id: i32) {
        self.push(Req::Close {
            id,
            shutdown: false,
        });
    }

    /// Discard pending output and close at once.
    pub fn shutdown(&self, id: i32) {
        self.push(Req::Close { id, shutdown: true });
    }

    /// Set `TCP_NODELAY` (done in the caller).
    pub fn nodelay(&self, id: i32) {
        let st = self.slot(id).0.lock();
        if st.id == id && st.fd >= 0 && st.state != State::Invalid {
            sys::set_nodelay(st.fd);
        }
    }

    /// Wrap an existing OS fd (not closed by the server); CONNECT "binding" follows.
    pub fn bind(&self, owner: u32, fd: RawFd) -> Option<i32> {
        let id = self.reserve_id(fd, false)?;
        self.note_owner(owner);
        self.push(Req::Bind { id, owner, fd });
        Some(id)
    }

    /// High-priority send. False if the id is invalid/closing at call time.
    pub fn send(&self, id: i32, buf: Buffer) -> bool {
        self.send_impl(id, Data::new(buf), false)
    }

    /// Low-priority send (written only when the high list is empty).
    pub fn send_lowpriority(&self, id: i32, buf: Buffer) -> bool {
        self.send_impl(id, Data::new(buf), true)
    }

    fn send_impl(&self, id: i32, data: Data, low: bool) -> bool {
        let mut st = self.slot(id).0.lock();
        if st.id != id {
            return false;
        }
        match st.state {
            State::Connected if st.queued == 0 && !st.wb_nonempty => {
                let bytes = data.bytes();
                let off = match sys::write(st.fd, bytes) {
                    sys::Io::Done(n) if n == bytes.len() => {
                        st.dw_bytes += n as u64;
                        st.dw_time = self.now_cs();
                        return true;
                    }
                    sys::Io::Done(n) => {
                        st.dw_bytes += n as u64;
                        st.dw_time = self.now_cs();
                        n
                    }
                    // Errors are left for the socket thread to meet and report.
                    _ => 0,
                };
                st.queued += 1;
                self.push(Req::Send {
                    id,
                    buf: data.into_wbuf(off, None),
                    low,
                });
                true
            }
            State::Reserved | State::Connecting | State::Connected | State::Udp | State::Bind => {
                st.queued += 1;
                self.push(Req::Send {
                    id,
                    buf: data.into_wbuf(0, None),
                    low,
                });
                true
            }
            _ => false,
        }
    }

    /// Create a UDP socket, bound to `host:port` if either is given (default: unbound
    /// IPv4). It reads at once; datagrams arrive as UDP events.
    pub fn udp(&self, owner: u32, host: &str, port: u16) -> io::Result<i32> {
        let bind_to = if host.is_empty() && port == 0 {
            None
        } else {
            let h = if host.is_empty() { "0.0.0.0" } else { host };
            Some(sys::resolve(h, port, true, true).map_err(io::Error::other)?[0])
        };
        self.udp_socket(owner, bind_to, None)
    }

    /// HEAD `udp_dial`: a new UDP socket whose default peer is `host:port`.
    pub fn udp_dial(&self, owner: u32, host: &str, port: u16) -> io::Result<i32> {
        let to = sys::resolve(host, port, false, true).map_err(io::Error::other)?[0];
        self.udp_socket(owner, None, Some(to))
    }

    fn udp_socket(
        &self,
        owner: u32,
        bind_to: Option<SocketAddr>,
        peer: Option<SocketAddr>,
    ) -> io::Result<i32> {
        let v6 = bind_to.or(peer).map(|a| a.is_ipv6()).unwrap_or(false);
        let domain = if v6 {
            socket2::Domain::IPV6
        } else {
            socket2::Domain::IPV4
        };
        let sock =
            socket2::Socket::new(domain, socket2::Type::DGRAM.nonblocking().cloexec(), None)?;
        if let Some(a) = bind_to {
            sock.bind(&a.into())?;
        }
        if let Some(a) = peer {
            sock.connect(&a.into())?;
        }
        let fd = OwnedFd::from(sock);
        let id = self
            .reserve_id(std::os::fd::AsRawFd::as_raw_fd(&fd), v6)
            .ok_or_else(|| io::Error::other("reach skynet socket number limit"))?;
        self.note_owner(owner);
        self.push(Req::Udp { id, owner, fd });
        Ok(id)
    }

    /// Set the default peer of UDP socket `id` (synchronous).
    pub fn udp_connect(&self, id: i32, host: &str, port: u16) -> io::Result<()> {
        let addrs = sys::resolve(host, port, false, true).map_err(io::Error::other)?;
        let st = self.slot(id).0.lock();
        if st.id != id || !matches!(st.state, State::Udp | State::Reserved) || st.fd < 0 {
            return Err(io::Error::other("invalid socket"));
        }
        let a = addrs
            .iter()
            .find(|a| a.is_ipv6() == st.v6)
            .ok_or_else(|| io::Error::other("protocol mismatch"))?;
        sys::connect(st.fd, a).map_err(io::Error::from_raw_os_error)
    }

    /// Send a datagram to `address` (a §2.2 address string). False if `id` is not a
    /// live UDP socket, the address is malformed or of the other family.
    pub fn udp_send(&self, id: i32, address: &[u8], buf: Buffer) -> bool {
        let data = Data::new(buf);
        let Some(to) = udp_address_decode(address) else {
            return false;
        };
        let mut st = self.slot(id).0.lock();
        if st.id != id || !matches!(st.state, State::Udp | State::Reserved) || to.is_ipv6() != st.v6
        {
            return false;
        }
        st.queued += 1;
        self.push(Req::Send {
            id,
            buf: data.into_wbuf(0, Some(to)),
            low: false,
        });
        true
    }

    /// Centiseconds since the server started (the clock of [`SocketInfo`] times).
    pub fn now_cs(&self) -> u64 {
        (self.born.elapsed().as_millis() / 10) as u64
    }

    /// A snapshot of every socket (`netstat`); empty if the loop is gone.
    pub fn info(&self) -> Vec<SocketInfo> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.push(Req::Info(tx));
        if !self.shared {
            return rx
                .recv_timeout(std::time::Duration::from_secs(2))
                .unwrap_or_default();
        }
        // Shared mode: a parked poller answers; if nobody polls, turn the loop here.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < until {
            self.poll(false, &|| false);
            if let Ok(v) = rx.recv_timeout(std::time::Duration::from_millis(1)) {
                return v;
            }
        }
        Vec::new()
    }

    /// Number of sockets currently allocated (for tests and `info`).
    pub fn socket_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.0.lock().state != State::Invalid)
            .count()
    }
}

#[cfg(test)]
mod tests;
