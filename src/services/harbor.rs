//! The native `harbor` service: global names and messages between nodes (core.md §12,
//! harbor.md).
//!
//! Every send to a global name, and every send to a handle whose high 8 bits name
//! another harbor, reaches this service as a `PTYPE_SYSTEM` envelope
//! ([`crate::remote`]). Names are bound by `PTYPE_HARBOR` text `"N <name>"` whose
//! source is the named handle (relayed by `.cslave`); until a name is bound its
//! messages wait here and the slave is told `"Q <name>"` once. A bound name turns into
//! its handle: local ones are delivered here, remote ones go down the link to their
//! node.
//!
//! Links (harbor ≠ 0): `.cslave` opens or accepts the TCP connection to another
//! node's harbor and hands it over with `"S <socket> <id>"` (we connected: send our id
//! byte, expect theirs) or `"A <socket> <id>"` (we accepted and already read theirs:
//! send ours). The id byte goes out only once the socket server confirms the transfer
//! (its CONNECT "transfer" event), so the peer's answer cannot reach the slave. Until a
//! link is up, messages for its node queue on it. On the wire
//! each message is upstream's frame: a 4-byte big-endian length (first byte 0, so
//! under 16 MiB), the payload, then 12 bytes of big-endian header: source,
//! `type << 24 | destination & 0xffffff`, session.
//!
//! Invariants: every payload block taken in (envelopes, queued messages, frames being
//! read) is delivered with DONTCOPY, written and freed, or freed in `Drop`. A link that
//! closes, fails or sends a malformed frame goes down for good (as upstream, a harbor
//! id does not rejoin): its queue is dropped, each request still unanswered by that
//! node (tracked in `calls` by caller and session) gets a `PTYPE_ERROR`, later sends
//! to it get one at once, and the slave is told `"D <id>"`. A node that never
//! connected keeps its messages queued (upstream's behaviour).

use crate::api::{self, ptype, Context, Message, NativeService};
use crate::handle::{HANDLE_MASK, HANDLE_REMOTE_SHIFT};
use crate::message::{payload_alloc, payload_free};
use crate::remote::{cookie, Envelope, GLOBALNAME_LENGTH};
use crate::socket::{
    Buffer, SocketMessage, HEADER_SIZE, SOCKET_CLOSE, SOCKET_CONNECT, SOCKET_DATA, SOCKET_ERROR,
    SOCKET_UDP, SOCKET_WARNING,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Harbor ids are 8 bits; 0 is the single-node id.
const REMOTE_MAX: usize = 256;
/// The header after each frame's payload (upstream's `HEADER_COOKIE_LENGTH`).
const FRAME_HEADER: usize = 12;
/// A frame's length field must have its first byte 0.
const FRAME_MAX: usize = 0x100_0000;

/// A message waiting for its name or its link; owns `data`.
struct Pending {
    source: u32,
    /// The destination handle; 0 while it waits for a name.
    dest: u32,
    ty: u8,
    session: i32,
    data: *mut u8,
    size: usize,
}

impl Pending {
    fn free(self) {
        if !self.data.is_null() {
            // SAFETY: the pending message owns its payload block.
            unsafe { payload_free(self.data) };
        }
    }

    /// A request: someone waits for an answer to it (the rule of the runtime's
    /// owed-request tracking).
    fn is_request(&self) -> bool {
        is_request(self.source, self.session, self.ty)
    }
}

fn is_request(source: u32, session: i32, ty: u8) -> bool {
    session > 0
        && source != 0
        && ty != ptype::RESPONSE
        && ty != ptype::ERROR
        && ty != ptype::MULTICAST
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    /// Never connected: messages queue.
    Wait,
    /// The slave handed us the socket (`true`: we connected); the socket server has
    /// not confirmed the transfer yet. Nothing is written before it does: bytes the
    /// peer sends in answer must reach this service, not the slave.
    Attaching(bool),
    /// We connected and sent our id; the peer's id byte has not come yet.
    Handshake,
    /// Frames flow both ways.
    Up,
    /// Closed for good.
    Down,
}

/// One other node.
struct Link {
    /// Socket id; 0 when none.
    socket: i32,
    status: Status,
    queue: Vec<Pending>,
    /// The length field being read, and how much of it has come.
    head: [u8; 4],
    head_have: usize,
    /// The frame being read (a payload block of `body_len` bytes), or null.
    body: *mut u8,
    body_len: usize,
    body_have: usize,
}

impl Link {
    fn new() -> Link {
        Link {
            socket: 0,
            status: Status::Wait,
            queue: Vec::new(),
            head: [0; 4],
            head_have: 0,
            body: std::ptr::null_mut(),
            body_len: 0,
            body_have: 0,
        }
    }

    fn drop_body(&mut self) {
        if !self.body.is_null() {
            // SAFETY: `body` is this link's own payload block.
            unsafe { payload_free(self.body) };
            self.body = std::ptr::null_mut();
        }
        self.body_len = 0;
        self.body_have = 0;
        self.head_have = 0;
    }
}

/// A global name: its handle once known (0 before), and what waits for it.
#[derive(Default)]
struct Name {
    handle: u32,
    queue: Vec<Pending>,
}

pub struct Harbor {
    handle: u32,
    /// This node's harbor id.
    id: u32,
    slave: u32,
    names: HashMap<String, Name>,
    links: Vec<Link>,
    /// Socket id -> harbor id of the link using it.
    sockets: HashMap<i32, usize>,
    /// Requests sent to another node and not answered yet: (caller << 32 | session)
    /// -> the remote destination. Answers clear them; a link going down errors them.
    calls: HashMap<u64, u32>,
}

// SAFETY: pending messages and frame buffers own their payload blocks exclusively.
unsafe impl Send for Harbor {}

impl Default for Harbor {
    fn default() -> Self {
        Self::new()
    }
}

fn call_key(caller: u32, session: i32) -> u64 {
    (caller as u64) << 32 | session as u32 as u64
}

fn harbor_of(handle: u32) -> usize {
    (handle >> HANDLE_REMOTE_SHIFT) as usize
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Harbor {
    pub fn new() -> Harbor {
        Harbor {
            handle: 0,
            id: 0,
            slave: 0,
            names: HashMap::new(),
            links: (0..REMOTE_MAX).map(|_| Link::new()).collect(),
            sockets: HashMap::new(),
            calls: HashMap::new(),
        }
    }

    fn log(&self, text: &str) {
        api::log(self.handle, text);
    }

    /// Send without a calling context (the source is someone else's handle).
    fn raw_send(source: u32, dest: u32, ty: i32, session: i32, data: *mut u8, size: usize) -> bool {
        // SAFETY: callers pass an owned payload block with DONTCOPY, or null.
        unsafe { api::send(None, source, dest, ty, session, data, size) }.is_ok()
    }

    /// Tell `to` that its request `session` to `from` failed.
    fn error(from: u32, to: u32, session: i32) {
        Self::raw_send(
            from,
            to,
            ptype::ERROR as i32,
            session,
            std::ptr::null_mut(),
            0,
        );
    }

    fn text_to_slave(&self, text: &str) {
        // SAFETY: `text` is borrowed for the copy (no DONTCOPY).
        let _ = unsafe {
            api::send(
                None,
                self.handle,
                self.slave,
                ptype::TEXT as i32,
                0,
                text.as_ptr() as *mut u8,
                text.len(),
            )
        };
    }

    /// Route a message whose destination handle is known.
    fn send_handle(&mut self, p: Pending) {
        let harbor = harbor_of(p.dest);
        if harbor == self.id as usize {
            let (source, dest, session, request) = (p.source, p.dest, p.session, p.is_request());
            let ty = p.ty as i32 | ptype::TAG_DONTCOPY;
            if !Self::raw_send(source, dest, ty, session, p.data, p.size) && request {
                Self::error(dest, source, session);
            }
            return;
        }
        let link = &mut self.links[harbor];
        match link.status {
            Status::Up => {
                if p.is_request() {
                    self.calls.insert(call_key(p.source, p.session), p.dest);
                }
                let socket = link.socket;
                self.write_frame(socket, p);
            }
            Status::Wait | Status::Attaching(_) | Status::Handshake => {
                if p.is_request() {
                    self.calls.insert(call_key(p.source, p.session), p.dest);
                }
                link.queue.push(p);
            }
            Status::Down => {
                self.log(&format!(
                    "Drop message to harbor {harbor} from {:x} to {:x} (session = {}, msgsz = {})",
                    p.source, p.dest, p.session, p.size
                ));
                if p.is_request() {
                    Self::error(p.dest, p.source, p.session);
                }
                p.free();
            }
        }
    }

    /// Write one message as a frame (the payload is copied once, into the frame).
    fn write_frame(&mut self, socket: i32, p: Pending) {
        let total = p.size + FRAME_HEADER;
        if total >= FRAME_MAX {
            self.log(&format!(
                "remote message from :{:08x} to :{:08x} is too large.",
                p.source, p.dest
            ));
            if p.is_request() {
                self.calls.remove(&call_key(p.source, p.session));
                Self::error(p.dest, p.source, p.session);
            }
            p.free();
            return;
        }
        let mut frame = Vec::with_capacity(4 + total);
        frame.extend_from_slice(&(total as u32).to_be_bytes());
        if !p.data.is_null() {
            // SAFETY: the payload block holds `size` bytes.
            frame.extend_from_slice(unsafe { std::slice::from_raw_parts(p.data, p.size) });
        }
        frame.extend_from_slice(&p.source.to_be_bytes());
        frame.extend_from_slice(
            &((p.ty as u32) << HANDLE_REMOTE_SHIFT | p.dest & HANDLE_MASK).to_be_bytes(),
        );
        frame.extend_from_slice(&(p.session as u32).to_be_bytes());
        p.free();
        // A failed write shows up as the link's CLOSE/ERROR event.
        api::socket_server().send(socket, Buffer::Vec(frame));
    }

    /// An envelope from the runtime: a send to a global name or a remote handle.
    fn envelope(&mut self, e: Envelope) {
        let mut p = Pending {
            source: e.source,
            dest: e.handle,
            ty: e.ty as u8,
            session: e.session,
            data: e.data,
            size: e.size,
        };
        if e.handle != 0 {
            self.send_handle(p);
            return;
        }
        let name = String::from_utf8_lossy(&e.name[..e.name_len.min(GLOBALNAME_LENGTH)]);
        let entry = match self.names.get_mut(name.as_ref()) {
            Some(entry) => entry,
            None => self.names.entry(name.to_string()).or_default(),
        };
        if entry.handle != 0 {
            p.dest = entry.handle;
            self.send_handle(p);
            return;
        }
        entry.queue.push(p);
        if entry.queue.len() == 1 {
            self.text_to_slave(&format!("Q {name}"));
        }
    }

    /// `N <name>` from `handle`: bind the name and send what waited for it.
    fn bind_name(&mut self, name: &str, handle: u32) {
        if name.is_empty() || name.len() >= GLOBALNAME_LENGTH {
            self.log(&format!("Invalid global name {name}"));
            return;
        }
        let entry = self.names.entry(name.to_string()).or_default();
        entry.handle = handle;
        let queue = std::mem::take(&mut entry.queue);
        let harbor = harbor_of(handle);
        if !queue.is_empty()
            && harbor != self.id as usize
            && self.links[harbor].status == Status::Down
        {
            self.log(&format!("Drop message to {name} (in harbor {harbor})"));
        }
        for mut p in queue {
            p.dest = handle;
            self.send_handle(p);
        }
    }

    /// `F <name>` from the slave: nobody can resolve the name any more (the master is
    /// gone). What waits for it is dropped, requests get `ERROR`; a later send to the
    /// name asks again (`Q`) and is answered the same way.
    fn unresolvable(&mut self, name: &str) {
        let Some(entry) = self.names.get_mut(name) else {
            return;
        };
        if entry.handle != 0 || entry.queue.is_empty() {
            return;
        }
        let queue = std::mem::take(&mut entry.queue);
        self.log(&format!(
            "Drop {} message(s) to {name}: no master to resolve the name",
            queue.len()
        ));
        for p in queue {
            if p.is_request() {
                Self::error(self.handle, p.source, p.session);
            }
            p.free();
        }
    }

    /// `S`/`A <socket> <id>` from the slave: take over the connection to harbor `id`.
    fn attach(&mut self, ctx: &Context, connected: bool, args: &str) {
        let mut it = args.split_whitespace().map(|s| s.parse::<i64>().ok());
        let (socket, id) = match (it.next().flatten(), it.next().flatten()) {
            (Some(s), Some(i))
                if s > 0 && s <= i32::MAX as i64 && i > 0 && i < REMOTE_MAX as i64 =>
            {
                (s as i32, i as usize)
            }
            _ => {
                let c = if connected { 'S' } else { 'A' };
                self.log(&format!("Invalid command {c} {args}"));
                return;
            }
        };
        if id == self.id as usize {
            self.log(&format!("Invalid command: harbor {id} is this node"));
            api::socket_server().close(socket);
            return;
        }
        let link = &mut self.links[id];
        if link.socket != 0 || link.status == Status::Down {
            self.log(&format!("Harbor {id} alreay exist"));
            api::socket_server().close(socket);
            return;
        }
        link.socket = socket;
        self.sockets.insert(socket, id);
        self.links[id].status = Status::Attaching(connected);
        api::socket_server().start(ctx.handle(), socket);
    }

    /// The socket server confirms the socket of link `id` is ours: send our id byte.
    fn attached(&mut self, id: usize) {
        let Status::Attaching(connected) = self.links[id].status else {
            return;
        };
        let socket = self.links[id].socket;
        api::socket_server().send(socket, Buffer::Vec(vec![self.id as u8]));
        if connected {
            self.links[id].status = Status::Handshake;
        } else {
            self.link_up(id);
        }
    }

    /// The link to `id` is up: send what queued for it.
    fn link_up(&mut self, id: usize) {
        let link = &mut self.links[id];
        link.status = Status::Up;
        let socket = link.socket;
        for p in std::mem::take(&mut link.queue) {
            self.write_frame(socket, p);
        }
    }

    /// The link to `id` is gone for good (see the module invariants).
    fn link_down(&mut self, id: usize) {
        let link = &mut self.links[id];
        if link.status == Status::Down {
            return;
        }
        link.status = Status::Down;
        link.drop_body();
        if link.socket != 0 {
            self.sockets.remove(&link.socket);
            api::socket_server().close(link.socket);
            link.socket = 0;
        }
        for p in std::mem::take(&mut link.queue) {
            p.free(); // its requests are in `calls`, errored below
        }
        let mut failed = Vec::new();
        self.calls.retain(|&key, &mut dest| {
            if harbor_of(dest) == id {
                failed.push((key, dest));
                false
            } else {
                true
            }
        });
        for (key, dest) in failed {
            Self::error(dest, (key >> 32) as u32, key as u32 as i32);
        }
        self.text_to_slave(&format!("D {id}"));
    }

    /// Bytes from the link `id`.
    fn data(&mut self, id: usize, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let link = &mut self.links[id];
            match link.status {
                Status::Handshake => {
                    if bytes[0] as usize != id {
                        let fd = link.socket;
                        self.log(&format!(
                            "Invalid shakehand id ({id}) from fd = {fd} , harbor = {}",
                            bytes[0]
                        ));
                        self.link_down(id);
                        return;
                    }
                    bytes = &bytes[1..];
                    self.link_up(id);
                }
                Status::Up if link.body.is_null() => {
                    let n = (4 - link.head_have).min(bytes.len());
                    link.head[link.head_have..link.head_have + n].copy_from_slice(&bytes[..n]);
                    link.head_have += n;
                    bytes = &bytes[n..];
                    if link.head_have < 4 {
                        return;
                    }
                    let len = be32(&link.head) as usize;
                    if len >= FRAME_MAX {
                        self.log(&format!("Message is too long from harbor {id}"));
                        self.link_down(id);
                        return;
                    }
                    if len < FRAME_HEADER {
                        self.log(&format!("Invalid message length {len} from harbor {id}"));
                        self.link_down(id);
                        return;
                    }
                    link.head_have = 0;
                    link.body = payload_alloc(len);
                    link.body_len = len;
                    link.body_have = 0;
                }
                Status::Up => {
                    let n = (link.body_len - link.body_have).min(bytes.len());
                    // SAFETY: `body` holds `body_len` bytes; `body_have + n` fits.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            bytes.as_ptr(),
                            link.body.add(link.body_have),
                            n,
                        )
                    };
                    link.body_have += n;
                    bytes = &bytes[n..];
                    if link.body_have == link.body_len {
                        let (body, len) = (link.body, link.body_len);
                        link.body = std::ptr::null_mut();
                        link.body_len = 0;
                        link.body_have = 0;
                        self.forward_local(id, body, len);
                    }
                }
                Status::Wait | Status::Attaching(_) | Status::Down => return,
            }
        }
    }

    /// A complete frame from harbor `from`: deliver it to its local destination.
    fn forward_local(&mut self, from: usize, body: *mut u8, len: usize) {
        // SAFETY: `body` is a payload block of `len` (≥ FRAME_HEADER) bytes.
        let header =
            unsafe { std::slice::from_raw_parts(body.add(len - FRAME_HEADER), FRAME_HEADER) };
        let source = be32(&header[0..4]);
        let raw = be32(&header[4..8]);
        let session = be32(&header[8..12]) as i32;
        let ty = (raw >> HANDLE_REMOTE_SHIFT) as u8;
        let dest = raw & HANDLE_MASK | self.id << HANDLE_REMOTE_SHIFT;
        let size = len - FRAME_HEADER;
        if matches!(ty, ptype::SYSTEM | ptype::HARBOR | ptype::SOCKET) {
            // Internal types whose payloads carry pointers or commands: never from a
            // network peer.
            self.log(&format!(
                "Invalid message type {ty} from harbor {from} (:{source:x} to :{dest:x})"
            ));
            // SAFETY: the frame block is ours.
            unsafe { payload_free(body) };
            if is_request(source, session, ty) {
                Self::error(dest, source, session);
            }
            return;
        }
        if (ty == ptype::RESPONSE || ty == ptype::ERROR) && session > 0 {
            self.calls.remove(&call_key(dest, session));
        }
        let data = if size == 0 {
            // SAFETY: the frame block is ours; an empty message carries no payload.
            unsafe { payload_free(body) };
            std::ptr::null_mut()
        } else {
            body
        };
        if !Self::raw_send(
            source,
            dest,
            ty as i32 | ptype::TAG_DONTCOPY,
            session,
            data,
            size,
        ) {
            if is_request(source, session, ty) {
                Self::error(dest, source, session);
            }
            self.log(&format!(
                "Unknown destination :{dest:x} from :{source:x} type({ty})"
            ));
        }
    }

    fn command(&mut self, ctx: &Context, source: u32, text: &str) {
        let (cmd, args) = text.split_at(text.len().min(1));
        let args = args.strip_prefix(' ').unwrap_or(args);
        match cmd {
            "N" => self.bind_name(args, source),
            "S" | "A" | "D" | "F" if source != self.slave => {
                self.log(&format!("Invalid command {text} from :{source:08x}"));
            }
            "F" => self.unresolvable(args),
            "S" => self.attach(ctx, true, args),
            "A" => self.attach(ctx, false, args),
            "D" => match args.trim().parse::<usize>() {
                Ok(id) if id > 0 && id < REMOTE_MAX && id != self.id as usize => self.link_down(id),
                _ => self.log(&format!("Invalid command {text}")),
            },
            _ => self.log(&format!("Unknown command {text}")),
        }
    }

    fn socket(&mut self, msg: &Message) {
        // Only the socket server (source 0) sends these, and the header holds a pointer.
        if msg.size < HEADER_SIZE || msg.source != 0 {
            self.log(&format!("Invalid socket message from {:x}", msg.source));
            return;
        }
        // SAFETY: socket payloads start with a SocketMessage.
        let m = unsafe { std::ptr::read_unaligned(msg.data as *const SocketMessage) };
        let link = self.sockets.get(&m.id).copied();
        match m.kind {
            SOCKET_DATA | SOCKET_UDP if !m.buffer.is_null() => {
                match link {
                    Some(id) if m.kind == SOCKET_DATA => {
                        // SAFETY: DATA blocks hold ud bytes.
                        let bytes =
                            unsafe { std::slice::from_raw_parts(m.buffer, m.ud.max(0) as usize) };
                        self.data(id, bytes);
                    }
                    _ => self.log(&format!("Invalid socket fd ({}) data", m.id)),
                }
                // SAFETY: the data block is ours.
                unsafe { payload_free(m.buffer) };
            }
            SOCKET_CLOSE | SOCKET_ERROR => match link {
                Some(id) => {
                    self.log(&format!("Harbor {id} (fd={}) disconnected", m.id));
                    self.link_down(id);
                }
                None => self.log(&format!("Unknown fd ({}) closed", m.id)),
            },
            SOCKET_CONNECT => {
                if let Some(id) = link {
                    self.attached(id);
                }
            }
            SOCKET_WARNING => {
                if let Some(id) = link {
                    self.log(&format!(
                        "message havn't send to Harbor ({id}) reach {} K",
                        m.ud
                    ));
                }
            }
            _ => {}
        }
    }
}

impl NativeService for Harbor {
    fn init(&mut self, ctx: &Arc<Context>, param: Option<&str>) -> Result<(), String> {
        let mut it = param.unwrap_or("").split_whitespace();
        let id: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        self.slave = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if self.slave == 0 || id as usize >= REMOTE_MAX {
            return Err(String::new());
        }
        self.id = id;
        self.handle = ctx.handle();
        api::reserve_harbor(ctx);
        Ok(())
    }

    fn dispatch(&mut self, ctx: &Arc<Context>, msg: &mut Message) -> bool {
        match msg.ty {
            ptype::HARBOR => {
                let text = String::from_utf8_lossy(msg.bytes()).into_owned();
                self.command(ctx, msg.source, &text);
            }
            ptype::SOCKET => self.socket(msg),
            ptype::SYSTEM if msg.size == std::mem::size_of::<Envelope>() => {
                // SAFETY: the payload holds size_of::<Envelope>() bytes (checked above);
                // only envelopes built by the runtime carry the cookie.
                let e = unsafe { std::ptr::read_unaligned(msg.data as *const Envelope) };
                if e.cookie != cookie() {
                    self.log(&format!(
                        "recv invalid message from {:x}, forged envelope",
                        msg.source
                    ));
                    return false;
                }
                self.envelope(e);
            }
            ty => {
                self.log(&format!(
                    "recv invalid message from {:x},  type = {}",
                    msg.source, ty
                ));
                if msg.session != 0 && ty != ptype::ERROR {
                    Self::error(ctx.handle(), msg.source, msg.session);
                }
            }
        }
        false
    }
}

impl Drop for Harbor {
    fn drop(&mut self) {
        // Messages still waiting own their payloads; no sends from here (the runtime
        // may be going down).
        for (_, name) in self.names.drain() {
            name.queue.into_iter().for_each(Pending::free);
        }
        for link in &mut self.links {
            link.drop_body();
            std::mem::take(&mut link.queue)
                .into_iter()
                .for_each(Pending::free);
        }
    }
}
