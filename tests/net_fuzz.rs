//! Network input fuzzing through the real binary: seeded random packet streams, split
//! at random points, random garbage and oversized headers, sent to the native `gate`
//! (2- and 4-byte headers), the Lua gate (`service/gate.lua`, i.e. netpack's filter
//! and `socketdriver.unpack`) and the native `package` service. Every server echoes
//! each complete packet; the client checks the echoes against a reference framing,
//! and the process must keep serving (a crash or a lost connection fails the test).

mod common;

use common::{config_text, free_port, Skynet, TempDir};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(8);

const MAIN: &str = r#"
local skynet = require "skynet"
require "skynet.manager"
local socket = require "skynet.socket"
local function raw(m) return m end
local native = {}   -- native gate handle -> header format
local packages = {}
local luagate

skynet.register_protocol { name = "client", id = skynet.PTYPE_CLIENT, pack = raw }
skynet.register_protocol {
    name = "text",
    id = skynet.PTYPE_TEXT,
    pack = raw,
    unpack = skynet.tostring,
    dispatch = function(_, source, msg)
        local fmt = native[source]
        if not fmt then return end -- package status texts
        local id, what, rest = msg:match("^(%d+) (%a+) ?(.*)$")
        if what == "open" then
            skynet.send(source, "text", "start " .. id)
        elseif what == "data" then
            skynet.send(source, "client", string.pack(fmt, rest) .. string.pack("<i4", tonumber(id)))
        end
    end,
}

skynet.start(function()
    -- Watchdog of the Lua gate: echo every packet.
    skynet.dispatch("lua", function(_, _, cmd, sub, fd, arg)
        if cmd ~= "socket" then return end
        if sub == "open" then
            skynet.call(luagate, "lua", "accept", fd)
        elseif sub == "data" then
            socket.write(fd, string.pack(">s2", arg))
        end
    end)
    local ports = {}
    for h, port in pairs { S = PORT_S, L = PORT_L } do
        local g = skynet.launch("gate", h, skynet.address(skynet.self()), "127.0.0.1:" .. port, 0, 16)
        native[g] = h == "S" and ">s2" or ">s4"
    end
    ports[1], ports[2] = PORT_S, PORT_L
    -- Scripts can send any bytes as PTYPE_SOCKET; a header's buffer pointer must not
    -- be trusted (only the socket server, source 0, sends real ones).
    local core = require "skynet.core"
    for g in pairs(native) do
        core.send(g, skynet.PTYPE_SOCKET, 0, string.pack("<i4i4i4i4j", 1, 1, 100, 0, 16))
    end
    luagate = skynet.newservice("gate")
    local _, luaport = skynet.call(luagate, "lua", "open", { address = "127.0.0.1", port = 0 })
    ports[#ports + 1] = luaport
    local lid, _, pkgport = socket.listen("127.0.0.1", 0)
    socket.start(lid, function(fd)
        local pkg = skynet.launch("package", skynet.self(), fd)
        packages[pkg] = fd
        core.send(pkg, skynet.PTYPE_SOCKET, 0, string.pack("<i4i4i4i4j", 1, fd, 100, 0, 16))
        skynet.fork(function()
            while true do
                local ok, packet = pcall(skynet.call, pkg, "text", "R")
                if not ok then break end
                skynet.send(pkg, "client", packet)
            end
        end)
    end)
    ports[#ports + 1] = pkgport
    skynet.error("PORTS " .. table.concat(ports, " "))
end)
"#;

/// xorshift64*: reproducible streams.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The complete packets of `stream` under a `header`-byte big-endian length prefix.
fn reference_frames(stream: &[u8], header: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut off = 0;
    while stream.len() - off >= header {
        let len = stream[off..off + header]
            .iter()
            .fold(0usize, |a, &x| a << 8 | x as usize);
        if stream.len() - off - header < len {
            break;
        }
        out.push(&stream[off + header..off + header + len]);
        off += header + len;
    }
    out
}

fn frame(body: &[u8], header: usize) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes()[4 - header..].to_vec();
    v.extend_from_slice(body);
    v
}

fn connect(port: u16) -> TcpStream {
    common::connect(port, TIMEOUT)
}

/// Write in random 1..=64-byte pieces, pausing now and then so the server sees
/// packets (and headers) split across reads.
fn write_split(c: &mut TcpStream, mut bytes: &[u8], rng: &mut Rng) {
    let mut n = 0;
    while !bytes.is_empty() {
        let k = (1 + rng.below(64)).min(bytes.len());
        c.write_all(&bytes[..k]).unwrap();
        bytes = &bytes[k..];
        n += 1;
        if n % 16 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn read_frame(c: &mut TcpStream, header: usize) -> Vec<u8> {
    let mut h = [0u8; 4];
    c.read_exact(&mut h[4 - header..]).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(h) as usize];
    c.read_exact(&mut body).unwrap();
    body
}

/// A stream of random packets (sizes 0..300) plus the packets themselves.
fn packet_stream(rng: &mut Rng, n: usize, header: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let packets: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let len = rng.below(300);
            rng.bytes(len)
        })
        .collect();
    let stream = packets.iter().flat_map(|p| frame(p, header)).collect();
    (stream, packets)
}

/// Random packets split at random points come back whole and in order; then random
/// garbage: whatever complete packets it frames come back too.
fn echo_round(port: u16, header: usize, rng: &mut Rng) {
    let mut c = connect(port);
    let (stream, packets) = packet_stream(rng, 150, header);
    write_split(&mut c, &stream, rng);
    for p in &packets {
        assert_eq!(&read_frame(&mut c, header), p, "port {port}");
    }
    if header == 2 {
        // Any bytes frame under a 2-byte header; a trailing partial packet waits.
        let garbage = rng.bytes(4000);
        write_split(&mut c, &garbage, rng);
        for p in reference_frames(&garbage, header) {
            assert_eq!(read_frame(&mut c, header), p, "port {port}");
        }
    }
}

fn assert_closed_by_server(c: &mut TcpStream) {
    let mut b = [0u8; 16];
    match c.read(&mut b) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("expected the server to close, got {n} bytes"),
    }
}

#[test]
fn gates_and_package_survive_split_garbage_and_oversized_input() {
    let dir = TempDir::new("netfuzz");
    let main = MAIN
        .replace("PORT_S", &free_port().to_string())
        .replace("PORT_L", &free_port().to_string());
    dir.write("main.lua", &main);
    let conf = dir.write("config", &config_text(dir.path(), "main", ""));
    let mut sk = Skynet::start(&conf, dir.path());
    let line = sk.wait_for("PORTS ", TIMEOUT);
    let ports: Vec<u16> = line
        .rsplit("PORTS ")
        .next()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let (native_s, native_l, lua_gate, package) = (ports[0], ports[1], ports[2], ports[3]);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (port, header) in [(native_s, 2), (native_l, 4), (lua_gate, 2), (package, 2)] {
        echo_round(port, header, &mut rng);
    }
    // A 4-byte header announcing 16 MiB closes that connection only.
    let mut c = connect(native_l);
    c.write_all(&[1, 0, 0, 0, 7]).unwrap();
    assert_closed_by_server(&mut c);
    sk.wait_for("Recv socket message > 16M", TIMEOUT);
    // Connections cut mid-packet (header half, body half) are just dropped.
    for port in [native_s, native_l, lua_gate, package] {
        let mut c = connect(port);
        c.write_all(&[0]).unwrap();
        drop(c);
        let mut c = connect(port);
        c.write_all(&[0, 0, 0, 9, 1, 2]).unwrap();
        drop(c);
    }
    // Everything still serves.
    for (port, header) in [(native_s, 2), (native_l, 4), (lua_gate, 2), (package, 2)] {
        let mut c = connect(port);
        c.write_all(&frame(b"still alive", header)).unwrap();
        assert_eq!(read_frame(&mut c, header), b"still alive");
    }
    assert!(sk.child.try_wait().unwrap().is_none(), "{}", sk.log());
    let log = sk.log();
    // Two native gates and every package instance refused the forged events.
    assert!(
        log.matches("Invalid socket message from").count() >= 3,
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    sk.stop();
}
