//! http.httpd / http.httpc / http.url through the real binary on loopback, with real
//! peers: curl and Python 3's http.client / http.server. Hostile input (huge headers,
//! bad chunk sizes, bad lengths, a silent client) must get a clear status or a close
//! of that one connection, and the fds must come back after the clients leave.

mod common;

use common::web::*;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HTTPD: &str = include_str!("lua/web_httpd.lua");
const T: Duration = Duration::from_secs(20);

fn boot_httpd(tag: &str) -> (TempDir, Skynet, u16) {
    boot_with_port(tag, HTTPD, &[], T)
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it)");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Send raw bytes, read until the server closes (or `wait` passes); returns what came
/// back and whether the server closed.
fn raw(port: u16, data: &[u8], wait: Duration) -> (String, bool) {
    let mut c = connect(port, wait);
    c.write_all(data).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let closed = loop {
        match c.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

#[test]
fn httpd_serves_curl_with_keepalive_and_chunks() {
    let (_d, mut sk, port) = boot_httpd("httpd-curl");
    let base = format!("http://127.0.0.1:{port}");
    let base_fds = fd_count(sk.pid());

    // query decoding, repeated fields, POST body; two URLs on one kept-alive connection
    let u1 = format!("{base}/a%20b?x=1&y=hello+w&x=2");
    let u2 = format!("{base}/chunked");
    let (out, err) = curl(&["-v", &u1, &u2]);
    assert!(
        out.contains("method: GET\npath: /a b\nquery: x=1,2\nquery: y=hello w\n"),
        "{out}"
    );
    assert!(out.contains(&format!("host: 127.0.0.1:{port}")), "{out}");
    assert!(out.ends_with("piece1;piece2;piece3;"), "{out}");
    assert!(err.contains("Re-using existing connection"), "{err}");
    assert!(err.contains("x-served-by: skynet"), "{err}");

    // a chunked upload
    let mut child = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "@-",
        ])
        .arg(format!("{base}/up"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"streamed body")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("method: POST\npath: /up\n") && out.ends_with("body: streamed body"),
        "{out}"
    );

    // an upload over the 8192-byte body limit
    let big = "z".repeat(10000);
    let (out, _) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--data-binary",
        &big,
        &base,
    ]);
    assert_eq!(out, "413");

    let n = wait_fds_at_most(sk.pid(), base_fds, T);
    assert!(n <= base_fds, "fds {n} > {base_fds} after curl left");
    sk.stop();
}

#[test]
fn httpd_python_keepalive_pipelining_and_hostile_input() {
    let (_d, mut sk, port) = boot_httpd("httpd-hostile");
    let base_fds = fd_count(sk.pid());

    // Python's http.client: 50 requests on one kept-alive connection
    let script = format!(
        r#"
import http.client
c = http.client.HTTPConnection("127.0.0.1", {port}, timeout=10)
socks = set()
for i in range(50):
    c.request("POST", "/k?i=%d" % i, body=b"n%d" % i)
    r = c.getresponse()
    body = r.read().decode()
    assert r.status == 200, r.status
    assert ("query: i=%d" % i) in body and body.endswith("body: n%d" % i), body
    socks.add(id(c.sock))
print("ok", len(socks))
"#
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok 1",
        "{:?}",
        out
    );

    // pipelined requests, the second after a chunked body with extensions and a trailer
    let (out, closed) = raw(
        port,
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-T: 1\r\n\r\nGET /n HTTP/1.1\r\nHost: y\r\nConnection: close\r\n\r\n",
        T,
    );
    assert!(closed);
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
    assert!(out.contains("path: /c\nhost: x\nbody: abcdefg"), "{out}");
    assert!(out.contains("path: /n\nhost: y\nbody: "), "{out}");

    // hostile input: a clear status, then that connection closes
    let cases: &[(&[u8], &str)] = &[
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", "HTTP/1.1 413 "), // + 20000 bytes below
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "HTTP/1.1 400 "),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", "HTTP/1.1 400 "),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n", "HTTP/1.1 413 "),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", "HTTP/1.1 400 "),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "HTTP/1.1 400 "),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", "HTTP/1.1 413 "),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 501 "),
        (b"GARBAGE\r\n\r\n", "HTTP/1.1 400 "),
        (b"GET / HTTP/2.0\r\n\r\n", "HTTP/1.1 505 "),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", "HTTP/1.1 400 "),
    ];
    for (i, (req, want)) in cases.iter().enumerate() {
        let mut req = req.to_vec();
        if i == 0 {
            req.extend(std::iter::repeat_n(b'a', 20000));
            req.extend_from_slice(b"\r\n\r\n");
        }
        let (out, closed) = raw(port, &req, T);
        assert!(out.starts_with(want), "case {i}: {out:?}");
        assert!(closed, "case {i}: connection left open");
    }
    // a chunk-size line that never ends: closed without buffering it
    let (out, closed) = raw(
        port,
        &[
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
            &[b'1'; 4096],
        ]
        .concat(),
        T,
    );
    assert!(closed && out.starts_with("HTTP/1.1 400 "), "{out:?}");

    // slowloris: half a header, then silence; the server's 2 s request timeout closes it
    let t0 = Instant::now();
    let (out, closed) = raw(
        port,
        b"GET / HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(15),
    );
    assert!(closed && out.is_empty(), "{out:?}");
    assert!(t0.elapsed() < Duration::from_secs(12), "{:?}", t0.elapsed());
    sk.wait_for("httpd: timeout", T);

    // many clients at once, all of them gone: the fds come back
    let mut socks = Vec::new();
    for _ in 0..100 {
        let mut c = connect(port, T);
        c.write_all(b"GET /many HTTP/1.1\r\nHost: m\r\n\r\n")
            .unwrap();
        socks.push(c);
    }
    for c in &mut socks {
        let mut r = BufReader::new(c);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "HTTP/1.1 200 OK\r\n");
    }
    drop(socks);
    let n = wait_fds_at_most(sk.pid(), base_fds, T);
    assert!(n <= base_fds, "fds {n} > {base_fds} after clients left");
    assert!(!sk.log().contains("stack traceback"), "{}", sk.log());
    sk.stop();
}

#[test]
fn httpc_against_python_http_server() {
    let (mut py, port) = python_server(&[]);
    let log = run_httpc("httpc", &format!("http://127.0.0.1:{port}"));
    let _ = py.kill();
    let _ = py.wait();
    check_httpc_log(&log);
}

/// skynet.dns and httpc.dns against a real DNS server (dnsmasq, .ci/run installs it).
#[test]
fn dns_and_httpc_dns_against_dnsmasq() {
    let dir = TempDir::new("dns");
    let hosts = dir.write(
        "hosts",
        "127.0.0.1 web.test\n::1 web.test\n127.0.0.1 other.test\n",
    );
    let dns_port = free_port();
    let mut dnsmasq = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            &format!("--port={dns_port}"),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            &format!("--addn-hosts={}", hosts.display()),
            "--conf-file=/dev/null",
            "--user=root",
            "--pid-file=",
            "--local-ttl=60",
        ])
        .env("PATH", "/usr/sbin:/sbin:/usr/bin:/bin")
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq (Debian dnsmasq-base; .ci/run installs it)");
    std::thread::sleep(Duration::from_millis(300));
    let (mut py, peer_port) = python_server(&[]);
    // a UDP port with nobody behind it
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    let conf = dir.write(
        "config",
        &config_text(
            dir.path(),
            "web_dns",
            &format!("web_dns_port = {dns_port}\nweb_peer_port = {peer_port}\nweb_dead_port = {dead_port}"),
        ),
    );
    let mut sk = Skynet::start(&conf, dir.path());
    sk.wait_for("DNS DONE", Duration::from_secs(60));
    let log = sk.log();
    sk.stop();
    for p in [&mut dnsmasq, &mut py] {
        let _ = p.kill();
        let _ = p.wait();
    }
    drop(dead);
    for want in [
        "DNS a 127.0.0.1 127.0.0.1",
        "DNS aaaa 0:0:0:0:0:0:0:1 0:0:0:0:0:0:0:1",
        "DNS literal 10.1.2.3",
        "DNS family nil illegal ip address",
        "DNS illegal nil illegal name",
        "DNS missing false ",
        "DNS concurrent 5",
        "DNS httpc 200 hello from python",
        "DNS dead false ",
        "DNS query web.test timeout",
    ] {
        assert!(log.contains(want), "missing {want:?} in\n{log}");
    }
    assert!(log.contains("timeout or no answer"), "{log}");
    let elapsed: u64 = log
        .lines()
        .find_map(|l| l.split("DNS elapsed ").nth(1))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        (90..800).contains(&elapsed),
        "dns timeout took {elapsed} cs"
    );
}
