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
use crate::runtime::{Runtime, SendError};
use crate::services::NativeService;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const GLOBALNAME_LENGTH: usize = 16;

/// The envelope, written into a payload block (so a drain can free it with libc).
#[repr(C)]
struct Envelope {
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
    mut session: i32,
    data: *mut u8,
    size: usize,
) -> Result<i32, SendError> {
    let dontcopy = ty & ptype::TAG_DONTCOPY != 0;
    let harbor = rt.harbor_service.load(Ordering::Acquire);
    if harbor == 0 || name.len() >= GLOBALNAME_LENGTH {
        if dontcopy && !data.is_null() {
            unsafe { payload_free(data) };
        }
        return Err(SendError::NoDestination);
    }
    if ty & ptype::TAG_ALLOCSESSION != 0 {
        session = from.map(|c| c.new_session()).unwrap_or(0);
    }
    let data = if dontcopy || data.is_null() {
        data
    } else {
        crate::message::payload_from(unsafe { std::slice::from_raw_parts(data, size) })
    };
    let mut env = Envelope {
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
                // SAFETY: SYSTEM messages to the harbor are envelopes built by send_global.
                let e = unsafe { std::ptr::read(msg.data as *const Envelope) };
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
