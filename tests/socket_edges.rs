//! Socket edge cases through the real binary on loopback: Lua services using
//! `skynet.socket`, Rust code as the peer. Many connections at once, a 16 MiB payload
//! each way, half-close, connect refused, UDP over IPv4 and IPv6, the send-backlog
//! WARNING with a slow reader, and fd exhaustion (EMFILE) on accept.

mod common;

use common::{read_n, Skynet, TempDir};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

fn boot(main: &str) -> (TempDir, Skynet, u16) {
    common::boot_with_port("sockedge", main, &[], TIMEOUT)
}

fn connect(port: u16) -> TcpStream {
    common::connect(port, TIMEOUT)
}

/// Deterministic pseudo-random bytes (xorshift), so reordering or loss shows up.
fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// Number of log lines containing `needle`.
fn count(sk: &Skynet, needle: &str) -> usize {
    sk.seen.iter().filter(|l| l.contains(needle)).count()
}

/// Wait until at least `n` log lines contain `needle`.
fn wait_count(sk: &mut Skynet, needle: &str, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while count(sk, needle) < n {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} x {needle:?} (have {}); log:\n{}",
            count(sk, needle),
            sk.log()
        );
        sk.collect_for(Duration::from_millis(20));
    }
}

/// Raise this process's soft RLIMIT_NOFILE to at least `want` (children inherit it).
fn raise_nofile(want: u64) {
    // SAFETY: plain getrlimit/setrlimit on this process.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if (lim.rlim_cur as u64) < want {
            assert!(
                lim.rlim_max as u64 >= want,
                "hard RLIMIT_NOFILE {} < {want}: cannot run this test",
                lim.rlim_max
            );
            lim.rlim_cur = want as libc::rlim_t;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

/// utime + stime of `pid` in clock ticks, from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // f[0] is field 3 (state); utime and stime are fields 14 and 15.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// The RLIMIT_NOFILE under which process `pid` can open exactly `free` more fds (new
/// fds take the lowest free numbers, and the limit bounds the number).
fn limit_leaving_free(pid: u32, free: usize) -> u64 {
    let used: std::collections::HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .collect();
    let (mut left, mut limit) = (free, 0u64);
    while left > 0 {
        if !used.contains(&limit) {
            left -= 1;
        }
        limit += 1;
    }
    limit
}

// ------------------------------------------------------------------------------------

#[test]
fn thousand_concurrent_connections() {
    const N: usize = 1000;
    // 1000 client fds here, 1000 accepted fds in the server (which inherits the limit).
    raise_nofile(N as u64 * 2 + 200);
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
local N = 1000
skynet.start(function()
    local lid, _, port = socket.listen("127.0.0.1", 0, 1024)
    local live, closed = 0, 0
    socket.start(lid, function(fd)
        socket.start(fd)
        live = live + 1
        if live == N then
            local tcp = 0
            for _, e in ipairs(socket.netstat()) do
                if e.type == "TCP" then tcp = tcp + 1 end
            end
            skynet.error("LIVE " .. live .. " TCP " .. tcp)
        end
        skynet.fork(function()
            while true do
                local d = socket.read(fd)
                if not d then break end
                socket.write(fd, d)
            end
            socket.close(fd)
            live = live - 1
            closed = closed + 1
            if closed == N then
                local tcp = 0
                for _, e in ipairs(socket.netstat()) do
                    if e.type == "TCP" then tcp = tcp + 1 end
                end
                skynet.error("ALL CLOSED live=" .. live .. " tcp=" .. tcp)
            end
        end)
    end)
    skynet.error("PORT " .. port)
end)
"#;
    let (_d, mut sk, port) = boot(main);
    let start = Instant::now();
    let mut conns: Vec<TcpStream> = (0..N).map(|_| connect(port)).collect();
    // Every connection is accepted and started while all are open.
    sk.wait_for(&format!("LIVE {N} TCP {N}"), TIMEOUT);
    let payloads: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            let mut p = format!("client-{i:04}:").into_bytes();
            p.extend(pattern(50 + i % 300, i as u64 + 1));
            p
        })
        .collect();
    for (c, p) in conns.iter_mut().zip(&payloads) {
        c.write_all(p).unwrap();
    }
    for (c, p) in conns.iter_mut().zip(&payloads) {
        assert_eq!(&read_n(c, p.len()), p);
    }
    drop(conns);
    sk.wait_for("ALL CLOSED live=0 tcp=0", TIMEOUT);
    eprintln!("{N} connections: {:?}", start.elapsed());
}

#[test]
fn sixteen_mib_each_way() {
    const SIZE: usize = 16 * 1024 * 1024;
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local lid, _, port = socket.listen("127.0.0.1", 0)
    socket.start(lid, function(fd)
        socket.start(fd)
        local n = tonumber(socket.readline(fd))
        local data, rest = socket.read(fd, n)
        if not data then
            skynet.error("SHORT " .. #rest)
            socket.close(fd)
            return
        end
        skynet.error("GOT " .. #data)
        assert(socket.write(fd, data))
        socket.close(fd)
        skynet.error("SENT " .. #data)
    end)
    skynet.error("PORT " .. port)
end)
"#;
    let (_d, mut sk, port) = boot(main);
    let mut c = connect(port);
    let data = pattern(SIZE, 0x5eed);
    let mut w = c.try_clone().unwrap();
    let out = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(format!("{}\n", out.len()).as_bytes()).unwrap();
        w.write_all(&out).unwrap();
    });
    let mut back = Vec::with_capacity(SIZE);
    c.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    sk.collect_for(Duration::from_millis(500));
    assert_eq!(back.len(), SIZE, "log:\n{}", sk.log());
    assert!(back == data, "16 MiB echo differs");
    sk.wait_for(&format!("GOT {SIZE}"), TIMEOUT);
    sk.wait_for(&format!("SENT {SIZE}"), TIMEOUT);
    // The read completed with far more than 128 KiB buffered, so the socket was paused;
    // closing it must not resume it (that used to end in a shutdown that discarded the
    // queued reply).
    sk.wait_for("Pause socket (", TIMEOUT);
    assert!(!sk.log().contains("error on unknown"), "{}", sk.log());
}

#[test]
fn half_close_then_final_reply() {
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local lid, _, port = socket.listen("127.0.0.1", 0)
    socket.start(lid, function(fd)
        socket.start(fd)
        local ok, rest = socket.read(fd, 100)
        skynet.error("HALF " .. tostring(ok) .. " " .. rest .. " disconnected=" .. tostring(socket.disconnected(fd)))
        -- The peer only shut down its write side: a (big) final reply still goes out,
        -- and close flushes it before the OS socket is closed.
        local big = string.rep("0123456789abcdef", 131072)  -- 2 MiB
        local w = socket.write(fd, "final:" .. rest .. "|" .. big)
        skynet.error("WRITE " .. tostring(w))
        socket.close(fd)
        skynet.error("CLOSED")
    end)
    skynet.error("PORT " .. port)
end)
"#;
    let (_d, mut sk, port) = boot(main);
    let mut c = connect(port);
    c.write_all(b"hello").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    sk.wait_for("HALF false hello disconnected=true", TIMEOUT);
    sk.wait_for("WRITE true", TIMEOUT);
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    let mut want = b"final:hello|".to_vec();
    want.extend(b"0123456789abcdef".repeat(131072));
    assert_eq!(got.len(), want.len());
    assert!(got == want, "final reply differs");
    sk.wait_for("CLOSED", TIMEOUT);
}

#[test]
fn connect_refused_returns_nil() {
    // A bound but not listening TCP socket: connecting to its port is refused, and
    // nobody else can take the port while we hold it.
    let hold = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    hold.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let refused = hold.local_addr().unwrap().as_socket().unwrap().port();
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local lid, _, port = socket.listen("127.0.0.1", 0)
    socket.start(lid, function(fd)
        socket.start(fd)
        local d = socket.read(fd)
        socket.write(fd, "srv:" .. tostring(d))
        socket.close(fd)
    end)
    local before = #socket.netstat()
    for i = 1, 3 do
        local t0 = skynet.now()
        local id, err = socket.open("127.0.0.1", REFUSED_PORT)
        skynet.error(string.format("REFUSED %d id=%s err=%s cs=%d", i, tostring(id), tostring(err), skynet.now() - t0))
    end
    skynet.error("SOCKETS " .. before .. " " .. #socket.netstat())
    -- The service still works: a connection to its own listener round-trips.
    local c = assert(socket.open("127.0.0.1", port))
    socket.write(c, "hi")
    skynet.error("AFTER " .. tostring(socket.read(c, 6)))
    socket.close(c)
    skynet.error("PORT " .. port)
end)
"#
    .replace("REFUSED_PORT", &refused.to_string());
    let (_d, mut sk, port) = boot(&main);
    for i in 1..=3 {
        let line = sk.wait_for(&format!("REFUSED {i} "), TIMEOUT);
        assert!(line.contains("id=nil err=Connection refused"), "{line}");
        let cs: u64 = line.rsplit("cs=").next().unwrap().parse().unwrap();
        assert!(cs < 100, "refused connect took {cs} cs: {line}");
    }
    let line = sk.wait_for("SOCKETS ", TIMEOUT);
    let n: Vec<&str> = line.rsplit("SOCKETS ").next().unwrap().split(' ').collect();
    assert_eq!(n[0], n[1], "failed connects leaked sockets: {line}");
    sk.wait_for("AFTER srv:hi", TIMEOUT);
    assert!(!sk.log().contains("error on"), "{}", sk.log());
    // And from outside.
    let mut c = connect(port);
    c.write_all(b"x").unwrap();
    assert_eq!(read_n(&mut c, 5), b"srv:x");
    drop(hold);
}

#[test]
fn udp_ipv4_and_ipv6() {
    let p4 = UdpSocket::bind("127.0.0.1:0").unwrap();
    let p6 = UdpSocket::bind("[::1]:0").expect("IPv6 loopback [::1] is required");
    for p in [&p4, &p6] {
        p.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
local function open(tag, host, peer)
    local u
    u = socket.udp(function(data, from)
        local ip, port = socket.udp_address(from)
        skynet.error(string.format("%s FROM %s %d %s len=%d", tag, ip, port, data, #from))
        assert(socket.sendto(u, from, "re:" .. data))
    end, host, 0)
    socket.udp_connect(u, host, peer)
    assert(socket.write(u, "hello-" .. tag))
end
skynet.start(function()
    open("v4", "127.0.0.1", PEER4)
    open("v6", "::1", PEER6)
    skynet.error("PORT 1")
end)
"#
    .replace("PEER4", &p4.local_addr().unwrap().port().to_string())
    .replace("PEER6", &p6.local_addr().unwrap().port().to_string());
    let (_d, mut sk, _) = boot(&main);
    for (tag, p, ip, alen) in [(&"v4", &p4, "127.0.0.1", 7), (&"v6", &p6, "::1", 19)] {
        let mut b = [0u8; 256];
        let (n, src) = p.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], format!("hello-{tag}").as_bytes());
        assert_eq!(src.ip().to_string(), ip);
        let ping = format!("ping-{tag}");
        p.send_to(ping.as_bytes(), src).unwrap();
        let (n, src2) = p.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], format!("re:{ping}").as_bytes());
        assert_eq!(src2, src);
        let me = p.local_addr().unwrap().port();
        sk.wait_for(&format!("{tag} FROM {ip} {me} {ping} len={alen}"), TIMEOUT);
    }
}

#[test]
fn slow_reader_warning() {
    const TOTAL: usize = 16 * 1024 * 1024;
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local lid, _, port = socket.listen("127.0.0.1", 0)
    socket.start(lid, function(fd)
        socket.start(fd)
        socket.warning(fd, function(id, size)
            skynet.error(string.format("WARN id=%d size=%d", id, size))
        end)
        local chunk = string.rep("0123456789abcdef", 4096)  -- 64 KiB
        for i = 1, 256 do
            assert(socket.write(fd, chunk))
        end
        skynet.error("WROTE")
        local ok = socket.read(fd)  -- until the peer closes
        socket.close(fd)
    end)
    skynet.error("PORT " .. port)
end)
"#;
    let (_d, mut sk, port) = boot(main);
    // A small receive buffer so the backlog stays in skynet's send queue.
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let mut c: TcpStream = s.into();
    c.set_read_timeout(Some(TIMEOUT)).unwrap();
    sk.wait_for("WROTE", TIMEOUT);
    let first = sk.wait_for("WARN id=", TIMEOUT);
    let kb: usize = first.rsplit("size=").next().unwrap().parse().unwrap();
    assert!(kb >= 1024, "first warning {kb} KiB: {first}");
    // Nobody reads: the backlog cannot drain, so no "drained" warning yet.
    sk.collect_for(Duration::from_millis(300));
    assert_eq!(count(&sk, "size=0"), 0, "{}", sk.log());
    let mut got = vec![0u8; TOTAL];
    c.read_exact(&mut got).unwrap();
    assert!(
        got.chunks(16).all(|ch| ch == b"0123456789abcdef"),
        "slow reader got corrupted data"
    );
    sk.wait_for("size=0", TIMEOUT);
    // Warnings: sizes >= 1 MiB (growing thresholds), then exactly one 0 at the end.
    let sizes: Vec<usize> = sk
        .seen
        .iter()
        .filter_map(|l| {
            l.rsplit_once("WARN id=")?
                .1
                .rsplit_once("size=")?
                .1
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(sizes.last(), Some(&0), "{sizes:?}");
    assert!(
        sizes[..sizes.len() - 1].iter().all(|&k| k >= 1024),
        "{sizes:?}"
    );
    assert_eq!(sizes.iter().filter(|&&k| k == 0).count(), 1, "{sizes:?}");
    eprintln!("warnings (KiB): {sizes:?}");
    drop(c);
}

#[test]
fn accept_emfile_no_busy_loop_and_recovery() {
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local lid, _, port = socket.listen("127.0.0.1", 0, 64)
    socket.start(lid, function(fd)
        socket.start(fd)
        skynet.error("ACCEPTED " .. fd)
        skynet.fork(function()
            while true do
                local d = socket.read(fd)
                if not d then break end
                socket.write(fd, d)
            end
            socket.close(fd)
            skynet.error("CLOSED " .. fd)
        end)
    end)
    skynet.error("PORT " .. port)
end)
"#;
    let (_d, mut sk, port) = boot(main);
    let pid = sk.pid();
    // Let the server open only a few more fds from here on.
    sk.collect_for(Duration::from_millis(100));
    let limit = limit_leaving_free(pid, 6);
    // SAFETY: prlimit on our own child process with a valid rlimit.
    unsafe {
        let mut old: libc::rlimit = std::mem::zeroed();
        assert_eq!(
            libc::prlimit(
                pid as libc::pid_t,
                libc::RLIMIT_NOFILE,
                std::ptr::null(),
                &mut old
            ),
            0
        );
        let new = libc::rlimit {
            rlim_cur: limit as libc::rlim_t,
            rlim_max: old.rlim_max,
        };
        assert_eq!(
            libc::prlimit(
                pid as libc::pid_t,
                libc::RLIMIT_NOFILE,
                &new,
                std::ptr::null_mut()
            ),
            0
        );
    }
    const CLIENTS: usize = 30;
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(port)).collect();
    let err_line = sk.wait_for("socket: accept error:", TIMEOUT);
    assert!(err_line.contains("Too many open files"), "{err_line}");
    sk.collect_for(Duration::from_millis(200));
    let accepted = count(&sk, "ACCEPTED ");
    assert!(
        (1..CLIENTS).contains(&accepted),
        "accepted {accepted}:\n{}",
        sk.log()
    );
    // Out of fds with more connections arriving: no busy loop.
    let t0 = cpu_ticks(pid);
    let mut extra: Vec<TcpStream> = (0..3).map(|_| connect(port)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let used = cpu_ticks(pid) - t0;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    assert!(
        used * 1000 / hz <= 100,
        "server used {used} ticks ({hz}/s) in 0.5 s while out of fds"
    );
    // Every connection beyond the limit was accepted and closed at once (spare-fd
    // trick, one ERROR each); the others still echo.
    sk.collect_for(Duration::from_millis(100));
    assert_eq!(
        count(&sk, "ACCEPTED "),
        accepted,
        "accepted while out of fds"
    );
    let mut echoed = 0;
    let mut refused = 0;
    for c in clients.iter_mut().chain(extra.iter_mut()) {
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let _ = c.write_all(b"ping");
        let mut b = [0u8; 4];
        match c.read(&mut b) {
            Ok(4) => {
                assert_eq!(&b, b"ping");
                echoed += 1;
            }
            Ok(0) => refused += 1,
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                refused += 1
            }
            r => panic!("neither echoed nor refused: {r:?}"),
        }
    }
    assert_eq!(echoed, accepted);
    assert_eq!(refused, CLIENTS + extra.len() - accepted);
    sk.collect_for(Duration::from_millis(100));
    let errors = count(&sk, "socket: accept error:");
    eprintln!(
        "fd limit {limit}: accepted {accepted}, {errors} accept errors, {used} ticks in 0.5 s"
    );
    assert_eq!(
        errors,
        refused,
        "one accept error per refused connection; log:\n{}",
        sk.log()
    );
    // Free the fds; afterwards a new connection is accepted and echoed.
    drop(clients);
    drop(extra);
    wait_count(&mut sk, "CLOSED ", accepted, TIMEOUT);
    let mut c = connect(port);
    c.write_all(b"again").unwrap();
    assert_eq!(read_n(&mut c, 5), b"again");
    wait_count(&mut sk, "ACCEPTED ", accepted + 1, TIMEOUT);
}

/// Idle workers poll the sockets themselves (no socket thread by default): the worker
/// that read a socket runs its handler, so while that handler runs long another
/// worker must take the poll over. Checked in both modes (`socket_thread = true`
/// gives the socket server its own thread again): a 2 s handler on one connection
/// does not hold up an echo on another.
#[test]
fn sockets_served_while_a_handler_runs_long() {
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local lid, _, port = socket.listen("127.0.0.1", 0)
    socket.start(lid, function(fd)
        socket.start(fd)
        while true do
            local line = socket.readline(fd)
            if not line then break end
            socket.write(fd, line .. "\n")
        end
    end)
    skynet.newservice("spin")
    skynet.error("PORT " .. port)
end)
"#;
    let spin = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local lid, _, port = socket.listen("127.0.0.1", 0)
    socket.start(lid, function(fd)
        socket.start(fd)
        socket.read(fd, 1)
        -- Tell the peer straight through the fd: a log line would hand the logger to
        -- another worker and mask a missing poll take-over.
        socket.write(fd, "s")
        local t = os.clock()
        while os.clock() - t < 2 do end
        skynet.error("SPIN end")
        socket.write(fd, "x")
    end)
    skynet.error("SPINPORT " .. port)
end)
"#;
    for mode in ["", "socket_thread = true"] {
        let dir = TempDir::new("sockedge");
        dir.write("main.lua", main);
        dir.write("spin.lua", spin);
        let conf = dir.write("config", &common::config_text(dir.path(), "main", mode));
        let mut sk = Skynet::start(&conf, dir.path());
        let port_of =
            |line: String| -> u16 { line.rsplit(' ').next().unwrap().trim().parse().unwrap() };
        let spin_port = port_of(sk.wait_for("SPINPORT ", TIMEOUT));
        let port = port_of(sk.wait_for("] PORT ", TIMEOUT));
        let mut echo = connect(port);
        let mut busy = connect(spin_port);
        // Warm the echo path, then start the long handler.
        echo.write_all(b"warm\n").unwrap();
        assert_eq!(read_n(&mut echo, 5), b"warm\n");
        busy.write_all(b"!").unwrap();
        assert_eq!(read_n(&mut busy, 1), b"s");
        let t = Instant::now();
        echo.write_all(b"ping\n").unwrap();
        assert_eq!(read_n(&mut echo, 5), b"ping\n");
        let took = t.elapsed();
        sk.collect_for(Duration::from_millis(10));
        assert_eq!(
            count(&sk, "SPIN end"),
            0,
            "[{mode}] echo answered only after the spin"
        );
        assert!(
            took < Duration::from_secs(1),
            "[{mode}] echo took {took:?} during a long handler"
        );
        assert_eq!(read_n(&mut busy, 1), b"x");
        sk.wait_for("SPIN end", TIMEOUT);
    }
}
