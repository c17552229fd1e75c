//! `client.socket` in `skynet-lua` (upstream's demo client library, which
//! upstream's examples/client.lua needs): connect, send, non-blocking recv, usleep,
//! readstdin, shutdown, close, against a real TCP peer; the interpreter exits when
//! stdin ends, as upstream's does.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

const SCRIPT: &str = r##"
local socket = require "client.socket"
local port = tonumber(...)
local ok, err = pcall(socket.connect, "127.0.0.1", 1)
print("refused", ok, err)
local fd = assert(socket.connect("127.0.0.1", port))
print("nothing yet", select("#", socket.recv(fd)))
socket.send(fd, "ping:" .. string.rep("x", 100000))
-- the peer answers with the byte count it read
local got = ""
while not got:find("\n") do
	local r = socket.recv(fd)
	if r == "" then error "closed early" end
	if r then got = got .. r else socket.usleep(1000) end
end
print("answer", got)
-- echo stdin lines until stdin ends (then the process exits)
while true do
	local line = socket.readstdin()
	if line then
		socket.send(fd, line .. "\n")
		if line == "bye" then
			socket.shutdown(fd, "w")
			while true do
				local r = socket.recv(fd)
				if r == "" then print("peer closed") break end
				socket.usleep(1000)
			end
			socket.close(fd)
			print(pcall(socket.shutdown, fd, "x"))
		end
	else
		socket.usleep(1000)
	end
	io.stdout:flush()
end
"##;

#[test]
fn client_socket_runs_a_demo_client() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = vec![0u8; 100005];
        c.read_exact(&mut buf).unwrap();
        assert!(buf.starts_with(b"ping:"));
        c.write_all(format!("{}\n", buf.len()).as_bytes()).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap(); // until the client's shutdown("w")
        String::from_utf8(rest).unwrap()
    });
    let dir = std::env::temp_dir().join(format!("skynet-clientsocket-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("client.lua");
    std::fs::write(&script, SCRIPT).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_skynet-lua"))
        .arg(&script)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello\r\nworld\nbye\n").unwrap();
    let echoed = peer.join().unwrap();
    assert_eq!(echoed, "hello\nworld\nbye\n");
    std::thread::sleep(Duration::from_millis(200));
    drop(stdin); // stdin ends: the interpreter exits
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        stdout.contains("refused\tfalse\tConnect 127.0.0.1 1 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("nothing yet\t0"), "{stdout}");
    assert!(stdout.contains("answer\t100005\n"), "{stdout}");
    assert!(stdout.contains("peer closed"), "{stdout}");
    assert!(stdout.contains("false\tInvalid mode x"), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
