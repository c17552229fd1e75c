//! The native `harbor` service in single-node mode (harbor = 0): the sink for messages
//! sent to global names (core.md §12).
//!
//! A send to a global name becomes a `PTYPE_SYSTEM` envelope ([`crate::remote`]) to
//! this service. Once a
//! name is bound (`PTYPE_HARBOR` text `"N <name>"` from the name's owner, relayed by
//! cdummy), envelopes for it are delivered locally with their original source, session
//! and type; until then they wait here, and the slave is told `"Q <name>"`.
//! Multi-node harbors (harbor ≠ 0) are not implemented: cluster is the way to scale.

use crate::api::{self, ptype, Context, Message, NativeService};
use crate::message::payload_free;
use crate::remote::{cookie, Envelope, GLOBALNAME_LENGTH};
use std::collections::HashMap;
use std::sync::Arc;

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

    fn deliver(to: u32, e: Envelope) {
        // SAFETY: the envelope owns `data` (a payload block or null) and hands it over.
        let _ = unsafe {
            api::send(
                None,
                e.source,
                to,
                e.ty | ptype::TAG_DONTCOPY,
                e.session,
                e.data,
                e.size,
            )
        };
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
        api::reserve_harbor(ctx);
        Ok(())
    }

    fn dispatch(&mut self, ctx: &Arc<Context>, msg: &mut Message) -> bool {
        match msg.ty {
            ptype::HARBOR => {
                let text = String::from_utf8_lossy(msg.bytes()).into_owned();
                if let Some(name) = text.strip_prefix("N ") {
                    if name.is_empty() || name.len() >= GLOBALNAME_LENGTH {
                        api::log(ctx.handle(), &format!("Invalid global name {name}"));
                    } else {
                        self.names.insert(name.to_string(), msg.source);
                        for e in self.waiting.remove(name).unwrap_or_default() {
                            Self::deliver(msg.source, e);
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
                    api::log(
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
                    Some(&h) => Self::deliver(h, e),
                    None => {
                        let first = !self.waiting.contains_key(&name);
                        self.waiting.entry(name.clone()).or_default().push(e);
                        if first {
                            let q = format!("Q {name}");
                            // SAFETY: `q` is borrowed for the copy; `ctx` is this service.
                            let _ = unsafe {
                                api::send(
                                    Some(ctx),
                                    ctx.handle(),
                                    self.slave,
                                    ptype::TEXT as i32,
                                    0,
                                    q.as_ptr() as *mut u8,
                                    q.len(),
                                )
                            };
                        }
                    }
                }
                false
            }
            ty => {
                api::log(
                    ctx.handle(),
                    &format!("recv invalid message from {:x},  type = {}", msg.source, ty),
                );
                if msg.session != 0 && ty != ptype::ERROR {
                    // SAFETY: no payload; `ctx` is this service.
                    let _ = unsafe {
                        api::send(
                            Some(ctx),
                            ctx.handle(),
                            msg.source,
                            ptype::ERROR as i32,
                            msg.session,
                            std::ptr::null_mut(),
                            0,
                        )
                    };
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
