//! `skynet.crypt` through Lua: every golden case of `tests/vectors/crypt.json` (recorded
//! from upstream skynet v1.8.0) is run by one Lua runner in three places: a plain Lua
//! state with the module preloaded, a service of the real `skynet` binary (which also
//! loads the 2016 name `crypt`), and the `skynet-lua` interpreter as `client.crypt`.
//! Results are compared byte for byte, errors by their exact text. Argument errors
//! (`bad argument ...`) and hostile inputs are checked in the plain state.

mod common;

use std::process::Command;
use std::time::Duration;

use mlua::{Function, Lua, Table};
use serde_json::Value as Json;
use skynet::lua::modules::crypt::luaopen_skynet_crypt;

fn cases() -> Vec<Json> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/crypt.json");
    let v: Json = serde_json::from_str(&std::fs::read_to_string(path).expect(path)).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A case's argument bytes (`<name>_hex` or the text `<name>`); error cases that give
/// only the faulty argument get a valid 8-byte value for the other.
fn arg(case: &Json, name: &str) -> Vec<u8> {
    if let Some(h) = case[format!("{name}_hex")].as_str() {
        unhex(h)
    } else if let Some(t) = case[name].as_str() {
        t.as_bytes().to_vec()
    } else {
        b"12345678".to_vec()
    }
}

fn lua_string(b: &[u8]) -> String {
    let body: String = b.iter().map(|x| format!("\\x{x:02x}")).collect();
    format!("\"{body}\"")
}

/// The cases as a Lua table constructor.
fn lua_cases(cases: &[Json]) -> String {
    let mut s = String::from("{\n");
    for c in cases {
        s += &format!(
            "{{fn = {:?}, input = {}, key = {}",
            c["fn"].as_str().unwrap(),
            lua_string(&arg(c, "input")),
            lua_string(&arg(c, "key"))
        );
        if let Some(p) = c["padding"].as_str() {
            s += &format!(", padding = {p:?}");
        }
        s += "},\n";
    }
    s + "}"
}

/// What the runner must print for each case: `OK <hex>` or `ERR <text>`.
fn expected(cases: &[Json]) -> Vec<String> {
    cases
        .iter()
        .map(|c| {
            if let Some(e) = c["error"].as_str() {
                format!("ERR {e}")
            } else if let Some(h) = c["out_hex"].as_str() {
                format!("OK {h}")
            } else if let Some(t) = c["out"].as_str() {
                format!("OK {}", hex(t.as_bytes()))
            } else {
                // The `padding` table, as the runner prints it (keys sorted).
                let pairs: Vec<String> = c["out"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!("OK {}", hex(pairs.join(" ").as_bytes()))
            }
        })
        .collect()
}

/// Defines `run_cases(crypt, cases, emit)`: calls `emit(i, "OK <hex>" | "ERR <msg>")`
/// per case, with the arguments in the order skynet's Lua passes them.
const RUNNER: &str = r#"
local function hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end
local function call(crypt, c)
    local f = c.fn
    if f == "padding" then
        local keys = {}
        for k in pairs(crypt.padding) do keys[#keys + 1] = k end
        table.sort(keys)
        for i, k in ipairs(keys) do keys[i] = k .. "=" .. crypt.padding[k] end
        return table.concat(keys, " ")
    elseif f == "desencode" then
        return crypt.desencode(c.key, c.input, c.padding and crypt.padding[c.padding])
    elseif f == "desdecode" or f == "hmac_hash" or f == "hmac_sha1" then
        return crypt[f](c.key, c.input)
    elseif f == "hmac64" or f == "hmac64_md5" or f == "xor_str" or f == "dhsecret" then
        return crypt[f](c.input, c.key)
    else
        return crypt[f](c.input)
    end
end
function run_cases(crypt, cases, emit)
    for i, c in ipairs(cases) do
        local ok, r = pcall(call, crypt, c)
        emit(i, ok and ("OK " .. hex(r)) or ("ERR " .. tostring(r)))
    end
    local a, b = crypt.randomkey(), crypt.randomkey()
    local agree = crypt.dhsecret(crypt.dhexchange(a), b) == crypt.dhsecret(crypt.dhexchange(b), a)
    emit(0, "DH " .. tostring(agree and #a == 8 and a ~= b))
end
"#;

/// Compares the runner's lines (`<i> <result>`, i from 1; `0 DH ...`) with the vectors.
fn check_lines(lines: &[(usize, String)], cases: &[Json], context: &str) {
    let want = expected(cases);
    let mut got = vec![None; want.len()];
    let mut dh = None;
    for (i, line) in lines {
        if *i == 0 {
            dh = Some(line.clone());
        } else {
            got[i - 1] = Some(line.clone());
        }
    }
    let failures: Vec<String> = want
        .iter()
        .zip(&got)
        .enumerate()
        .filter(|(_, (w, g))| g.as_deref() != Some(w.as_str()))
        .map(|(i, (w, g))| format!("case {}: {} want {w}, got {g:?}", i + 1, cases[i]))
        .collect();
    assert!(failures.is_empty(), "{context}:\n{}", failures.join("\n"));
    assert_eq!(dh.as_deref(), Some("DH true"), "{context}: DH agreement");
    assert_eq!(got.len(), 199);
}

/// A plain Lua state with `skynet.crypt` preloaded and the runner loaded.
fn lua() -> Lua {
    let lua = Lua::new();
    // SAFETY: a valid lua_CFunction.
    let open = unsafe { lua.create_c_function(luaopen_skynet_crypt) }.unwrap();
    let package: Table = lua.globals().get("package").unwrap();
    let preload: Table = package.get("preload").unwrap();
    preload.set("skynet.crypt", open).unwrap();
    lua.load("crypt = require 'skynet.crypt'").exec().unwrap();
    lua.load(RUNNER).exec().unwrap();
    lua
}

#[test]
fn golden_cases_in_a_lua_state() {
    let cases = cases();
    let lua = lua();
    let list: Table = lua.load(lua_cases(&cases)).eval().unwrap();
    let out = lua.create_table().unwrap();
    let emit = {
        let out = out.clone();
        lua.create_function(move |_, (i, line): (usize, String)| out.set(i, line))
            .unwrap()
    };
    let run: Function = lua.globals().get("run_cases").unwrap();
    let crypt: Table = lua.globals().get("crypt").unwrap();
    run.call::<()>((crypt, list, emit)).unwrap();
    let lines: Vec<(usize, String)> = out.pairs().map(|p| p.unwrap()).collect();
    assert_eq!(lines.len(), 200);
    check_lines(&lines, &cases, "plain Lua state");
}

/// Runs Lua `code` in the plain state; returns its result or error text.
fn eval(lua: &Lua, code: &str) -> Result<String, String> {
    lua.load(code)
        .eval::<mlua::Value>()
        .map(|v| format!("{v:?}"))
        .map_err(|e| match e {
            mlua::Error::RuntimeError(m) => m,
            mlua::Error::CallbackError { cause, .. } => cause.to_string(),
            other => other.to_string(),
        })
}

/// The error text of `pcall(<call>)` in Lua.
fn perr(lua: &Lua, call: &str) -> String {
    lua.load(format!(
        "local ok, e = pcall({call}) assert(not ok) return e"
    ))
    .eval::<String>()
    .unwrap_or_else(|e| panic!("{call}: {e}"))
}

#[test]
fn argument_checks_are_upstreams() {
    let lua = lua();
    let cases = [
        // luaL_checklstring / luaL_optinteger texts, with the name Lua finds for the
        // function in package.loaded.
        (
            "crypt.sha1",
            "bad argument #1 to 'skynet.crypt.sha1' (string expected, got no value)",
        ),
        (
            "crypt.hexencode, {}",
            "bad argument #1 to 'skynet.crypt.hexencode' (string expected, got table)",
        ),
        (
            "crypt.hmac_sha1, 'k'",
            "bad argument #2 to 'skynet.crypt.hmac_sha1' (string expected, got no value)",
        ),
        (
            "crypt.desencode, '12345678', 'x', {}",
            "bad argument #3 to 'skynet.crypt.desencode' (number expected, got table)",
        ),
        (
            "crypt.desencode, '12345678', 'x', 1.5",
            "bad argument #3 to 'skynet.crypt.desencode' (number has no integer representation)",
        ),
        (
            "crypt.desdecode, '12345678', ('x'):rep(8), 'no'",
            "bad argument #3 to 'skynet.crypt.desdecode' (number expected, got string)",
        ),
        // Which check comes first, as upstream: a size error before the next
        // argument is even read.
        (
            "crypt.desencode, 'short'",
            "Invalid key size 5, need 8 bytes",
        ),
        (
            "crypt.desencode, ('k'):rep(300), nil",
            "Invalid key size 300, need 8 bytes",
        ),
        (
            "crypt.desdecode, '12345678', 'abc', {}",
            "Invalid des crypt text length 3",
        ),
        (
            "crypt.desdecode, '12345678', ''",
            "Invalid des crypt text length 0",
        ),
        ("crypt.hmac64, 'x'", "Invalid uint64 x"),
        ("crypt.hmac64_md5, '12345678', 'y'", "Invalid uint64 y"),
        ("crypt.dhsecret, 'x', nil", "Invalid uint64 x"),
        ("crypt.dhsecret, '12345678', ('\\0'):rep(8)", "Can't be 0"),
        ("crypt.dhexchange, 'short'", "Invalid dh uint64 key"),
        ("crypt.hmac_hash, 'short'", "Invalid uint64 key"),
        ("crypt.xor_str, 'abc', ''", "Can't xor empty string"),
        ("crypt.base64decode, 'YR=='", "Invalid base64 text"),
        ("crypt.base64decode, 'aGVsbG8=\\n'", "Invalid base64 text"),
        // Padding mode: any integer, truncated to a C int, then range-checked.
        (
            "crypt.desencode, '12345678', 'x', 2",
            "Invalid padding mode 2",
        ),
        (
            "crypt.desencode, '12345678', 'x', -1",
            "Invalid padding mode -1",
        ),
        (
            "crypt.desencode, '12345678', 'x', (1 << 32) + 5",
            "Invalid padding mode 5",
        ),
        (
            "crypt.desdecode, '12345678', ('x'):rep(8), 9",
            "Invalid padding mode 9",
        ),
    ];
    for (call, want) in cases {
        assert_eq!(perr(&lua, call), want, "{call}");
    }
    // Numbers are strings to luaL_checklstring; string modes are numbers to
    // luaL_optinteger; a mode of 1 << 32 truncates to 0.
    assert_eq!(
        eval(&lua, "return crypt.hexencode(12)"),
        Ok("String(\"3132\")".into())
    );
    assert_eq!(
        eval(
            &lua,
            "local k = '12345678' return crypt.desencode(k, 'x', '1') == crypt.desencode(k, 'x', 1)"
        ),
        Ok("Boolean(true)".into())
    );
    assert_eq!(
        eval(
            &lua,
            "local k = '12345678' return crypt.desencode(k, 'x', 1 << 32) == crypt.desencode(k, 'x')"
        ),
        Ok("Boolean(true)".into())
    );
}

#[test]
fn round_trips_and_hostile_inputs() {
    let lua = lua();
    let ok = lua
        .load(
            r#"
        local blobs = {}
        for n = 0, 600, 7 do
            local t = {}
            for i = 1, n do t[i] = string.char((i * 131 + n) % 256) end
            blobs[#blobs + 1] = table.concat(t)
        end
        local key = crypt.randomkey()
        for _, b in ipairs(blobs) do
            for _, mode in ipairs { crypt.padding.iso7816_4, crypt.padding.pkcs7 } do
                local c = crypt.desencode(key, b, mode)
                assert(#c == (#b + 8) // 8 * 8)
                assert(crypt.desdecode(key, c, mode) == b)
            end
            assert(crypt.base64decode(crypt.base64encode(b)) == b)
            assert(crypt.hexdecode(crypt.hexencode(b)) == b)
            assert(crypt.xor_str(crypt.xor_str(b, key), key) == b)
            -- Hostile: every function on every blob either answers or raises.
            for _, f in ipairs { "desdecode", "hmac64", "hmac64_md5", "dhsecret", "hmac_hash" } do
                pcall(crypt[f], b, b)
                pcall(crypt[f], key, b)
                pcall(crypt[f], b, key)
            end
            for _, f in ipairs { "base64decode", "hexdecode", "dhexchange", "hashkey", "sha1" } do
                pcall(crypt[f], b)
            end
            pcall(crypt.desdecode, key, b, crypt.padding.pkcs7)
        end
        return true
    "#,
        )
        .eval::<bool>()
        .unwrap();
    assert!(ok);
}

#[test]
fn golden_cases_in_a_skynet_service() {
    let cases = cases();
    let source = format!(
        r#"
local skynet = require "skynet"
local crypt = require "skynet.crypt"
{RUNNER}
skynet.start(function()
    skynet.error("CRYPT COMPAT " .. tostring(require "crypt" == crypt))
    run_cases(crypt, {cases}, function(i, line) skynet.error("CRYPT " .. i .. " " .. line) end)
    skynet.error("CRYPT DONE")
end)
"#,
        cases = lua_cases(&cases)
    );
    let log = common::run_service("crypt_main", &source, "CRYPT DONE", Duration::from_secs(30));
    assert!(log.contains("CRYPT COMPAT true"), "{log}");
    let lines = runner_lines(&log, "CRYPT ");
    check_lines(&lines, &cases, &format!("skynet service\n{log}"));
}

#[test]
fn golden_cases_in_skynet_lua_as_client_crypt() {
    let cases = cases();
    let dir = common::TempDir::new("crypt_client");
    let script = dir.write(
        "t.lua",
        &format!(
            "local crypt = require 'client.crypt'\n{RUNNER}\n\
             run_cases(crypt, {}, function(i, line) print('CRYPT ' .. i .. ' ' .. line) end)\n",
            lua_cases(&cases)
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_skynet-lua"))
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = runner_lines(&stdout, "CRYPT ");
    check_lines(&lines, &cases, "skynet-lua");
}

/// `(<i>, <result>)` from lines containing `<tag><i> <result>`.
fn runner_lines(text: &str, tag: &str) -> Vec<(usize, String)> {
    text.lines()
        .filter_map(|l| {
            let rest = &l[l.find(tag)? + tag.len()..];
            let (i, line) = rest.split_once(' ')?;
            Some((i.parse().ok()?, line.to_string()))
        })
        .collect()
}
