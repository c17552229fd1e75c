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
    if std::env::var_os("SHOW_LOG").is_some() {
        println!("{log}");
    }
    assert!(
        line.contains(&format!("TEST {name} PASS")),
        "{name} failed: {line}\n--- log ---\n{log}"
    );
    log
}

/// Values of every type, proxies, sources, many readers, update, delete, no leak.
#[test]
fn sharedata_values_readers_update_delete() {
    run_lua_test("t_sharedata");
}

/// Documents, in-place updates, many readers, versions given back (also by readers that
/// exit or are killed).
#[test]
fn datasheet_values_readers_update() {
    run_lua_test("t_datasheet");
}

/// Tables from a table, Lua text and a file; query/queryall; explicit update.
#[test]
fn sharetable_load_query_update() {
    run_lua_test("t_sharetable");
}

/// One copy per process: RSS growth for 20 readers of a 1 MB set, against 20 copies.
#[test]
fn sharedata_one_copy_per_process() {
    let log = run_lua_test("t_sharedata_mem");
    for line in log.lines().filter(|l| l.contains("MEM ")) {
        println!("{line}");
    }
}
