//! skynet.db.redis, skynet.db.mysql and skynet.db.mongo through the real `skynet`
//! binary: Lua test services (tests/lua/t_db_*.lua) talk to a real `redis-server` and
//! `mariadbd` started here on free ports with throwaway data dirs (stopped by pid),
//! to raw misbehaving peers, and to a fake mongod (tests/db_fake_mongod.py: no MongoDB
//! server is packaged for Debian). `.ci/run` installs redis-server and mariadb-server;
//! a test whose server binary is missing says so loudly and skips.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(180);

/// A server process we started; killed (by pid) on drop.
struct Server {
    child: Child,
    _dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on the pid of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    for name in names {
        for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
            let p = Path::new(dir).join(name);
            if p.exists() {
                return Some(p);
            }
        }
    }
    None
}

fn wait_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on {port}");
}

fn fd_targets(pid: u32) -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(d) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in d.flatten() {
            if let Ok(t) = std::fs::read_link(e.path()) {
                v.push(t.display().to_string());
            }
        }
    }
    v
}

/// Sockets held by `pid` (other fds, e.g. /dev/urandom opened once, don't count).
fn socket_count(pid: u32) -> usize {
    fd_targets(pid)
        .iter()
        .filter(|t| t.starts_with("socket:"))
        .count()
}

fn skip(what: &str) {
    eprintln!(
        "\n!!!!!!!! SKIPPED: {what} is not installed (.ci/run installs it: apt-get install redis-server mariadb-server) !!!!!!!!\n"
    );
}

/// Runs `tests/lua/<service>.lua` with the config `extra` lines; waits for
/// `<tag> DONE`, checks no `<tag> FAIL` line and that the process holds no more
/// sockets than before the service opened its connections.
fn run_lua_test(service: &str, tag: &str, extra: &str) -> String {
    let dir = TempDir::new(service);
    let conf = dir.write("config", &config_text(dir.path(), service, extra));
    let mut sk = Skynet::start(&conf, dir.path());
    sk.wait_for(&format!("{tag} BASELINE"), TIMEOUT);
    let base = socket_count(sk.pid());
    let done = sk.wait_for(&format!("{tag} DONE"), TIMEOUT);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fds = socket_count(sk.pid());
    while fds > base && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        fds = socket_count(sk.pid());
    }
    let fd_list = fd_targets(sk.pid());
    sk.collect_for(Duration::from_millis(200));
    let log = sk.log();
    sk.stop();
    assert!(!log.contains(&format!("{tag} FAIL")), "{log}");
    assert!(done.ends_with("failures=0"), "{log}");
    assert!(
        fds <= base,
        "sockets: {fds} after, {base} before: {fd_list:?}\n{log}"
    );
    log
}

// ---------------------------------------------------------------------------------
// redis
// ---------------------------------------------------------------------------------

fn start_redis(pass: &str) -> Option<(Server, u16)> {
    let bin = find_binary(&["redis-server"])?;
    let dir = TempDir::new("redis");
    let port = free_port();
    // ACL users can only be given in a config file.
    let conf = dir.write("redis.conf", "user app on >apppw ~* &* +@all\n");
    let mut child = Command::new(bin)
        .args([
            &conf.display().to_string(),
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir.path().display().to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--requirepass",
            pass,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    wait_port(port, &mut child, "redis-server");
    Some((Server { child, _dir: dir }, port))
}

#[test]
fn redis_real_server_and_hostile_peers() {
    let Some((_server, port)) = start_redis("s3cret") else {
        return skip("redis-server");
    };
    let log = run_lua_test(
        "t_db_redis",
        "REDIS",
        &format!("redis_port = {port}\nredis_pass = \"s3cret\""),
    );
    // the hostile replies were logged as connection errors, not panics
    assert!(!log.contains("panicked"), "{log}");
}

// ---------------------------------------------------------------------------------
// mysql (MariaDB)
// ---------------------------------------------------------------------------------

/// A throwaway MariaDB: data dir initialised here, user `app`/`apppw` with
/// mysql_native_password (MariaDB's default), database `skytest`, 64 MiB packets.
fn start_mariadb() -> Option<(Server, u16)> {
    let server = find_binary(&["mariadbd", "mysqld"])?;
    let install = find_binary(&["mariadb-install-db", "mysql_install_db"])?;
    let dir = TempDir::new("mariadb");
    let data = dir.path().join("data");
    let out = Command::new(install)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--user={}", whoami()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .output()
        .expect("run mariadb-install-db");
    assert!(
        out.status.success(),
        "mariadb-install-db: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let init = dir.write(
        "init.sql",
        "CREATE DATABASE skytest;\n\
         CREATE USER 'app'@'%' IDENTIFIED BY 'apppw';\n\
         GRANT ALL ON *.* TO 'app'@'%';\n",
    );
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("mariadb.log")).unwrap();
    let mut child = Command::new(server)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--user={}", whoami()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", dir.path().join("sock").display()))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .arg("--skip-name-resolve")
        .arg("--max-allowed-packet=64M")
        .arg("--innodb-buffer-pool-size=16M")
        .arg(format!("--init-file={}", init.display()))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn mariadbd");
    wait_port(port, &mut child, "mariadbd");
    Some((Server { child, _dir: dir }, port))
}

fn whoami() -> String {
    // SAFETY: getuid/getpwuid on this thread; the name is copied out at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() {
            return "root".into();
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

#[test]
fn mysql_real_server_big_packets_and_hostile_peers() {
    let Some((_server, port)) = start_mariadb() else {
        return skip("mariadb-server");
    };
    // caching_sha2_password's full authentication is checked with openssl: a key
    // pair made here, the ciphers the fake server received decrypted by openssl.
    let keys = TempDir::new("rsa");
    let key = keys.path().join("key.pem");
    let public = keys.path().join("pub.pem");
    let cipher = keys.path().join("cipher");
    let have_openssl = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
        && Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    let extra = if have_openssl {
        format!(
            "mysql_port = {port}\nmysql_rsa_pem = \"{}\"\nmysql_rsa_out = \"{}\"",
            public.display(),
            cipher.display()
        )
    } else {
        skip("openssl (for the caching_sha2_password RSA check)");
        format!("mysql_port = {port}")
    };
    run_lua_test("t_db_mysql", "MYSQL", &extra);
    if have_openssl {
        // the fake server's scramble, XORed with "pw\0"
        let scramble = b"abcdefghijklmnopqrst";
        let want: Vec<u8> = b"pw\0"
            .iter()
            .zip(scramble.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        for n in 1..=2 {
            let file = format!("{}{n}", cipher.display());
            let out = Command::new("openssl")
                .args([
                    "pkeyutl",
                    "-decrypt",
                    "-pkeyopt",
                    "rsa_padding_mode:oaep",
                    "-inkey",
                ])
                .arg(&key)
                .args(["-in", &file])
                .output()
                .expect("openssl pkeyutl");
            assert!(
                out.status.success(),
                "openssl: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.stdout, want, "cipher {n}");
        }
    }
}

// ---------------------------------------------------------------------------------
// mongo (fake mongod: tests/db_fake_mongod.py)
// ---------------------------------------------------------------------------------

#[test]
fn mongo_against_fake_mongod() {
    let port = free_port();
    let script = repo_root().join("tests/db_fake_mongod.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(port.to_string())
        .arg("sky")
        .arg("p@ss,w=rd")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs tests/db_fake_mongod.py");
    wait_port(port, &mut child, "fake mongod");
    let _server = Server {
        child,
        _dir: TempDir::new("fake-mongod"),
    };
    run_lua_test("t_db_mongo", "MONGO", &format!("mongo_port = {port}"));
}
