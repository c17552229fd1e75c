//! The sample game server as tests drive it: a server on a config variant (loopback,
//! free ports, temp dir as CWD) and a client speaking its protocol (`>s2` framing +
//! sproto packages, built on the `sproto` crate).

use super::{free_port, repo_root, Skynet, TempDir};
use sproto::rpc::{Host, Incoming};
use sproto::{ProtoKey, Sproto, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upper bound for anything expected promptly; generous because CI machines are busy.
pub const T: Duration = Duration::from_secs(10);

pub fn proto_text(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("proto").join(name)).unwrap()
}

/// The sample config with the hub on 127.0.0.1:`port` and the debug console on
/// `console`; `extra` is appended.
pub fn sample_config(port: u16, console: u16, extra: &str) -> String {
    format!(
        r#"root = "{root}/"
thread = 2
harbor = 0
start = "main"
luaservice = root .. "service/?.lua;" .. root .. "skynet/service/?.lua"
lualoader = root .. "skynet/lualib/loader.lua"
lua_path = root .. "lualib/?.lua;" .. root .. "skynet/lualib/?.lua;" .. root .. "skynet/lualib/?/init.lua;" .. root .. "skynet/lualib/compat10/?.lua"
lua_cpath = root .. "skynet/luaclib/?.so"
cpath = root .. "cservice/?.so"
sample_ip = "127.0.0.1"
sample_port = {port}
sample_console = {console}
{extra}
"#,
        root = repo_root().display()
    )
}

/// A running sample server (foreground mode, console on stdin = /dev/null).
pub struct Sample {
    pub sk: Skynet,
    pub port: u16,
    pub console: u16,
    pub dir: TempDir,
}

impl Sample {
    pub fn start(tag: &str) -> Sample {
        Self::start_with(tag, "", None)
    }

    /// `extra` config lines; `nofile`: the server's RLIMIT_NOFILE.
    pub fn start_with(tag: &str, extra: &str, nofile: Option<u64>) -> Sample {
        let dir = TempDir::new(tag);
        for f in ["proto.c2s.sproto", "proto.s2c.sproto"] {
            dir.write(&format!("proto/{f}"), &proto_text(f));
        }
        let (port, console) = (free_port(), free_port());
        let conf = dir.write("config", &sample_config(port, console, extra));
        let mut sk = match nofile {
            Some(n) => Skynet::start_with_fd_limit(&conf, dir.path(), n),
            None => Skynet::start(&conf, dir.path()),
        };
        sk.wait_for(&format!("Listen 127.0.0.1:{port}"), Duration::from_secs(10));
        Sample {
            sk,
            port,
            console,
            dir,
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    pub fn wait(&mut self, needle: &str, timeout: Duration) -> String {
        self.sk.wait_for(needle, timeout)
    }

    pub fn count(&mut self, needle: &str) -> usize {
        self.sk.collect_for(Duration::from_millis(100));
        self.sk.seen.iter().filter(|l| l.contains(needle)).count()
    }

    /// One debug console command; returns its output up to the terminator.
    pub fn console(&self, cmd: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.console)).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            let text = String::from_utf8_lossy(&out).into_owned();
            if text.contains("<CMD OK>") || text.contains("<CMD Error>") {
                return text;
            }
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// A client speaking the sample protocol: `>s2` framing + sproto packages.
pub struct Client {
    pub stream: TcpStream,
    host: Host,
    c2s: Arc<Sproto>,
    session: i64,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let s2c = Arc::new(Sproto::parse(&proto_text("proto.s2c.sproto")).unwrap());
        let c2s = Arc::new(Sproto::parse(&proto_text("proto.c2s.sproto")).unwrap());
        Self::connect_with(port, s2c, c2s)
    }

    /// Connect with schemas already parsed (`s2c`, `c2s`): for many connections.
    pub fn connect_with(port: u16, s2c: Arc<Sproto>, c2s: Arc<Sproto>) -> Client {
        // The hub logs "Listen" just before it listens (as upstream's sample does), so
        // the first connect may come a moment early: retry refusals briefly.
        let deadline = Instant::now() + T;
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(e)
                    if e.kind() == std::io::ErrorKind::ConnectionRefused
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("connect to the sample on {port}: {e}"),
            }
        };
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            host: Host::new(s2c, "package").unwrap(),
            c2s,
            session: 0,
            buf: Vec::new(),
        }
    }

    /// Send a request with the next session; returns (session, on-wire bytes).
    pub fn request(&mut self, name: &str, args: Value) -> (i64, Vec<u8>) {
        self.session += 1;
        let payload = self
            .host
            .request(
                &self.c2s,
                ProtoKey::Name(name),
                &args,
                Some(self.session),
                None,
            )
            .unwrap();
        let mut wire = (payload.len() as u16).to_be_bytes().to_vec();
        wire.extend_from_slice(&payload);
        self.stream.write_all(&wire).unwrap();
        (self.session, wire)
    }

    pub fn userid(name: &str) -> Value {
        Value::Struct(vec![("userid".into(), Value::str(name))])
    }

    /// The next packet with its 2-byte header; None on EOF/reset or timeout.
    pub fn read_wire(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.buf.len() >= 2 {
                let n = (self.buf[0] as usize) << 8 | self.buf[1] as usize;
                if self.buf.len() >= n + 2 {
                    return Some(self.buf.drain(..n + 2).collect());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut b = [0u8; 4096];
            match self.stream.read(&mut b) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return None,
                Err(_) => return None,
            }
        }
    }

    pub fn recv(&mut self) -> (Vec<u8>, Incoming) {
        let wire = self.read_wire(T).expect("server closed or timed out");
        let inc = self.host.dispatch(&wire[2..]).unwrap();
        (wire, inc)
    }

    /// Send `name` and wait for its response: (wire bytes, result, ud).
    pub fn call(&mut self, name: &str, args: Value) -> (Vec<u8>, Option<Value>, Option<String>) {
        let (s, _) = self.request(name, args);
        match self.recv() {
            (wire, Incoming::Response(r)) => {
                assert_eq!(r.session, s, "responses come in order");
                let ud = r.ud.map(|u| String::from_utf8_lossy(&u).into_owned());
                (wire, r.result, ud)
            }
            (_, Incoming::Request(r)) => panic!("unexpected push {}", r.name),
        }
    }

    pub fn ok(&mut self, name: &str, args: Value) -> bool {
        let (_, result, ud) = self.call(name, args);
        assert!(ud.is_none(), "{name} failed: {ud:?}");
        matches!(
            result.as_ref().and_then(|v| v.get("ok")),
            Some(Value::Boolean(true))
        )
    }

    /// signin (ok) + login (ok, with the welcome push), for an existing user.
    pub fn login(&mut self, user: &str) {
        assert!(self.ok("signin", Self::userid(user)));
        self.request("login", Value::Nil);
        match self.recv() {
            (_, Incoming::Request(r)) => assert_eq!(r.name, "push"),
            (_, other) => panic!("expected the welcome push, got {other:?}"),
        }
        match self.recv() {
            (_, Incoming::Response(r)) => {
                assert_eq!(r.result.unwrap().get("ok"), Some(&Value::Boolean(true)))
            }
            (_, other) => panic!("expected the login response, got {other:?}"),
        }
    }

    pub fn signup_login(&mut self, user: &str) {
        assert!(self.ok("signup", Self::userid(user)));
        self.login(user);
    }

    /// True once the server has closed the connection (EOF) within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.stream
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut b = [0u8; 256];
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return true,
            }
        }
        false
    }
}
