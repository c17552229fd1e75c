//! http.websocket through the real binary on loopback: our server against a
//! hand-written Python client (tests/py/wsclient.py, standard library only) and our
//! own client; protocol violations (oversized frames and messages, orphan or
//! interleaved continuation frames, bad UTF-8, reserved bits, bad control frames, bad
//! close codes) close that one connection with the right status code and a log line;
//! fds come back after the clients leave.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const WS: &str = include_str!("lua/web_ws.lua");
const T: Duration = Duration::from_secs(20);

fn py(port: u16, scenario: &str) -> Vec<String> {
    let out = Command::new("python3")
        .arg(repo_root().join("tests/py/wsclient.py"))
        .arg(port.to_string())
        .arg(scenario)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{scenario}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn websocket_server_and_client() {
    let (_d, mut sk, port) = boot_with_port("ws", WS, &[], T);
    // our own client against our server (tests/lua/web_ws.lua forks it at start)
    sk.wait_for("client got text:hello text", T);
    sk.wait_for("client got big 70007 binary", T);
    sk.wait_for("client closed false bye 4000", T);
    let base_fds = wait_fds_at_most(sk.pid(), 0, Duration::from_millis(500));

    assert_eq!(
        py(port, "badhandshake"),
        ["handshake HTTP/1.1 400 Bad Request"]
    );
    assert_eq!(
        py(port, "echo"),
        [
            "got text text:héllo",
            "got binary 70007",
            "got text text:abc",
            "pong p1",
            "got text text:fragmented",
            "close 1000",
            "eof"
        ]
    );
    sk.wait_for("ws ping", T);
    sk.wait_for(" 1000 done", T);

    let violations = [
        (
            "bigframe",
            1009,
            "frame of 1048576 bytes exceeds the limit 70000",
        ),
        ("bigmessage", 1009, "message exceeds the limit 100000"),
        ("orphan", 1002, "continuation frame without a message"),
        ("interleave", 1002, "new message inside a fragmented one"),
        ("utf8", 1007, "text message is not UTF-8"),
        ("rsv", 1002, "reserved bits set without an extension"),
        ("bigcontrol", 1002, "fragmented or oversized control frame"),
        ("badclose", 1002, "invalid close code 999"),
    ];
    for (scenario, code, why) in violations {
        assert_eq!(
            py(port, scenario),
            [format!("close {code}"), "eof".into()],
            "{scenario}"
        );
        sk.wait_for(&format!("): {why}"), T);
    }
    assert_eq!(py(port, "drop"), ["dropped"]);
    // a client that never finishes its handshake is cut off after handshake_timeout
    let t0 = std::time::Instant::now();
    assert_eq!(py(port, "silent"), ["eof"]);
    assert!(t0.elapsed() < Duration::from_secs(9), "{:?}", t0.elapsed());
    sk.wait_for("handshake timeout", T);
    sk.wait_for("ws error", T);

    let n = wait_fds_at_most(sk.pid(), base_fds, T);
    assert!(n <= base_fds, "fds {n} > {base_fds} after clients left");
    assert!(!sk.log().contains("stack traceback"), "{}", sk.log());
    sk.stop();
}
