//! Shared harness for integration tests: start the real `skynet` binary on a config
//! written to a temp dir, read its log, stop it by pid.
#![allow(dead_code)]

pub mod sample;
pub mod web;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh temp directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "skynet-test-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The standard config for a test: the framework (skynet/lualib, skynet/service) plus
/// `dir` (where the test's own services live), `start` = the given service.
pub fn config_text(dir: &Path, start: &str, extra: &str) -> String {
    let root = repo_root();
    let root = root.display();
    format!(
        r#"thread = 2
harbor = 0
start = "{start}"
bootstrap = "snlua bootstrap"
luaservice = "{dir}/?.lua;{root}/skynet/service/?.lua;{root}/tests/lua/?.lua"
lualoader = "{root}/skynet/lualib/loader.lua"
lua_path = "{dir}/?.lua;{root}/skynet/lualib/?.lua;{root}/skynet/lualib/?/init.lua;{root}/skynet/lualib/compat10/?.lua"
lua_cpath = "{root}/luaclib/?.so"
cpath = "{root}/cservice/?.so"
{extra}
"#,
        dir = dir.display()
    )
}

/// A running skynet process whose stdout+stderr lines are collected.
pub struct Skynet {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Skynet {
    /// Start `skynet <config>` with the working directory `cwd`.
    pub fn start(config: &Path, cwd: &Path) -> Skynet {
        Self::start_with_env(config, cwd, &[])
    }

    pub fn start_with_env(config: &Path, cwd: &Path, env: &[(&str, &str)]) -> Skynet {
        Self::spawn(config, cwd, env, None)
    }

    /// Start with `RLIMIT_NOFILE` set to `nofile` (soft and hard) in the child.
    pub fn start_with_fd_limit(config: &Path, cwd: &Path, nofile: u64) -> Skynet {
        Self::spawn(config, cwd, &[], Some(nofile))
    }

    /// Start another skynet binary (e.g. an upstream build) the same way.
    pub fn start_binary(bin: &Path, config: &Path, cwd: &Path) -> Skynet {
        Self::spawn_bin(bin.as_os_str(), config, cwd, &[], None)
    }

    fn spawn(config: &Path, cwd: &Path, env: &[(&str, &str)], nofile: Option<u64>) -> Skynet {
        let bin = std::ffi::OsStr::new(env!("CARGO_BIN_EXE_skynet"));
        Self::spawn_bin(bin, config, cwd, env, nofile)
    }

    fn spawn_bin(
        bin: &std::ffi::OsStr,
        config: &Path,
        cwd: &Path,
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Skynet {
        let mut cmd = Command::new(bin);
        cmd.arg(config)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn skynet");
        let (tx, rx) = channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || forward_lines(out, tx));
        std::thread::spawn(move || forward_lines(err, tx2));
        Skynet {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait until a line containing `needle` appears; returns it. Panics with the log on timeout.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(line.clone());
                    if hit {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "timed out waiting for {:?}; log so far:\n{}",
                        needle,
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Collect lines for `d` (or until the process's output ends).
    pub fn collect_for(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => return,
            }
        }
    }

    /// Wait for the process to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.collect_for(Duration::from_millis(200));
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log(&self) -> String {
        self.seen.join("\n")
    }

    /// Stop the process by pid (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            unsafe { libc_kill(self.child.id() as i32, 15) };
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Skynet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Forward a child's output line by line. Log lines may carry binary payloads (e.g.
/// "Unknown request" dumps), so read bytes and convert lossily: `lines()` would stop
/// at the first invalid UTF-8 line and lose everything after it.
fn forward_lines(stream: impl std::io::Read, tx: std::sync::mpsc::Sender<String>) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                    break;
                }
            }
        }
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Run a test service to completion: writes `<name>.lua` with `source` into a temp dir,
/// starts skynet with `start = name`, waits for `done_marker` in the log and returns the log.
pub fn run_service(name: &str, source: &str, done_marker: &str, timeout: Duration) -> String {
    let dir = TempDir::new(name);
    dir.write(&format!("{name}.lua"), source);
    let conf = dir.write("config", &config_text(dir.path(), name, ""));
    let mut sk = Skynet::start(&conf, dir.path());
    sk.wait_for(done_marker, timeout);
    sk.collect_for(Duration::from_millis(100));
    let log = sk.log();
    sk.stop();
    log
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback TCP client with read/write timeouts and TCP_NODELAY.
pub fn connect(port: u16, timeout: Duration) -> std::net::TcpStream {
    let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(timeout)).unwrap();
    c.set_write_timeout(Some(timeout)).unwrap();
    c.set_nodelay(true).unwrap();
    c
}

/// Read exactly `n` bytes (panics on timeout or EOF).
pub fn read_n(c: &mut std::net::TcpStream, n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut b = vec![0u8; n];
    c.read_exact(&mut b).unwrap();
    b
}

/// Boot skynet with `main.lua` = `main` (plus `extra` files) in a temp dir and return
/// the port the service logs as `PORT <n>`.
pub fn boot_with_port(
    tag: &str,
    main: &str,
    extra: &[(&str, &str)],
    timeout: Duration,
) -> (TempDir, Skynet, u16) {
    let dir = TempDir::new(tag);
    dir.write("main.lua", main);
    for (name, text) in extra {
        dir.write(name, text);
    }
    let conf = dir.write("config", &config_text(dir.path(), "main", ""));
    let mut sk = Skynet::start(&conf, dir.path());
    let line = sk.wait_for("PORT ", timeout);
    let port = line.rsplit("PORT ").next().unwrap().trim().parse().unwrap();
    (dir, sk, port)
}

/// Open file descriptors of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident set size of process `pid` in KiB.
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Wait (up to `timeout`) until `pid` holds at most `limit` fds; returns the last count.
pub fn wait_fds_at_most(pid: u32, limit: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let n = fd_count(pid);
        if n <= limit || Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Raise this process's own soft `RLIMIT_NOFILE` to at least `want` (up to the hard
/// limit); returns the soft limit now in force.
pub fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}

/// A TCP socket held by another process, as seen through a duplicate of its fd.
#[derive(Debug)]
pub struct TcpSocketInfo {
    pub fd: i32,
    pub local: std::net::SocketAddr,
    pub peer: Option<std::net::SocketAddr>,
    pub nodelay: bool,
}

/// Every IPv4/IPv6 TCP socket process `pid` holds, with its addresses and whether
/// `TCP_NODELAY` is set on it. The fds are duplicated into this process with
/// `pidfd_getfd(2)` (Linux 5.6; allowed because `pid` is our child) and read with
/// `getsockopt`, so this is what the kernel applies, not what the process says.
pub fn tcp_sockets(pid: u32) -> Vec<TcpSocketInfo> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain syscalls; the returned fds are owned by the Sockets/File below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) } as i32;
    assert!(
        pidfd >= 0,
        "pidfd_open({pid}): {}",
        std::io::Error::last_os_error()
    );
    let _pidfd = unsafe { std::fs::File::from_raw_fd(pidfd) };
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for entry in dir.flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .map(|l| l.to_string_lossy().starts_with("socket:["))
            .unwrap_or(false);
        let Some(target) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if !is_socket {
            continue;
        }
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) } as i32;
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(
                e.raw_os_error(),
                Some(libc::EBADF),
                "pidfd_getfd({pid}, {target}) (needs ptrace access to the child): {e}"
            );
            continue; // closed meanwhile
        }
        let s = unsafe { socket2::Socket::from_raw_fd(fd) };
        if !matches!(s.r#type(), Ok(socket2::Type::STREAM)) {
            continue;
        }
        let Some(local) = s.local_addr().ok().and_then(|a| a.as_socket()) else {
            continue; // a unix socket
        };
        let peer = s.peer_addr().ok().and_then(|a| a.as_socket());
        let nodelay = s.nodelay().unwrap_or(false);
        out.push(TcpSocketInfo {
            fd: target,
            local,
            peer,
            nodelay,
        });
    }
    out
}
