//! The native `package` service of the sample game server (`sample.md` §5): one
//! instance owns one client connection, cuts its byte stream into packets and serves
//! them to Lua services on demand.
//!
//! Launch param: `"<owner> <socket id>"` (owner = socket_proxyd's handle in decimal).
//!
//! # Protocol
//!
//! * `PTYPE_TEXT` commands (first byte): `R` read one packet (the reply is a
//!   `PTYPE_RESPONSE` whose payload is the packet without its 2-byte length, or
//!   `PTYPE_ERROR` once the connection is gone); `K` close the connection; `I`
//!   status text `req=<n> resp=<n> uncomplete=<missing>/<size>`.
//! * `PTYPE_CLIENT`: one outgoing packet; the 2-byte big-endian length is added here.
//! * `PTYPE_RESPONSE`: the frame-deadline timer (its own session), else the heartbeat
//!   timer (every 10 s); a heartbeat tick with no `DATA` since the previous one closes
//!   the connection (`timeout <fd>`).
//! * Socket events: the first `CONNECT` reports `SUCC` to the owner; `CLOSE`/`ERROR`
//!   report `FAIL` if that never happened.
//!
//! # Connection lifecycle (`sample.md` §5.6)
//!
//! The service owns its socket and closes it exactly once, in [`Package::finish`],
//! which also answers pending reads with errors, tells the owner `CLOSED` and retires
//! the service (quietly: the reader logs the disconnect, one line per connection).
//!
//! * The peer's EOF is a half-close: packets already received are still served and
//!   replies to them are still written. The connection finishes when a read finds no
//!   packet left (the reader has answered everything before asking again), when EOF
//!   arrives while a read is waiting, on `K`, or at the next idle heartbeat tick.
//! * `K` and the end of a half-closed connection flush queued output before closing;
//!   a heartbeat timeout, a frame deadline or a socket error close at once.
//! * Frame deadline: a packet whose first byte arrived `frame_timeout` seconds ago
//!   (config key, default 10, 0 = off) and that is still incomplete closes the
//!   connection (`frame timeout <fd>`), whether the peer went silent or trickles.
//!
//! # Design and invariants
//!
//! * Packets are assembled directly into payload blocks ([`Block`]) that are handed to
//!   the reader without a copy (DONTCOPY). A block is owned by exactly one place: the
//!   assembler, the packet queue, or (after the reply) the reader.
//! * Read requests and complete packets are two FIFOs; at most one of them is
//!   non-empty after any message has been handled (while the connection is open).
//! * Nothing here trusts the network: any length prefix is acceptable framing (0 to
//!   65535 bytes), and no input panics. Oversized outgoing packets are logged and
//!   dropped. Request/response traffic is latency bound, so the socket gets
//!   `TCP_NODELAY`.
//! * After `closed` is set no socket operation is issued again. A service killed from
//!   outside loses its socket with it (the runtime closes a dead service's sockets).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::api::{self, ptype, Context, Message, NativeService};
use crate::message::{payload_alloc, payload_free};
use crate::socket::{
    Buffer, SocketMessage, HEADER_SIZE, SOCKET_CLOSE, SOCKET_CONNECT, SOCKET_DATA, SOCKET_ERROR,
    SOCKET_UDP, SOCKET_WARNING,
};

/// Heartbeat period in centiseconds (`TIMEOUT "1000"`).
const HEARTBEAT: i64 = 1000;
/// Default frame deadline in centiseconds (config key `frame_timeout`, in seconds).
const FRAME_TIMEOUT: u64 = 1000;
/// Largest packet the 2-byte header can describe.
const MAX_PACKET: usize = 0xffff;

/// An exclusively owned payload block (see [`crate::message::payload_alloc`]).
struct Block {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the block is exclusively owned; it moves with the service.
unsafe impl Send for Block {}

impl Block {
    fn new(len: usize) -> Block {
        Block {
            ptr: payload_alloc(len),
            len,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: ptr holds len (+1) bytes owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Give the block away; the caller must free it (or hand it on with DONTCOPY).
    fn into_raw(self) -> (*mut u8, usize) {
        let me = std::mem::ManuallyDrop::new(self);
        (me.ptr, me.len)
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: owned payload block, freed once.
        unsafe { payload_free(self.ptr) };
    }
}

/// The packet being assembled.
enum Partial {
    /// Waiting for a header; `Some(b)` when its first byte is already here.
    Header(Option<u8>),
    /// Body of a packet: `filled` of `block.len` bytes are here.
    Body { block: Block, filled: usize },
}

/// Incremental `[len_hi][len_lo][body]` decoder.
struct Assembler {
    partial: Partial,
    /// Size of the last packet started (for the `I` report).
    last_size: usize,
    /// Packets completed so far (tells a new partial packet from an old one).
    completed: u64,
}

impl Assembler {
    fn new() -> Assembler {
        Assembler {
            partial: Partial::Header(None),
            last_size: 0,
            completed: 0,
        }
    }

    /// Some bytes of a packet are here, not all of them.
    fn in_progress(&self) -> bool {
        !matches!(self.partial, Partial::Header(None))
    }

    /// Consume `bytes`, appending every completed packet to `out`.
    fn feed(&mut self, mut bytes: &[u8], out: &mut VecDeque<Block>) {
        while !bytes.is_empty() {
            match &mut self.partial {
                Partial::Header(None) => {
                    if bytes.len() >= 2 {
                        let size = (bytes[0] as usize) << 8 | bytes[1] as usize;
                        bytes = &bytes[2..];
                        self.start(size, out);
                    } else {
                        self.partial = Partial::Header(Some(bytes[0]));
                        bytes = &[];
                    }
                }
                Partial::Header(Some(hi)) => {
                    let size = (*hi as usize) << 8 | bytes[0] as usize;
                    bytes = &bytes[1..];
                    self.start(size, out);
                }
                Partial::Body { block, filled } => {
                    let n = (block.len - *filled).min(bytes.len());
                    block.as_mut_slice()[*filled..*filled + n].copy_from_slice(&bytes[..n]);
                    *filled += n;
                    bytes = &bytes[n..];
                    if *filled == block.len {
                        if let Partial::Body { block, .. } =
                            std::mem::replace(&mut self.partial, Partial::Header(None))
                        {
                            self.completed += 1;
                            out.push_back(block);
                        }
                    }
                }
            }
        }
    }

    fn start(&mut self, size: usize, out: &mut VecDeque<Block>) {
        self.last_size = size;
        if size == 0 {
            self.completed += 1;
            out.push_back(Block::new(0));
            self.partial = Partial::Header(None);
        } else {
            self.partial = Partial::Body {
                block: Block::new(size),
                filled: 0,
            };
        }
    }

    /// `<missing>/<size>` for the `I` report.
    fn status(&self) -> String {
        match &self.partial {
            Partial::Header(Some(_)) => "-1/0".to_string(),
            Partial::Header(None) => format!("-1/{}", self.last_size),
            Partial::Body { block, filled } => format!("{}/{}", block.len - filled, block.len),
        }
    }
}

/// The package service state (one per connection).
pub struct Package {
    handle: u32,
    owner: u32,
    fd: i32,
    /// SUCC or FAIL has been reported to the owner.
    reported: bool,
    /// The peer sent EOF: no more packets will come.
    eof: bool,
    /// The socket is closed and the service is retiring.
    closed: bool,
    /// DATA messages seen, and their count at the last heartbeat tick.
    recv: u64,
    heartbeat: u64,
    /// Frame deadline in centiseconds (0 = off).
    frame_timeout: u64,
    /// When the packet now in progress started (timer centiseconds), and the session
    /// of the armed deadline timer (0 = none).
    frame_start: Option<u64>,
    deadline_session: i32,
    requests: VecDeque<(u32, i32)>,
    packets: VecDeque<Block>,
    asm: Assembler,
}

impl Default for Package {
    fn default() -> Self {
        Self::new()
    }
}

/// The `frame_timeout` config value (seconds, fractions allowed, 0 = off) in
/// centiseconds; `None` means unset. Checked at startup so a bad value names its key.
pub fn frame_timeout_cs(text: Option<&str>) -> Result<Option<u64>, String> {
    let Some(text) = text else { return Ok(None) };
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=86400.0).contains(&s) => Ok(Some((s * 100.0) as u64)),
        _ => Err(format!(
            "Invalid config key frame_timeout: {text:?} (seconds, 0 to 86400; 0 disables)"
        )),
    }
}

impl Package {
    pub fn new() -> Package {
        Package {
            handle: 0,
            owner: 0,
            fd: 0,
            reported: false,
            eof: false,
            closed: false,
            recv: 0,
            heartbeat: 0,
            frame_timeout: FRAME_TIMEOUT,
            frame_start: None,
            deadline_session: 0,
            requests: VecDeque::new(),
            packets: VecDeque::new(),
            asm: Assembler::new(),
        }
    }

    fn log(&self, text: &str) {
        api::log(self.handle, text);
    }

    fn reply_error(&self, ctx: &Context, dest: u32, session: i32) {
        // SAFETY: no payload; `ctx` is this service.
        let _ = unsafe {
            api::send(
                Some(ctx),
                self.handle,
                dest,
                ptype::ERROR as i32,
                session,
                std::ptr::null_mut(),
                0,
            )
        };
    }

    fn reply_packet(&self, ctx: &Context, dest: u32, session: i32, block: Block) {
        let (ptr, len) = block.into_raw();
        // SAFETY: the block's ownership passes to the send; `ctx` is this service.
        let _ = unsafe {
            api::send(
                Some(ctx),
                self.handle,
                dest,
                ptype::RESPONSE as i32 | ptype::TAG_DONTCOPY,
                session,
                ptr,
                len,
            )
        };
    }

    fn reply_text(&self, ctx: &Context, dest: u32, session: i32, text: &str) {
        // SAFETY: `text` is borrowed for the copy; `ctx` is this service.
        let _ = unsafe {
            api::send(
                Some(ctx),
                self.handle,
                dest,
                ptype::RESPONSE as i32,
                session,
                text.as_ptr() as *mut u8,
                text.len(),
            )
        };
    }

    fn tell_owner(&self, ctx: &Context, text: &str) {
        // SAFETY: `text` is borrowed for the copy; `ctx` is this service.
        let _ = unsafe {
            api::send(
                Some(ctx),
                self.handle,
                self.owner,
                ptype::TEXT as i32,
                0,
                text.as_ptr() as *mut u8,
                text.len(),
            )
        };
    }

    /// Answer queued reads with queued packets, FIFO. After EOF a read that finds no
    /// packet left ends the connection: every packet has been served.
    fn serve(&mut self, ctx: &Context) {
        while !self.requests.is_empty() && !self.packets.is_empty() {
            let (dest, session) = self.requests.pop_front().unwrap_or((0, 0));
            if let Some(block) = self.packets.pop_front() {
                self.reply_packet(ctx, dest, session, block);
            }
        }
        if self.eof && !self.requests.is_empty() {
            self.finish(ctx, Close::Flush);
        }
    }

    fn command(&mut self, ctx: &Context, msg: &Message) {
        let bytes = msg.bytes();
        match bytes.first() {
            Some(b'R') => {
                if self.closed {
                    self.reply_error(ctx, msg.source, msg.session);
                } else {
                    self.requests.push_back((msg.source, msg.session));
                    self.serve(ctx);
                }
            }
            Some(b'K') => self.finish(ctx, Close::Flush),
            Some(b'I') => {
                let text = format!(
                    "req={} resp={} uncomplete={}",
                    self.requests.len(),
                    self.packets.len(),
                    self.asm.status()
                );
                self.reply_text(ctx, msg.source, msg.session, &text);
            }
            _ => {
                self.log(&format!(
                    "Invalid command {}",
                    String::from_utf8_lossy(bytes)
                ));
                if msg.session != 0 {
                    self.reply_error(ctx, msg.source, msg.session);
                }
            }
        }
    }

    fn outgoing(&mut self, msg: &Message) {
        let body = msg.bytes();
        if body.len() > MAX_PACKET {
            self.log(&format!("package too long ({:08x})", body.len()));
            return;
        }
        if self.closed {
            return;
        }
        let mut packet = Vec::with_capacity(body.len() + 2);
        packet.extend_from_slice(&(body.len() as u16).to_be_bytes());
        packet.extend_from_slice(body);
        api::socket_server().send(self.fd, Buffer::Vec(packet));
    }

    fn tick(&mut self, ctx: &Context) {
        if self.closed {
            return;
        }
        if self.recv == self.heartbeat {
            self.log(&format!("timeout {}", self.fd));
            self.finish(ctx, Close::Now);
        } else {
            self.heartbeat = self.recv;
            api::timeout(ctx, HEARTBEAT);
        }
    }

    /// Track the packet in progress after new bytes: when it started, and a timer for
    /// its deadline (one timer at a time; see [`Package::deadline`]).
    fn track_frame(&mut self, ctx: &Context, completed_before: u64) {
        if self.frame_timeout == 0 {
            return;
        }
        if !self.asm.in_progress() {
            self.frame_start = None;
            return;
        }
        if self.frame_start.is_none() || self.asm.completed != completed_before {
            self.frame_start = Some(api::now());
        }
        if self.deadline_session == 0 {
            self.deadline_session = api::timeout(ctx, self.frame_timeout as i64);
        }
    }

    /// The deadline timer fired: close if the packet in progress is overdue, else
    /// re-arm for the packet in progress (a later one than the timer was set for).
    fn deadline(&mut self, ctx: &Context) {
        self.deadline_session = 0;
        let Some(start) = self.frame_start else {
            return;
        };
        if self.closed {
            return;
        }
        let now = api::now();
        let due = start + self.frame_timeout;
        if now >= due {
            self.log(&format!(
                "frame timeout {} (uncomplete={})",
                self.fd,
                self.asm.status()
            ));
            self.finish(ctx, Close::Now);
        } else {
            self.deadline_session = api::timeout(ctx, (due - now) as i64);
        }
    }

    fn socket(&mut self, ctx: &Context, msg: &Message) {
        if msg.size < HEADER_SIZE || msg.data.is_null() {
            return;
        }
        // Only the socket server (source 0) sends these: the header holds a pointer,
        // and a script can send any bytes as PTYPE_SOCKET (never from source 0).
        if msg.source != 0 {
            self.log(&format!("Invalid socket message from {:x}", msg.source));
            return;
        }
        // SAFETY: socket payloads start with a SocketMessage.
        let m = unsafe { std::ptr::read_unaligned(msg.data as *const SocketMessage) };
        match m.kind {
            SOCKET_DATA | SOCKET_UDP => {
                if m.buffer.is_null() {
                    return;
                }
                if m.kind == SOCKET_DATA && m.id == self.fd && !self.closed && !self.eof {
                    self.recv += 1;
                    // SAFETY: a DATA block holds ud bytes.
                    let bytes =
                        unsafe { std::slice::from_raw_parts(m.buffer, m.ud.max(0) as usize) };
                    let completed = self.asm.completed;
                    self.asm.feed(bytes, &mut self.packets);
                    self.track_frame(ctx, completed);
                    self.serve(ctx);
                }
                // SAFETY: the data block is ours.
                unsafe { payload_free(m.buffer) };
            }
            SOCKET_CONNECT if m.id == self.fd && !self.reported => {
                self.reported = true;
                self.tell_owner(ctx, "SUCC");
            }
            SOCKET_CLOSE | SOCKET_ERROR => {
                if !self.reported {
                    self.reported = true;
                    self.tell_owner(ctx, "FAIL");
                }
                if m.id != self.fd {
                    self.log(&format!("Invalid fd ({}), should be ({})", m.id, self.fd));
                    return;
                }
                if m.kind == SOCKET_ERROR {
                    self.finish(ctx, Close::Now);
                } else {
                    // Half-close: keep serving what arrived (see the module docs).
                    self.eof = true;
                    self.frame_start = None;
                    self.serve(ctx);
                }
            }
            SOCKET_WARNING => self.log(&format!("Overload on {}", self.fd)),
            _ => {}
        }
    }

    /// End the connection, once: close the socket, fail pending reads, drop queued
    /// packets, tell the owner `CLOSED` and retire.
    fn finish(&mut self, ctx: &Context, how: Close) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let srv = api::socket_server();
        match how {
            Close::Flush => srv.close(self.fd),
            Close::Now => srv.shutdown(self.fd),
        }
        for (dest, session) in std::mem::take(&mut self.requests) {
            self.reply_error(ctx, dest, session);
        }
        self.packets.clear();
        self.tell_owner(ctx, "CLOSED");
        api::retire(self.handle);
    }
}

/// How [`Package::finish`] closes the socket.
#[derive(Clone, Copy)]
enum Close {
    /// Write what is queued first (`K`, end of a half-closed connection).
    Flush,
    /// Discard queued output (timeouts, socket errors).
    Now,
}

fn parse_param(param: &str) -> Option<(u32, i32)> {
    let mut it = param.split_whitespace();
    let owner = it.next()?.parse::<u32>().ok()?;
    let fd = it.next()?.parse::<i32>().ok()?;
    (owner != 0 && fd != 0).then_some((owner, fd))
}

impl NativeService for Package {
    fn init(&mut self, ctx: &Arc<Context>, param: Option<&str>) -> Result<(), String> {
        self.handle = ctx.handle();
        let param = param.unwrap_or("");
        let Some((owner, fd)) = parse_param(param) else {
            self.log(&format!("Invalid param [{param}]"));
            return Err(String::new());
        };
        self.owner = owner;
        self.fd = fd;
        // Validated at startup; unset means the default.
        if let Ok(Some(cs)) = frame_timeout_cs(api::getenv("frame_timeout").as_deref()) {
            self.frame_timeout = cs;
        }
        let srv = api::socket_server();
        srv.start(self.handle, fd);
        srv.nodelay(fd);
        api::timeout(ctx, HEARTBEAT);
        Ok(())
    }

    fn dispatch(&mut self, ctx: &Arc<Context>, msg: &mut Message) -> bool {
        match msg.ty {
            ptype::TEXT => self.command(ctx, msg),
            ptype::CLIENT => self.outgoing(msg),
            ptype::RESPONSE if msg.session != 0 && msg.session == self.deadline_session => {
                self.deadline(ctx)
            }
            ptype::RESPONSE => self.tick(ctx),
            ptype::SOCKET => self.socket(ctx, msg),
            ptype::ERROR => {}
            _ => {
                if msg.session > 0 {
                    self.reply_error(ctx, msg.source, msg.session);
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(q: &VecDeque<Block>) -> Vec<usize> {
        q.iter().map(|b| b.len).collect()
    }

    #[test]
    fn assembles_split_and_batched_packets() {
        let mut a = Assembler::new();
        let mut out = VecDeque::new();
        assert_eq!(a.status(), "-1/0");
        a.feed(&[0], &mut out);
        assert_eq!(a.status(), "-1/0");
        a.feed(&[3, b'a'], &mut out);
        assert_eq!(a.status(), "2/3");
        a.feed(&[b'b', b'c', 0, 0, 0, 1, b'x', 0], &mut out);
        assert_eq!(sizes(&out), vec![3, 0, 1]);
        assert_eq!(a.status(), "-1/0");
        let mut first = out.pop_front().unwrap();
        assert_eq!(first.as_mut_slice(), b"abc");
        a.feed(&[4], &mut out);
        assert_eq!(a.status(), "4/4");
        a.feed(b"ping", &mut out);
        assert_eq!(a.status(), "-1/4");
        assert_eq!(sizes(&out), vec![0, 1, 4]);
    }

    #[test]
    fn max_size_packet() {
        let mut a = Assembler::new();
        let mut out = VecDeque::new();
        let mut bytes = vec![0xff, 0xff];
        bytes.extend(std::iter::repeat_n(7u8, 0xffff));
        for chunk in bytes.chunks(1000) {
            a.feed(chunk, &mut out);
        }
        assert_eq!(sizes(&out), vec![0xffff]);
    }

    #[test]
    fn param_parsing() {
        assert_eq!(parse_param("13 4"), Some((13, 4)));
        assert_eq!(parse_param("13"), None);
        assert_eq!(parse_param("0 4"), None);
        assert_eq!(parse_param("13 0"), None);
        assert_eq!(parse_param("x y"), None);
    }
}
