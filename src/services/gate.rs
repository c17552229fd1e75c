//! The native `gate` service (`socket.md` §6.3): a listener whose clients speak
//! length-prefixed packets (`S` = 2-byte, `L` = 4-byte big-endian header).
//!
//! Launch param: `"<S|L> <watchdog> <listen> <client_tag> <max>"`. Packets of a
//! connection go to its agent (after `forward`), else to the broker (after `broker`),
//! else to the watchdog as text `"<id> data <bytes>"`. Outgoing `PTYPE_CLIENT`
//! messages end with the 4-byte little-endian socket id; the bytes before it are
//! written as they are (the message block is handed to the socket server, no copy).
//!
//! Invariants: one [`Conn`] per accepted socket until its CLOSE/ERROR, when the gate
//! closes the socket itself (watchdogs need not `kick`; a later kick is a no-op); a
//! connection is read only after `start <id>`; every packet block is either sent with
//! DONTCOPY or freed here. The runtime closes a dead gate's sockets.

use std::collections::HashMap;
use std::sync::Arc;

use crate::api::{self, ptype, Context, Message, NativeService};
use crate::message::{payload_free, payload_from};
use crate::socket::{
    Buffer, SocketMessage, HEADER_SIZE, SOCKET_ACCEPT, SOCKET_CLOSE, SOCKET_DATA, SOCKET_ERROR,
    SOCKET_UDP, SOCKET_WARNING,
};

/// Packets of this size or more close the connection.
const MAX_PACKET: usize = 0x1000000;

struct Conn {
    agent: u32,
    client: u32,
    pending: Vec<u8>,
}

/// The gate service state.
pub struct Gate {
    handle: u32,
    header: usize,
    watchdog: u32,
    broker: u32,
    client_tag: u8,
    max: usize,
    listen_id: i32,
    conns: HashMap<i32, Conn>,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    pub fn new() -> Gate {
        Gate {
            handle: 0,
            header: 2,
            watchdog: 0,
            broker: 0,
            client_tag: ptype::CLIENT,
            max: 0,
            listen_id: -1,
            conns: HashMap::new(),
        }
    }

    fn log(&self, text: &str) {
        api::log(self.handle, text);
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        ctx: &Context,
        source: u32,
        dest: u32,
        ty: u8,
        session: i32,
        bytes: &[u8],
        dontcopy: bool,
    ) {
        if dontcopy {
            let p = payload_from(bytes);
            // SAFETY: `p` is a fresh payload block handed over; `ctx` is this service.
            let _ = unsafe {
                api::send(
                    Some(ctx),
                    source,
                    dest,
                    ty as i32 | ptype::TAG_DONTCOPY,
                    session,
                    p,
                    bytes.len(),
                )
            };
        } else {
            // SAFETY: `bytes` is borrowed for the copy; `ctx` is this service.
            let _ = unsafe {
                api::send(
                    Some(ctx),
                    source,
                    dest,
                    ty as i32,
                    session,
                    bytes.as_ptr() as *mut u8,
                    bytes.len(),
                )
            };
        }
    }

    fn notify(&self, ctx: &Context, text: &[u8]) {
        if self.watchdog != 0 {
            self.send(ctx, self.handle, self.watchdog, ptype::TEXT, 0, text, false);
        }
    }

    fn command(&mut self, text: &str) {
        let mut it = text.split_whitespace();
        let cmd = it.next().unwrap_or("");
        let srv = api::socket_server();
        match cmd {
            "kick" => {
                if let Some(id) = it.next().and_then(|s| s.parse::<i32>().ok()) {
                    if self.conns.contains_key(&id) {
                        srv.close(id);
                    }
                }
            }
            "forward" => {
                let id = it.next().and_then(|s| s.parse::<i32>().ok());
                let agent = it.next().and_then(api::query_name);
                let client = it.next().and_then(api::query_name);
                if let (Some(id), Some(agent), Some(client)) = (id, agent, client) {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.agent = agent;
                        c.client = client;
                    }
                }
            }
            "broker" => {
                if let Some(b) = it.next().and_then(api::query_name) {
                    self.broker = b;
                }
            }
            "start" => {
                if let Some(id) = it.next().and_then(|s| s.parse::<i32>().ok()) {
                    if self.conns.contains_key(&id) {
                        srv.start(self.handle, id);
                    }
                }
            }
            "close" => {
                if self.listen_id >= 0 {
                    srv.close(self.listen_id);
                    self.listen_id = -1;
                }
            }
            _ => self.log(&format!("[gate] Unknown command : {text}")),
        }
    }

    fn outgoing(&mut self, msg: &mut Message) -> bool {
        let sz = msg.size;
        if sz <= 4 || msg.data.is_null() {
            self.log(&format!("Invalid client message from {:x}", msg.source));
            return false;
        }
        let b = msg.bytes();
        let id = i32::from_le_bytes([b[sz - 4], b[sz - 3], b[sz - 2], b[sz - 1]]);
        if !self.conns.contains_key(&id) {
            self.log(&format!("Invalid client id {id} from {:x}", msg.source));
            return false;
        }
        let ptr = std::mem::replace(&mut msg.data, std::ptr::null_mut());
        api::socket_server().send(id, Buffer::Raw { ptr, len: sz - 4 });
        true
    }

    /// Cut `bytes` (the next bytes of connection `id`) into packets and deliver them.
    /// Bytes are parsed in place; only an unfinished packet is kept (copied) in the
    /// connection's `pending` buffer, and a packet is copied once, into its message.
    fn data(&mut self, ctx: &Context, id: i32, bytes: &[u8]) {
        let header = self.header;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let (agent, client) = (c.agent, c.client);
        let mut pending = std::mem::take(&mut c.pending);
        let buffered = !pending.is_empty();
        if buffered {
            pending.extend_from_slice(bytes);
        }
        let input: &[u8] = if buffered { &pending } else { bytes };
        let mut off = 0;
        let mut too_big = false;
        while input.len() - off >= header {
            let len = input[off..off + header]
                .iter()
                .fold(0usize, |a, &x| a << 8 | x as usize);
            if len >= MAX_PACKET {
                too_big = true;
                break;
            }
            let start = off + header;
            if input.len() - start < len {
                break;
            }
            self.deliver(ctx, id, agent, client, &input[start..start + len]);
            off = start + len;
        }
        if too_big {
            self.log("Recv socket message > 16M");
            self.conns.remove(&id);
            api::socket_server().close(id);
            return;
        }
        let rest = if off == input.len() {
            Vec::new()
        } else if buffered {
            pending.drain(..off);
            pending
        } else {
            bytes[off..].to_vec()
        };
        if let Some(c) = self.conns.get_mut(&id) {
            c.pending = rest;
        }
    }

    fn deliver(&self, ctx: &Context, id: i32, agent: u32, client: u32, packet: &[u8]) {
        if self.broker != 0 {
            self.send(
                ctx,
                self.handle,
                self.broker,
                self.client_tag,
                id,
                packet,
                true,
            );
        } else if agent != 0 {
            let source = if client != 0 { client } else { self.handle };
            self.send(ctx, source, agent, self.client_tag, id, packet, true);
        } else if self.watchdog != 0 {
            let mut text = format!("{id} data ").into_bytes();
            text.extend_from_slice(packet);
            self.send(
                ctx,
                self.handle,
                self.watchdog,
                ptype::TEXT,
                id,
                &text,
                false,
            );
        }
    }

    fn socket(&mut self, ctx: &Context, msg: &Message) {
        if msg.size < HEADER_SIZE {
            return;
        }
        // Only the socket server (source 0) sends these: a script can send any bytes
        // as PTYPE_SOCKET, but never from source 0, and the header holds a pointer.
        if msg.source != 0 {
            self.log(&format!("Invalid socket message from {:x}", msg.source));
            return;
        }
        // SAFETY: socket payloads start with a SocketMessage.
        let m = unsafe { std::ptr::read_unaligned(msg.data as *const SocketMessage) };
        // The inline text (address, error), decoded only by the events that use it.
        let text = || String::from_utf8_lossy(&msg.bytes()[HEADER_SIZE..]);
        match m.kind {
            SOCKET_DATA if !m.buffer.is_null() => {
                // SAFETY: DATA blocks hold ud bytes.
                let bytes = unsafe { std::slice::from_raw_parts(m.buffer, m.ud.max(0) as usize) };
                self.data(ctx, m.id, bytes);
                // SAFETY: the data block is ours.
                unsafe { payload_free(m.buffer) };
            }
            SOCKET_UDP => {
                // SAFETY: the data block is ours.
                unsafe { payload_free(m.buffer) };
            }
            SOCKET_ACCEPT => {
                if m.id != self.listen_id {
                    return;
                }
                let nid = m.ud;
                if self.conns.len() >= self.max {
                    api::socket_server().close(nid);
                    return;
                }
                self.conns.insert(
                    nid,
                    Conn {
                        agent: 0,
                        client: 0,
                        pending: Vec::new(),
                    },
                );
                // Request/response traffic: Nagle would only add latency.
                api::socket_server().nodelay(nid);
                self.log(&format!("socket open: {nid:x}"));
                self.notify(ctx, format!("{nid} open {nid} {}:0", text()).as_bytes());
            }
            SOCKET_CLOSE | SOCKET_ERROR => {
                if m.id == self.listen_id {
                    if m.kind == SOCKET_ERROR {
                        self.log(&format!("gate: accept error: {}", text()));
                    } else {
                        self.listen_id = -1;
                    }
                    return;
                }
                if self.conns.remove(&m.id).is_some() {
                    // The gate owns the socket: the peer's EOF ends the connection
                    // here (output already queued is still written), an error at once.
                    let srv = api::socket_server();
                    if m.kind == SOCKET_ERROR {
                        srv.shutdown(m.id);
                    } else {
                        srv.close(m.id);
                    }
                    self.notify(ctx, format!("{} close", m.id).as_bytes());
                }
            }
            SOCKET_WARNING => {
                self.log(&format!("fd ({}) send buffer ({})K", m.id, m.ud));
            }
            _ => {}
        }
    }
}

impl NativeService for Gate {
    fn init(&mut self, ctx: &Arc<Context>, param: Option<&str>) -> Result<(), String> {
        self.handle = ctx.handle();
        let param = param.unwrap_or("");
        let parts: Vec<&str> = param.split_whitespace().collect();
        if parts.len() < 5 {
            self.log(&format!("Invalid gate parm {param}"));
            return Err("invalid param".into());
        }
        let max: i64 = parts[4].parse().unwrap_or(0);
        if max <= 0 {
            self.log("Need max connection");
            return Err("need max".into());
        }
        self.max = max as usize;
        self.header = match parts[0] {
            "S" => 2,
            "L" => 4,
            _ => {
                self.log("Invalid data header style");
                return Err("header".into());
            }
        };
        self.watchdog = if parts[1] == "!" {
            0
        } else {
            match api::query_name(parts[1]) {
                Some(h) => h,
                None => {
                    self.log(&format!("Invalid watchdog {}", parts[1]));
                    return Err("watchdog".into());
                }
            }
        };
        let tag: i64 = parts[3].parse().unwrap_or(0);
        self.client_tag = if tag == 0 { ptype::CLIENT } else { tag as u8 };
        let listen = parts[2];
        let (host, port) = match listen.rfind(':') {
            Some(i) => (&listen[..i], &listen[i + 1..]),
            None => ("0.0.0.0", listen),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(port) = port.parse::<u16>() else {
            self.log(&format!("Invalid gate address {listen}"));
            return Err("address".into());
        };
        let srv = api::socket_server();
        match srv.listen(self.handle, host, port, 128) {
            Ok(id) => {
                self.listen_id = id;
                srv.start(self.handle, id);
                Ok(())
            }
            Err(e) => {
                self.log(&format!("gate: listen {listen} failed: {e}"));
                Err("listen".into())
            }
        }
    }

    fn dispatch(&mut self, ctx: &Arc<Context>, msg: &mut Message) -> bool {
        match msg.ty {
            ptype::TEXT => {
                let text = String::from_utf8_lossy(msg.bytes()).into_owned();
                self.command(&text);
                false
            }
            ptype::CLIENT => self.outgoing(msg),
            ptype::SOCKET => {
                self.socket(ctx, msg);
                false
            }
            _ => false,
        }
    }
}
