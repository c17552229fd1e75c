//! RPC layer (spec §6): package headers, sessions, request/response dispatch.
//!
//! A packet is `pack(encode(package, header) ++ body)`. A [`Host`] owns the schema of
//! the messages it *receives* (and whose package type frames every packet), plus the
//! table of sessions it is waiting on. Sending uses the *peer's* schema (`attach` in the
//! Lua API): [`Host::request`] takes it explicitly and remembers, per session, which
//! peer response type to decode the reply with.
//!
//! The body of a received packet is everything after the header in the *unpacked*
//! bytes, zero padding included (so a request whose body is missing usually decodes
//! as an empty struct, exactly like upstream).

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::schema::{ProtoKey, Sproto};
use crate::value::Value;

/// What a pending session expects back.
#[derive(Clone)]
enum Pending {
    /// The protocol has no response at all.
    Nothing,
    /// `response nil`: a reply exists but carries no data.
    Confirm,
    /// Decode the reply with this type of this schema.
    Typed(Arc<Sproto>, usize),
}

/// An RPC endpoint.
pub struct Host {
    proto: Arc<Sproto>,
    package: usize,
    sessions: HashMap<i64, Pending>,
}

/// A received packet.
#[derive(Debug)]
pub enum Incoming {
    Request(Request),
    Response(Response),
}

/// A received request.
#[derive(Debug)]
pub struct Request {
    /// Protocol name (in the host's schema).
    pub name: String,
    /// Protocol tag.
    pub tag: u32,
    /// Decoded request (None when the protocol has no request type).
    pub args: Option<Value>,
    /// Present when the header carried a session.
    pub responder: Option<Responder>,
    /// Header `ud`.
    pub ud: Option<Vec<u8>>,
}

/// A received response.
#[derive(Debug)]
pub struct Response {
    pub session: i64,
    /// Decoded response (None when the protocol has no response type or `response nil`).
    pub result: Option<Value>,
    pub ud: Option<Vec<u8>>,
}

/// Builds the reply to one request.
#[derive(Debug, Clone)]
pub struct Responder {
    proto: Arc<Sproto>,
    package: usize,
    session: i64,
    response: Option<usize>,
    confirm: bool,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pending::Nothing => f.write_str("Nothing"),
            Pending::Confirm => f.write_str("Confirm"),
            Pending::Typed(_, t) => write!(f, "Typed({t})"),
        }
    }
}

fn header_value(tag: Option<i64>, session: Option<i64>, ud: Option<&[u8]>) -> Value {
    let mut fields = Vec::with_capacity(3);
    if let Some(t) = tag {
        fields.push(("type".to_string(), Value::Integer(t)));
    }
    if let Some(s) = session {
        fields.push(("session".to_string(), Value::Integer(s)));
    }
    if let Some(u) = ud {
        fields.push(("ud".to_string(), Value::String(u.to_vec())));
    }
    Value::Struct(fields)
}

/// `pack(encode(package, header) ++ encode(body_type, args))`.
fn packet(
    host_proto: &Sproto,
    package: usize,
    header: &Value,
    body: Option<(&Sproto, usize, &Value)>,
) -> Result<Vec<u8>> {
    let mut plain = Vec::new();
    crate::encode::encode(
        host_proto,
        package,
        &mut crate::ValueSource(header),
        &mut plain,
    )?;
    if let Some((sp, ty, args)) = body {
        crate::encode::encode(sp, ty, &mut crate::ValueSource(args), &mut plain)?;
    }
    Ok(crate::pack::pack(&plain))
}

impl Host {
    /// A host receiving messages of `proto`, framed by its type `package_type`.
    pub fn new(proto: Arc<Sproto>, package_type: &str) -> Result<Host> {
        let package = proto
            .type_index(package_type)
            .ok_or_else(|| Error::TypeNotFound(package_type.to_string()))?;
        Ok(Host {
            proto,
            package,
            sessions: HashMap::new(),
        })
    }

    /// The schema of received messages.
    pub fn proto(&self) -> &Arc<Sproto> {
        &self.proto
    }

    /// Number of sessions waiting for a response.
    pub fn pending_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Builds a request packet for protocol `key` of `peer` (the `send` function of
    /// `host:attach(peer)`). `args` is encoded iff the protocol has a request type
    /// (`Value::Nil` then fails like upstream); with a `session` the host remembers the
    /// expected response.
    pub fn request(
        &mut self,
        peer: &Arc<Sproto>,
        key: ProtoKey<'_>,
        args: &Value,
        session: Option<i64>,
        ud: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let p = peer.protocol(key)?;
        let header = header_value(Some(p.tag() as i64), session, ud);
        let body = p.request().map(|t| (&**peer, t, args));
        let bytes = packet(&self.proto, self.package, &header, body)?;
        if let Some(s) = session {
            let pending = match (p.response(), p.confirm()) {
                (Some(t), _) => Pending::Typed(peer.clone(), t),
                (None, true) => Pending::Confirm,
                (None, false) => Pending::Nothing,
            };
            self.sessions.insert(s, pending);
        }
        Ok(bytes)
    }

    /// Decodes a packet: a request for one of the host's protocols, or the response to
    /// a session registered by [`Host::request`] (which is then forgotten).
    pub fn dispatch(&mut self, packet: &[u8]) -> Result<Incoming> {
        let bin = crate::pack::unpack(packet)?;
        let mut header = crate::ValueBuilder::default();
        let used = crate::decode::decode(&self.proto, self.package, &bin, &mut header)?;
        let header = Value::Struct(header.fields);
        let content = &bin[used..];
        let int = |name| match header.get(name) {
            Some(Value::Integer(i)) => Some(*i),
            _ => None,
        };
        let ud = match header.get("ud") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let session = int("session");
        if let Some(tag) = int("type") {
            let p = self.proto.protocol(ProtoKey::Tag(tag))?;
            let args = match p.request() {
                Some(t) => Some(decode_body(&self.proto, t, content)?),
                None => None,
            };
            let responder = session.map(|session| Responder {
                proto: self.proto.clone(),
                package: self.package,
                session,
                response: p.response(),
                confirm: p.confirm(),
            });
            return Ok(Incoming::Request(Request {
                name: p.name().to_string(),
                tag: p.tag(),
                args,
                responder,
                ud,
            }));
        }
        let session = session.ok_or_else(|| Error::Rpc("session not found".into()))?;
        let pending = self
            .sessions
            .remove(&session)
            .ok_or_else(|| Error::Rpc("Unknown session".into()))?;
        let result = match pending {
            Pending::Typed(sp, t) => Some(decode_body(&sp, t, content)?),
            Pending::Nothing | Pending::Confirm => None,
        };
        Ok(Incoming::Response(Response {
            session,
            result,
            ud,
        }))
    }
}

fn decode_body(sp: &Sproto, ty: usize, content: &[u8]) -> Result<Value> {
    let mut b = crate::ValueBuilder::default();
    crate::decode::decode(sp, ty, content, &mut b)?;
    Ok(Value::Struct(b.fields))
}

impl Responder {
    /// The session being answered.
    pub fn session(&self) -> i64 {
        self.session
    }

    /// Builds the response packet. `args` is encoded with the response type if there is
    /// one, ignored if the protocol has no response, and must be `Nil` for
    /// `response nil`.
    pub fn respond(&self, args: &Value, ud: Option<&[u8]>) -> Result<Vec<u8>> {
        if self.confirm && self.response.is_none() && *args != Value::Nil {
            return Err(Error::Rpc(
                "response nil takes no arguments (nil expected, got table)".into(),
            ));
        }
        let header = header_value(None, Some(self.session), ud);
        let body = self.response.map(|t| (&*self.proto, t, args));
        packet(&self.proto, self.package, &header, body)
    }
}
