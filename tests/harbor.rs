//! Harbor mode (harbor.md): `harbor` 1-255 with `standalone`/`master`/`address`.
//! Real `skynet` processes on loopback: one node alone, two nodes talking by global
//! name and by address, a node killed under pending calls, and a hand-made node that
//! speaks the wire format (checked byte for byte) and then sends a malformed frame.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn node_config(
    dir: &Path,
    start: &str,
    id: u8,
    master: u16,
    address: u16,
    standalone: bool,
) -> String {
    let mut extra = format!("master = \"127.0.0.1:{master}\"\naddress = \"127.0.0.1:{address}\"\n");
    if standalone {
        extra += &format!("standalone = \"127.0.0.1:{master}\"\n");
    }
    config_text(dir, start, &extra).replace("harbor = 0", &format!("harbor = {id}"))
}

fn start_node(
    dir: &TempDir,
    name: &str,
    start: &str,
    id: u8,
    master: u16,
    standalone: bool,
) -> Skynet {
    let conf = dir.write(
        name,
        &node_config(dir.path(), start, id, master, free_port(), standalone),
    );
    Skynet::start(&conf, dir.path())
}

/// The `:hex` address after `marker` in a log line.
fn address_after(line: &str, marker: &str) -> u32 {
    let rest = line.split(marker).nth(1).unwrap().trim();
    let hex = rest
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches(':');
    u32::from_str_radix(hex, 16).unwrap()
}

#[test]
fn single_node_harbor_1_boots_and_works() {
    let dir = TempDir::new("harbor1");
    dir.write(
        "main.lua",
        r#"
local skynet = require "skynet"
require "skynet.manager"
local harbor = require "skynet.harbor"
local datacenter = require "skynet.datacenter"
skynet.start(function()
	skynet.dispatch("lua", function(_, _, x) skynet.ret(skynet.pack(x * 2)) end)
	skynet.register "DOUBLER"
	local id, remote = skynet.harbor(skynet.self())
	skynet.error("HARBOR", id, remote, skynet.address(skynet.self()))
	local r = skynet.call("DOUBLER", "lua", 21)
	skynet.error("BYNAME", r)
	skynet.error("QUERY", skynet.address(harbor.queryname("DOUBLER")))
	datacenter.set("k", "v")
	skynet.error("DATACENTER", datacenter.get("k"))
	skynet.error("DONE")
end)
"#,
    );
    let mut sk = start_node(&dir, "config", "main", 1, free_port(), true);
    sk.wait_for("DONE", T);
    let log = sk.log();
    assert!(log.contains("Shakehand ready"), "{log}");
    let line = sk.wait_for("HARBOR ", T);
    assert!(line.contains("HARBOR 1 false :01"), "{line}");
    assert!(log.contains("BYNAME 42"), "{log}");
    let me = address_after(&line, "false ");
    assert!(log.contains(&format!("QUERY :{me:08x}")), "{log}");
    assert!(log.contains("DATACENTER v"), "{log}");
    sk.stop();
}

const NODE1: &str = r#"
local skynet = require "skynet"
require "skynet.manager"
local harbor = require "skynet.harbor"
skynet.start(function()
	skynet.dispatch("lua", function(_, source, cmd, arg)
		if cmd == "echo" then
			skynet.ret(skynet.pack("node1:" .. arg, skynet.self(), skynet.harbor(source)))
		elseif cmd == "note" then
			skynet.error("NOTE", arg)
		end
	end)
	skynet.register "SVC1"
	-- Before node 2 exists: waits in the harbor until the name is registered.
	skynet.fork(function()
		local r = skynet.call("SVC2", "lua", "echo", "early")
		skynet.error("EARLY", r)
		local h = harbor.queryname("SVC2")
		skynet.error("QUERIED", skynet.address(h))
		skynet.error("BYADDR1", (skynet.call(h, "lua", "echo", "addr")))
		-- A request node 2 never answers: node 2 is killed under it.
		local ok, err = pcall(skynet.call, "SVC2", "lua", "hang")
		skynet.error("HANG ENDED", ok, err)
		ok, err = pcall(skynet.call, h, "lua", "echo", "after")
		skynet.error("AFTER DEATH", ok, err)
		skynet.send("SVC1", "lua", "note", "still alive")
	end)
	skynet.fork(function()
		harbor.connect(2)
		skynet.error("CONNECTED 2")
		harbor.link(2)
		skynet.error("LINK 2 DOWN")
	end)
	skynet.error("MAIN1 READY", skynet.address(skynet.self()))
end)
"#;

const NODE2: &str = r#"
local skynet = require "skynet"
require "skynet.manager"
skynet.start(function()
	skynet.dispatch("lua", function(_, source, cmd, arg)
		if cmd == "echo" then
			skynet.ret(skynet.pack("node2:" .. arg))
		elseif cmd == "hang" then
			skynet.error("HANG RECEIVED from", skynet.address(source))
		end
	end)
	skynet.name("SVC2", skynet.self())
	local r, h, caller_harbor = skynet.call("SVC1", "lua", "echo", "hi")
	skynet.error("BYNAME2", r, skynet.address(h), caller_harbor)
	skynet.send("SVC1", "lua", "note", "sent by name")
	skynet.error("BYADDR2", (skynet.call(h, "lua", "echo", "byaddr")))
	skynet.error("MAIN2 DONE")
end)
"#;

#[test]
fn two_nodes_talk_and_a_dead_node_fails_pending_calls() {
    let dir = TempDir::new("harbor2");
    dir.write("main1.lua", NODE1);
    dir.write("main2.lua", NODE2);
    let master = free_port();
    let mut n1 = start_node(&dir, "config1", "main1", 1, master, true);
    let line = n1.wait_for("MAIN1 READY", T);
    let svc1 = address_after(&line, "READY ");
    assert_eq!(svc1 >> 24, 1, "{line}");
    std::thread::sleep(Duration::from_millis(300));
    let fds_alone = fd_count(n1.pid());

    let mut n2 = start_node(&dir, "config2", "main2", 2, master, false);
    n2.wait_for("MAIN2 DONE", T);
    let log2 = n2.log();
    assert!(log2.contains("Waiting for 1 harbors"), "{log2}");
    assert!(
        log2.contains(&format!("BYNAME2 node1:hi :{svc1:08x} 2")),
        "{log2}"
    );
    assert!(log2.contains("BYADDR2 node1:byaddr"), "{log2}");
    n1.wait_for("NOTE sent by name", T);
    n1.wait_for("EARLY node2:early", T);
    let q = n1.wait_for("QUERIED", T);
    assert!(q.contains("QUERIED :02"), "{q}");
    n1.wait_for("BYADDR1 node2:addr", T);
    n2.wait_for("HANG RECEIVED from :01", T);
    assert!(!n1.log().contains("LINK 2 DOWN"));
    n1.wait_for("CONNECTED 2", T);

    // Node 2 dies under the pending call: node 1's caller gets an error, at once.
    let t0 = Instant::now();
    unsafe { libc::kill(n2.pid() as i32, libc::SIGKILL) };
    let _ = n2.child.wait();
    let ended = n1.wait_for("HANG ENDED", T);
    assert!(ended.contains("HANG ENDED false"), "{ended}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let after = n1.wait_for("AFTER DEATH", T);
    assert!(after.contains("AFTER DEATH false"), "{after}");
    n1.wait_for("NOTE still alive", T);
    n1.wait_for("Harbor 2 (fd=", T);
    n1.wait_for("LINK 2 DOWN", T);
    n1.wait_for("slave 2 is down", T);
    n1.wait_for("Drop message to harbor 2", T);
    // Node 2's master connection and harbor link are closed again.
    let fds = wait_fds_at_most(n1.pid(), fds_alone, Duration::from_secs(10));
    assert!(fds <= fds_alone, "fds {fds} > {fds_alone}");
    n1.stop();
}

// --- a hand-made node: upstream's master protocol and harbor frames ---------------

/// The values `skynet.packstring` encodes (the subset the protocol uses).
#[derive(Debug, Clone, PartialEq)]
enum V {
    S(String),
    I(i64),
    B(bool),
}

fn s(x: &str) -> V {
    V::S(x.to_string())
}

fn pack(vals: &[V]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in vals {
        match v {
            V::S(x) => {
                assert!(x.len() < 32);
                out.push(4 | (x.len() as u8) << 3);
                out.extend_from_slice(x.as_bytes());
            }
            V::B(x) => out.push(1 | (*x as u8) << 3),
            V::I(0) => out.push(2),
            V::I(n) if (0..0x100).contains(n) => out.extend_from_slice(&[2 | 1 << 3, *n as u8]),
            V::I(n) => {
                out.push(2 | 4 << 3);
                out.extend_from_slice(&(*n as i32).to_le_bytes());
            }
        }
    }
    out
}

fn unpack(mut b: &[u8]) -> Vec<V> {
    let mut out = Vec::new();
    while let Some((&t, rest)) = b.split_first() {
        let (ty, sub) = (t & 7, (t >> 3) as usize);
        b = rest;
        match (ty, sub) {
            (4, n) => {
                out.push(V::S(String::from_utf8_lossy(&b[..n]).into_owned()));
                b = &b[n..];
            }
            (1, b) => out.push(V::B(b != 0)),
            (2, 0) => out.push(V::I(0)),
            (2, 1) => {
                out.push(V::I(b[0] as i64));
                b = &b[1..];
            }
            (2, 2) => {
                out.push(V::I(u16::from_le_bytes([b[0], b[1]]) as i64));
                b = &b[2..];
            }
            (2, 4) => {
                out.push(V::I(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64));
                b = &b[4..];
            }
            other => panic!("unexpected seri type {other:?} in {b:?}"),
        }
    }
    out
}

fn master_send(c: &mut TcpStream, vals: &[V]) {
    let body = pack(vals);
    let mut m = vec![body.len() as u8];
    m.extend_from_slice(&body);
    c.write_all(&m).unwrap();
}

fn master_read(c: &mut TcpStream) -> Vec<V> {
    let n = read_n(c, 1)[0] as usize;
    unpack(&read_n(c, n))
}

/// Upstream's harbor frame: length, payload, then source, type<<24|dest, session (BE).
fn frame(payload: &[u8], source: u32, ty: u8, dest: u32, session: u32) -> Vec<u8> {
    let mut f = ((payload.len() + 12) as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f.extend_from_slice(&source.to_be_bytes());
    f.extend_from_slice(&((ty as u32) << 24 | dest & 0xff_ffff).to_be_bytes());
    f.extend_from_slice(&session.to_be_bytes());
    f
}

fn read_frame(c: &mut TcpStream) -> (Vec<u8>, u32, u32, u32) {
    let len = u32::from_be_bytes(read_n(c, 4).try_into().unwrap()) as usize;
    let body = read_n(c, len);
    let h = &body[len - 12..];
    let word = |i: usize| u32::from_be_bytes(h[i..i + 4].try_into().unwrap());
    (body[..len - 12].to_vec(), word(0), word(4), word(8))
}

/// Join node 1's network as harbor `id` by hand: the master connection and the link
/// node 1 opened to us, its id byte read (ours not sent yet).
/// `up`: the nodes the master says will connect (node 1 and our earlier fakes still
/// on the master).
fn join(master: u16, id: u8, up: i64) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut m = connect(master, T);
    master_send(&mut m, &[s("H"), V::I(id as i64), s(&addr)]);
    assert_eq!(master_read(&mut m), vec![s("W"), V::I(up)]);
    let (mut link, _) = listener.accept().unwrap();
    link.set_read_timeout(Some(T)).unwrap();
    assert_eq!(read_n(&mut link, 1), vec![1]);
    (m, link)
}

#[test]
fn wire_format_and_malformed_frames() {
    let dir = TempDir::new("harbor3");
    dir.write("main1.lua", NODE1);
    let master = free_port();
    let mut n1 = start_node(&dir, "config1", "main1", 1, master, true);
    let line = n1.wait_for("MAIN1 READY", T);
    let svc1 = address_after(&line, "READY ");
    std::thread::sleep(Duration::from_millis(300));
    let fds_alone = fd_count(n1.pid());

    // Garbage on the master port: that connection is closed, with a log line.
    let mut junk = connect(master, T);
    junk.write_all(b"\x05\xff\xff\xff\xff\xff").unwrap();
    let mut b = [0u8; 1];
    assert_eq!(junk.read(&mut b).unwrap_or(0), 0);
    n1.wait_for("disconnect fd = ", T);

    // Join as harbor 2: the master tells node 1 to connect to our listener, and node
    // 1 sends its harbor id first.
    let (mut m, mut link) = join(master, 2, 1);
    link.write_all(&[2]).unwrap();

    // Node 1's early call to SVC2 makes its slave ask the master; register SVC2 as
    // our handle :02000010 and the request arrives as a frame.
    master_send(&mut m, &[s("R"), s("SVC2"), V::I(0x0200_0010)]);
    let (payload, source, dest, session) = read_frame(&mut link);
    assert_eq!(dest >> 24, 10, "PTYPE_LUA in the destination's high byte");
    assert_eq!(dest & 0xff_ffff, 0x10);
    assert_eq!(source >> 24, 1);
    assert!(session > 0);
    assert_eq!(unpack(&payload), vec![s("echo"), s("early")]);
    // Answer it (PTYPE_RESPONSE = 1).
    link.write_all(&frame(
        &pack(&[s("node2:early")]),
        0x0200_0010,
        1,
        source,
        session,
    ))
    .unwrap();
    n1.wait_for("EARLY node2:early", T);

    // A request of ours to SVC1 by address, answered as a frame. It is written in
    // pieces (inside the length, inside the payload, inside the trailing header) so
    // the reader must put it together across reads.
    let req = frame(&pack(&[s("echo"), s("wire")]), 0x0200_0011, 10, svc1, 7);
    for piece in [
        &req[..2],
        &req[2..9],
        &req[9..req.len() - 5],
        &req[req.len() - 5..],
    ] {
        link.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    // Meanwhile node 1's fork sends its next requests: answer its echo, keep its
    // "hang" pending.
    let (mut reply, mut hang) = (None, false);
    while reply.is_none() || !hang {
        let f = read_frame(&mut link);
        if f.2 >> 24 == 1 {
            reply = Some(f);
            continue;
        }
        match unpack(&f.0).first() {
            Some(V::S(cmd)) if cmd == "echo" => {
                link.write_all(&frame(&pack(&[s("node2:addr")]), 0x0200_0010, 1, f.1, f.3))
                    .unwrap();
            }
            Some(V::S(cmd)) if cmd == "hang" => hang = true,
            other => panic!("unexpected frame {other:?}"),
        }
    }
    let reply = reply.unwrap();
    assert_eq!(reply.1, svc1, "source is SVC1");
    assert_eq!(
        reply.2,
        1 << 24 | 0x11,
        "PTYPE_RESPONSE to :02000011 (low 24 bits)"
    );
    assert_eq!(reply.3, 7, "our session");
    assert_eq!(
        unpack(&reply.0),
        vec![s("node1:wire"), V::I(svc1 as i64), V::I(2), V::B(true)]
    );

    // A request to a handle that does not exist: PTYPE_ERROR (7) comes back.
    link.write_all(&frame(&pack(&[s("x")]), 0x0200_0012, 10, 0x0100_7777, 9))
        .unwrap();
    let err = loop {
        let f = read_frame(&mut link);
        if f.2 >> 24 == 7 {
            break f;
        }
    };
    assert_eq!((err.1, err.2 & 0xff_ffff, err.3), (0x0100_7777, 0x12, 9));
    n1.wait_for("Unknown destination :1007777 from :2000012", T);

    // A malformed frame (length field over 16 MiB): the link is closed, logged;
    // node 1's pending "hang" call to SVC2 fails instead of waiting forever.
    std::thread::sleep(Duration::from_millis(200));
    link.write_all(&[1, 0, 0, 0, 0, 0]).unwrap();
    n1.wait_for("Message is too long from harbor 2", T);
    let mut rest = Vec::new();
    let _ = link.read_to_end(&mut rest);
    n1.wait_for("HANG ENDED false", T);
    n1.wait_for("NOTE still alive", T);
    drop(link);
    drop(m);

    // Harbor 3: an internal message type from the network is refused (a request gets
    // ERROR back, the link stays); then a frame too short for its header closes it.
    let (m3, mut link3) = join(master, 3, 1);
    link3.write_all(&[3]).unwrap();
    link3
        .write_all(&frame(&[0u8; 24], 0x0300_0001, 6, svc1, 5))
        .unwrap();
    let err = read_frame(&mut link3);
    assert_eq!(
        (err.1, err.2 >> 24, err.3),
        (svc1, 7, 5),
        "ERROR for session 5"
    );
    n1.wait_for("Invalid message type 6 from harbor 3", T);
    link3.write_all(&[0, 0, 0, 4, 1, 2, 3, 4]).unwrap();
    n1.wait_for("Invalid message length 4 from harbor 3", T);
    let _ = link3.read_to_end(&mut rest);

    // Harbor 4 answers the handshake with the wrong id: that link is closed.
    let (m4, mut link4) = join(master, 4, 2);
    link4.write_all(&[9]).unwrap();
    n1.wait_for("Invalid shakehand id (4)", T);
    let _ = link4.read_to_end(&mut rest);
    drop((m3, link3, m4, link4));

    // Node 1 still works, and holds no more fds than before.
    let fds = wait_fds_at_most(n1.pid(), fds_alone, Duration::from_secs(10));
    assert!(fds <= fds_alone, "fds {fds} > {fds_alone}");
    assert!(n1.child.try_wait().unwrap().is_none(), "node 1 still runs");
    n1.stop();
}

const MC1: &str = r#"
local skynet = require "skynet"
local mc = require "skynet.multicast"
local datacenter = require "skynet.datacenter"
skynet.start(function()
	local ch = mc.new { dispatch = function(_, source, msg)
		skynet.error("N1 GOT", msg, skynet.address(source))
	end }
	ch:subscribe()
	skynet.error("CHAN1", ch.channel)
	datacenter.set("chan1", ch.channel)
	datacenter.wait("node2ready")
	ch:publish("from node1")
	local c2 = mc.new { channel = datacenter.wait("chan2"), dispatch = function(_, _, msg)
		skynet.error("N1 GOT2", msg)
	end }
	c2:subscribe()
	datacenter.set("node1sub2", true)
	datacenter.wait("deleted")
	ch:publish("after delete")
	skynet.sleep(50)
	skynet.error("N1 DONE")
end)
"#;

const MC2: &str = r#"
local skynet = require "skynet"
local mc = require "skynet.multicast"
local datacenter = require "skynet.datacenter"
skynet.start(function()
	local c1
	c1 = mc.new { channel = datacenter.wait("chan1"), dispatch = function(_, source, msg)
		skynet.error("N2 GOT", msg, skynet.address(source))
		if msg == "from node1" then
			c1:publish("from node2")
		elseif msg == "from node2" then
			skynet.fork(function()
				local c2 = mc.new { dispatch = function() end }
				skynet.error("CHAN2", c2.channel)
				datacenter.set("chan2", c2.channel)
				datacenter.wait("node1sub2")
				c2:publish("on chan2")
				c1:delete()
				skynet.sleep(50)
				datacenter.set("deleted", true)
			end)
		end
	end }
	c1:subscribe()
	datacenter.set("node2ready", true)
end)
"#;

#[test]
fn multicast_across_nodes() {
    let dir = TempDir::new("harbormc");
    dir.write("mc1.lua", MC1);
    dir.write("mc2.lua", MC2);
    let master = free_port();
    let mut n1 = start_node(&dir, "config1", "mc1", 1, master, true);
    let chan1: u32 = n1
        .wait_for("CHAN1", T)
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(chan1 % 256, 1, "node 1's channel");
    let mut n2 = start_node(&dir, "config2", "mc2", 2, master, false);
    // Node 1 publishes: its own subscriber and node 2's get it.
    n1.wait_for("N1 GOT from node1 :01", T);
    n2.wait_for("N2 GOT from node1 :01", T);
    // Node 2 publishes on node 1's channel: through the owner, to both nodes; the
    // source is the publisher on node 2.
    n1.wait_for("N1 GOT from node2 :02", T);
    n2.wait_for("N2 GOT from node2 :02", T);
    // A channel owned by node 2, subscribed from node 1.
    let chan2: u32 = n2
        .wait_for("CHAN2", T)
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(chan2 % 256, 2, "node 2's channel");
    n1.wait_for("N1 GOT2 on chan2", T);
    // Node 2 deleted node 1's channel (DEL forwarded to the owner): nothing more.
    n1.wait_for("N1 DONE", T);
    n2.collect_for(Duration::from_millis(300));
    assert!(!n1.log().contains("after delete"), "{}", n1.log());
    assert!(!n2.log().contains("after delete"), "{}", n2.log());
    for log in [n1.log(), n2.log()] {
        assert!(!log.contains("error"), "{log}");
    }
    n2.stop();
    n1.stop();
}

const REJOIN1: &str = r#"
local skynet = require "skynet"
require "skynet.manager"
local harbor = require "skynet.harbor"
local function ms(t0) return string.format("%.0f", (skynet.hpc() - t0) / 1e6) end
skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, arg)
		if cmd == "echo" then skynet.ret(skynet.pack("node1:" .. arg)) end
	end)
	skynet.register "SVC1"
	skynet.fork(function()
		harbor.connect(2)
		local h2 = harbor.queryname("SVC2")
		skynet.error("N1 TO 2", skynet.call("SVC2", "lua", "echo", "byname"),
			skynet.call(h2, "lua", "echo", "byaddr"))
		-- Node 2 is killed under this call.
		local ok, err = pcall(skynet.call, "SVC2", "lua", "hang")
		skynet.error("HANG ENDED", ok, err)
		harbor.link(2)
		-- While it is down, calls by name and by address fail at once.
		local t0 = skynet.hpc()
		local ok1 = pcall(skynet.call, "SVC2", "lua", "echo", "x")
		local ok2 = pcall(skynet.call, h2, "lua", "echo", "x")
		skynet.error("WHILE DOWN", ok1, ok2, "ms", ms(t0))
		-- A node joining under a new id is linked and served by name and address.
		harbor.connect(3)
		local h3 = harbor.queryname("SVC3")
		skynet.error("N1 TO 3", skynet.call("SVC3", "lua", "echo", "byname"),
			skynet.call(h3, "lua", "echo", "byaddr"))
		t0 = skynet.hpc()
		ok1 = pcall(skynet.call, "SVC2", "lua", "echo", "x")
		ok2 = pcall(skynet.call, h2, "lua", "echo", "x")
		skynet.error("STILL DOWN", ok1, ok2, "ms", ms(t0))
	end)
	skynet.error("MAIN1 READY")
end)
"#;

/// Node `n` (2, 3...): registers SVCn, calls SVC1 by name and by address.
fn rejoin_node(n: u8) -> String {
    format!(
        r#"
local skynet = require "skynet"
require "skynet.manager"
local harbor = require "skynet.harbor"
skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, arg)
		if cmd == "echo" then skynet.ret(skynet.pack("node{n}:" .. arg))
		elseif cmd == "hang" then skynet.error("HANG RECEIVED") end
	end)
	skynet.register "SVC{n}"
	local h1 = harbor.queryname("SVC1")
	skynet.error("N{n} TO 1", skynet.call("SVC1", "lua", "echo", "byname"),
		skynet.call(h1, "lua", "echo", "byaddr"))
end)
"#
    )
}

/// harbor.md §2, §4: a node id registers once. A node killed under pending calls
/// fails them at once and every later call to it (by name or address) fails at once;
/// the same id started again is refused by the master and that process stops instead
/// of joining half-way; a new id joins the running network and is reachable by global
/// name and by address, both ways.
#[test]
fn a_dead_node_id_stays_down_and_a_new_id_joins() {
    let dir = TempDir::new("harbor_rejoin");
    dir.write("main1.lua", REJOIN1);
    dir.write("main2.lua", &rejoin_node(2));
    dir.write("main3.lua", &rejoin_node(3));
    let master = free_port();
    let mut n1 = start_node(&dir, "config1", "main1", 1, master, true);
    n1.wait_for("MAIN1 READY", T);
    let conf2 = dir.write(
        "config2",
        &node_config(dir.path(), "main2", 2, master, free_port(), false),
    );
    let mut n2 = Skynet::start(&conf2, dir.path());
    n2.wait_for("N2 TO 1 node1:byname node1:byaddr", T);
    n1.wait_for("N1 TO 2 node2:byname node2:byaddr", T);
    n2.wait_for("HANG RECEIVED", T);

    unsafe { libc::kill(n2.pid() as i32, libc::SIGKILL) };
    let _ = n2.child.wait();
    let l = n1.wait_for("HANG ENDED", T);
    assert!(l.contains("HANG ENDED false"), "{l}");
    let l = n1.wait_for("WHILE DOWN", T);
    assert!(l.contains("WHILE DOWN false false ms"), "{l}");
    let ms: u64 = l.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(ms < 1000, "{l}");
    n1.wait_for("slave 2 is down", T);

    // The same id again (same config): refused, and the process stops.
    let mut again = Skynet::start(&conf2, dir.path());
    let code = again.wait_exit(Duration::from_secs(15));
    assert!(
        code.is_some(),
        "restarted node 2 still runs:\n{}",
        again.log()
    );
    let l = n1.wait_for("Slave 2 already register on 127.0.0.1:", T);
    assert!(l.contains("disconnect fd = "), "{l}");
    for what in [
        "slave shakehand failed: the master closed the connection (harbor 2 already registered?)",
        "bootstrap: can't launch cslave",
    ] {
        assert!(again.log().contains(what), "{what}:\n{}", again.log());
    }
    assert!(!again.log().contains("N2 TO 1"), "{}", again.log());

    // A new id joins and talks both ways.
    let mut n3 = start_node(&dir, "config3", "main3", 3, master, false);
    n3.wait_for("N3 TO 1 node1:byname node1:byaddr", T);
    n1.wait_for("N1 TO 3 node3:byname node3:byaddr", T);
    let l = n1.wait_for("STILL DOWN", T);
    assert!(l.contains("STILL DOWN false false ms"), "{l}");
    let ms: u64 = l.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(ms < 1000, "{l}");
    assert!(n1.child.try_wait().unwrap().is_none(), "node 1 still runs");
    n3.stop();
    n1.stop();
}

const ML1: &str = r#"
local skynet = require "skynet"
require "skynet.manager"
skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "hang" then skynet.error("HANG RECEIVED") end   -- never answered
	end)
	skynet.register "SVC1"
	skynet.error("MAIN1 READY")
end)
"#;

const ML2: &str = r#"
local skynet = require "skynet"
require "skynet.manager"
local harbor = require "skynet.harbor"
skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, arg)
		if cmd == "echo" then skynet.ret(skynet.pack("node2:" .. arg)) end
	end)
	skynet.register "SVC2"
	skynet.fork(function()
		local ok, err = pcall(skynet.call, "SVC1", "lua", "hang")
		skynet.error("HANG ENDED", ok, err)
	end)
	skynet.fork(function()
		skynet.error("ASKING")
		local ok, err = pcall(harbor.queryname, "NEVER")
		skynet.error("WAITING QUERY", ok, err)
	end)
	skynet.fork(function()
		-- waits in the harbor for a name nobody registers
		local ok, err = pcall(skynet.call, "NOBODY", "lua", "x")
		skynet.error("WAITING CALL", ok, err)
	end)
	skynet.fork(function()
		harbor.linkmaster()
		skynet.error("MASTER LOST 2")
	end)
	skynet.error("MAIN2 READY")
end)
"#;

const ML3: &str = r#"
local skynet = require "skynet"
require "skynet.manager"
local harbor = require "skynet.harbor"
local function ms(t0) return string.format("%.0f", (skynet.hpc() - t0) / 1e6) end
skynet.start(function()
	local h2 = harbor.queryname("SVC2")
	skynet.error("BEFORE", skynet.call("SVC2", "lua", "echo", "byname"),
		skynet.call(h2, "lua", "echo", "byaddr"))
	skynet.fork(function()
		harbor.linkmaster()
		skynet.error("MASTER LOST 3")
		-- The link 3-2 does not need the master: known names and addresses still work.
		skynet.error("AFTER", skynet.call("SVC2", "lua", "echo", "byname"),
			skynet.call(h2, "lua", "echo", "byaddr"))
		-- Names nobody can resolve any more, and node 1's services, fail at once.
		local t0 = skynet.hpc()
		local ok, err = pcall(harbor.queryname, "UNKNOWN")
		skynet.error("NEW QUERY", ok, err, "ms", ms(t0))
		t0 = skynet.hpc()
		ok = pcall(skynet.call, "SVC1", "lua", "hang")
		skynet.error("CALL 1", ok, "ms", ms(t0))
	end)
	skynet.error("MAIN3 READY")
end)
"#;

/// harbor.md §2-4: the master's node dies. Calls waiting on it fail, LINKMASTER
/// returns, waiting and new queries for unknown names raise and calls to names nobody
/// resolved fail, instead of waiting forever; the surviving nodes keep talking over
/// their own link by known name and address.
#[test]
fn losing_the_master_fails_what_needs_it_and_the_other_links_keep_working() {
    let dir = TempDir::new("harbor_master_lost");
    dir.write("main1.lua", ML1);
    dir.write("main2.lua", ML2);
    dir.write("main3.lua", ML3);
    let master = free_port();
    let mut n1 = start_node(&dir, "config1", "main1", 1, master, true);
    n1.wait_for("MAIN1 READY", T);
    let mut n2 = start_node(&dir, "config2", "main2", 2, master, false);
    n2.wait_for("MAIN2 READY", T);
    n2.wait_for("ASKING", T);
    let mut n3 = start_node(&dir, "config3", "main3", 3, master, false);
    n3.wait_for("BEFORE node2:byname node2:byaddr", T);
    n3.wait_for("MAIN3 READY", T);
    n1.wait_for("HANG RECEIVED", T);

    unsafe { libc::kill(n1.pid() as i32, libc::SIGKILL) };
    let _ = n1.child.wait();
    let l = n2.wait_for("HANG ENDED", T);
    assert!(l.contains("HANG ENDED false"), "{l}");
    n2.wait_for("Master disconnect", T);
    n2.wait_for("MASTER LOST 2", T);
    // (the reason is in the cslave's log; the caller gets skynet's `call failed`)
    let l = n2.wait_for("WAITING QUERY", T);
    assert!(l.contains("WAITING QUERY false"), "{l}");
    let l = n2.wait_for("WAITING CALL", T);
    assert!(l.contains("WAITING CALL false"), "{l}");
    n2.wait_for(
        "Drop 1 message(s) to NOBODY: no master to resolve the name",
        T,
    );
    n3.wait_for("MASTER LOST 3", T);
    n3.wait_for("AFTER node2:byname node2:byaddr", T);
    let l = n3.wait_for("NEW QUERY", T);
    assert!(l.contains("NEW QUERY false"), "{l}");
    n3.wait_for("no master to query global name UNKNOWN", T);
    let ms = |l: &str| -> u64 { l.rsplit(' ').next().unwrap().parse().unwrap() };
    assert!(ms(&l) < 1000, "{l}");
    let l = n3.wait_for("CALL 1", T);
    assert!(l.contains("CALL 1 false"), "{l}");
    assert!(ms(&l) < 1000, "{l}");
    for n in [&mut n2, &mut n3] {
        assert!(n.child.try_wait().unwrap().is_none(), "{}", n.log());
    }
    n3.stop();
    n2.stop();
}
