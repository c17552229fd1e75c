//! The native `harbor` service in single-node mode (harbor = 0): the sink for messages
//! sent to global names (core.md §12).
//!
//! A send to a global name becomes a `PTYPE_SYSTEM` envelope to this service. Once a
//! name is bound (`PTYPE_HARBOR` text `"N <name>"` from the name's owner, relayed by
//! cdummy), envelopes for it are delivered locally with their original source, session
//! and type; until then they wait here, and the slave is told `"Q <name>"`.
//! Multi-node harbors (harbor ≠ 0) are not implemented: cluster is the way to scale.

use crate::context::Context;
use crate::message::{payload_alloc, payload_free, ptype, Message};
use crate::runtime::{free_if_owned, own_payload, Runtime, SendError};
use crate::services::NativeService;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const GLOBALNAME_LENGTH: usize = 16;

/// The envelope, written into a payload block (so a drain can free it with libc).
/// `cookie` marks envelopes built here: a script can send the harbor any 64 bytes as
/// `PTYPE_SYSTEM`, and an envelope carries a payload pointer that gets freed.
#[repr(C)]
struct Envelope {
    cookie: u64,
    name: [u8; GLOBALNAME_LENGTH],
    name_len: usize,
    source: u32,
    session: i32,
    ty: i32,
    data: *mut u8,
    size: usize,
}

/// Route a send to a global name through the harbor service (pointer contract as
/// [`Runtime::send`]).
#[allow(clippy::too_many_arguments, clippy::not_unsafe_ptr_arg_deref)]
pub fn send_global(
    rt: &Runtime,
    from: Option<&Context>,
    source: u32,
    name: &str,
    ty: i32,
    session: i32,
    data: *mut u8,
    size: usize,
) -> Result<i32, SendError> {
    let harbor = rt.harbor_service.load(Ordering::Acquire);
    if harbor == 0 || name.len() >= GLOBALNAME_LENGTH {
        free_if_owned(ty, data);
        return Err(SendError::NoDestination);
    }
    let (session, data) = own_payload(from, ty, session, data, size);
    let mut env = Envelope {
        cookie: cookie(),
        name: [0; GLOBALNAME_LENGTH],
        name_len: name.len(),
        source,
        session,
        ty: ty & 0xff,
        data,
        size,
    };
    env.name[..name.len()].copy_from_slice(name.as_bytes());
    let block = payload_alloc(std::mem::size_of::<Envelope>());
    // SAFETY: block is large enough; alignment of malloc suffices for Envelope.
    unsafe { std::ptr::write(block as *mut Envelope, env) };
    let msg = Message::new(
        source,
        0,
        ptype::SYSTEM,
        block,
        std::mem::size_of::<Envelope>(),
    );
    match rt.push(harbor, msg) {
        Ok(()) => Ok(session),
        Err(mut m) => {
            unsafe {
                let e = std::ptr::read(m.data as *const Envelope);
                if !e.data.is_null() {
                    payload_free(e.data);
                }
            }
            m.free();
            Err(SendError::NoDestination)
        }
    }
}

/// A per-process secret (never visible to scripts) stamped on every envelope.
fn cookie() -> u64 {
    static COOKIE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *COOKIE.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(crate::timer::hpc());
        h.finish() | 1
    })
}

pub struct Harbor {
    slave: u32,
    names: HashMap<String, u32>,
    waiting: HashMap<String, Vec<Envelope>>,
}

// SAFETY: envelopes own their payload blocks exclusively.
unsafe impl Send for Harbor {}

impl Default for Harbor {
    fn default() -> Self {
        Self::new()
    }
}

impl Harbor {
    pub fn new() -> Harbor {
        Harbor {
            slave: 0,
            names: HashMap::new(),
            waiting: HashMap::new(),
        }
    }

    fn deliver(rt: &Runtime, to: u32, e: Envelope) {
        let _ = rt.send(
            None,
            e.source,
            to,
            e.ty | ptype::TAG_DONTCOPY,
            e.session,
            e.data,
            e.size,
        );
    }
}

impl NativeService for Harbor {
    fn init(&mut self, ctx: &Arc<Context>, param: Option<&str>) -> Result<(), String> {
        let mut it = param.unwrap_or("").split_whitespace();
        let _id: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        self.slave = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if self.slave == 0 {
            return Err(String::new());
        }
        crate::runtime::get().reserve_harbor(ctx.handle());
        Ok(())
    }

    fn dispatch(&mut self, ctx: &Arc<Context>, msg: &mut Message) -> bool {
        let rt = crate::runtime::get();
        match msg.ty {
            ptype::HARBOR => {
                let text = String::from_utf8_lossy(msg.bytes()).into_owned();
                if let Some(name) = text.strip_prefix("N ") {
                    if name.is_empty() || name.len() >= GLOBALNAME_LENGTH {
                        rt.log(ctx.handle(), &format!("Invalid global name {name}"));
                    } else {
                        self.names.insert(name.to_string(), msg.source);
                        for e in self.waiting.remove(name).unwrap_or_default() {
                            Self::deliver(rt, msg.source, e);
                        }
                    }
                }
                false
            }
            ptype::SYSTEM if msg.size == std::mem::size_of::<Envelope>() => {
                // SAFETY: the payload holds size_of::<Envelope>() bytes (checked above);
                // only envelopes built by send_global carry the cookie.
                let e = unsafe { std::ptr::read_unaligned(msg.data as *const Envelope) };
                if e.cookie != cookie() {
                    rt.log(
                        ctx.handle(),
                        &format!(
                            "recv invalid message from {:x}, forged envelope",
                            msg.source
                        ),
                    );
                    return false;
                }
                let name = String::from_utf8_lossy(&e.name[..e.name_len.min(GLOBALNAME_LENGTH)])
                    .into_owned();
                match self.names.get(&name) {
                    Some(&h) => Self::deliver(rt, h, e),
                    None => {
                        let first = !self.waiting.contains_key(&name);
                        self.waiting.entry(name.clone()).or_default().push(e);
                        if first {
                            let q = format!("Q {name}");
                            let _ = rt.send(
                                Some(ctx),
                                ctx.handle(),
                                self.slave,
                                ptype::TEXT as i32,
                                0,
                                q.as_ptr() as *mut u8,
                                q.len(),
                            );
                        }
                    }
                }
                false
            }
            ty => {
                rt.log(
                    ctx.handle(),
                    &format!("recv invalid message from {:x},  type = {}", msg.source, ty),
                );
                if msg.session != 0 && ty != ptype::ERROR {
                    let _ = rt.send(
                        Some(ctx),
                        ctx.handle(),
                        msg.source,
                        ptype::ERROR as i32,
                        msg.session,
                        std::ptr::null_mut(),
                        0,
                    );
                }
                false
            }
        }
    }
}

impl Drop for Harbor {
    fn drop(&mut self) {
        // Envelopes still waiting for a name own their payloads.
        for e in self.waiting.drain().flat_map(|(_, v)| v) {
            // SAFETY: an envelope's data is an owned payload block (or null).
            unsafe { payload_free(e.data) };
        }
    }
}
