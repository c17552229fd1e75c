//! skynet.sharedata, skynet.datasheet and skynet.sharetable through the real binary:
//! each test boots skynet with a test service from tests/lua as `start`, which logs
//! `TEST <name> PASS` or `TEST <name> FAIL: <reasons>` and aborts.

mod common;

use common::{config_text, Skynet, TempDir};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

fn run_lua_test(name: &str) -> String {
    let dir = TempDir::new(name);
    let conf = dir.write("config", &config_text(dir.path(), name, ""));
    let mut sk = Skynet::start(&conf, dir.path());
    let line = sk.wait_for(&format!("TEST {name} "), TIMEOUT);
    sk.collect_for(Duration::from_millis(200));
    let log = sk.log();
    assert!(
        line.contains(&format!("TEST {name} PASS")),
        "{name} failed: {line}\n--- log ---\n{log}"
    );
    log
}

/// Values of every type, proxies, sources, many readers, update, delete, no leak.
#[test]
fn sharedata_values_readers_update_delete() {
    let log = run_lua_test("t_sharedata");
    if std::env::var_os("SHOW_LOG").is_some() {
        println!("{log}");
    }
}
