//! The poll loop: an edge-triggered mio loop over every socket, turned by the socket
//! thread or, in shared mode, by whichever thread holds it.
//!
//! Each loop turn: poll (no wait when the ready list is non-empty), handle events,
//! take all queued requests, then give every socket on the ready list one more read
//! or accept batch. Per-socket state the callers never see lives in [`Sock`]; the
//! shared part is updated under the slot lock (see the module docs of `socket`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::sys::{self, Io};
use super::*;
use crate::message::{payload_alloc, payload_free};

pub(crate) const WAKER: Token = Token(usize::MAX);

const RSIZE_INIT: usize = 4096;
const RSIZE_MIN: usize = 1024;
const RSIZE_MAX: usize = 1 << 20;
const ACCEPT_BATCH: usize = 64;
const UDP_BATCH: usize = 32;
const UDP_MAX: usize = 65535;
/// A closing socket whose queued output makes no progress for this long (centiseconds)
/// is dropped: a peer that never reads would otherwise hold it, and its fd, forever.
const LINGER_CS: u64 = 3000;
/// Idle time after which the socket thread trims its allocator heap.
const TRIM_AFTER: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Listen,
    Tcp,
    Udp,
    Bind,
}

struct Sock {
    id: i32,
    owner: u32,
    kind: Kind,
    fd: RawFd,
    /// None for Bind (the fd is not ours to close).
    own: Option<OwnedFd>,
    started: bool,
    paused: bool,
    connecting: bool,
    read_closed: bool,
    close_reported: bool,
    closing: bool,
    write_shut: bool,
    in_ready: bool,
    /// The poller saw the peer's FIN or an error: read until 0 or the error.
    rdhup: bool,
    high: VecDeque<WBuf>,
    low: VecDeque<WBuf>,
    wb_size: usize,
    warn_size: usize,
    rsize: usize,
    rbytes: u64,
    wbytes: u64,
    rtime: u64,
    wtime: u64,
    accepts: u64,
    /// When `close` found output still queued (centiseconds).
    closed_at: u64,
}

impl Sock {
    fn new(id: i32, owner: u32, kind: Kind, fd: RawFd, own: Option<OwnedFd>) -> Box<Sock> {
        Box::new(Sock {
            id,
            owner,
            kind,
            fd,
            own,
            started: false,
            paused: false,
            connecting: false,
            read_closed: false,
            close_reported: false,
            closing: false,
            write_shut: false,
            in_ready: false,
            rdhup: false,
            high: VecDeque::new(),
            low: VecDeque::new(),
            wb_size: 0,
            warn_size: 0,
            rsize: RSIZE_INIT,
            rbytes: 0,
            wbytes: 0,
            rtime: 0,
            wtime: 0,
            accepts: 0,
            closed_at: 0,
        })
    }
    fn reading(&self) -> bool {
        self.started && !self.paused && !self.read_closed && !self.closing && !self.connecting
    }
    fn out_empty(&self) -> bool {
        self.high.is_empty() && self.low.is_empty()
    }
}

pub(crate) struct Looper {
    srv: Arc<SocketServer>,
    poll: Poll,
    sink: Sink,
    socks: Vec<Option<Box<Sock>>>,
    /// Live socket ids by owner (kept in step with `Sock::owner`), so the sockets of a
    /// service that is gone can be closed without scanning every slot.
    by_owner: HashMap<u32, HashSet<i32>>,
    /// Sockets closing with output still queued, checked against [`LINGER_CS`].
    lingering: Vec<i32>,
    ready: VecDeque<i32>,
    reserve: sys::ReserveFd,
    exiting: bool,
    udp_buf: Vec<u8>,
    /// `srv.now_cs()` read once per loop turn (read/write timestamps for netstat).
    now: u64,
    events: Events,
    reqs: Vec<Req>,
    /// Work since the allocator last trimmed this thread's heap.
    untrimmed: bool,
    linger_checked: u64,
}

enum After {
    Keep,
    Requeue,
}

impl Looper {
    pub(crate) fn new(srv: Arc<SocketServer>, poll: Poll, sink: Sink) -> Looper {
        let mut socks = Vec::with_capacity(MAX_SOCKET);
        socks.resize_with(MAX_SOCKET, || None);
        Looper {
            srv,
            poll,
            sink,
            socks,
            by_owner: HashMap::new(),
            lingering: Vec::new(),
            ready: VecDeque::new(),
            reserve: sys::ReserveFd::open(),
            exiting: false,
            udp_buf: vec![0; UDP_MAX + 1],
            now: 0,
            events: Events::with_capacity(1024),
            reqs: Vec::new(),
            untrimmed: false,
            linger_checked: 0,
        }
    }

    /// Thread mode: turn until an `Exit` request, then close everything.
    pub(crate) fn run(mut self) {
        while !self.exiting {
            let t = self.idle_timeout();
            self.turn(t);
        }
        self.close_all();
    }

    /// How long a turn may wait for events: not at all while sockets wait on the ready
    /// list; a second while the heap is untrimmed or sockets linger; else forever.
    pub(crate) fn idle_timeout(&self) -> Option<Duration> {
        if !self.ready.is_empty() {
            Some(Duration::ZERO)
        } else if self.untrimmed || !self.lingering.is_empty() {
            Some(TRIM_AFTER)
        } else {
            None
        }
    }

    /// One loop turn: poll (waiting at most `timeout`), handle the events, take every
    /// queued request, then give each socket on the ready list one more read. True if
    /// it did anything (a socket event, a request or a read).
    pub(crate) fn turn(&mut self, timeout: Option<Duration>) -> bool {
        let polled = self.poll.poll(&mut self.events, timeout);
        // Awake from here on: while it handles the events (and runs the sink), a
        // parked poller must count as running, or pushes would unpark it instead of
        // waking another worker.
        self.srv.parked.store(false, Ordering::SeqCst);
        if let Err(e) = polled {
            if e.kind() != std::io::ErrorKind::Interrupted {
                eprintln!("socket-server: poll error: {e}");
            }
            return false;
        }
        self.now = self.srv.now_cs();
        if !self.lingering.is_empty() && self.now >= self.linger_checked + 100 {
            self.linger_checked = self.now;
            self.drop_stalled();
        }
        if self.events.is_empty() && timeout == Some(TRIM_AFTER) {
            // Idle for a second: hand the heap's free pages (read buffers freed by the
            // workers) back, once.
            if self.untrimmed {
                crate::message::trim_thread_heap();
                self.untrimmed = false;
            }
            return false;
        }
        let mut busy = false;
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for ev in events.iter() {
            if ev.token() == WAKER {
                continue;
            }
            busy = true;
            let hup = ev.is_read_closed() || ev.is_error();
            self.on_event(
                ev.token().0 as i32,
                ev.is_readable() || hup,
                hup,
                ev.is_writable() || ev.is_error() || ev.is_write_closed(),
            );
        }
        events.clear();
        self.events = events;
        let mut reqs = std::mem::take(&mut self.reqs);
        self.srv.take_requests(&mut reqs);
        busy |= !reqs.is_empty() || !self.ready.is_empty();
        if busy {
            self.untrimmed = true;
        }
        for r in reqs.drain(..) {
            self.request(r);
        }
        self.reqs = reqs;
        let n = self.ready.len();
        for _ in 0..n {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            if let Some(s) = self.get(id) {
                s.in_ready = false;
                self.readable(id);
            }
        }
        busy
    }

    /// Whether an `Exit` request was taken.
    pub(crate) fn exiting(&self) -> bool {
        self.exiting
    }

    /// Exit: close every socket, without events.
    pub(crate) fn close_all(&mut self) {
        for slot in 0..MAX_SOCKET {
            if let Some(s) = self.socks[slot].take() {
                self.free_slot(s);
            }
        }
    }

    fn get(&mut self, id: i32) -> Option<&mut Sock> {
        match self.socks[slot_of(id)].as_deref_mut() {
            Some(s) if s.id == id => Some(s),
            _ => None,
        }
    }

    fn report(&self, owner: u32, kind: i32, id: i32, ud: i32, buffer: *mut u8, text: &[u8]) {
        let (p, sz) = make_message(kind, id, ud, buffer, text);
        (self.sink)(owner, p, sz);
    }

    /// An ERROR event carrying `text`.
    fn report_error(&self, owner: u32, id: i32, text: &str) {
        self.report(
            owner,
            SOCKET_ERROR,
            id,
            0,
            std::ptr::null_mut(),
            text.as_bytes(),
        );
    }

    /// An ERROR event carrying `strerror(errno)`.
    fn report_errno(&self, owner: u32, id: i32, errno: i32) {
        self.report_error(owner, id, &sys::strerror(errno));
    }

    fn set_state(&self, id: i32, f: impl FnOnce(&mut SlotState)) {
        let mut st = self.srv.slot(id).0.lock();
        if st.id == id {
            f(&mut st);
        }
    }

    fn push_ready(&mut self, id: i32) {
        if let Some(s) = self.get(id) {
            if !s.in_ready {
                s.in_ready = true;
                self.ready.push_back(id);
            }
        }
    }

    /// Forget a socket: free the slot (under its lock), then close the fd.
    fn free_slot(&self, s: Box<Sock>) {
        {
            let mut st = self.srv.slot(s.id).0.lock();
            if st.id == s.id {
                st.state = State::Invalid;
                st.fd = -1;
                st.queued = 0;
                st.wb_nonempty = false;
            }
        }
        drop(s);
    }

    fn force_close(&mut self, id: i32) {
        if let Some(s) = self.socks[slot_of(id)].take() {
            if s.id == id {
                self.disown(s.owner, id);
                self.free_slot(s);
            } else {
                self.socks[slot_of(id)] = Some(s);
            }
        }
    }

    fn register(&self, fd: RawFd, id: i32, interest: Interest) -> std::io::Result<()> {
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), Token(id as usize), interest)
    }

    fn disown(&mut self, owner: u32, id: i32) {
        if let Some(set) = self.by_owner.get_mut(&owner) {
            set.remove(&id);
            if set.is_empty() {
                self.by_owner.remove(&owner);
            }
        }
    }

    /// Close (flushing output) every socket `owner` still owns; no events: the owner
    /// is gone.
    fn close_owner(&mut self, owner: u32) {
        let Some(ids) = self.by_owner.remove(&owner) else {
            return;
        };
        for id in ids {
            if let Some(s) = self.get(id) {
                s.close_reported = true;
                self.close(id, false);
            }
        }
    }

    /// Drop closing sockets whose output has been stuck for [`LINGER_CS`]; forget the
    /// ones that finished closing.
    fn drop_stalled(&mut self) {
        let now = self.now;
        let mut ids = std::mem::take(&mut self.lingering);
        ids.retain(|&id| {
            let Some(s) = self.get(id) else { return false };
            if !s.closing {
                return false;
            }
            if now.saturating_sub(s.wtime.max(s.closed_at)) < LINGER_CS {
                return true;
            }
            self.force_close(id);
            false
        });
        self.lingering = ids;
    }

    fn insert(&mut self, s: Box<Sock>) {
        self.by_owner.entry(s.owner).or_default().insert(s.id);
        let slot = slot_of(s.id);
        self.socks[slot] = Some(s);
    }

    // ------------------------------------------------------------------ events

    fn on_event(&mut self, id: i32, readable: bool, hup: bool, writable: bool) {
        let Some(s) = self.get(id) else { return };
        s.rdhup |= hup;
        if s.connecting {
            if writable {
                self.finish_connect(id);
            }
            return;
        }
        if writable {
            let s = self.get(id).unwrap();
            if !s.out_empty() {
                self.flush(id);
            }
        }
        if readable {
            self.readable(id);
        }
    }

    fn readable(&mut self, id: i32) {
        let Some(s) = self.get(id) else { return };
        let after = match s.kind {
            Kind::Listen if s.started => self.accept_batch(id),
            Kind::Tcp | Kind::Bind if s.reading() => self.read_tcp(id),
            Kind::Udp if s.reading() => self.read_udp(id),
            _ => After::Keep,
        };
        if let After::Requeue = after {
            self.push_ready(id);
        }
    }

    fn finish_connect(&mut self, id: i32) {
        let s = self.get(id).unwrap();
        let fd = s.fd;
        let err = socket2::SockRef::from(s.own.as_ref().unwrap()).take_error();
        let err = match err {
            Ok(None) => None,
            Ok(Some(e)) | Err(e) => Some(sys::error_text(&e)),
        };
        if let Some(text) = err {
            let owner = s.owner;
            self.force_close(id);
            self.report_error(owner, id, &text);
            return;
        }
        let peer = socket2::SockRef::from(s.own.as_ref().unwrap())
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket());
        s.connecting = false;
        s.started = true;
        let owner = s.owner;
        let pending = !s.out_empty();
        let closing = s.closing;
        self.set_state(id, |st| {
            st.state = if closing {
                State::NoWrite
            } else {
                State::Connected
            };
            st.fd = fd;
        });
        let text = peer.map(|a| a.ip().to_string()).unwrap_or_default();
        self.report(
            owner,
            SOCKET_CONNECT,
            id,
            0,
            std::ptr::null_mut(),
            text.as_bytes(),
        );
        if pending {
            self.flush(id);
        }
        self.push_ready(id);
    }

    fn accept_batch(&mut self, id: i32) -> After {
        let (lfd, owner) = {
            let s = self.get(id).unwrap();
            (s.fd, s.owner)
        };
        for _ in 0..ACCEPT_BATCH {
            match sys::accept(lfd) {
                Ok((fd, peer)) => {
                    // SAFETY: a fresh fd from accept4 that we own.
                    let own = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                    let _ = socket2::SockRef::from(&own).set_keepalive(true);
                    let Some(nid) = self
                        .srv
                        .reserve_id(fd, peer.map(|a| a.is_ipv6()).unwrap_or(false))
                    else {
                        drop(own);
                        self.report(
                            owner,
                            SOCKET_ERROR,
                            id,
                            0,
                            std::ptr::null_mut(),
                            b"reach skynet socket number limit",
                        );
                        continue;
                    };
                    if let Err(e) = self.register(fd, nid, Interest::READABLE | Interest::WRITABLE)
                    {
                        self.srv.release_reserved(nid);
                        drop(own);
                        self.report_error(owner, id, &sys::error_text(&e));
                        continue;
                    }
                    self.insert(Sock::new(nid, owner, Kind::Tcp, fd, Some(own)));
                    self.set_state(nid, |st| st.state = State::PAccept);
                    let now = self.now;
                    if let Some(l) = self.get(id) {
                        l.accepts += 1;
                        l.rtime = now;
                    }
                    let text = peer
                        .map(|a| format!("{}:{}", a.ip(), a.port()))
                        .unwrap_or_default();
                    self.report(
                        owner,
                        SOCKET_ACCEPT,
                        id,
                        nid,
                        std::ptr::null_mut(),
                        text.as_bytes(),
                    );
                }
                Err(libc::EAGAIN) => return After::Keep,
                Err(e @ (libc::EMFILE | libc::ENFILE)) => {
                    let dropped = self.reserve.drop_one(lfd);
                    if dropped == Some(false) {
                        // The queue is empty (accept4 reports EMFILE even then): no
                        // connection was refused, so no ERROR; wait for the next edge.
                        return After::Keep;
                    }
                    self.report_errno(owner, id, e);
                    if dropped.is_none() {
                        // No spare fd: nothing could be taken off the queue. Wait for
                        // the next edge rather than spinning.
                        return After::Keep;
                    }
                }
                Err(libc::ECONNABORTED | libc::EPROTO | libc::EINTR) => continue,
                Err(e) => {
                    self.report_errno(owner, id, e);
                    return After::Keep;
                }
            }
        }
        After::Requeue
    }

    fn read_tcp(&mut self, id: i32) -> After {
        let now = self.now;
        let s = self.get(id).unwrap();
        let cap = s.rsize;
        let fd = s.fd;
        let buf = payload_alloc(cap);
        // SAFETY: buf holds cap + 1 bytes.
        match unsafe { sys::read(fd, buf, cap) } {
            Io::Done(0) => {
                // SAFETY: our block.
                unsafe { payload_free(buf) };
                s.read_closed = true;
                let owner = s.owner;
                let reported = std::mem::replace(&mut s.close_reported, true);
                let dead = s.write_shut || s.closing;
                if dead {
                    self.force_close(id);
                }
                if !reported {
                    self.report(owner, SOCKET_CLOSE, id, 0, std::ptr::null_mut(), b"");
                }
                After::Keep
            }
            Io::Done(n) => {
                s.rbytes += n as u64;
                s.rtime = now;
                let mut buf = buf;
                if cap - n >= 4096 && n <= cap / 4 {
                    // SAFETY: shrinking our malloc block; realloc never fails to shrink
                    // in practice, and on failure the old block stays valid.
                    let p = unsafe { crate::message::payload_realloc(buf, n + 1) };
                    if !p.is_null() {
                        buf = p;
                    }
                }
                // SAFETY: buf holds at least n + 1 bytes.
                unsafe { *buf.add(n) = 0 };
                let owner = s.owner;
                let again = if n == cap {
                    s.rsize = (cap * 4).min(RSIZE_MAX);
                    After::Requeue
                } else {
                    if n < cap / 2 {
                        s.rsize = (cap / 2).max(RSIZE_MIN);
                    }
                    // A short read drained the kernel buffer, except that a FIN (or
                    // error) seen with the same edge is still to be read.
                    if s.rdhup {
                        After::Requeue
                    } else {
                        After::Keep
                    }
                };
                self.report(owner, SOCKET_DATA, id, n as i32, buf, b"");
                again
            }
            Io::WouldBlock => {
                // SAFETY: our block.
                unsafe { payload_free(buf) };
                After::Keep
            }
            Io::Err(e) => {
                // SAFETY: our block.
                unsafe { payload_free(buf) };
                let owner = s.owner;
                self.force_close(id);
                self.report_errno(owner, id, e);
                After::Keep
            }
        }
    }

    fn read_udp(&mut self, id: i32) -> After {
        let (fd, owner) = {
            let s = self.get(id).unwrap();
            (s.fd, s.owner)
        };
        for _ in 0..UDP_BATCH {
            // SAFETY: udp_buf holds UDP_MAX + 1 bytes.
            let (r, from) = unsafe { sys::recvfrom(fd, self.udp_buf.as_mut_ptr(), UDP_MAX) };
            match r {
                Io::Done(n) => {
                    let addr = from.map(|a| udp_address_encode(&a)).unwrap_or_default();
                    let block = payload_alloc(n + addr.len());
                    // SAFETY: block holds n + addr.len() + 1 bytes.
                    unsafe {
                        std::ptr::copy_nonoverlapping(self.udp_buf.as_ptr(), block, n);
                        std::ptr::copy_nonoverlapping(addr.as_ptr(), block.add(n), addr.len());
                    }
                    self.report(owner, SOCKET_UDP, id, n as i32, block, b"");
                }
                Io::WouldBlock => return After::Keep,
                Io::Err(libc::ECONNREFUSED) => continue,
                Io::Err(e) => {
                    self.force_close(id);
                    self.report_errno(owner, id, e);
                    return After::Keep;
                }
            }
        }
        After::Requeue
    }

    /// Write queued output until the kernel pushes back or the lists are empty.
    fn flush(&mut self, id: i32) {
        let now = self.now;
        let s = self.get(id).unwrap();
        let fd = s.fd;
        let kind = s.kind;
        loop {
            let low = s.high.is_empty();
            let list = if low { &mut s.low } else { &mut s.high };
            if list.is_empty() {
                break;
            }
            let r = match kind {
                Kind::Tcp => {
                    let mut parts: [&[u8]; 64] = [&[]; 64];
                    let mut k = 0;
                    for b in list.iter().take(64) {
                        parts[k] = b.rest();
                        k += 1;
                    }
                    if k == 1 {
                        sys::write(fd, parts[0])
                    } else {
                        sys::writev(fd, &parts[..k])
                    }
                }
                Kind::Udp => {
                    let b = list.front().unwrap();
                    match sys::sendto(fd, b.rest(), b.to.as_ref()) {
                        // A datagram that cannot be sent is dropped.
                        Io::Err(_) => Io::Done(b.rest().len()),
                        r => r,
                    }
                }
                _ => sys::write(fd, list.front().unwrap().rest()),
            };
            match r {
                Io::Done(mut n) => {
                    s.wb_size -= n.min(s.wb_size);
                    s.wbytes += n as u64;
                    s.wtime = now;
                    while n > 0 {
                        let front = list.front_mut().unwrap();
                        let left = front.rest().len();
                        if n >= left {
                            n -= left;
                            list.pop_front();
                        } else {
                            front.off += n;
                            n = 0;
                        }
                    }
                    // Zero-length buffers written along with others.
                    while list.front().is_some_and(|b| b.rest().is_empty()) {
                        list.pop_front();
                    }
                    if low {
                        if let Some(front) = s.low.front() {
                            if front.off > 0 {
                                let b = s.low.pop_front().unwrap();
                                s.high.push_back(b);
                            }
                        }
                    }
                }
                Io::WouldBlock => return,
                Io::Err(e) => {
                    s.high.clear();
                    s.low.clear();
                    s.wb_size = 0;
                    let owner = s.owner;
                    if s.closing || s.read_closed {
                        let reported = std::mem::replace(&mut s.close_reported, true);
                        self.force_close(id);
                        if !reported {
                            self.report(owner, SOCKET_CLOSE, id, 0, std::ptr::null_mut(), b"");
                        }
                    } else {
                        s.write_shut = true;
                        // SAFETY: shutting down our own fd's write side.
                        unsafe { libc::shutdown(fd, libc::SHUT_WR) };
                        self.set_state(id, |st| {
                            st.state = State::NoWrite;
                            st.wb_nonempty = false;
                        });
                        self.report_errno(owner, id, e);
                    }
                    return;
                }
            }
        }
        // Output drained.
        self.set_state(id, |st| st.wb_nonempty = false);
        let s = self.get(id).unwrap();
        if s.warn_size > 0 {
            s.warn_size = 0;
            let owner = s.owner;
            self.report(owner, SOCKET_WARNING, id, 0, std::ptr::null_mut(), b"");
        }
        let s = self.get(id).unwrap();
        if s.closing {
            self.force_close(id);
        }
    }

    fn info(&self) -> Vec<SocketInfo> {
        let mut out = Vec::new();
        for s in self.socks.iter().flatten() {
            let (dw_bytes, dw_time) = {
                let st = self.srv.slot(s.id).0.lock();
                (st.dw_bytes, st.dw_time)
            };
            let sref = s.own.as_ref().map(socket2::SockRef::from);
            let fmt =
                |a: Option<std::net::SocketAddr>| a.map(|a| format!("{}:{}", a.ip(), a.port()));
            let mut i = SocketInfo {
                id: s.id,
                owner: s.owner,
                kind: match s.kind {
                    _ if s.closing || s.write_shut => "CLOSING",
                    Kind::Listen => "LISTEN",
                    Kind::Tcp => "TCP",
                    Kind::Udp => "UDP",
                    Kind::Bind => "BIND",
                },
                read: s.rbytes,
                write: s.wbytes + dw_bytes,
                wbuffer: s.wb_size as u64,
                rtime: s.rtime,
                wtime: s.wtime.max(dw_time),
                reading: s.reading(),
                writing: !s.out_empty(),
                ..Default::default()
            };
            if s.kind == Kind::Listen {
                i.accept = s.accepts;
                i.sock = fmt(sref
                    .and_then(|r| r.local_addr().ok())
                    .and_then(|a| a.as_socket()));
            } else if s.kind == Kind::Tcp {
                i.peer = fmt(sref
                    .and_then(|r| r.peer_addr().ok())
                    .and_then(|a| a.as_socket()));
            }
            out.push(i);
        }
        out
    }

    // ------------------------------------------------------------------ requests

    fn request(&mut self, r: Req) {
        match r {
            Req::Exit => self.exiting = true,
            Req::Info(tx) => {
                let _ = tx.send(self.info());
            }
            Req::Listen { id, owner, fd } => {
                let raw = fd.as_raw_fd();
                if let Err(e) = self.register(raw, id, Interest::READABLE) {
                    self.srv.release_reserved(id);
                    self.report_error(owner, id, &sys::error_text(&e));
                    return;
                }
                let local = socket2::SockRef::from(&fd)
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_socket());
                self.insert(Sock::new(id, owner, Kind::Listen, raw, Some(fd)));
                self.set_state(id, |st| st.state = State::PListen);
                let (ip, port) = local
                    .map(|a| (a.ip().to_string(), a.port()))
                    .unwrap_or_default();
                self.report(
                    owner,
                    SOCKET_CONNECT,
                    id,
                    port as i32,
                    std::ptr::null_mut(),
                    ip.as_bytes(),
                );
            }
            Req::Connect {
                id,
                owner,
                host,
                port,
            } => self.connect(id, owner, &host, port),
            Req::Udp { id, owner, fd } => {
                let raw = fd.as_raw_fd();
                if let Err(e) = self.register(raw, id, Interest::READABLE | Interest::WRITABLE) {
                    self.srv.release_reserved(id);
                    self.report_error(owner, id, &sys::error_text(&e));
                    return;
                }
                let mut s = Sock::new(id, owner, Kind::Udp, raw, Some(fd));
                s.started = true;
                self.insert(s);
                self.set_state(id, |st| st.state = State::Udp);
                self.push_ready(id);
            }
            Req::Bind { id, owner, fd } => {
                let _ = sys::set_nonblocking(fd);
                // Writable too: a bound fd may be written (stdout) and a partial write
                // needs the edge to resume.
                if let Err(e) = self.register(fd, id, Interest::READABLE | Interest::WRITABLE) {
                    self.srv.release_reserved(id);
                    self.report_error(owner, id, &sys::error_text(&e));
                    return;
                }
                let mut s = Sock::new(id, owner, Kind::Bind, fd, None);
                s.started = true;
                self.insert(s);
                self.set_state(id, |st| st.state = State::Bind);
                self.report(
                    owner,
                    SOCKET_CONNECT,
                    id,
                    0,
                    std::ptr::null_mut(),
                    b"binding",
                );
                self.push_ready(id);
            }
            Req::Start { id, owner } => self.start(id, owner),
            Req::Pause { id } => {
                if let Some(s) = self.get(id) {
                    s.paused = true;
                }
            }
            Req::Close { id, shutdown } => self.close(id, shutdown),
            Req::CloseOwner { owner } => self.close_owner(owner),
            Req::Send { id, buf, low } => self.send(id, buf, low),
        }
    }

    fn connect(&mut self, id: i32, owner: u32, host: &str, port: u16) {
        let addrs = match sys::resolve(host, port, false, false) {
            Ok(a) => a,
            Err(text) => {
                self.srv.release_reserved(id);
                self.report_error(owner, id, &text);
                return;
            }
        };
        let mut last = libc::ECONNREFUSED;
        for addr in addrs {
            let sock = match socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM.nonblocking().cloexec(),
                None,
            ) {
                Ok(s) => s,
                Err(e) => {
                    last = e.raw_os_error().unwrap_or(libc::EINVAL);
                    continue;
                }
            };
            let _ = sock.set_keepalive(true);
            let connecting = match sock.connect(&addr.into()) {
                Ok(()) => false,
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
                Err(e) => {
                    last = e.raw_os_error().unwrap_or(libc::EINVAL);
                    continue;
                }
            };
            let fd = OwnedFd::from(sock);
            let raw = fd.as_raw_fd();
            if let Err(e) = self.register(raw, id, Interest::READABLE | Interest::WRITABLE) {
                last = e.raw_os_error().unwrap_or(libc::EINVAL);
                continue;
            }
            let mut s = Sock::new(id, owner, Kind::Tcp, raw, Some(fd));
            s.connecting = true;
            self.insert(s);
            self.set_state(id, |st| {
                st.state = State::Connecting;
                st.fd = raw;
                st.v6 = addr.is_ipv6();
            });
            if !connecting {
                self.finish_connect(id);
            }
            return;
        }
        self.srv.release_reserved(id);
        self.report_errno(owner, id, last);
    }

    fn start(&mut self, id: i32, owner: u32) {
        let Some(s) = self.get(id) else {
            self.report(
                owner,
                SOCKET_ERROR,
                id,
                0,
                std::ptr::null_mut(),
                b"invalid socket",
            );
            return;
        };
        if s.connecting {
            return;
        }
        if s.closing || s.write_shut {
            self.report(
                owner,
                SOCKET_ERROR,
                id,
                0,
                std::ptr::null_mut(),
                b"socket closed",
            );
            return;
        }
        let old = std::mem::replace(&mut s.owner, owner);
        s.paused = false;
        let first = !std::mem::replace(&mut s.started, true);
        let kind = s.kind;
        if old != owner {
            self.disown(old, id);
            self.by_owner.entry(owner).or_default().insert(id);
        }
        if first {
            if kind == Kind::Listen {
                self.set_state(id, |st| st.state = State::Listen);
            } else {
                self.set_state(id, |st| st.state = State::Connected);
            }
        }
        let text: &[u8] = if first { b"start" } else { b"transfer" };
        self.report(owner, SOCKET_CONNECT, id, 0, std::ptr::null_mut(), text);
        self.push_ready(id);
    }

    fn close(&mut self, id: i32, shutdown: bool) {
        let Some(s) = self.get(id) else { return };
        let owner = s.owner;
        if shutdown || s.out_empty() || s.kind != Kind::Tcp {
            let reported = std::mem::replace(&mut s.close_reported, true);
            self.force_close(id);
            if !reported {
                self.report(owner, SOCKET_CLOSE, id, 0, std::ptr::null_mut(), b"");
            }
            return;
        }
        if s.closing {
            return;
        }
        s.closing = true;
        let reported = std::mem::replace(&mut s.close_reported, true);
        let now = self.now;
        if let Some(s) = self.get(id) {
            s.closed_at = now;
        }
        self.lingering.push(id);
        self.set_state(id, |st| st.state = State::NoWrite);
        if !reported {
            self.report(owner, SOCKET_CLOSE, id, 0, std::ptr::null_mut(), b"");
        }
    }

    fn send(&mut self, id: i32, buf: WBuf, low: bool) {
        // Take the request off the in-flight count; the data now counts as queued.
        let mut live = false;
        self.set_state(id, |st| {
            st.queued = st.queued.saturating_sub(1);
            if st.state != State::Invalid {
                st.wb_nonempty = true;
                live = true;
            }
        });
        let Some(s) = self.get(id) else { return };
        if !live {
            return;
        }
        if s.closing
            || s.write_shut
            || s.kind == Kind::Listen
            || (s.kind == Kind::Tcp && !s.started && !s.connecting)
        {
            if s.kind == Kind::Listen {
                eprintln!("socket-server error: write to listen fd {id}.");
            }
            if s.out_empty() {
                self.set_state(id, |st| st.wb_nonempty = false);
            }
            return;
        }
        let was_empty = s.out_empty();
        let len = buf.rest().len();
        s.wb_size += len;
        if low && !was_empty {
            s.low.push_back(buf);
        } else {
            s.high.push_back(buf);
        }
        if was_empty && !s.connecting {
            self.flush(id);
        }
        let Some(s) = self.get(id) else { return };
        if s.wb_size >= WARNING_SIZE && s.wb_size >= s.warn_size {
            s.warn_size = if s.warn_size == 0 {
                WARNING_SIZE * 2
            } else {
                s.warn_size * 2
            };
            let kb = s.wb_size.div_ceil(1024) as i32;
            let owner = s.owner;
            self.report(owner, SOCKET_WARNING, id, kb, std::ptr::null_mut(), b"");
        }
    }
}
