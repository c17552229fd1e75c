//! End-to-end socket tests through the real binary: Lua services using
//! `skynet.socket`, `snax.gateserver` and `service/gate.lua`, driven by Rust clients.

mod common;

use common::{free_port, read_n, Skynet, TempDir};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);

fn boot(main: &str, extra: &[(&str, &str)]) -> (TempDir, Skynet, u16) {
    common::boot_with_port("sock", main, extra, TIMEOUT)
}

fn connect(port: u16) -> TcpStream {
    common::connect(port, TIMEOUT)
}

const ECHO: &str = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local id, ip, port = socket.listen("127.0.0.1", 0)
    skynet.error("LISTEN " .. ip)
    socket.start(id, function(fd, addr)
        skynet.error("ACCEPT " .. addr)
        for _, e in ipairs(socket.netstat()) do
            if e.type == "LISTEN" then skynet.error("NETSTAT LISTEN " .. e.sock .. " " .. e.accept) end
        end
        socket.start(fd)
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

#[test]
fn echo() {
    let (_d, mut sk, port) = boot(ECHO, &[]);
    sk.wait_for("LISTEN 127.0.0.1", TIMEOUT);
    let mut c = connect(port);
    sk.wait_for("ACCEPT 127.0.0.1:", TIMEOUT);
    sk.wait_for(&format!("NETSTAT LISTEN 127.0.0.1:{port} 1"), TIMEOUT);
    c.write_all(b"hello").unwrap();
    assert_eq!(read_n(&mut c, 5), b"hello");
    // A bigger payload, echoed while it is still being written.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut w = c.try_clone().unwrap();
    let b2 = big.clone();
    let t = std::thread::spawn(move || w.write_all(&b2).unwrap());
    assert_eq!(read_n(&mut c, big.len()), big);
    t.join().unwrap();
    // Round trips.
    let n = 3000;
    let start = Instant::now();
    for _ in 0..n {
        c.write_all(&[7u8; 64]).unwrap();
        read_n(&mut c, 64);
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    eprintln!("lua echo: {rate:.0} round trips/s (64 bytes, one connection)");
    drop(c);
    sk.wait_for("CLOSED ", TIMEOUT);
}

#[test]
fn readline_and_fixed_reads() {
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local id, _, port = socket.listen("127.0.0.1", 0)
    socket.start(id, function(fd)
        socket.start(fd)
        skynet.fork(function()
            while true do
                local line, rest = socket.readline(fd)
                if not line then
                    skynet.error("EOF rest=" .. rest)
                    break
                end
                local n = line:match("^size (%d+)$")
                if n then
                    local body = socket.read(fd, tonumber(n))
                    socket.write(fd, "fixed:" .. body .. "\n")
                else
                    socket.write(fd, "got:" .. line .. "\n")
                end
            end
            socket.close(fd)
        end)
    end)
    skynet.error("PORT " .. port)
end)
"#;
    let (_d, mut sk, port) = boot(main, &[]);
    let mut c = connect(port);
    c.write_all(b"a\nb\r").unwrap();
    std::thread::sleep(Duration::from_millis(30));
    c.write_all(b"c\n").unwrap();
    assert_eq!(read_n(&mut c, 13), b"got:a\ngot:b\rc\n"[..13].to_vec());
    let _ = read_n(&mut c, 1);
    c.write_all(b"size 5\nab").unwrap();
    std::thread::sleep(Duration::from_millis(30));
    c.write_all(b"cde").unwrap();
    assert_eq!(read_n(&mut c, 12), b"fixed:abcde\n");
    c.write_all(b"tail").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    sk.wait_for("EOF rest=tail", TIMEOUT);
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn peer_reset_mid_read_and_limit() {
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local id, _, port = socket.listen("127.0.0.1", 0)
    local n = 0
    socket.start(id, function(fd)
        n = n + 1
        socket.start(fd)
        if n == 1 then
            skynet.fork(function()
                local ok, rest = socket.read(fd, 100)
                skynet.error("READ " .. tostring(ok) .. " " .. #rest)
                socket.close(fd)
            end)
        else
            socket.limit(fd, 1000)
            skynet.fork(function()
                local line = socket.readline(fd)
                skynet.error("LIMIT " .. tostring(line))
                socket.close(fd)
            end)
        end
    end)
    skynet.error("PORT " .. port)
end)
"#;
    let (_d, mut sk, port) = boot(main, &[]);
    let mut c = connect(port);
    c.write_all(b"0123456789").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    sk.wait_for("READ false", TIMEOUT);

    let mut c = connect(port);
    c.write_all(&[b'x'; 5000]).unwrap();
    sk.wait_for("socket buffer overflow: fd=", TIMEOUT);
    sk.wait_for("LIMIT false", TIMEOUT);
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
}

#[test]
fn abandon_and_start_in_another_service() {
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local id, _, port = socket.listen("127.0.0.1", 0)
    socket.start(id, function(fd)
        socket.start(fd)
        local hello = socket.read(fd, 5)
        socket.abandon(fd)
        local b = skynet.newservice("sock_b")
        local ok = skynet.call(b, "lua", fd)
        socket.write(fd, "moved:" .. hello .. ":" .. tostring(ok) .. "\n")
    end)
    skynet.error("PORT " .. port)
end)
"#;
    let b = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    skynet.dispatch("lua", function(_, _, fd)
        local ok = socket.start(fd)
        skynet.ret(skynet.pack(ok == fd))
        skynet.fork(function()
            while true do
                local d = socket.read(fd)
                if not d then break end
                socket.write(fd, "B:" .. d)
            end
            socket.close(fd)
            skynet.error("B CLOSED")
        end)
    end)
end)
"#;
    let (_d, mut sk, port) = boot(main, &[("sock_b.lua", b)]);
    let mut c = connect(port);
    c.write_all(b"hello").unwrap();
    assert_eq!(read_n(&mut c, 17), b"moved:hello:true\n");
    c.write_all(b"world").unwrap();
    assert_eq!(read_n(&mut c, 7), b"B:world");
    drop(c);
    sk.wait_for("B CLOSED", TIMEOUT);
}

fn framed(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

fn read_frame(c: &mut TcpStream) -> Vec<u8> {
    let h = read_n(c, 2);
    read_n(c, u16::from_be_bytes([h[0], h[1]]) as usize)
}

#[test]
fn gate_open_data_forward_close() {
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
local gate, agent
local n = 0
skynet.start(function()
    skynet.dispatch("lua", function(_, _, cmd, sub, fd, arg)
        assert(cmd == "socket")
        skynet.error("WATCHDOG " .. sub .. " " .. tostring(fd))
        if sub == "open" then
            n = n + 1
            if n == 1 then
                skynet.call(gate, "lua", "accept", fd)
            else
                skynet.call(gate, "lua", "forward", fd, 0, agent)
            end
        elseif sub == "data" then
            socket.write(fd, string.pack(">s2", "watchdog:" .. arg))
        end
    end)
    agent = skynet.newservice("gate_agent")
    gate = skynet.newservice("gate")
    local addr, port = skynet.call(gate, "lua", "open", { address = "127.0.0.1", port = 0 })
    skynet.error("PORT " .. port)
end)
"#;
    let agent = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.register_protocol {
    name = "client",
    id = skynet.PTYPE_CLIENT,
    unpack = skynet.tostring,
    dispatch = function(fd, _, msg)
        socket.write(fd, string.pack(">s2", "agent:" .. msg))
    end,
}
skynet.start(function() end)
"#;
    let (_d, mut sk, port) = boot(main, &[("gate_agent.lua", agent)]);
    sk.wait_for("Listen on 127.0.0.1:0", TIMEOUT);
    // First client: accept mode, packets go to the watchdog.
    let mut a = connect(port);
    sk.wait_for("WATCHDOG open", TIMEOUT);
    let mut two = framed(b"one");
    two.extend(framed(b"two"));
    a.write_all(&two[..4]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    a.write_all(&two[4..]).unwrap();
    assert_eq!(read_frame(&mut a), b"watchdog:one");
    assert_eq!(read_frame(&mut a), b"watchdog:two");
    // Second client: forwarded to the agent as PTYPE_CLIENT with session = fd.
    let mut b = connect(port);
    b.write_all(&framed(b"hi")).unwrap();
    assert_eq!(read_frame(&mut b), b"agent:hi");
    drop(a);
    drop(b);
    sk.wait_for("WATCHDOG close", TIMEOUT);
}

#[test]
fn native_gate() {
    let port = free_port();
    let main = r#"
local skynet = require "skynet"
require "skynet.manager"
local gate
local function raw(m) return m end
skynet.register_protocol { name = "client", id = skynet.PTYPE_CLIENT, pack = raw }
skynet.register_protocol {
    name = "text",
    id = skynet.PTYPE_TEXT,
    pack = raw,
    unpack = skynet.tostring,
    dispatch = function(session, _, msg)
        local id, what, rest = msg:match("^(%d+) (%a+) ?(.*)$")
        id = tonumber(id)
        skynet.error("NATIVE " .. what .. " " .. id .. " session=" .. session)
        if what == "open" then
            skynet.error("OPEN TEXT " .. msg)
            skynet.send(gate, "text", "start " .. id)
        elseif what == "data" then
            skynet.send(gate, "client", string.pack(">s2", "echo:" .. rest) .. string.pack("<i4", id))
        end
    end,
}
skynet.start(function()
    gate = skynet.launch("gate", "S", skynet.address(skynet.self()), "127.0.0.1:PORTNUM", 0, 10)
    skynet.error("PORT PORTNUM")
end)
"#
    .replace("PORTNUM", &port.to_string());
    let (_d, mut sk, port) = boot(&main, &[]);
    let mut c = connect(port);
    let open = sk.wait_for("OPEN TEXT ", TIMEOUT);
    assert!(open.contains(" open ") && open.ends_with(":0"), "{open}");
    c.write_all(&framed(b"abc")).unwrap();
    assert_eq!(read_frame(&mut c), b"echo:abc");
    let mut two = framed(b"x");
    two.extend(framed(b"yz"));
    c.write_all(&two).unwrap();
    assert_eq!(read_frame(&mut c), b"echo:x");
    assert_eq!(read_frame(&mut c), b"echo:yz");
    drop(c);
    sk.wait_for("NATIVE close", TIMEOUT);
    assert!(sk.log().contains("socket open: "), "{}", sk.log());
}

#[test]
fn socketchannel_order_session_reconnect() {
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
local sc = require "skynet.socketchannel"
local function check(cond, what) if not cond then skynet.error("SC FAIL " .. what) end return cond end
skynet.start(function()
    local lid, _, port = socket.listen("127.0.0.1", 0)
    local conns = 0
    socket.start(lid, function(fd)
        conns = conns + 1
        socket.start(fd)
        skynet.fork(function()
            while true do
                local line = socket.readline(fd)
                if not line then break end
                if line == "QUIT" then socket.close(fd) break end
                local sid, text = line:match("^S (%d+) (.*)$")
                if sid then
                    skynet.fork(function()
                        skynet.sleep(sid == "1" and 5 or 0)
                        socket.write(fd, sid .. " " .. text .. "\n")
                    end)
                else
                    socket.write(fd, "PONG " .. line .. "\n")
                end
            end
        end)
    end)
    -- order mode
    local c = sc.channel { host = "127.0.0.1", port = port, nodelay = true }
    local function resp(sock) return true, sock:readline("\n") end
    check(c:request("a\n", resp) == "PONG a", "first")
    local res, left = {}, 5
    for i = 1, 5 do
        skynet.fork(function() res[i] = c:request(i .. "\n", resp); left = left - 1 end)
    end
    while left > 0 do skynet.sleep(1) end
    for i = 1, 5 do check(res[i] == "PONG " .. i, "order " .. i .. " " .. tostring(res[i])) end
    local ok, err = pcall(c.request, c, "QUIT\n", resp)
    check(not ok, "quit fails")
    check(c:request("b\n", resp) == "PONG b", "reconnected")
    check(conns == 2, "two connections")
    c:close()
    -- session mode
    local s = sc.channel {
        host = "127.0.0.1", port = port,
        response = function(sock)
            local sid, text = sock:readline("\n"):match("^(%d+) (.*)$")
            return tonumber(sid), true, text
        end,
    }
    s:connect(true)
    local got = {}
    left = 2
    skynet.fork(function() local r = s:request("S 1 one\n", 1); got[#got + 1] = r; left = left - 1 end)
    skynet.fork(function() local r = s:request("S 2 two\n", 2); got[#got + 1] = r; left = left - 1 end)
    while left > 0 do skynet.sleep(1) end
    check(got[1] == "two" and got[2] == "one", "sessions " .. tostring(got[1]) .. tostring(got[2]))
    s:close()
    -- connect failure
    local bad = sc.channel { host = "127.0.0.1", port = 1 }
    local ok2, err2 = pcall(bad.connect, bad, true)
    check(not ok2 and tostring(err2):find("Connect to 127.0.0.1:1 failed"), "connect failure " .. tostring(err2))
    skynet.error("SC DONE")
    skynet.error("PORT " .. port)
end)
"#;
    let (_d, mut sk, _port) = boot(main, &[]);
    sk.wait_for("SC DONE", TIMEOUT);
    assert!(!sk.log().contains("SC FAIL"), "{}", sk.log());
}

#[test]
fn udp_from_lua() {
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local lid, port
    local function echo(data, from)
        local ip = socket.udp_address(from)
        assert(ip == "127.0.0.1")
        socket.sendto(lid, from, "re:" .. data)
    end
    repeat
        port = 30000 + math.random(0, 9999)
        local ok, id = pcall(socket.udp_listen, "127.0.0.1", port, echo)
        lid = ok and id
    until lid
    local d = socket.udp_dial("127.0.0.1", port, function() end)
    assert(socket.write(d, "self"))
    skynet.error("PORT " .. port)
end)
"#;
    let (_d, _sk, port) = boot(main, &[]);
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 64];
    // The listener may be a moment behind the log line.
    let mut got = None;
    for _ in 0..20 {
        u.send_to(b"ping", ("127.0.0.1", port)).unwrap();
        if let Ok((n, _)) = u.recv_from(&mut b) {
            got = Some(b[..n].to_vec());
            break;
        }
    }
    assert_eq!(got.as_deref(), Some(&b"re:ping"[..]));
}

#[test]
fn flow_control_pause_resume() {
    let main = r#"
local skynet = require "skynet"
local socket = require "skynet.socket"
skynet.start(function()
    local id, _, port = socket.listen("127.0.0.1", 0)
    socket.start(id, function(fd)
        socket.start(fd)
        skynet.fork(function()
            skynet.sleep(50)    -- let more than 128 KiB pile up: reading pauses
            -- (16 MB: far more than the socket thread can have read before the
            -- pause takes effect, so the reader must resume the socket)
            local total = 0
            while total < 16000000 do
                local d = socket.read(fd)
                if not d then break end
                total = total + #d
            end
            skynet.error("TOTAL " .. total)
            socket.write(fd, "done")
        end)
    end)
    skynet.error("PORT " .. port)
end)
"#;
    let (_d, mut sk, port) = boot(main, &[]);
    let mut c = connect(port);
    c.write_all(&vec![b'z'; 16_000_000]).unwrap();
    assert_eq!(read_n(&mut c, 4), b"done");
    sk.wait_for("TOTAL 16000000", TIMEOUT);
    sk.wait_for("Pause socket (", TIMEOUT);
    sk.wait_for("Resume socket (", TIMEOUT);
}

#[test]
fn module_names_2016_and_head() {
    let main = r#"
local skynet = require "skynet"
skynet.start(function()
    assert(require "socket" == require "skynet.socket")
    assert(require "socketdriver" and require "skynet.socketdriver")
    assert(require "netpack" and require "skynet.netpack")
    assert(require "gateserver" == require "snax.gateserver")
    assert(require "skynet.socketchannel")
    local d = require "skynet.socketdriver"
    assert(d.header("\1\2") == 258)
    assert(not pcall(d.header, "12345"))
    local ip, port = d.udp_address("\1\0\80\127\0\0\1")
    assert(ip == "127.0.0.1" and port == 80)
    local p, sz = d.str2p("abc")
    local b = d.buffer()
    assert(d.push(b, {}, p, sz) == 3)
    assert(d.pop(b, {}, 2) == "ab")
    assert(d.readall(b, {}) == "c")
    local socket = require "skynet.socket"
    local ok, id, ip, port = pcall(socket.listen, "[::1]:0")
    if ok and id then
        assert(ip == "::1" and port > 0, "v6 listen")
        socket.close(id)
    end
    local ok2, err2 = pcall(d.connect, "nohost")
    assert(not ok2 and err2:find("Invalid address nohost.", 1, true), err2)
    local ok3, err3 = pcall(d.connect, "h:99999")
    assert(not ok3 and err3:find("Invalid port in address h:99999.", 1, true), err3)
    local _, _, busy = socket.listen("127.0.0.1", 0)
    local ok4, err4 = pcall(d.listen, "127.0.0.1", busy)
    assert(not ok4 and err4:find("Listen error", 1, true), err4)
    skynet.error("NAMES OK")
    skynet.error("PORT 1")
end)
"#;
    let (_d, mut sk, _) = boot(main, &[]);
    sk.wait_for("NAMES OK", TIMEOUT);
}
