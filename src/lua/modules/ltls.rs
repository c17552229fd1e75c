//! `ltls.c` (and `ltls.init.c`): TLS for `http.tlshelper`, natively through rustls
//! (ring provider; no OpenSSL). The module surface upstream's `lualib-src/ltls.c`
//! gives its Lua:
//!
//! * `newctx()` -> ctx; `ctx:set_cert(certfile, keyfile)` (PEM chain and PEM private
//!   key: PKCS#8, PKCS#1 or SEC1), `ctx:set_ciphers(s)` (accepted, ignored: rustls'
//!   suites are fixed; upstream's calls an SRTP function here).
//! * `newtls("client"|"server", ctx [, hostname])` -> tls; methods
//!   `handshake([bytes])` -> bytes to send | nothing, `finished()`, `read([bytes])` ->
//!   plaintext ("" when none yet), `write([plaintext])` -> bytes to send ("" when
//!   none), `set_ext_host_name(name)` (SNI, before the first handshake), `close()`.
//! * `ltls.init.c`: `constructor`/`destructor`, no-ops: nothing to initialise, so no
//!   `enablessl = true` is needed in the config (upstream refuses `ltls.c` without it).
//!
//! The data flow is upstream's memory-BIO one: the caller moves encrypted bytes
//! between the socket and the context; the context never touches the fd. So a failed
//! handshake raises a Lua error and the caller (our tlshelper, httpc, websocket)
//! closes the socket and the context; the context is freed by `close` or `__gc`.
//!
//! Differences from upstream's OpenSSL module: clients do not verify the server's
//! certificate (upstream's default SSL_CTX does not either) but still check the
//! handshake's signatures; `handshake` also returns bytes produced when the handshake
//! completes (upstream leaves them for the next `write`); errors carry rustls' text.
//!
//! Invariants: a tls userdata owns at most one boxed `Tls` (null after `close`), freed
//! exactly once. Rust work is done in plain functions returning `Result`; the Lua side
//! pushes or raises only when no Rust value with a destructor is alive (the output
//! buffer is handed over through `ManuallyDrop`: if the push raises, it leaks).
//! Input is fed in bounded steps (read_tls, process, drain plaintext), so a large
//! input never overflows rustls' internal buffers.

#![allow(non_snake_case)]

use std::ffi::{c_int, CStr};
use std::io::{Read, Write};
use std::sync::Arc;

use crate::lua::ffi::{check_bytes, new_lib, push_str, raise, raise_string, to_bytes};
use mlua::ffi::{self, lua_State};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, Connection, DigitallySignedStruct, ServerConfig, SignatureScheme};

const CTX_META: &CStr = c"_TLS_SSLCTX_METATABLE_";
const TLS_META: &CStr = c"_TLS_CONTEXT_METATABLE_";

/// One `newctx()`: the server config once a certificate is set; the client config is
/// shared by every client context of the process.
struct Ctx {
    server: Option<Arc<ServerConfig>>,
}

enum State {
    /// A client whose first handshake call has not come yet (SNI may still change).
    Pending {
        name: Option<String>,
    },
    Live(Box<Connection>),
    /// A fatal error was seen; every later call repeats it.
    Failed(String),
}

struct Tls {
    state: State,
    /// Plaintext that arrived with the handshake, served by the next `read`.
    early: Vec<u8>,
}

fn provider() -> Arc<CryptoProvider> {
    static P: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    P.get_or_init(|| Arc::new(ring::default_provider())).clone()
}

/// Accepts any certificate (as upstream's unverified OpenSSL client) but checks the
/// handshake signatures, so the session is still bound to the presented key.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_config() -> Result<Arc<ClientConfig>, String> {
    static C: std::sync::OnceLock<Arc<ClientConfig>> = std::sync::OnceLock::new();
    if let Some(c) = C.get() {
        return Ok(c.clone());
    }
    let p = provider();
    let cfg = ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("SSL_CTX_new client failed. {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(p)))
        .with_no_client_auth();
    Ok(C.get_or_init(|| Arc::new(cfg)).clone())
}

fn load_server(certfile: &str, keyfile: &str) -> Result<ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certfile)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("SSL_CTX_use_certificate_chain_file error: {certfile}: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "SSL_CTX_use_certificate_chain_file error: {certfile}: no certificate"
        ));
    }
    let key = PrivateKeyDer::from_pem_file(keyfile)
        .map_err(|e| format!("SSL_CTX_use_PrivateKey_file error: {keyfile}: {e}"))?;
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("SSL_CTX_check_private_key error: {e}"))
}

/// Feed `input` to the connection in steps, collecting the plaintext it yields.
fn feed(conn: &mut Connection, mut input: &[u8], plain: &mut Vec<u8>) -> Result<(), String> {
    loop {
        if !input.is_empty() {
            conn.read_tls(&mut input).map_err(|e| e.to_string())?;
        }
        conn.process_new_packets().map_err(|e| e.to_string())?;
        drain_plain(conn, plain)?;
        if input.is_empty() {
            return Ok(());
        }
    }
}

fn drain_plain(conn: &mut Connection, plain: &mut Vec<u8>) -> Result<(), String> {
    let mut buf = [0u8; 16384];
    loop {
        match conn.reader().read(&mut buf) {
            Ok(0) => return Ok(()), // close_notify seen
            Ok(n) => plain.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn drain_tls(conn: &mut Connection, out: &mut Vec<u8>) -> Result<(), String> {
    while conn.wants_write() {
        conn.write_tls(out).map_err(|e| e.to_string())?;
    }
    Ok(())
}

impl Tls {
    /// The live connection, starting a pending client.
    fn conn(&mut self) -> Result<&mut Connection, String> {
        if let State::Pending { name } = &self.state {
            let server_name = match name {
                Some(n) => ServerName::try_from(n.clone())
                    .map_err(|e| format!("invalid host name {n}: {e}"))?,
                // no name (an address): no SNI is sent
                None => ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()),
            };
            let c = rustls::ClientConnection::new(client_config()?, server_name)
                .map_err(|e| e.to_string())?;
            self.state = State::Live(Box::new(Connection::Client(c)));
        }
        match &mut self.state {
            State::Live(c) => Ok(c),
            State::Failed(e) => Err(e.clone()),
            State::Pending { .. } => unreachable!(),
        }
    }

    fn fail<T>(&mut self, what: &str, e: String) -> Result<T, String> {
        let msg = format!("{what} error: {e}");
        self.state = State::Failed(msg.clone());
        Err(msg)
    }

    fn finished(&self) -> bool {
        match &self.state {
            State::Live(c) => !c.is_handshaking(),
            _ => false,
        }
    }

    fn handshake(&mut self, input: &[u8]) -> Result<Vec<u8>, String> {
        if self.finished() {
            return Err("handshake is finished".into());
        }
        let mut plain = Vec::new();
        let mut out = Vec::new();
        let conn = self.conn()?;
        let r = feed(conn, input, &mut plain).and_then(|_| drain_tls(conn, &mut out));
        if let Err(e) = r {
            return self.fail("SSL_do_handshake", e);
        }
        // application data that came with the handshake's last flight: first read
        self.early.extend_from_slice(&plain);
        Ok(out)
    }

    fn read(&mut self, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut plain = std::mem::take(&mut self.early);
        let conn = self.conn()?;
        if let Err(e) = feed(conn, input, &mut plain) {
            return self.fail("SSL_read", e);
        }
        Ok(plain)
    }

    fn write(&mut self, mut data: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let conn = self.conn()?;
        let r = (|| {
            while !data.is_empty() {
                let n = conn.writer().write(data).map_err(|e| e.to_string())?;
                if n == 0 {
                    // only before the handshake ends: rustls holds a bounded amount
                    return Err("buffer full before the handshake finished".into());
                }
                data = &data[n..];
                // rustls bounds what it holds: move it out before writing more
                drain_tls(conn, &mut out)?;
            }
            drain_tls(conn, &mut out)
        })();
        if let Err(e) = r {
            return self.fail("SSL_write", e);
        }
        Ok(out)
    }
}

/// Userdata of a tls context: the box, null once closed.
#[repr(C)]
struct TlsBox {
    p: *mut Tls,
}

#[repr(C)]
struct CtxBox {
    p: *mut Ctx,
}

/// Push `v` as a string and free it (leaked if the push raises).
unsafe fn push_vec(L: *mut lua_State, v: Vec<u8>) {
    let v = std::mem::ManuallyDrop::new(v);
    // SAFETY: `L` is the caller's valid state; the bytes are copied by Lua.
    unsafe { push_str(L, &v[..]) };
    drop(std::mem::ManuallyDrop::into_inner(v));
}

unsafe fn check_tls<'a>(L: *mut lua_State) -> &'a mut Tls {
    // SAFETY: `L` is the caller's valid state.
    unsafe {
        let ud = ffi::luaL_testudata(L, 1, TLS_META.as_ptr()) as *mut TlsBox;
        if ud.is_null() {
            raise(L, "need tls context");
        }
        if (*ud).p.is_null() {
            raise(L, "context is closed");
        }
        &mut *(*ud).p
    }
}

unsafe fn check_ctx<'a>(L: *mut lua_State, idx: c_int) -> &'a mut Ctx {
    // SAFETY: `L` is the caller's valid state.
    unsafe {
        let ud = ffi::luaL_testudata(L, idx, CTX_META.as_ptr()) as *mut CtxBox;
        if ud.is_null() || (*ud).p.is_null() {
            raise(L, "need sslctx");
        }
        &mut *(*ud).p
    }
}

/// Optional string argument as bytes ("" when absent or nil).
unsafe fn opt_bytes<'a>(L: *mut lua_State, idx: c_int) -> &'a [u8] {
    // SAFETY: `L` is the caller's valid state.
    unsafe {
        if ffi::lua_isnoneornil(L, idx) != 0 {
            return &[];
        }
        check_bytes(L, idx)
    }
}

/// Push the result of a Tls operation, or raise its error.
unsafe fn finish(L: *mut lua_State, r: Result<Vec<u8>, String>, nothing_when_empty: bool) -> c_int {
    // SAFETY: `L` is the caller's valid state; nothing with a destructor outlives the
    // match arms before a raise (raise_string drops the message first).
    unsafe {
        match r {
            Ok(v) if v.is_empty() && nothing_when_empty => 0,
            Ok(v) => {
                push_vec(L, v);
                1
            }
            Err(e) => raise_string(L, e),
        }
    }
}

unsafe extern "C-unwind" fn l_handshake(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this with a valid `L`; the input stays on its stack.
    unsafe {
        let tls = check_tls(L);
        let input = opt_bytes(L, 2);
        let r = tls.handshake(input);
        finish(L, r, true)
    }
}

unsafe extern "C-unwind" fn l_read(L: *mut lua_State) -> c_int {
    // SAFETY: as `l_handshake`.
    unsafe {
        let tls = check_tls(L);
        let input = opt_bytes(L, 2);
        let r = tls.read(input);
        finish(L, r, false)
    }
}

unsafe extern "C-unwind" fn l_write(L: *mut lua_State) -> c_int {
    // SAFETY: as `l_handshake`.
    unsafe {
        let tls = check_tls(L);
        let input = opt_bytes(L, 2);
        let r = tls.write(input);
        finish(L, r, false)
    }
}

unsafe extern "C-unwind" fn l_finished(L: *mut lua_State) -> c_int {
    // SAFETY: as `l_handshake`.
    unsafe {
        let tls = check_tls(L);
        ffi::lua_pushboolean(L, tls.finished() as c_int);
    }
    1
}

unsafe extern "C-unwind" fn l_set_host(L: *mut lua_State) -> c_int {
    // SAFETY: as `l_handshake`.
    unsafe {
        let tls = check_tls(L);
        let name = String::from_utf8_lossy(check_bytes(L, 2)).into_owned();
        let ok = match &mut tls.state {
            State::Pending { name: n } => {
                *n = Some(name);
                1
            }
            _ => {
                drop(name);
                0
            }
        };
        ffi::lua_pushinteger(L, ok);
    }
    1
}

unsafe extern "C-unwind" fn l_close(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this with a valid `L` (also as __gc); the box is freed once.
    unsafe {
        let ud = ffi::luaL_testudata(L, 1, TLS_META.as_ptr()) as *mut TlsBox;
        if !ud.is_null() && !(*ud).p.is_null() {
            let p = std::mem::replace(&mut (*ud).p, std::ptr::null_mut());
            drop(Box::from_raw(p));
            LIVE.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    0
}

/// Live tls contexts in the process (for leak tests: `ltls.c.live()`).
static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

unsafe extern "C-unwind" fn l_ctx_gc(L: *mut lua_State) -> c_int {
    // SAFETY: as `l_close`.
    unsafe {
        let ud = ffi::luaL_testudata(L, 1, CTX_META.as_ptr()) as *mut CtxBox;
        if !ud.is_null() && !(*ud).p.is_null() {
            let p = std::mem::replace(&mut (*ud).p, std::ptr::null_mut());
            drop(Box::from_raw(p));
        }
    }
    0
}

unsafe extern "C-unwind" fn l_set_cert(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this with a valid `L`; Rust values are dropped before a raise.
    unsafe {
        let ctx = check_ctx(L, 1);
        if ffi::lua_isstring(L, 2) == 0 {
            raise(L, "need certfile");
        }
        if ffi::lua_isstring(L, 3) == 0 {
            raise(L, "need private key");
        }
        let cert = String::from_utf8_lossy(check_bytes(L, 2)).into_owned();
        let key = String::from_utf8_lossy(check_bytes(L, 3)).into_owned();
        let r = load_server(&cert, &key);
        drop((cert, key));
        match r {
            Ok(cfg) => {
                ctx.server = Some(Arc::new(cfg));
                0
            }
            Err(e) => raise_string(L, e),
        }
    }
}

unsafe extern "C-unwind" fn l_set_ciphers(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this with a valid `L`.
    unsafe {
        check_ctx(L, 1);
        if to_bytes(L, 2).is_none() {
            raise(L, "need cipher list");
        }
    }
    0
}

unsafe extern "C-unwind" fn l_newctx(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this with a valid `L`; the userdata exists (and has its
    // metatable, hence __gc) before the box is stored in it.
    unsafe {
        let ud = ffi::lua_newuserdatauv(L, std::mem::size_of::<CtxBox>(), 0) as *mut CtxBox;
        (*ud).p = std::ptr::null_mut();
        if ffi::luaL_newmetatable(L, CTX_META.as_ptr()) != 0 {
            new_lib(
                L,
                &[(c"set_cert", l_set_cert), (c"set_ciphers", l_set_ciphers)],
            );
            ffi::lua_setfield(L, -2, c"__index".as_ptr());
            ffi::lua_pushcfunction(L, l_ctx_gc);
            ffi::lua_setfield(L, -2, c"__gc".as_ptr());
        }
        ffi::lua_setmetatable(L, -2);
        (*ud).p = Box::into_raw(Box::new(Ctx { server: None }));
    }
    1
}

unsafe extern "C-unwind" fn l_newtls(L: *mut lua_State) -> c_int {
    // SAFETY: as `l_newctx`; Rust values are dropped before any raise.
    unsafe {
        let method = if ffi::lua_isnoneornil(L, 1) != 0 {
            &b"nil"[..]
        } else {
            check_bytes(L, 1)
        };
        let ctx = check_ctx(L, 2);
        let state = match method {
            b"client" => {
                let name = if ffi::lua_isnoneornil(L, 3) == 0 {
                    Some(String::from_utf8_lossy(check_bytes(L, 3)).into_owned())
                } else {
                    None
                };
                State::Pending { name }
            }
            b"server" => {
                let Some(cfg) = ctx.server.clone() else {
                    raise(L, "server context needs set_cert first");
                };
                match rustls::ServerConnection::new(cfg) {
                    Ok(c) => State::Live(Box::new(Connection::Server(c))),
                    Err(e) => raise_string(L, format!("SSL_new failed: {e}")),
                }
            }
            other => {
                let m = String::from_utf8_lossy(other).into_owned();
                raise_string(L, format!("invalid method:{m} e.g[server, client]"))
            }
        };
        let ud = ffi::lua_newuserdatauv(L, std::mem::size_of::<TlsBox>(), 1) as *mut TlsBox;
        (*ud).p = std::ptr::null_mut();
        ffi::lua_pushvalue(L, 2);
        ffi::lua_setiuservalue(L, -2, 1); // the ctx lives as long as its contexts
        if ffi::luaL_newmetatable(L, TLS_META.as_ptr()) != 0 {
            new_lib(
                L,
                &[
                    (c"close", l_close),
                    (c"finished", l_finished),
                    (c"handshake", l_handshake),
                    (c"read", l_read),
                    (c"write", l_write),
                    (c"set_ext_host_name", l_set_host),
                ],
            );
            ffi::lua_setfield(L, -2, c"__index".as_ptr());
            ffi::lua_pushcfunction(L, l_close);
            ffi::lua_setfield(L, -2, c"__gc".as_ptr());
        }
        ffi::lua_setmetatable(L, -2);
        (*ud).p = Box::into_raw(Box::new(Tls {
            state,
            early: Vec::new(),
        }));
        LIVE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    1
}

unsafe extern "C-unwind" fn l_live(L: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this with a valid `L`.
    unsafe {
        ffi::lua_pushinteger(
            L,
            LIVE.load(std::sync::atomic::Ordering::Relaxed) as ffi::lua_Integer,
        )
    };
    1
}

/// `require "ltls.c"`.
///
/// # Safety
/// Called by Lua as a C function with a valid state.
pub unsafe extern "C-unwind" fn luaopen_ltls_c(L: *mut lua_State) -> c_int {
    // SAFETY: per the contract.
    unsafe {
        new_lib(
            L,
            &[
                (c"newctx", l_newctx),
                (c"newtls", l_newtls),
                (c"live", l_live),
            ],
        )
    };
    1
}

unsafe extern "C-unwind" fn l_noop(_L: *mut lua_State) -> c_int {
    0
}

/// `require "ltls.init.c"`: upstream's OpenSSL set-up hooks; nothing to do here.
///
/// # Safety
/// Called by Lua as a C function with a valid state.
pub unsafe extern "C-unwind" fn luaopen_ltls_init_c(L: *mut lua_State) -> c_int {
    // SAFETY: per the contract.
    unsafe { new_lib(L, &[(c"constructor", l_noop), (c"destructor", l_noop)]) };
    1
}
