//! Cluster mode between real `skynet` processes on loopback (docs/spec/cluster.md):
//! two nodes calling, sending, querying, proxying and registering each other in both
//! directions; every failure the spec defines (a frozen peer: call timeout and
//! heartbeat; a send to a down node: logged and counted; an unknown node: an immediate
//! error naming it; a peer killed mid-call: the reason, then a reconnect once it is
//! back; a connect that never completes; a sender that falls behind its callers; a
//! peer that stops reading); hostile frames from a raw TCP client, and hostile
//! responses from a fake node, close that link with a log line and leave the node
//! serving; fds come back when links close; both ends of every link have TCP_NODELAY
//! (read from the kernel through duplicates of the node's fds).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{config_text, fd_count, free_port, tcp_sockets, wait_fds_at_most, Skynet, TempDir};

const T: Duration = Duration::from_secs(20);

/// A node's echo service: "echo" returns its arguments, "sleep" sleeps then answers,
/// "push" logs, "fail" raises, no arguments answers "pong".
const ECHO: &str = r#"
local skynet = require "skynet"
skynet.start(function()
    skynet.dispatch("lua", function(session, source, cmd, ...)
        if cmd == nil then skynet.retpack("pong")
        elseif cmd == "echo" then skynet.retpack(...)
        elseif cmd == "sleep" then skynet.sleep(...) skynet.retpack("slept")
        elseif cmd == "push" then skynet.error("GOT PUSH", ...)
        elseif cmd == "fail" then error("boom")
        end
    end)
end)
"#;

/// A node: registers echo as "echo", opens its own entry of the cluster table, says
/// "<NAME> READY", then runs `body` (Lua, with `cluster` and `skynet` in scope).
fn node_main(name: &str, body: &str) -> String {
    format!(
        r#"
local skynet = require "skynet"
local cluster = require "skynet.cluster"
local function elapsed(t0) return (skynet.hpc() - t0) / 1e9 end
skynet.start(function()
    cluster.register("echo", skynet.newservice("echo"))
    cluster.open "{name}"
    skynet.error("{upper} READY")
    {body}
end)
"#,
        upper = name.to_uppercase()
    )
}

struct Cluster {
    dir: TempDir,
    ports: Vec<(String, u16)>,
}

impl Cluster {
    /// A temp dir with echo.lua and a cluster table naming `nodes` at free ports
    /// (plus `extra` raw lines).
    fn new(tag: &str, nodes: &[&str], extra: &str) -> Cluster {
        let dir = TempDir::new(tag);
        dir.write("echo.lua", ECHO);
        let ports: Vec<(String, u16)> =
            nodes.iter().map(|n| (n.to_string(), free_port())).collect();
        let mut table = String::new();
        for (n, p) in &ports {
            table.push_str(&format!("{n} = \"127.0.0.1:{p}\"\n"));
        }
        table.push_str(extra);
        dir.write("clustername.lua", &table);
        Cluster { dir, ports }
    }

    fn port(&self, node: &str) -> u16 {
        self.ports.iter().find(|(n, _)| n == node).unwrap().1
    }

    /// Start node `name` running `body`, with extra config lines.
    fn start(&self, name: &str, body: &str, conf_extra: &str) -> Skynet {
        let main = format!("main_{name}");
        self.dir
            .write(&format!("{main}.lua"), &node_main(name, body));
        let extra = format!(
            "cluster = \"{}/clustername.lua\"\n{conf_extra}",
            self.dir.path().display()
        );
        let conf = self.dir.write(
            &format!("config.{name}"),
            &config_text(self.dir.path(), &main, &extra),
        );
        let mut sk = Skynet::start(&conf, self.dir.path());
        sk.wait_for(&format!("{} READY", name.to_uppercase()), T);
        sk
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn signal(sk: &Skynet, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(sk.pid() as i32, sig) };
}

#[test]
fn two_nodes_call_send_query_proxy_register_both_ways() {
    let cl = Cluster::new("cluster_two", &["a", "b"], "");
    let mut b = cl.start(
        "b",
        r#"
    -- b calls a back once a is up
    skynet.fork(function()
        while true do
            local ok, r = pcall(cluster.call, "a", "@echo", "echo", "from b")
            if ok then skynet.error("B CALLED A", r) break end
            skynet.sleep(10)
        end
        local addr = cluster.query("a", "echo")
        skynet.error("B QUERIED A", type(addr), addr)
    end)
"#,
        "",
    );
    let base_fds = fd_count(b.pid());
    let mut a = cl.start(
        "a",
        r#"
    local r1, r2, r3 = cluster.call("b", "@echo", "echo", 1, "two", {3})
    skynet.error("A ECHO", r1, r2, r3[1])
    local addr = cluster.query("b", "echo")
    skynet.error("A QUERY", math.type(addr))
    skynet.error("A BYADDR", cluster.call("b", addr, "echo", "by address"))
    local big = string.rep("x", 100000) .. "END"
    local back = cluster.call("b", "@echo", "echo", big)
    skynet.error("A BIG", #back, back == big)
    local p = cluster.proxy("b", "@echo")
    skynet.error("A PROXY", skynet.call(p, "lua", "echo", "via proxy"))
    skynet.send(p, "lua", "push", "through proxy")
    local p2 = cluster.proxy "b@echo"
    skynet.error("A PROXY2", p2 == p)
    cluster.send("b", "@echo", "push", "hello", 42)
    cluster.send("b", addr, "push", "big", #big, big:sub(-3))
    local ok, err = pcall(cluster.call, "b", "@echo", "fail")
    skynet.error("A REMOTE ERROR", ok, err)
    ok, err = pcall(cluster.call, "b", "@nobody", "echo")
    skynet.error("A BAD NAME", ok, err)
    ok, err = pcall(cluster.query, "b", "nobody")
    skynet.error("A BAD QUERY", ok, err)
    cluster.register("tmp")
    cluster.unregister("tmp")
    skynet.error("A DONE")
"#,
        "",
    );
    a.wait_for("A DONE", T);
    assert!(a.log().contains("A ECHO 1 two 3"), "{}", a.log());
    assert!(a.log().contains("A QUERY integer"), "{}", a.log());
    assert!(a.log().contains("A BYADDR by address"), "{}", a.log());
    assert!(a.log().contains("A BIG 100003 true"), "{}", a.log());
    assert!(a.log().contains("A PROXY via proxy"), "{}", a.log());
    assert!(a.log().contains("A PROXY2 true"), "{}", a.log());
    let l = a.wait_for("A REMOTE ERROR", T);
    assert!(
        l.contains("false") && l.contains("cluster node [b]") && l.contains("call failed"),
        "{l}"
    );
    let l = a.wait_for("A BAD NAME", T);
    assert!(
        l.contains("false") && l.contains("Invalid name @nobody"),
        "{l}"
    );
    let l = a.wait_for("A BAD QUERY", T);
    assert!(l.contains("false") && l.contains("name not found"), "{l}");
    b.wait_for("GOT PUSH hello 42", T);
    b.wait_for("GOT PUSH big 100003 END", T);
    b.wait_for("GOT PUSH through proxy", T);
    b.wait_for("B CALLED A from b", T);
    let l = b.wait_for("B QUERIED A", T);
    assert!(l.contains("number"), "{l}");
    assert!(b.log().contains("Register [echo]"), "{}", b.log());
    assert!(a.log().contains("Unregister [tmp]"), "{}", a.log());
    // a leaves: b's agent for a's link closes its fd (b's own sender to a stays, so
    // allow it plus the listener's baseline)
    a.stop();
    let n = wait_fds_at_most(b.pid(), base_fds + 1, Duration::from_secs(10));
    assert!(n <= base_fds + 1, "fds {n} > {}", base_fds + 1);
    b.stop();
}

#[test]
fn unknown_node_is_an_immediate_error_and_a_down_node_send_is_logged_and_counted() {
    let dead = free_port(); // nothing listens there
    let cl = Cluster::new(
        "cluster_down",
        &["a"],
        &format!("c = \"127.0.0.1:{dead}\"\nd = false\n"),
    );
    let mut a = cl.start(
        "a",
        r#"
    local t0 = skynet.hpc()
    local ok, err = pcall(cluster.call, "nosuch", "@echo", "echo")
    skynet.error("UNKNOWN", ok, err, string.format("%.3f", elapsed(t0)))
    ok, err = pcall(cluster.call, "d", "@echo", "echo")
    skynet.error("DOWNCONF", ok, err)
    cluster.send("d", "@echo", "push", "x")
    cluster.send("nosuch", "@echo", "push", "x")
    t0 = skynet.hpc()
    ok, err = pcall(cluster.call, "c", "@echo", "echo")
    skynet.error("REFUSED", ok, err, string.format("%.3f", elapsed(t0)))
    for i = 1, 5 do cluster.send("c", "@echo", "push", i) end
    skynet.sleep(20)
    ok, err = pcall(cluster.open, "a")   -- already listening there
    skynet.error("LISTEN AGAIN", ok, err)
    local st = cluster.stat("c")
    skynet.error("STAT dropped", st.dropped, "connected", st.connected)
    skynet.error("A DONE")
"#,
        "",
    );
    a.wait_for("A DONE", T);
    let l = a.wait_for("UNKNOWN", T);
    assert!(
        l.contains("false") && l.contains("cluster node [nosuch] is absent"),
        "{l}"
    );
    let secs: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs < 1.0, "unknown node took {secs}s: {l}");
    let l = a.wait_for("DOWNCONF", T);
    assert!(l.contains("cluster node [d] is down"), "{l}");
    let l = a.wait_for("cluster.send to node [d]", T);
    assert!(
        l.contains("1 message(s) dropped: cluster node [d] is down"),
        "{l}"
    );
    let l = a.wait_for("cluster.send to node [nosuch]", T);
    assert!(
        l.contains("1 message(s) dropped: cluster node [nosuch] is absent"),
        "{l}"
    );
    let l = a.wait_for("REFUSED", T);
    assert!(
        l.contains("false") && l.contains("cluster node [c]") && l.contains("connect failed"),
        "{l}"
    );
    let l = a.wait_for("cluster.send dropped", T);
    assert!(l.contains("cluster node [c]"), "{l}");
    let l = a.wait_for("LISTEN AGAIN", T);
    assert!(
        l.contains("false call failed: cluster: listen on 127.0.0.1:"),
        "{l}"
    );
    let l = a.wait_for("STAT dropped", T);
    assert!(l.contains("STAT dropped 5 connected false"), "{l}");
    a.stop();
}

#[test]
fn frozen_peer_times_out_then_heartbeat_closes_the_link() {
    let cl = Cluster::new("cluster_frozen", &["a", "b"], "");
    let mut b = cl.start("b", "", "");
    let mut a = cl.start(
        "a",
        r#"
    skynet.error("FIRST", cluster.call("b", "@echo", "echo", "ok"))
    skynet.sleep(50)    -- the test freezes b now
    local t0 = skynet.hpc()
    local ok, err = pcall(cluster.timeout_call, 30, "b", "@echo", "echo", "frozen")
    skynet.error("TIMED OUT", ok, err, string.format("%.2f", elapsed(t0)))
    -- the default timeout is off: the heartbeat (1 s) finds the link dead
    t0 = skynet.hpc()
    ok, err = pcall(cluster.call, "b", "@echo", "echo", "frozen")
    skynet.error("HEARTBEAT", ok, err, string.format("%.2f", elapsed(t0)))
    skynet.sleep(50)    -- the test thaws b now
    local r
    for i = 1, 50 do
        ok, r = pcall(cluster.call, "b", "@echo", "echo", "thawed")
        if ok then break end
        skynet.sleep(10)
    end
    skynet.error("AFTER", ok, r)
"#,
        "cluster_heartbeat = 100\n",
    );
    a.wait_for("FIRST ok", T);
    signal(&b, libc::SIGSTOP);
    let l = a.wait_for("TIMED OUT", T);
    let secs: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        l.contains("false") && l.contains("timeout: no reply in 0.30 s"),
        "{l}"
    );
    assert!((0.25..5.0).contains(&secs), "{l}");
    let l = a.wait_for("HEARTBEAT", T);
    let secs: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        l.contains("false") && l.contains("heartbeat timeout"),
        "{l}"
    );
    assert!(secs < 5.0, "{l}");
    signal(&b, libc::SIGCONT);
    let l = a.wait_for("AFTER", T);
    assert!(l.contains("AFTER true thawed"), "{l}");
    a.stop();
    b.stop();
}

#[test]
fn peer_killed_mid_call_fails_with_the_reason_then_reconnects() {
    let cl = Cluster::new("cluster_killed", &["a", "b"], "");
    let mut b = cl.start("b", "", "");
    let mut a = cl.start(
        "a",
        r#"
    skynet.error("FIRST", cluster.call("b", "@echo", "echo", "ok"))
    skynet.fork(function()
        skynet.error("CALLING SLOW")
        local t0 = skynet.hpc()
        local ok, err = pcall(cluster.call, "b", "@echo", "sleep", 1000)
        skynet.error("KILLED", ok, err, string.format("%.2f", elapsed(t0)))
        local r
        for i = 1, 200 do
            ok, r = pcall(cluster.call, "b", "@echo", "echo", "back")
            if ok then break end
            skynet.sleep(5)
        end
        skynet.error("RECONNECTED", ok, r)
    end)
"#,
        "",
    );
    a.wait_for("CALLING SLOW", T);
    std::thread::sleep(Duration::from_millis(200));
    let linked = fd_count(a.pid());
    b.child.kill().unwrap();
    let _ = b.child.wait();
    let l = a.wait_for("KILLED", T);
    assert!(
        l.contains("false") && l.contains("cluster node [b]") && l.contains("closed the link"),
        "{l}"
    );
    let secs: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs < 5.0, "{l}");
    // the dead link's fd is closed (b's agent link to a is gone too)
    let n = wait_fds_at_most(a.pid(), linked - 1, Duration::from_secs(10));
    assert!(n < linked, "fds {n}, {linked} with the link");
    let mut b2 = cl.start("b", "", "");
    let l = a.wait_for("RECONNECTED", T);
    assert!(l.contains("RECONNECTED true back"), "{l}");
    a.stop();
    b2.stop();
}

/// A valid request frame: `@echo`, session, no arguments (echo answers "pong").
fn echo_request(session: u32) -> Vec<u8> {
    let name = b"@echo";
    let body_len = 2 + name.len() + 4;
    let mut f = vec![
        (body_len >> 8) as u8,
        body_len as u8,
        0x80,
        name.len() as u8,
    ];
    f.extend_from_slice(name);
    f.extend_from_slice(&session.to_le_bytes());
    f
}

/// Whether the peer closes the connection within the timeout (EOF or reset).
fn closed_by_peer(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn hostile_frames_close_the_link_and_the_node_keeps_serving() {
    let cl = Cluster::new("cluster_hostile", &["b"], "");
    let mut b = cl.start("b", "", "cluster_maxmsg = 1000000\n");
    let port = cl.port("b");
    let base = fd_count(b.pid());
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown type",
            vec![0, 3, 0x55, 1, 2],
            "Invalid req package type",
        ),
        (
            "short numeric",
            vec![0, 3, 0, 1, 2],
            "Invalid cluster message",
        ),
        (
            "bad multi head",
            vec![0, 4, 1, 1, 2, 3],
            "multi req must be 13",
        ),
        (
            "oversized multi",
            {
                let mut f = vec![0, 13, 1];
                f.extend_from_slice(&10u32.to_le_bytes());
                f.extend_from_slice(&1u32.to_le_bytes());
                f.extend_from_slice(&50_000_000u32.to_le_bytes());
                f
            },
            "cluster_maxmsg",
        ),
        (
            "part without head",
            vec![0, 6, 2, 9, 0, 0, 0, 7],
            "without its head",
        ),
        (
            "multi that overflows",
            {
                let mut f = vec![0, 13, 1];
                f.extend_from_slice(&10u32.to_le_bytes());
                f.extend_from_slice(&1u32.to_le_bytes());
                f.extend_from_slice(&100u32.to_le_bytes());
                // parts that never end, past the announced size
                for _ in 0..5 {
                    let body = 5 + 60;
                    f.extend_from_slice(&[(body >> 8) as u8, body as u8, 2]);
                    f.extend_from_slice(&1u32.to_le_bytes());
                    f.extend_from_slice(&[0x61; 60]);
                }
                f
            },
            "more multi-part data than announced",
        ),
        (
            "65 unfinished multi-parts",
            {
                let mut f = Vec::new();
                for session in 1..=65u32 {
                    f.extend_from_slice(&[0, 13, 1]);
                    f.extend_from_slice(&10u32.to_le_bytes());
                    f.extend_from_slice(&session.to_le_bytes());
                    f.extend_from_slice(&100u32.to_le_bytes());
                }
                f
            },
            "too many unfinished multi-part requests",
        ),
    ];
    for (what, frame, log) in &cases {
        let mut s = connect();
        s.write_all(frame).unwrap();
        assert!(closed_by_peer(&mut s), "{what}: link not closed");
        let l = b.wait_for(log, T);
        assert!(
            l.contains("cluster link from 127.0.0.1:") && l.contains("closing it"),
            "{what}: {l}"
        );
    }
    // A truncated frame (the peer goes away mid-frame) and a multi-part that never
    // ends: the node drops them when the link closes.
    {
        let mut s = connect();
        s.write_all(&[0, 100, 0x80, 4]).unwrap();
        let mut s2 = connect();
        let mut f = vec![0, 13, 1];
        f.extend_from_slice(&10u32.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&100_000u32.to_le_bytes());
        s2.write_all(&f).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    // still serving: a valid request over a fresh link gets its answer
    let mut s = connect();
    s.write_all(&echo_request(7)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = [0u8; 2];
    s.read_exact(&mut head).unwrap();
    let len = (head[0] as usize) << 8 | head[1] as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    assert_eq!(&body[..5], &[7, 0, 0, 0, 1], "session 7, ok");
    assert!(body[5..].windows(4).any(|w| w == b"pong"), "{body:?}");
    drop(s);
    // every link's fd is given back
    let n = wait_fds_at_most(b.pid(), base, Duration::from_secs(10));
    assert!(n <= base, "fds {n} > {base}:\n{}", b.log());
    assert!(!b.log().contains("panicked"), "{}", b.log());
    b.stop();
    let _ = cl.path();
}

#[test]
fn the_config_timeout_applies_to_every_call_and_late_replies_are_dropped() {
    let cl = Cluster::new("cluster_cfgtimeout", &["a", "b"], "");
    let mut b = cl.start("b", "", "");
    let body = r#"
    local t0 = skynet.hpc()
    local ok, err = pcall(cluster.call, "b", "@echo", "sleep", 150)
    skynet.error("SLOW", ok, err, string.format("%.2f", elapsed(t0)))
    -- a per-call timeout wins over the default
    skynet.error("LONGER", cluster.timeout_call(500, "b", "@echo", "sleep", 50))
    skynet.sleep(150)   -- the slow reply arrives late and is dropped
    skynet.error("AFTER", cluster.call("b", "@echo", "echo", "fine"))
    skynet.error("TIMEOUTS", cluster.stat("b").timeouts)
    -- reload: the node goes down (its link closes), then comes back
    cluster.reload { b = false }
    ok, err = pcall(cluster.call, "b", "@echo", "echo", "x")
    skynet.error("DOWNED", ok, err)
    cluster.reload { b = "127.0.0.1:BPORT" }
    skynet.error("UPAGAIN", cluster.call("b", "@echo", "echo", "again"))
"#
    .replace("BPORT", &cl.port("b").to_string());
    let mut a = cl.start("a", &body, "cluster_timeout = 20\n");
    let l = a.wait_for("SLOW", T);
    assert!(
        l.contains("false") && l.contains("timeout: no reply in 0.20 s"),
        "{l}"
    );
    let secs: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((0.15..3.0).contains(&secs), "{l}");
    a.wait_for("LONGER slept", T);
    a.wait_for("AFTER fine", T);
    a.wait_for("TIMEOUTS 1", T);
    let l = a.wait_for("DOWNED", T);
    assert!(
        l.contains("false") && l.contains("cluster node [b]") && l.contains("is down"),
        "{l}"
    );
    a.wait_for("UPAGAIN again", T);
    a.stop();
    b.stop();
}

/// A loopback address whose connects never complete: a listener with a backlog of 0
/// that never accepts, its accept queue filled, so the kernel drops further SYNs and
/// a connect stays in SYN_SENT (neither succeeds nor fails) for minutes. Returns the
/// listener and the connections that fill it (keep both alive) and the port.
fn black_hole() -> (socket2::Socket, Vec<TcpStream>, u16) {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fill = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fill.push(s),
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
                return (l, fill, addr.port());
            }
        }
    }
    panic!("the accept queue never filled: connects to it do not hang");
}

#[test]
fn a_connect_that_never_completes_fails_naming_the_node_within_the_timeouts() {
    let (_hole, _fill, hole) = black_hole();
    let cl = Cluster::new(
        "cluster_hole",
        &["a", "t"],
        &format!("hole = \"127.0.0.1:{hole}\"\n"),
    );
    // Heartbeat 0.5 s: a connect that hangs is given up after 2 x 0.5 s, with no call
    // timeout configured. The waiting call and the pushes queued meanwhile fail with
    // that reason; the next call tries again (and times out again, no hang).
    let mut a = cl.start(
        "a",
        r#"
    cluster.send("hole", "@echo", "push", "queued while connecting")
    local t0 = skynet.hpc()
    local ok, err = pcall(cluster.call, "hole", "@echo", "echo", "x")
    skynet.error("HOLE1", ok, err, string.format("%.2f", elapsed(t0)))
    skynet.sleep(20)
    t0 = skynet.hpc()
    ok, err = pcall(cluster.call, "hole", "@echo", "echo", "y")
    skynet.error("HOLE2", ok, err, string.format("%.2f", elapsed(t0)))
    local st = cluster.stat("hole")
    skynet.error("STAT connects", st.connects, "failures", st.failures, "dropped", st.dropped,
        "pending", st.pending, "backlog", st.backlog, "connected", st.connected)
"#,
        "cluster_heartbeat = 50\n",
    );
    // The default call timeout (cluster_timeout) also bounds a call whose link is
    // still connecting, with the heartbeat (and so the connect timeout) off.
    let mut t = cl.start(
        "t",
        r#"
    local t0 = skynet.hpc()
    local ok, err = pcall(cluster.call, "hole", "@echo", "echo", "x")
    skynet.error("HOLE3", ok, err, string.format("%.2f", elapsed(t0)))
    t0 = skynet.hpc()
    ok, err = pcall(cluster.timeout_call, 10, "hole", "@echo", "echo", "z")
    skynet.error("HOLE4", ok, err, string.format("%.2f", elapsed(t0)))
"#,
        "cluster_heartbeat = 0\ncluster_timeout = 30\n",
    );
    let prefix = format!("cluster node [hole] (127.0.0.1:{hole})");
    let secs = |l: &str| -> f64 { l.rsplit(' ').next().unwrap().parse().unwrap() };
    for tag in ["HOLE1", "HOLE2"] {
        let l = a.wait_for(tag, T);
        assert!(
            l.contains(&format!(
                "{tag} false call failed: {prefix} connect timed out after 1."
            )),
            "{l}"
        );
        assert!((0.95..4.0).contains(&secs(&l)), "{l}");
    }
    let l = a.wait_for("cluster.send dropped", T);
    assert!(
        l.contains(&prefix) && l.contains("connect timed out"),
        "{l}"
    );
    let l = a.wait_for("STAT connects", T);
    assert!(
        l.contains("STAT connects 2 failures 2 dropped 1 pending 0 backlog 0 connected false"),
        "{l}"
    );
    let l = t.wait_for("HOLE3", T);
    assert!(
        l.contains(&format!(
            "HOLE3 false call failed: {prefix} timeout: no reply in 0.30 s"
        )),
        "{l}"
    );
    assert!((0.25..3.0).contains(&secs(&l)), "{l}");
    let l = t.wait_for("HOLE4", T);
    assert!(
        l.contains(&format!(
            "HOLE4 false call failed: {prefix} timeout: no reply in 0.10 s"
        )),
        "{l}"
    );
    assert!((0.05..3.0).contains(&secs(&l)), "{l}");
    a.stop();
    t.stop();
}

#[test]
fn every_cluster_link_has_tcp_nodelay_on_both_ends() {
    let cl = Cluster::new("cluster_nodelay", &["a", "b"], "");
    let mut b = cl.start(
        "b",
        r#"
    skynet.fork(function()
        while not pcall(cluster.call, "a", "@echo", "echo") do skynet.sleep(5) end
        skynet.error("B LINKED")
    end)
"#,
        "",
    );
    let mut a = cl.start(
        "a",
        r#"
    skynet.error("A LINKED", cluster.call("b", "@echo", "echo", "x"))
"#,
        "",
    );
    a.wait_for("A LINKED x", T);
    b.wait_for("B LINKED", T);
    // Each node holds its sender's link to the other (peer = the other's cluster
    // port) and the link it accepted from the other (local = its own cluster port).
    for (me, other, sk) in [("a", "b", &a), ("b", "a", &b)] {
        let socks = tcp_sockets(sk.pid());
        let (mine, theirs) = (cl.port(me), cl.port(other));
        let sent: Vec<_> = socks
            .iter()
            .filter(|s| s.peer.map(|p| p.port()) == Some(theirs))
            .collect();
        let accepted: Vec<_> = socks
            .iter()
            .filter(|s| s.local.port() == mine && s.peer.is_some())
            .collect();
        assert_eq!(sent.len(), 1, "{me}'s sender link to {other}: {socks:?}");
        assert_eq!(accepted.len(), 1, "{me}'s accepted link: {socks:?}");
        for s in sent.iter().chain(&accepted) {
            assert!(s.nodelay, "{me}: TCP_NODELAY not set on {s:?}");
        }
    }
    a.stop();
    b.stop();
}

/// A fake node: accepts one link, reads one request frame and returns its session.
fn accept_request(l: &std::net::TcpListener) -> (TcpStream, u32) {
    let deadline = Instant::now() + T;
    let mut s = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no connection from the sender");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{e}"),
        }
    };
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut head = [0u8; 2];
    s.read_exact(&mut head).unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(head) as usize];
    s.read_exact(&mut body).unwrap();
    assert_eq!(body[0], 0x80, "a request by name: {body:?}");
    let at = 2 + body[1] as usize;
    (s, u32::from_le_bytes(body[at..at + 4].try_into().unwrap()))
}

/// A response frame: 2-byte big-endian length, session, type, data.
fn response(session: u32, ty: u8, data: &[u8]) -> Vec<u8> {
    let mut f = ((5 + data.len()) as u16).to_be_bytes().to_vec();
    f.extend_from_slice(&session.to_le_bytes());
    f.push(ty);
    f.extend_from_slice(data);
    f
}

#[test]
fn hostile_responses_close_the_link_and_fail_the_call_with_the_reason() {
    let evil = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    evil.set_nonblocking(true).unwrap();
    let port = evil.local_addr().unwrap().port();
    let cl = Cluster::new(
        "cluster_evil",
        &["a"],
        &format!("evil = \"127.0.0.1:{port}\"\n"),
    );
    // a calls the fake node once per case; each failure closes the link and the next
    // call opens a new one.
    let mut a = cl.start(
        "a",
        r#"
    for i = 1, 6 do
        local ok, err = pcall(cluster.call, "evil", "@x", "echo", i)
        skynet.error("EVIL" .. i, ok, err)
    end
"#,
        "cluster_maxmsg = 1000000\n",
    );
    let u32le = |n: u32| n.to_le_bytes().to_vec();
    type Case = (Box<dyn Fn(u32) -> Vec<u8>>, &'static str);
    let cases: Vec<Case> = vec![
        (
            Box::new(|_| vec![0, 3, 1, 2, 3]),
            "sent a malformed response frame",
        ),
        (
            Box::new(move |ses| response(ses, 2, &u32le(2_000_000))),
            "sent a 2000000-byte response (cluster_maxmsg is 1000000)",
        ),
        (
            Box::new(move |ses| {
                let mut f = response(ses, 2, &10u32.to_le_bytes());
                f.extend(response(ses, 3, &[b'x'; 20]));
                f
            }),
            "sent more multi-part data than announced",
        ),
        (
            Box::new(move |ses| {
                let mut f = response(ses, 2, &100u32.to_le_bytes());
                f.extend(response(ses, 4, &[b'x'; 10]));
                f
            }),
            "sent a multi-part response of the wrong size",
        ),
        (
            Box::new(move |ses| response(ses, 3, &[b'x'; 10])),
            "sent a response part without its head",
        ),
    ];
    let prefix = format!("cluster node [evil] (127.0.0.1:{port})");
    for (i, (frames, reason)) in cases.iter().enumerate() {
        let (mut s, session) = accept_request(&evil);
        s.write_all(&frames(session)).unwrap();
        assert!(closed_by_peer(&mut s), "{reason}: link not closed");
        let l = a.wait_for(&format!("EVIL{} ", i + 1), T);
        assert!(
            l.contains(&format!("false call failed: {prefix} {reason}")),
            "{l}"
        );
        let l = a.wait_for(&format!("{prefix} {reason}: closing the link"), T);
        assert!(!l.is_empty());
    }
    // The same harness with a well-formed answer (skynet.pack "fine") succeeds.
    let (mut s, session) = accept_request(&evil);
    s.write_all(&response(session, 1, b"\x24fine")).unwrap();
    a.wait_for("EVIL6 true fine", T);
    assert!(!a.log().contains("panicked"), "{}", a.log());
    a.stop();
}

#[test]
fn a_sender_that_falls_behind_raises_overload_and_its_queue_stays_bounded() {
    let cl = Cluster::new("cluster_overload", &["a", "b"], "");
    let mut b = cl.start("b", "", "");
    // One worker thread: the sender cannot run while the loop below sends, so its
    // queue grows by one per send until cluster.send raises.
    let mut a = cl.start(
        "a",
        r#"
    cluster.call("b", "@echo", "echo")
    local n = 0
    local ok, err = pcall(function()
        for i = 1, 100000 do
            cluster.send("b", "@echo", "noop", i)
            n = i
        end
    end)
    skynet.error("OVERLOAD", ok, n, err)
    skynet.error("AFTER", cluster.call("b", "@echo", "echo", "drained"))
"#,
        "thread = 1\ncluster_maxqueue = 100\n",
    );
    let l = a.wait_for("OVERLOAD", T);
    assert!(
        l.contains("OVERLOAD false")
            && l.contains("cluster.send to node [b]: sender overloaded (")
            && l.contains("messages queued, cluster_maxqueue is 100)"),
        "{l}"
    );
    let n: usize = l.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!((100..=192).contains(&n), "{n} sends before the error: {l}");
    a.wait_for("AFTER drained", T);
    a.stop();
    b.stop();
}

#[test]
fn a_link_whose_peer_stops_reading_fails_calls_with_send_queue_full() {
    let cl = Cluster::new("cluster_unread", &["a", "b"], "");
    let mut b = cl.start("b", "", "");
    let go = cl.path().join("frozen");
    // cluster_queue = 100 KB: the socket layer's first unsent-bytes warning (1 MB) blocks
    // the link. Heartbeats off, so only the queue limit can fail the call.
    let body = r#"
    cluster.call("b", "@echo", "echo")
    skynet.error("LINKED")
    while not io.open("GO") do skynet.sleep(5) end
    local big = string.rep("x", 60000)
    local sent = 0
    for i = 1, 2000 do
        cluster.send("b", "@echo", "noop", big)
        sent = i
        if i % 16 == 0 then
            skynet.sleep(1)
            if cluster.stat("b").unsent > 0 then break end
        end
    end
    local st = cluster.stat("b")
    skynet.error("PUSHED", sent, "unsent", st.unsent)
    local ok, err = pcall(cluster.call, "b", "@echo", "echo", "blocked")
    skynet.error("BLOCKED", ok, err)
    for i = 1, 3 do cluster.send("b", "@echo", "noop", "dropped") end
    skynet.sleep(1)
    skynet.error("DROPPED", cluster.stat("b").dropped)
    skynet.error("THAW NOW")
    local r
    for i = 1, 200 do
        ok, r = pcall(cluster.call, "b", "@echo", "echo", "drained")
        if ok then break end
        skynet.sleep(5)
    end
    skynet.error("AFTER", ok, r)
"#
    .replace("GO", &go.display().to_string());
    let mut a = cl.start(
        "a",
        &body,
        "cluster_heartbeat = 0\ncluster_queue = 100000\n",
    );
    a.wait_for("LINKED", T);
    signal(&b, libc::SIGSTOP);
    std::fs::write(&go, "").unwrap();
    let l = a.wait_for("PUSHED", T);
    assert!(!l.contains("unsent 0"), "the link never backed up: {l}");
    let l = a.wait_for("BLOCKED", T);
    assert!(
        l.contains("BLOCKED false call failed: cluster node [b] (127.0.0.1:")
            && l.contains(") send queue full ("),
        "{l}"
    );
    let l = a.wait_for("DROPPED", T);
    let dropped: u64 = l.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(dropped >= 3, "{l}");
    a.wait_for("THAW NOW", T);
    signal(&b, libc::SIGCONT);
    a.wait_for("AFTER true drained", T);
    a.stop();
    b.stop();
}

#[test]
fn a_remote_snax_service_is_called_and_posted_through_cluster_snax() {
    let cl = Cluster::new("cluster_snax", &["a", "b"], "");
    cl.dir.write(
        "snaxping.lua",
        r#"
local skynet = require "skynet"
local snax = require "skynet.snax"
function response.ping(x) return "pong " .. x, skynet.self() end
function accept.hello(x) skynet.error("SNAX HELLO", x) end
function init() snax.enablecluster() end   -- cluster requests arrive as "lua"
"#,
    );
    let snax = format!("snax = \"{}/?.lua\"\n", cl.path().display());
    let mut b = cl.start(
        "b",
        r#"
    local s = require("skynet.snax").uniqueservice("snaxping")
    skynet.error("B SNAX", s.handle)
"#,
        &snax,
    );
    let handle = b.wait_for("B SNAX", T);
    let handle = handle.rsplit(' ').next().unwrap().to_string();
    let mut a = cl.start(
        "a",
        r#"
    local obj = cluster.snax("b", "snaxping")   -- the address from b's .service
    local r, h = obj.req.ping("x")
    skynet.error("A SNAX", r, h)
    obj.post.hello("there")
"#,
        &snax,
    );
    let l = a.wait_for("A SNAX", T);
    assert!(l.ends_with(&format!("A SNAX pong x {handle}")), "{l}");
    b.wait_for("SNAX HELLO there", T);
    a.stop();
    b.stop();
}

#[test]
fn reload_rereads_the_cluster_file_and_a_changed_address_moves_the_link() {
    let cl = Cluster::new("cluster_reload", &["a", "b", "c"], "");
    let mut b = cl.start("b", "", "");
    let mut c = cl.start("c", "", "");
    let dead = free_port();
    let table = |b_port: u16| {
        format!(
            "a = \"127.0.0.1:{}\"\nb = \"127.0.0.1:{b_port}\"\nc = \"127.0.0.1:{}\"\n",
            cl.port("a"),
            cl.port("c")
        )
    };
    // a starts with b at an address where nothing listens.
    cl.dir.write("clustername.lua", &table(dead));
    let go = cl.path().join("go");
    let body = r#"
    local ok, err = pcall(cluster.call, "b", "@echo", "echo", "x")
    skynet.error("BEFORE", ok, err)
    while not io.open("GO") do skynet.sleep(5) end
    cluster.reload()   -- the file now names b's real address
    skynet.error("RELOADED", cluster.call("b", "@echo", "echo", "at b"))
    skynet.fork(function()
        local ok, err = pcall(cluster.call, "b", "@echo", "sleep", 1000)
        skynet.error("MOVED", ok, err)
    end)
    skynet.sleep(20)    -- let the slow call reach b
    cluster.reload { b = "127.0.0.1:CPORT" }
    skynet.error("AT C", cluster.call("b", "@echo", "echo", "at c"))
"#
    .replace("GO", &go.display().to_string())
    .replace("CPORT", &cl.port("c").to_string());
    let mut a = cl.start("a", &body, "");
    let l = a.wait_for("BEFORE", T);
    assert!(
        l.contains(&format!(
            "BEFORE false call failed: cluster node [b] (127.0.0.1:{dead}) connect failed"
        )),
        "{l}"
    );
    cl.dir.write("clustername.lua", &table(cl.port("b")));
    std::fs::write(&go, "").unwrap();
    a.wait_for("RELOADED at b", T);
    let l = a.wait_for("MOVED", T);
    assert!(
        l.contains(&format!(
            "MOVED false call failed: cluster node [b] (127.0.0.1:{}) address changed to 127.0.0.1:{}",
            cl.port("b"),
            cl.port("c")
        )),
        "{l}"
    );
    // the next call goes to the new address (c's node answers for "b")
    a.wait_for("AT C at c", T);
    a.stop();
    b.stop();
    c.stop();
}

#[test]
fn with_nowaiting_false_a_call_to_an_absent_node_waits_for_a_reload_naming_it() {
    let cl = Cluster::new("cluster_nowaiting", &["a", "b"], "__nowaiting = false\n");
    let mut b = cl.start("b", "", "");
    let body = r#"
    skynet.fork(function()
        skynet.error("CALLING LATE")
        skynet.error("LATE", cluster.call("late", "@echo", "echo", "answered"))
    end)
    skynet.sleep(30)
    skynet.error("RELOADING")
    cluster.reload { late = "127.0.0.1:BPORT" }
"#
    .replace("BPORT", &cl.port("b").to_string());
    let mut a = cl.start("a", &body, "");
    a.wait_for("CALLING LATE", T);
    let l = a.wait_for("RELOADING", T);
    assert!(!a.log().contains("LATE answered"), "{l}");
    a.wait_for("LATE answered", T);
    a.stop();
    b.stop();
}
