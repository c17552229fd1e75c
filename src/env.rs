//! The process environment: the string map that the config file fills and that
//! `GETENV` / `SETENV` (Lua `skynet.getenv` / `skynet.setenv`) read and write.
//!
//! Upstream keeps it in a Lua state behind a spinlock; a plain map behind an RwLock
//! is enough: it is read at service start and rarely written.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::OnceLock;

fn table() -> &'static RwLock<HashMap<String, String>> {
    static ENV: OnceLock<RwLock<HashMap<String, String>>> = OnceLock::new();
    ENV.get_or_init(|| RwLock::new(HashMap::new()))
}

/// The value of `key`, if set.
pub fn get(key: &str) -> Option<String> {
    table().read().get(key).cloned()
}

/// Set `key` unless it already exists; returns false when it existed.
pub fn set_if_absent(key: &str, value: &str) -> bool {
    let mut t = table().write();
    if t.contains_key(key) {
        return false;
    }
    t.insert(key.to_string(), value.to_string());
    true
}

/// Set `key` unconditionally (config loading and defaults).
pub fn set(key: &str, value: &str) {
    table().write().insert(key.to_string(), value.to_string());
}

/// `get(key)`, or `default` written back into the environment (upstream's
/// `optstring` / `optint` semantics: core defaults become visible to `getenv`).
pub fn get_or_default(key: &str, default: &str) -> String {
    let mut t = table().write();
    t.entry(key.to_string())
        .or_insert_with(|| default.to_string())
        .clone()
}
