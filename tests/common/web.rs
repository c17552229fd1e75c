//! Helpers shared by tests/http.rs and tests/tls.rs: the Python peers, the httpc
//! run and its expected results, self-signed certificates.

use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Start tests/py/httpserver.py (optionally over TLS); returns it and its port.
pub fn python_server(args: &[&str]) -> (Child, u16) {
    let mut child = Command::new("python3")
        .arg(repo_root().join("tests/py/httpserver.py"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .expect("PORT line")
        .parse()
        .unwrap();
    (child, port)
}

/// Run tests/lua/web_httpc.lua against `peer`; returns the log.
pub fn run_httpc(tag: &str, peer: &str) -> String {
    run_httpc_with(tag, peer, "")
}

/// As [`run_httpc`] with extra config lines.
pub fn run_httpc_with(tag: &str, peer: &str, extra: &str) -> String {
    let dir = TempDir::new(tag);
    let conf = dir.write(
        "config",
        &config_text(
            dir.path(),
            "web_httpc",
            &format!("web_peer = \"{peer}\"\n{extra}"),
        ),
    );
    let mut sk = Skynet::start(&conf, dir.path());
    sk.wait_for("HTTPC DONE", Duration::from_secs(60));
    let log = sk.log();
    sk.stop();
    log
}

pub fn check_httpc_log(log: &str) {
    let want = [
        "RESULT len true 200 hello from python",
        "HEADER len content-type text/plain",
        "RESULT chunked true 200 alpha-beta-gamma",
        "HEADER chunked trailer yes",
        "RESULT close true 200 until-eof",
        "RESULT post true 200 application/x-www-form-urlencoded|k=v%20w",
        "RESULT missing true 404 ",
        "RESULT stream true 200 alpha-|beta-|gamma| trailer=yes",
        "RESULT stream_len true 200 2000000",
        "RESULT big true 200 2000000",
        "RESULT limited false ",
        "RESULT slow false ",
        "RESULT refused false ",
    ];
    for w in want {
        assert!(log.contains(w), "missing {w:?} in\n{log}");
    }
    assert!(log.contains("Response body too large"), "{log}");
    let elapsed: u64 = log
        .lines()
        .find_map(|l| l.split("ELAPSED ").nth(1))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((90..800).contains(&elapsed), "timeout took {elapsed} cs");
}

/// A self-signed certificate for localhost/127.0.0.1 written as PEM files into `dir`;
/// returns (cert path, key path).
pub fn self_signed(dir: &TempDir) -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen");
    let cert = dir.write("cert.pem", &ck.cert.pem());
    let key = dir.write("key.pem", &ck.key_pair.serialize_pem());
    (cert.display().to_string(), key.display().to_string())
}

/// Boot skynet with `main.lua` = `main` and extra config lines (`extra` may name
/// files in the temp dir through `{dir}`); returns the port it logs as `PORT <n>`.
pub fn boot_web(tag: &str, main: &str, extra: &str) -> (TempDir, Skynet, u16) {
    let dir = TempDir::new(tag);
    dir.write("main.lua", main);
    let extra = extra.replace("{dir}", &dir.path().display().to_string());
    let conf = dir.write("config", &config_text(dir.path(), "main", &extra));
    let mut sk = Skynet::start(&conf, dir.path());
    let line = sk.wait_for("PORT ", Duration::from_secs(20));
    let port = line.rsplit("PORT ").next().unwrap().trim().parse().unwrap();
    (dir, sk, port)
}

/// Write a self-signed certificate into a fresh temp dir; returns it and the paths.
pub fn cert_dir(tag: &str) -> (TempDir, String, String) {
    let d = TempDir::new(tag);
    let (c, k) = self_signed(&d);
    (d, c, k)
}
