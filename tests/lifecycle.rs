//! Connection lifecycle through the real binary (`sample.md` §5.6): every owner of a
//! connection gives back what it took. Each test measures the server's own fds
//! (/proc/PID/fd) and RSS before and after its clients, not only the answers.
//!
//! Covered: the sample server (sequential cycles under RLIMIT_NOFILE 256, 10,000
//! concurrent connections, half-close, frame deadlines, abandoned partial frames, log
//! lines per early disconnect), the native gate, gate.lua and a plain skynet.socket
//! echo service (sequential cycles under RLIMIT_NOFILE 256), and a killed owner.

mod common;

use common::sample::{proto_text, Client, Sample, T};
use common::{fd_count, free_port, rss_kb, wait_fds_at_most, Skynet, TempDir};
use sproto::rpc::Incoming;
use sproto::{Sproto, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sequential cycles per server in the fd tests.
const CYCLES: usize = 10_000;
/// The fd limit those servers run under: far below CYCLES, so one leaked fd per
/// connection would stop them long before the end.
const NOFILE: u64 = 256;
/// How far the fd count may end above where it started.
const FD_SLACK: usize = 5;

fn protos() -> (Arc<Sproto>, Arc<Sproto>) {
    (
        Arc::new(Sproto::parse(&proto_text("proto.s2c.sproto")).unwrap()),
        Arc::new(Sproto::parse(&proto_text("proto.c2s.sproto")).unwrap()),
    )
}

fn userid(name: &str) -> Value {
    Value::Struct(vec![("userid".into(), Value::str(name))])
}

/// True once the server closed `c` (EOF or reset) within `timeout`.
fn read_eof(c: &mut TcpStream, timeout: Duration) -> bool {
    c.set_read_timeout(Some(timeout)).unwrap();
    let mut b = [0u8; 256];
    loop {
        match c.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn sample_sequential_signin_cycles_under_fd_limit() {
    let s = Sample::start_with("life-seq", "", Some(NOFILE));
    let pid = s.sk.pid();
    let (s2c, c2s) = protos();
    let mut c = Client::connect_with(s.port, s2c.clone(), c2s.clone());
    assert!(c.ok("signup", userid("cycler")));
    drop(c);
    let before = wait_fds_at_most(pid, 0, Duration::from_millis(500));
    let services_before = s.console("list").lines().count();
    let t0 = Instant::now();
    for i in 0..CYCLES {
        let mut c = Client::connect_with(s.port, s2c.clone(), c2s.clone());
        assert!(c.ok("signin", userid("cycler")), "signin {i} answered");
        drop(c);
    }
    let elapsed = t0.elapsed();
    let after = wait_fds_at_most(pid, before + FD_SLACK, T);
    eprintln!(
        "sample: {CYCLES} connect/signin/close cycles in {:.1}s; fds {before} -> {after}",
        elapsed.as_secs_f64()
    );
    assert!(
        after <= before + FD_SLACK,
        "fds {before} before, {after} after"
    );
    // Every package retired; the user's agent (started by the first signin) stays.
    let deadline = Instant::now() + T;
    let mut services = s.console("list").lines().count();
    while services > services_before + 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        services = s.console("list").lines().count();
    }
    assert!(
        services <= services_before + 1,
        "{services_before} services before, {services} after"
    );
}

#[test]
fn sample_early_disconnects_log_one_line_each() {
    let mut s = Sample::start("life-log");
    let pid = s.sk.pid();
    s.sk.collect_for(Duration::from_millis(200));
    let lines_before = s.sk.seen.len();
    let fds_before = fd_count(pid);
    const N: usize = 1000;
    for i in 0..N {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        match i % 3 {
            0 => {}                                    // connect, close
            1 => c.write_all(&[0, 5, 1]).unwrap(),     // a partial frame
            _ => c.shutdown(Shutdown::Write).unwrap(), // EOF, then close
        }
        drop(c);
    }
    let after = wait_fds_at_most(pid, fds_before + FD_SLACK, T);
    assert!(
        after <= fds_before + FD_SLACK,
        "fds {fds_before} -> {after}"
    );
    // Wait until the hub has logged every connection (or give up after T).
    let deadline = Instant::now() + T;
    while s.count("Auth faild") < N && Instant::now() < deadline {}
    let new: Vec<&String> = s.sk.seen[lines_before..]
        .iter()
        .filter(|l| !l.contains("LAUNCH package"))
        .collect();
    let tracebacks = new.iter().filter(|l| l.contains("traceback")).count();
    assert_eq!(
        tracebacks,
        0,
        "no tracebacks: {:?}",
        &new[..new.len().min(20)]
    );
    assert!(
        new.len() <= N,
        "{} lines for {N} disconnects: {:?}",
        new.len(),
        &new[..new.len().min(20)]
    );
    // ... and each of them names its connection.
    let named = new
        .iter()
        .filter(|l| l.contains("Auth faild 127.0.0.1:") && l.contains(" fd="))
        .count();
    assert_eq!(named, N, "one named line per disconnect");
}

#[test]
fn sample_half_close_still_gets_replies() {
    let mut s = Sample::start("life-half");
    let pid = s.sk.pid();
    let fds_before = fd_count(pid);
    let mut c = s.connect();
    // Pipelined: signup and signin, then EOF at once; both are answered.
    let (s1, _) = c.request("signup", userid("halfway"));
    let (s2, _) = c.request("signin", userid("halfway"));
    c.stream.shutdown(Shutdown::Write).unwrap();
    for want in [s1, s2] {
        match c.recv() {
            (_, Incoming::Response(r)) => {
                assert_eq!(r.session, want);
                assert_eq!(r.result.unwrap().get("ok"), Some(&Value::Boolean(true)));
            }
            (_, other) => panic!("expected a response, got {other:?}"),
        }
    }
    // Then the server closes its side: the agent found nothing more to read.
    assert!(
        read_eof(&mut c.stream, T),
        "server closes after the last reply"
    );
    drop(c);
    // The same for one request alone (the signin of an existing user).
    let mut c = s.connect();
    let (s3, _) = c.request("signin", userid("halfway"));
    c.stream.shutdown(Shutdown::Write).unwrap();
    match c.recv() {
        (_, Incoming::Response(r)) => assert_eq!(r.session, s3),
        (_, other) => panic!("expected a response, got {other:?}"),
    }
    assert!(read_eof(&mut c.stream, T));
    drop(c);
    let after = wait_fds_at_most(pid, fds_before, T);
    assert!(after <= fds_before, "fds {fds_before} -> {after}");
    s.wait("fd=", T);
}

/// How long after its first byte a frame's connection is closed: `send` writes the
/// frame's bytes (in its own pace) until the server closes.
fn deadline_of(port: u16, trickle: bool) -> Duration {
    let mut c = common::connect(port, Duration::from_millis(100));
    let t0 = Instant::now();
    if trickle {
        c.write_all(&[0xff, 0xff]).unwrap();
    } else {
        c.write_all(&[0, 100]).unwrap();
        c.write_all(&[7; 10]).unwrap();
    }
    let mut b = [0u8; 64];
    let mut next = t0 + Duration::from_millis(500);
    loop {
        assert!(t0.elapsed() < Duration::from_secs(30), "never closed");
        match c.read(&mut b) {
            Ok(0) => return t0.elapsed(),
            Ok(_) => panic!("no reply expected"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return t0.elapsed(),
            Err(_) => {}
        }
        if trickle && Instant::now() >= next {
            next += Duration::from_millis(500);
            if c.write_all(&[1]).is_err() {
                return t0.elapsed();
            }
        }
    }
}

#[test]
fn sample_frame_deadline_default_closes_stalled_and_trickled_frames() {
    let mut s = Sample::start("life-deadline");
    let pid = s.sk.pid();
    let fds_before = fd_count(pid);
    let port = s.port;
    let stalled = std::thread::spawn(move || deadline_of(port, false));
    let trickled = std::thread::spawn(move || deadline_of(port, true));
    let (stalled, trickled) = (stalled.join().unwrap(), trickled.join().unwrap());
    eprintln!("deadline 10 s: stalled closed after {stalled:?}, trickled after {trickled:?}");
    for d in [stalled, trickled] {
        assert!(
            (9.0..=11.0).contains(&d.as_secs_f64()),
            "closed after {d:?}, deadline 10 s"
        );
    }
    s.wait("frame timeout", T);
    let after = wait_fds_at_most(pid, fds_before, T);
    assert!(after <= fds_before, "fds {fds_before} -> {after}");
}

#[test]
fn sample_frame_deadline_config_key() {
    let mut s = Sample::start_with("life-deadline-key", "frame_timeout = 1.5", None);
    let d = deadline_of(s.port, true);
    assert!(
        (1.0..=2.5).contains(&d.as_secs_f64()),
        "closed after {d:?}, deadline 1.5 s"
    );
    s.wait("frame timeout", T);
    // A complete frame in time is served normally.
    let mut c = s.connect();
    assert!(c.ok("signup", userid("intime")));
}

#[test]
fn bad_frame_timeout_stops_startup_naming_the_key() {
    let dir = TempDir::new("life-badkey");
    let conf = dir.write(
        "config",
        &common::sample::sample_config(free_port(), free_port(), "frame_timeout = \"soon\""),
    );
    let mut sk = Skynet::start(&conf, dir.path());
    let code = sk.wait_exit(T);
    assert_eq!(code, Some(1), "{}", sk.log());
    assert!(sk.log().contains("frame_timeout"), "{}", sk.log());
}

#[test]
fn sample_abandoned_partial_frames_give_memory_back() {
    let mut s = Sample::start("life-rss");
    let pid = s.sk.pid();
    let fds_before = fd_count(pid);
    let mut body = vec![0xffu8, 0xff];
    body.extend(std::iter::repeat_n(b'x', 60 * 1024));
    let round = |port: u16| {
        let conns: Vec<TcpStream> = (0..200)
            .map(|_| {
                let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                c.write_all(&body).unwrap();
                c
            })
            .collect();
        conns
    };
    // The 200 frames are buffered once RSS has grown by their size (or after 10 s).
    let grown_by = |base: u64, kb: u64| {
        let deadline = Instant::now() + T;
        loop {
            let now = rss_kb(pid);
            if now >= base + kb || Instant::now() >= deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Baseline: the server after 200 connections without payload (hub, auth and
    // socket_proxyd have grown their tables and coroutine pools for 200 at once).
    let warm: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(("127.0.0.1", s.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    drop(warm);
    wait_fds_at_most(pid, fds_before, T);
    std::thread::sleep(Duration::from_millis(1500));
    let base = rss_kb(pid);
    let held = round(s.port);
    let peak = grown_by(base, 200 * 50);
    assert!(
        peak >= base + 200 * 50,
        "the frames were buffered ({base} -> {peak} KB)"
    );
    drop(held);
    let after_fds = wait_fds_at_most(pid, fds_before, T);
    assert!(after_fds <= fds_before, "fds {fds_before} -> {after_fds}");
    // Idle workers hand free pages back within a second or so.
    let deadline = Instant::now() + T;
    let mut after = rss_kb(pid);
    while after > base + 2048 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = rss_kb(pid);
    }
    eprintln!("200 x 60 KB partial frames: RSS {base} KB -> {peak} KB held -> {after} KB");
    assert!(
        after <= base + 2048,
        "RSS {base} KB before, {after} KB after the connections closed"
    );
    s.wait("Auth faild", T);
}

#[test]
fn sample_ten_thousand_concurrent_connections() {
    const N: usize = 10_000;
    let limit = common::raise_fd_limit(N as u64 + 1000);
    assert!(
        limit >= N as u64 + 100,
        "this test needs {N}+ fds, the limit is {limit}"
    );
    let mut s = Sample::start("life-10k");
    let pid = s.sk.pid();
    let (s2c, c2s) = protos();
    std::thread::sleep(Duration::from_millis(200));
    let fds_before = fd_count(pid);
    let rss_before = rss_kb(pid);
    let t0 = Instant::now();
    let mut clients: Vec<Client> = Vec::with_capacity(N);
    // Connect and ask in waves, answers read after each wave (the hub handles a
    // wave concurrently).
    for wave in 0..N / 500 {
        let start = clients.len();
        for i in 0..500 {
            let mut c = Client::connect_with(s.port, s2c.clone(), c2s.clone());
            // An unknown user: answered (ok = false), and auth keeps serving the
            // connection without storing anything for it.
            c.request("signin", userid(&format!("nobody{}", wave * 500 + i)));
            clients.push(c);
        }
        for c in &mut clients[start..] {
            match c.recv() {
                (_, Incoming::Response(r)) => {
                    assert_eq!(r.result.unwrap().get("ok"), Some(&Value::Boolean(false)))
                }
                (_, other) => panic!("expected a response, got {other:?}"),
            }
        }
    }
    let connected = t0.elapsed();
    let fds_held = fd_count(pid);
    let rss_held = rss_kb(pid);
    assert!(
        fds_held >= fds_before + N,
        "{N} connections held: {fds_held} fds"
    );
    // Still answering while all are held.
    assert!(clients[0].ok("signup", userid("late")));
    assert!(clients[1].ok("signin", userid("late")));
    drop(clients);
    let fds_after = wait_fds_at_most(pid, fds_before + FD_SLACK, Duration::from_secs(30));
    // Closed connections leave only garbage: a full collection (what the Lua heaps
    // would reach at their next major cycle) gives it back.
    std::thread::sleep(Duration::from_millis(500));
    let rss_closed = rss_kb(pid);
    assert!(s.console("gc").contains("<CMD OK>"));
    // Idle threads trim their allocator heaps once a second; freed pages are purged
    // at the trim after the one that found them free: allow a few seconds.
    let peak = rss_held.saturating_sub(rss_before);
    let deadline = Instant::now() + T;
    let mut rss_after = rss_kb(pid);
    while rss_after.saturating_sub(rss_before) * 3 > peak && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        rss_after = rss_kb(pid);
    }
    eprintln!(
        "{N} concurrent: connected+answered in {:.1}s; fds {fds_before} -> {fds_held} -> \
         {fds_after}; RSS {rss_before} KB -> {rss_held} KB ({:.1} KB per idle connection) -> \
         {rss_closed} KB closed -> {rss_after} KB after a collection",
        connected.as_secs_f64(),
        (rss_held.saturating_sub(rss_before)) as f64 / N as f64
    );
    assert!(
        fds_after <= fds_before + FD_SLACK,
        "fds {fds_before} -> {fds_after}"
    );
    // Connection state is gone; what stays is tables sized for the burst (the Lua
    // heaps of hub, auth and socket_proxyd) and the allocator's cached pages.
    let grown = rss_after.saturating_sub(rss_before);
    assert!(
        grown * 3 <= peak,
        "RSS {rss_before} KB -> {rss_held} KB held -> {rss_after} KB after: most of it must come back"
    );
    s.wait("Auth faild", T);
}

/// Boot `main.lua` (plus `extra` files) with config key `echo_port` = a free port,
/// optionally under an fd limit; wait for its `READY` line. Returns the temp dir (keep
/// it alive), the server and the port.
fn boot_ready(
    tag: &str,
    main: &str,
    extra: &[(&str, &str)],
    nofile: Option<u64>,
) -> (TempDir, Skynet, u16) {
    let dir = TempDir::new(tag);
    dir.write("main.lua", main);
    for (name, text) in extra {
        dir.write(name, text);
    }
    let port = free_port();
    let conf = dir.write(
        "config",
        &common::config_text(dir.path(), "main", &format!("echo_port = {port}")),
    );
    let mut sk = match nofile {
        Some(n) => Skynet::start_with_fd_limit(&conf, dir.path(), n),
        None => Skynet::start(&conf, dir.path()),
    };
    sk.wait_for("READY", T);
    (dir, sk, port)
}

/// 10,000 sequential echo cycles (connect, one framed or raw request, answer, close)
/// against a server started with RLIMIT_NOFILE 256; its fds end where they started.
fn echo_cycles(tag: &str, main: &str, extra: &[(&str, &str)], framed: bool) {
    let (_dir, sk, port) = boot_ready(tag, main, extra, Some(NOFILE));
    let pid = sk.pid();
    let before = fd_count(pid);
    let msg: &[u8] = if framed { b"\x00\x04ping" } else { b"ping" };
    let t0 = Instant::now();
    for i in 0..CYCLES {
        let mut c = common::connect(port, T);
        c.write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        c.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("{tag}: cycle {i}: {e}\n{}", sk.log()));
        assert_eq!(got, msg);
        drop(c);
    }
    let after = wait_fds_at_most(pid, before + FD_SLACK, T);
    eprintln!(
        "{tag}: {CYCLES} cycles in {:.1}s; fds {before} -> {after}",
        t0.elapsed().as_secs_f64()
    );
    assert!(after <= before + FD_SLACK, "{tag}: fds {before} -> {after}");
}

#[test]
fn native_gate_sequential_cycles_under_fd_limit() {
    // The watchdog never kicks: the gate closes what the peer closed.
    let main = r#"
local skynet = require "skynet"
require "skynet.manager"
local gate
local function raw(m) return m end
skynet.register_protocol { name = "client", id = skynet.PTYPE_CLIENT, pack = raw }
skynet.register_protocol {
    name = "text", id = skynet.PTYPE_TEXT, pack = raw, unpack = skynet.tostring,
    dispatch = function(_, _, msg)
        local id, what, rest = msg:match("^(%d+) (%a+) ?(.*)$")
        if what == "open" then
            skynet.send(gate, "text", "start " .. id)
        elseif what == "data" then
            skynet.send(gate, "client", string.pack(">s2", rest) .. string.pack("<i4", tonumber(id)))
        end
    end,
}
skynet.start(function()
    gate = skynet.launch("gate", "S", skynet.address(skynet.self()),
        "127.0.0.1:" .. skynet.getenv "echo_port", 0, 100000)
    skynet.error("READY")
end)
"#;
    echo_cycles("life-gate", main, &[], true);
}

#[test]
fn gate_lua_sequential_cycles_under_fd_limit() {
    // Packets go to the watchdog, which answers; it never kicks either.
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
local gate
skynet.start(function()
    skynet.dispatch("lua", function(_, _, cmd, sub, fd, arg)
        if sub == "open" then
            skynet.call(gate, "lua", "accept", fd)
        elseif sub == "data" then
            socket.write(fd, string.pack(">s2", arg))
        end
    end)
    gate = skynet.newservice("gate")
    skynet.call(gate, "lua", "open",
        { address = "127.0.0.1", port = tonumber(skynet.getenv "echo_port"), maxclient = 100000 })
    skynet.error("READY")
end)
"#;
    echo_cycles("life-gatelua", main, &[], true);
}

#[test]
fn skynet_socket_echo_sequential_cycles_under_fd_limit() {
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local id = socket.listen("127.0.0.1", tonumber(skynet.getenv "echo_port"))
    socket.start(id, function(fd)
        socket.start(fd)
        while true do
            local d = socket.read(fd)
            if not d then break end
            socket.write(fd, d)
        end
        socket.close(fd)
    end)
    skynet.error("READY")
end)
"#;
    echo_cycles("life-echo", main, &[], false);
}

#[test]
fn a_killed_owner_takes_its_sockets_along() {
    // The holder listens, accepts and never closes; main kills it once it holds 20
    // connections. The listener and all 20 must close with it.
    let holder = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
local n = 0
skynet.start(function()
    skynet.dispatch("lua", function() skynet.ret(skynet.pack(n)) end)
    local id = socket.listen("127.0.0.1", tonumber(skynet.getenv "echo_port"))
    socket.start(id, function(fd)
        socket.start(fd)
        n = n + 1
    end)
    skynet.error("READY")
end)
"#;
    let main = r#"
local skynet = require "skynet"
require "skynet.manager"
skynet.start(function()
    local h = skynet.newservice("holder")
    while skynet.call(h, "lua") < 20 do skynet.sleep(5) end
    skynet.kill(h)
    skynet.error("KILLED")
end)
"#;
    let (_dir, mut sk, port) = boot_ready("life-kill", main, &[("holder.lua", holder)], None);
    let pid = sk.pid();
    let before = fd_count(pid);
    let mut conns: Vec<TcpStream> = (0..20).map(|_| common::connect(port, T)).collect();
    sk.wait_for("KILLED", T);
    for c in &mut conns {
        assert!(read_eof(c, T), "the dead holder's connection is closed");
    }
    // The listener went too: its fd and the 20 connections'.
    let after = wait_fds_at_most(pid, before - 1, T);
    assert_eq!(after, before - 1, "fds {before} -> {after}");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nobody listens"
    );
}

#[test]
fn a_peer_that_never_reads_cannot_pin_a_closing_socket() {
    // The service queues 16 MB for a client that never reads, then closes: the close
    // waits for the output, but not forever: 30 s without progress drops it.
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local id = socket.listen("127.0.0.1", tonumber(skynet.getenv "echo_port"))
    socket.start(id, function(fd)
        socket.start(fd)
        socket.write(fd, string.rep("x", 16 * 1024 * 1024))
        socket.close(fd)
        skynet.error("CLOSING " .. fd)
    end)
    skynet.error("READY")
end)
"#;
    let (_dir, mut sk, port) = boot_ready("life-linger", main, &[], None);
    let pid = sk.pid();
    let before = fd_count(pid);
    let c = common::connect(port, T);
    sk.wait_for("CLOSING", T);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(25));
    assert_eq!(fd_count(pid), before + 1, "still flushing at 25 s");
    let after = wait_fds_at_most(pid, before, Duration::from_secs(10));
    let waited = t0.elapsed().as_secs_f64();
    assert_eq!(after, before, "dropped after {waited:.1}s");
    assert!(
        (29.0..=33.0).contains(&waited),
        "dropped after {waited:.1}s"
    );
    drop(c);
}
