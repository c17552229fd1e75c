//! TLS through rustls (`ltls.c`, `http.tlshelper`) with real peers: our httpd over
//! https against curl and Python's ssl + http.client; our httpc against Python's
//! https server; wss between our own client and server and against a Python client.
//! Failed handshakes (plain HTTP, garbage, a client that hangs up mid-handshake) close
//! the socket and free the context: the fds and `ltls.c.live()` come back.

mod common;

use common::web::*;
use common::*;
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

const HTTPD: &str = include_str!("lua/web_httpd.lua");
const WS: &str = include_str!("lua/web_ws.lua");
const T: Duration = Duration::from_secs(20);

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

#[test]
fn https_server_curl_python_and_failed_handshakes() {
    let (certs, cert, key) = cert_dir("tls-certs");
    let (_d, mut sk, port) = boot_web(
        "https",
        HTTPD,
        &format!("web_cert = \"{cert}\"\nweb_key = \"{key}\""),
    );
    let base = format!("https://127.0.0.1:{port}");
    let base_fds = fd_count(sk.pid());

    let (out, err) = curl(&[
        "-k",
        "-v",
        &format!("{base}/p?a=1"),
        &format!("{base}/chunked"),
    ]);
    assert!(
        out.contains("method: GET\npath: /p\nquery: a=1\n"),
        "{out}{err}"
    );
    assert!(out.ends_with("piece1;piece2;piece3;"), "{out}");
    assert!(err.contains("SSL connection using TLS"), "{err}");
    assert!(err.contains("Re-using existing connection"), "{err}");

    // Python: ssl + http.client, keep-alive, a 200 KB body each way (many records)
    let script = format!(
        r#"
import http.client, ssl
ctx = ssl.create_default_context(cafile="{cert}")
ctx.check_hostname = False
c = http.client.HTTPSConnection("127.0.0.1", {port}, context=ctx, timeout=10)
for i in range(20):
    c.request("POST", "/py?i=%d" % i, body=b"x" * 200 if i else b"")
    r = c.getresponse()
    b = r.read().decode()
    assert r.status == 200 and ("query: i=%d" % i) in b, b
c.request("GET", "/live")
print("ok", c.sock.version(), r.status)
"#
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("ok TLSv1.3 200"), "{out:?}");

    // failed handshakes: plain HTTP, garbage, a ClientHello cut short then a hang-up
    for i in 0..60 {
        let mut c = connect(port, T);
        match i % 3 {
            0 => c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap(),
            1 => c
                .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
                .unwrap(),
            _ => c.write_all(&[0x16, 0x03, 0x01, 0x00, 0x40, 0x01]).unwrap(),
        }
        if i % 3 != 2 {
            // the server closes on its own after the error
            let mut buf = [0u8; 256];
            let deadline = std::time::Instant::now() + T;
            loop {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if std::time::Instant::now() < deadline => {}
                    Ok(_) => panic!("server kept a failed handshake open"),
                }
            }
        }
    }
    let (out, _) = curl(&["-s", &format!("http://127.0.0.1:{port}/")]);
    assert_eq!(out, "");
    sk.wait_for("tls handshake failed", T);
    assert!(
        sk.log().contains("SSL_do_handshake error: "),
        "{}",
        sk.log()
    );

    let n = wait_fds_at_most(sk.pid(), base_fds, T);
    assert!(
        n <= base_fds,
        "fds {n} > {base_fds} after failed handshakes"
    );
    // only the asking connection's own context is alive
    let (out, _) = curl(&["-k", &format!("{base}/live")]);
    assert_eq!(out, "1", "tls contexts leaked");
    assert!(!sk.log().contains("stack traceback"), "{}", sk.log());
    sk.stop();
    drop(certs);
}

#[test]
fn httpc_over_https_against_python() {
    let (_certs, cert, key) = cert_dir("tls-httpc");
    let (mut py, port) = python_server(&[&cert, &key]);
    let (mut plain, plain_port) = python_server(&[]);
    // https to a plain server: the Lua side counts its process's fds around 50 failures
    let log = run_httpc_with(
        "httpc-tls",
        &format!("https://127.0.0.1:{port}"),
        &format!("web_wrong_peer = \"https://127.0.0.1:{plain_port}\""),
    );
    for p in [&mut py, &mut plain] {
        let _ = p.kill();
        let _ = p.wait();
    }
    check_httpc_log(&log);
    let line = log.lines().find(|l| l.contains("WRONG ")).expect(&log);
    let num = |k: &str| -> i64 {
        line.split(&format!("{k}="))
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    eprintln!("{line}");
    assert_eq!(num("failed"), 50, "{line}");
    assert!(num("fds_after") <= num("fds_before"), "{line}");
    assert_eq!(num("live"), 0, "{line}");
}

#[test]
fn wss_between_our_client_and_server_and_python() {
    let (_certs, cert, key) = cert_dir("tls-wss");
    let (_d, mut sk, port) = boot_web(
        "wss",
        WS,
        &format!("web_ws_protocol = \"wss\"\ncertfile = \"{cert}\"\nkeyfile = \"{key}\""),
    );
    sk.wait_for("client got text:hello text", T);
    sk.wait_for("client got big 70007 binary", T);
    sk.wait_for("client closed false bye 4000", T);
    let base_fds = fd_count(sk.pid());
    let out = Command::new("python3")
        .arg(repo_root().join("tests/py/wsclient.py"))
        .arg(port.to_string())
        .arg("echo")
        .env("WSS", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(
            "got text text:héllo\ngot binary 70007\ngot text text:abc\npong p1\ngot text text:fragmented\nclose 1000\n"
        ),
        "{out:?}"
    );
    let out = Command::new("python3")
        .arg(repo_root().join("tests/py/wsclient.py"))
        .arg(port.to_string())
        .arg("utf8")
        .env("WSS", "1")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("close 1007\n"),
        "{out:?}"
    );
    sk.wait_for("text message is not UTF-8", T);
    let n = wait_fds_at_most(sk.pid(), base_fds, T);
    assert!(n <= base_fds, "fds {n} > {base_fds}");
    sk.stop();
}

/// The `ltls.c` surface on its own: a client and a server context in one service
/// handshake through memory, exchange data both ways (also more than one record),
/// and report upstream's error texts; closed contexts are freed (`live()`).
#[test]
fn ltls_contexts_in_memory() {
    let (certs, cert, key) = cert_dir("tls-mem");
    let src = format!(
        r#"
local skynet = require "skynet"
local c = require "ltls.c"
local function check(name, ok, err) skynet.error("CHECK " .. name .. " " .. tostring(ok) .. " " .. tostring(err)) end
skynet.start(function()
    local sctx = c.newctx()
    check("nocert", pcall(c.newtls, "server", sctx))
    check("badcert", pcall(sctx.set_cert, sctx, "/nonexistent.pem", "{key}"))
    check("method", pcall(c.newtls, "bogus", sctx))
    sctx:set_cert("{cert}", "{key}")
    local cctx = c.newctx()
    local client = c.newtls("client", cctx, "localhost")
    local server = c.newtls("server", sctx)
    check("live", c.live(), "")
    local to_server = client:handshake()
    local rounds = 0
    while not (client:finished() and server:finished()) do
        rounds = rounds + 1
        local to_client = server:handshake(to_server or "")
        to_server = nil
        if to_client and not client:finished() then
            to_server = client:handshake(to_client)
        elseif to_client then
            assert(client:read(to_client) == "")
        end
        assert(rounds < 10, "handshake does not converge")
    end
    local flush = server:write()
    if flush ~= "" then client:read(flush) end
    check("finished", client:finished(), server:finished())
    local big = string.rep("0123456789", 100000)
    check("c2s", server:read(client:write("hello")), "")
    check("s2c", #client:read(server:write(big)) == #big, "")
    check("again", pcall(server.handshake, server, ""))
    check("garbage", pcall(client.read, client, "\23\3\3\0\5hello"))
    client:close()
    check("closed", pcall(client.read, client, ""))
    server:close()
    server:close()
    check("after", c.live(), "")
    local bad = c.newtls("server", sctx)
    check("nothandshake", pcall(bad.handshake, bad, "GET / HTTP/1.1\r\n\r\n"))
    bad:close()
    check("notctx", pcall(c.newtls, "client", {{}}))
    skynet.error("LTLS DONE")
end)
"#
    );
    let log = run_service("ltlsmem", &src, "LTLS DONE", T);
    drop(certs);
    for want in [
        "CHECK nocert false server context needs set_cert first",
        "CHECK badcert false SSL_CTX_use_certificate_chain_file error: /nonexistent.pem",
        "CHECK method false invalid method:bogus e.g[server, client]",
        "CHECK live 2 ",
        "CHECK finished true true",
        "CHECK c2s hello ",
        "CHECK s2c true ",
        "CHECK again false handshake is finished",
        "CHECK garbage false SSL_read error: ",
        "CHECK closed false context is closed",
        "CHECK after 0 ",
        "CHECK nothandshake false SSL_do_handshake error: ",
        "CHECK notctx false need sslctx",
    ] {
        assert!(log.contains(want), "missing {want:?} in\n{log}");
    }
}
