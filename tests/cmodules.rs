//! Users' own Lua C modules (issue 11, docs/C-MODULES.md): the `skynet` and
//! `skynet-lua` binaries export the Lua 5.4 C API, so a standard Lua 5.4 C module on
//! `lua_cpath` / `package.cpath` loads and runs against the Lua inside the binary.
//!
//! These tests use Debian's lua-cjson and lua-lpeg (their Lua 5.4 builds, and the
//! 5.3/5.1 builds as wrong-version modules), and C modules of their own compiled here
//! with `cc -shared -fPIC` against the Lua 5.4 headers of liblua5.4-dev. `.ci/run`
//! installs those packages; when one is missing the tests fail saying so.

mod common;

use common::{config_text, Skynet, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
const INSTALL: &str = "`.ci/run` installs them when missing; by hand: \
     apt-get install -y lua-cjson lua-lpeg liblua5.4-dev";

/// Debian's directory of Lua `version`'s C modules (`/usr/lib/<multiarch>/lua/5.4`).
fn debian_cmod_dir(version: &str) -> PathBuf {
    let arch = Command::new("cc")
        .arg("-print-multiarch")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "x86_64-linux-gnu".into());
    PathBuf::from(format!("/usr/lib/{arch}/lua/{version}"))
}

/// Fail (never skip) when a file the tests need is not installed.
fn need(path: &Path, package: &str) {
    assert!(
        path.exists(),
        "{} is missing: it comes with the Debian package {package}, which the C-module \
         tests need. {INSTALL}",
        path.display()
    );
}

/// Debian's cjson and lpeg for Lua 5.4 (and for `other`, when given); returns the 5.4 dir.
fn debian_modules(other: &[&str]) -> PathBuf {
    let dir = debian_cmod_dir("5.4");
    need(&dir.join("cjson.so"), "lua-cjson");
    need(&dir.join("lpeg.so"), "lua-lpeg");
    for v in other {
        let d = debian_cmod_dir(v);
        need(&d.join("cjson.so"), "lua-cjson");
        need(&d.join("lpeg.so"), "lua-lpeg");
    }
    dir
}

/// The Lua 5.4 headers a user builds modules with: liblua5.4-dev's, or `$LUA_INCDIR`.
fn lua_include() -> PathBuf {
    let dir = std::env::var_os("LUA_INCDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include/lua5.4"));
    need(&dir.join("lua.h"), "liblua5.4-dev");
    dir
}

/// Compile one C source into `out` (a `.so`) as a user would: `-shared -fPIC`, the
/// Lua 5.4 headers, no liblua.
fn build_module(src: &Path, out: &Path) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let r = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-I"])
        .arg(lua_include())
        .arg(src)
        .arg("-o")
        .arg(out)
        .output()
        .expect("run cc (the C-module tests need a C compiler)");
    assert!(
        r.status.success(),
        "cc {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&r.stderr)
    );
}

/// tests/cmodule/probe.c built into `dir/probe.so`.
fn build_probe(dir: &Path) {
    let src = common::repo_root().join("tests/cmodule/probe.c");
    build_module(&src, &dir.join("probe.so"));
}

/// C text without comments and preprocessor lines (with their continuations).
fn c_declarations(text: &str) -> String {
    let mut code = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("/*") {
        code.push_str(&rest[..i]);
        rest = rest[i..].find("*/").map_or("", |j| &rest[i + j + 2..]);
    }
    code.push_str(rest);
    let mut out = String::new();
    let mut in_directive = false;
    for line in code.lines() {
        if in_directive || line.trim_start().starts_with('#') {
            in_directive = line.trim_end().ends_with('\\');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Every function the Lua 5.4 headers declare (`LUA_API`, `LUALIB_API`, `LUAMOD_API`).
fn header_api(include: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for h in ["lua.h", "lauxlib.h", "lualib.h"] {
        let text = std::fs::read_to_string(include.join(h)).unwrap();
        for decl in c_declarations(&text).split(';') {
            let Some(at) = ["LUA_API", "LUALIB_API", "LUAMOD_API"]
                .iter()
                .filter_map(|m| decl.find(m).map(|i| i + m.len()))
                .min()
            else {
                continue;
            };
            // `LUA_API int (lua_gettop) (lua_State *L)`: the first parenthesised name.
            let rest = &decl[at..];
            let Some(open) = rest.find('(') else { continue };
            let Some(close) = rest[open..].find(')') else {
                continue;
            };
            let name = rest[open + 1..open + close].trim();
            if name.starts_with("lua")
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// A module that takes the address of every function of the Lua 5.4 headers (and
/// `lua_ident`): it loads only if the binary provides the whole API, since dlopen
/// (RTLD_NOW) resolves every reference. `require "apiall"` returns the count.
fn build_apiall(dir: &Path) -> usize {
    let names = header_api(&lua_include());
    assert!(names.len() > 140, "too few API functions parsed: {names:?}");
    let mut c = String::from("#include <lua.h>\n#include <lauxlib.h>\n#include <lualib.h>\n");
    c.push_str("void *const apiall_refs[] = {\n");
    for n in &names {
        c.push_str(&format!("    (void *)&{n},\n"));
    }
    c.push_str("    (void *)lua_ident,\n};\n");
    c.push_str(
        "int luaopen_apiall(lua_State *L) {\n\
         \x20   volatile lua_Integer n = 0;\n\
         \x20   for (unsigned i = 0; i < sizeof apiall_refs / sizeof apiall_refs[0]; i++)\n\
         \x20       n += apiall_refs[i] != 0;\n\
         \x20   lua_pushinteger(L, n);\n\
         \x20   return 1;\n\
         }\n",
    );
    let src = dir.join("apiall.c");
    std::fs::write(&src, c).unwrap();
    build_module(&src, &dir.join("apiall.so"));
    names.len() + 1
}

/// Run `skynet-lua` on a script file; returns (stdout, stderr, exit code).
fn skynet_lua(dir: &Path, script: &str) -> (String, String, Option<i32>) {
    let path = dir.join("script.lua");
    std::fs::write(&path, script).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_skynet-lua"))
        .arg(&path)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

/// Boot skynet with the test's services in a temp dir (`start` = `name`) and the given
/// `lua_cpath`; wait for `TEST <name> ...` and assert PASS. Returns the log.
fn run_service_test(dir: &TempDir, name: &str, cpath: &str) -> String {
    let extra = format!("lua_cpath = {cpath:?}");
    let conf = dir.write("config", &config_text(dir.path(), name, &extra));
    let mut sk = Skynet::start(&conf, dir.path());
    let line = sk.wait_for(&format!("TEST {name} "), TIMEOUT);
    sk.collect_for(Duration::from_millis(200));
    let log = sk.log();
    sk.stop();
    assert!(
        line.contains(&format!("TEST {name} PASS")),
        "{name} failed: {line}\n--- log ---\n{log}"
    );
    log
}

/// Lua shared by the service and skynet-lua tests: cjson round trip and an lpeg
/// grammar. Defines `debian_checks()`, which returns a list of failures.
const DEBIAN_CHECKS: &str = r#"
local function debian_checks()
    local fails = {}
    local function check(ok, what)
        if not ok then fails[#fails + 1] = what end
    end
    -- lua-cjson: encode, decode, compare
    local cjson = require "cjson"
    local doc = {
        name = "skynet", list = { 1, 2, 3, 4.5 }, empty = "",
        nested = { ok = true, off = false, deep = { text = "q\"uo\\te\n\226\130\172" } },
    }
    local text = cjson.encode(doc)
    local back = cjson.decode(text)
    local function same(a, b)
        if type(a) ~= type(b) then return false end
        if type(a) ~= "table" then return a == b end
        for k, v in pairs(a) do if not same(v, b[k]) then return false end end
        for k in pairs(b) do if a[k] == nil then return false end end
        return true
    end
    check(same(doc, back), "cjson round trip: " .. text)
    local arr = cjson.decode '[1,"two",{"3":null}]'
    check(arr[2] == "two" and arr[3]["3"] == cjson.null, "cjson array/null")
    check(cjson.encode(arr) == '[1,"two",{"3":null}]', "cjson re-encode")
    local ok, err = pcall(cjson.decode, "{broken")
    check(not ok and tostring(err):find("Expected", 1, true), "cjson error: " .. tostring(err))
    -- lpeg: an arithmetic grammar, evaluated while matching
    local lpeg = require "lpeg"
    local P, R, S, V, C, Ct = lpeg.P, lpeg.R, lpeg.S, lpeg.V, lpeg.C, lpeg.Ct
    local space = S " \t" ^ 0
    local number = C(P "-" ^ -1 * R "09" ^ 1) / tonumber * space
    local function op(set) return C(S(set)) * space end
    local function fold(t)
        local acc = t[1]
        for i = 2, #t, 2 do
            local o, v = t[i], t[i + 1]
            if o == "+" then acc = acc + v
            elseif o == "-" then acc = acc - v
            elseif o == "*" then acc = acc * v
            else acc = acc // v end
        end
        return acc
    end
    local expr = space * P {
        "Exp",
        Exp = Ct(V "Term" * (op "+-" * V "Term") ^ 0) / fold,
        Term = Ct(V "Factor" * (op "*/" * V "Factor") ^ 0) / fold,
        Factor = number + P "(" * space * V "Exp" * P ")" * space,
    } * -1
    check(expr:match "2 + 3 * (4 - 1) - 10 / 2" == 6, "lpeg grammar value")
    check(expr:match "((7))" == 7, "lpeg nested")
    check(expr:match "2 +" == nil, "lpeg rejects")
    local words = Ct((C(R("az", "AZ") ^ 1) + 1) ^ 0):match "hello, C module world!"
    check(#words == 4 and words[4] == "world", "lpeg captures")
    return fails
end
"#;

/// Debian's lua-cjson and lua-lpeg (Lua 5.4 builds) from a service: `lua_cpath` only.
#[test]
fn debian_cjson_and_lpeg_in_a_service() {
    let cmods = debian_modules(&[]);
    let dir = TempDir::new("cmod-debian");
    dir.write(
        "cmod_debian.lua",
        &format!(
            r#"local skynet = require "skynet"
{DEBIAN_CHECKS}
skynet.start(function()
    local fails = debian_checks()
    -- the modules came from lua_cpath, through the standard C searcher
    local where = package.searchpath("lpeg", package.cpath)
    if not (where and where:find("/5.4/lpeg.so", 1, true)) then
        fails[#fails + 1] = "lpeg not found on lua_cpath: " .. tostring(where)
    end
    if #fails == 0 then
        skynet.error("TEST cmod_debian PASS")
    else
        skynet.error("TEST cmod_debian FAIL: " .. table.concat(fails, "; "))
    end
end)
"#
        ),
    );
    run_service_test(&dir, "cmod_debian", &format!("{}/?.so", cmods.display()));
}

/// The same modules from `skynet-lua`, found on `package.cpath`.
#[test]
fn debian_cjson_and_lpeg_in_skynet_lua() {
    let cmods = debian_modules(&[]);
    let dir = TempDir::new("cmod-debian-lua");
    let script = format!(
        r#"package.cpath = "{}/?.so;" .. package.cpath
{DEBIAN_CHECKS}
local fails = debian_checks()
print(#fails == 0 and "PASS" or ("FAIL: " .. table.concat(fails, "; ")))
"#,
        cmods.display()
    );
    let (out, err, code) = skynet_lua(dir.path(), &script);
    assert_eq!((out.trim(), code), ("PASS", Some(0)), "stderr: {err}");
}

/// The test's own module: a worker service runs it in its dispatch; errors raised in C
/// (luaL_error, luaL_argerror) and errors of Lua callbacks called from C (lua_call) go
/// back to the caller, and the worker keeps answering with its state intact. A callback
/// through lua_callk may yield (skynet.call from inside the C module); through lua_call
/// it may not, which is a clean error. The whole-API module loads in the server too.
#[test]
fn own_module_calls_back_and_raises_in_services() {
    let dir = TempDir::new("cmod-probe");
    build_probe(dir.path());
    let api_count = build_apiall(dir.path());
    dir.write(
        "cmod_worker.lua",
        r#"local skynet = require "skynet"
local probe = require "probe"
local counter = probe.counter(0)
skynet.start(function()
    skynet.dispatch("lua", function(_, _, cmd, a, b)
        if cmd == "add" then
            skynet.ret(skynet.pack(probe.add(a, b)))
        elseif cmd == "fail" then
            probe.fail(a)
        elseif cmd == "callback_error" then
            probe.call(function() error("callback " .. a) end)
        elseif cmd == "bump" then
            skynet.ret(skynet.pack(counter:bump()))
        end
    end)
end)
"#,
    );
    dir.write(
        "cmod_probe.lua",
        &format!(
            r#"local skynet = require "skynet"
local probe = require "probe"
skynet.start(function()
    local fails = {{}}
    local function check(ok, what)
        if not ok then fails[#fails + 1] = what end
    end
    check(probe.version() == 504, "lua_version " .. probe.version())
    check(require "apiall" == {api_count}, "whole API")
    check(probe.add(2, 40) == 42, "add")
    local ok, err = pcall(probe.fail, "boom")
    check(not ok and err:find("probe failed: boom", 1, true), "luaL_error: " .. tostring(err))
    ok, err = pcall(probe.add, 1, "x")
    check(not ok and err:find("bad argument #2", 1, true), "argerror: " .. tostring(err))
    local a, b = probe.call(function(x, y) return x + y, "cb" end, 1, 2)
    check(a == 3 and b == "cb", "lua_call results")
    ok, err = pcall(probe.call, function() error("inner boom") end)
    check(not ok and err:find("inner boom", 1, true), "callback error: " .. tostring(err))
    local co = coroutine.wrap(function()
        return probe.call(function() coroutine.yield() end)
    end)
    ok, err = pcall(co)
    check(not ok and err:find("yield across a C-call boundary", 1, true),
        "yield through lua_call: " .. tostring(err))
    local c = probe.counter(10)
    check(c:bump() == 11 and c:bump(5) == 16, "userdata methods")
    c = nil
    collectgarbage()
    collectgarbage()
    check(probe.collected() >= 1, "__gc ran")

    local worker = skynet.newservice("cmod_worker")
    -- skynet.call (a yield) from a Lua callback the C module runs with lua_callk
    local r = probe.callk(function() return skynet.call(worker, "lua", "add", 20, 22) end)
    check(r == 42, "callk + skynet.call: " .. tostring(r))
    check(skynet.call(worker, "lua", "bump") == 1, "bump 1")
    check(not pcall(skynet.call, worker, "lua", "fail", "from worker"), "fail raised")
    check(not pcall(skynet.call, worker, "lua", "add", 1, "x"), "argerror raised")
    check(not pcall(skynet.call, worker, "lua", "callback_error", "inside worker"),
        "callback error raised")
    -- the worker still answers, its module state intact
    check(skynet.call(worker, "lua", "add", 2, 3) == 5, "worker answers after errors")
    check(skynet.call(worker, "lua", "bump") == 2, "bump 2")
    if #fails == 0 then
        skynet.error("TEST cmod_probe PASS")
    else
        skynet.error("TEST cmod_probe FAIL: " .. table.concat(fails, "; "))
    end
end)
"#
        ),
    );
    let log = run_service_test(
        &dir,
        "cmod_probe",
        &format!("{}/?.so", dir.path().display()),
    );
    // The worker's errors were logged with the C module's own messages.
    for want in [
        "probe failed: from worker",
        "bad argument #2 to 'add' (number expected, got string)",
        "callback inside worker",
    ] {
        assert!(log.contains(want), "missing {want:?} in\n{log}");
    }
}

/// The test's own module and the whole-API module from `skynet-lua`.
#[test]
fn own_module_in_skynet_lua() {
    let dir = TempDir::new("cmod-probe-lua");
    build_probe(dir.path());
    let api_count = build_apiall(dir.path());
    let script = format!(
        r#"package.cpath = "{}/?.so"
local probe = require "probe"
assert(require "apiall" == {api_count}, "whole API")
assert(probe.add(40, 2) == 42)
local a, b = probe.call(function(x) return x * 2, "cb" end, 21)
assert(a == 42 and b == "cb")
local ok, err = pcall(probe.call, function() probe.fail("deep") end)
assert(not ok and err:find("probe failed: deep", 1, true), err)
local co = coroutine.wrap(function()
    return probe.callk(function() return coroutine.yield(1) * 2 end)
end)
assert(co() == 1 and co(21) == 42, "yield through lua_callk")
print("PASS")
probe.fail("uncaught")
"#,
        dir.path().display()
    );
    let (out, err, code) = skynet_lua(dir.path(), &script);
    assert_eq!(out.trim(), "PASS", "stderr: {err}");
    // An uncaught error from C is reported like any Lua error, with a traceback.
    assert_eq!(code, Some(1), "stderr: {err}");
    assert!(
        err.contains("probe failed: uncaught") && err.contains("stack traceback"),
        "{err}"
    );
}

/// Both binaries export the whole Lua API and nothing else: every function of the
/// Lua 5.4 headers is in the dynamic symbol table, and every defined dynamic symbol is
/// a Lua one (a dynamic list, not `--export-dynamic` of every Rust symbol).
#[test]
fn binaries_export_the_lua_api_only() {
    let api = header_api(&lua_include());
    for bin in [
        env!("CARGO_BIN_EXE_skynet"),
        env!("CARGO_BIN_EXE_skynet-lua"),
    ] {
        let out = Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(bin)
            .output()
            .expect("run nm (binutils, installed with gcc)");
        assert!(out.status.success(), "nm {bin} failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let exported: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        let missing: Vec<&String> = api
            .iter()
            .filter(|n| !exported.contains(&n.as_str()))
            .collect();
        assert!(missing.is_empty(), "{bin} does not export {missing:?}");
        assert!(exported.contains(&"lua_ident"), "{bin}: lua_ident");
        let foreign: Vec<&&str> = exported
            .iter()
            .filter(|n| {
                !["lua_", "luaL_", "luaopen_"]
                    .iter()
                    .any(|p| n.starts_with(p))
            })
            .collect();
        assert!(
            foreign.is_empty(),
            "{bin} exports non-Lua symbols {foreign:?}"
        );
    }
}

const HINT: &str = "built for another Lua version";

/// Modules built for Lua 5.3 and 5.1 (Debian's builds of the same packages) do not
/// load: dlopen reports the first symbol that Lua 5.4 lacks (`lua_newuserdata`, ...),
/// and the error says what it means. A 5.3 module whose symbols all resolve stops at
/// `luaL_checkversion` (`luaL_newlib`). The interpreter does not crash and goes on: the
/// 5.4 module of the same name loads afterwards.
#[test]
fn wrong_lua_version_modules_fail_with_a_clear_error_in_skynet_lua() {
    let v54 = debian_modules(&["5.3", "5.1"]);
    let dir = TempDir::new("cmod-wrong-lua");
    // What `luaL_newlib` does in a module compiled with Lua 5.3's headers: a 5.3 module
    // whose symbols all resolve still stops at the version check.
    let m53 = dir.write(
        "m53.c",
        "#include <lua.h>\n#include <lauxlib.h>\n\
         int luaopen_m53(lua_State *L) {\n\
         \x20   luaL_checkversion_(L, 503, LUAL_NUMSIZES);\n\
         \x20   lua_createtable(L, 0, 0);\n\
         \x20   return 1;\n\
         }\n",
    );
    build_module(&m53, &dir.path().join("m53.so"));
    // The last require: the 5.3 module again, uncaught, under another name.
    std::os::unix::fs::symlink(
        debian_cmod_dir("5.3").join("cjson.so"),
        dir.path().join("cjson53.so"),
    )
    .unwrap();
    let script = format!(
        r#"local function try(dir, name)
    package.cpath = dir .. "/?.so"
    local ok, err = pcall(require, name)
    assert(not ok, name .. " from " .. dir .. " loaded")
    print(err)
end
try("{v53}", "cjson")
try("{v51}", "lpeg")
package.cpath = "{v54}/?.so"
local lpeg = require "lpeg"
print("5.4", require("cjson").encode({{1, 2}}), lpeg.match(lpeg.P "a" * lpeg.Cp(), "a"))
package.cpath = "{here}/?.so"
local ok, err = pcall(require, "m53")
print("M53", ok, err)
require "cjson53"
"#,
        v53 = debian_cmod_dir("5.3").display(),
        v51 = debian_cmod_dir("5.1").display(),
        v54 = v54.display(),
        here = dir.path().display(),
    );
    let (out, err, code) = skynet_lua(dir.path(), &script);
    let errors: Vec<&str> = out.split("error loading module").skip(1).collect();
    assert_eq!(errors.len(), 2, "stdout: {out}\nstderr: {err}");
    assert!(
        errors[0].contains("5.3/cjson.so: undefined symbol: lua_newuserdata"),
        "{out}"
    );
    assert!(
        errors[1].contains("5.1/lpeg.so: undefined symbol: lua"),
        "{out}"
    );
    assert!(errors.iter().all(|e| e.contains(HINT)), "{out}");
    assert!(out.contains("5.4\t[1,2]\t2"), "{out}\n{err}");
    assert!(
        out.contains("M53\tfalse\tversion mismatch: app. needs 503.0, Lua core provides 504.0"),
        "{out}"
    );
    // Uncaught: a normal error exit (status 1, not a signal), with the hint.
    assert_eq!(code, Some(1), "stderr: {err}");
    assert!(
        err.contains("undefined symbol: lua_newuserdata") && err.contains(HINT),
        "{err}"
    );
}

/// The same in the server: a service's `require` of a 5.3 module raises the clear
/// error; a service that requires it while starting fails to start (logged), and
/// the process and the other services go on.
#[test]
fn wrong_lua_version_module_fails_with_a_clear_error_in_a_service() {
    debian_modules(&["5.3"]);
    let dir = TempDir::new("cmod-wrong-svc");
    dir.write(
        "cmod_wrong_child.lua",
        r#"local skynet = require "skynet"
require "cjson"
skynet.start(function() end)
"#,
    );
    dir.write(
        "cmod_wrong.lua",
        r#"local skynet = require "skynet"
skynet.start(function()
    local fails = {}
    local ok, err = pcall(require, "cjson")
    if ok or not err:find("undefined symbol: lua_newuserdata", 1, true) then
        fails[#fails + 1] = "require: " .. tostring(err)
    end
    skynet.error("REQUIRE ERROR " .. tostring(err))
    if pcall(skynet.newservice, "cmod_wrong_child") then
        fails[#fails + 1] = "child started"
    end
    -- still running: timers, new services
    skynet.sleep(1)
    if #fails == 0 then
        skynet.error("TEST cmod_wrong PASS")
    else
        skynet.error("TEST cmod_wrong FAIL: " .. table.concat(fails, "; "))
    end
end)
"#,
    );
    let log = run_service_test(
        &dir,
        "cmod_wrong",
        &format!("{}/?.so", debian_cmod_dir("5.3").display()),
    );
    let line = log
        .lines()
        .find(|l| l.contains("REQUIRE ERROR"))
        .unwrap_or_default();
    assert!(line.contains("5.3/cjson.so"), "{log}");
    assert!(log.contains(HINT), "{log}");
    // The child's start-up error names the module too.
    assert!(
        log.matches("undefined symbol: lua_newuserdata").count() >= 2,
        "{log}"
    );
}

/// Our native modules are preloaded, so they win over a user's C module of the same
/// name on `lua_cpath` (here a fake `sproto.core` at `<cpath dir>/sproto/core.so`). A
/// user who wants their own clears the preload entry first, as docs/C-MODULES.md says.
#[test]
fn native_modules_win_over_same_named_c_modules() {
    let dir = TempDir::new("cmod-shadow");
    let src = dir.write(
        "fake_sproto.c",
        "#include <lua.h>\n\
         int luaopen_sproto_core(lua_State *L) {\n\
         \x20   lua_createtable(L, 0, 1);\n\
         \x20   lua_pushboolean(L, 1);\n\
         \x20   lua_setfield(L, -2, \"impostor\");\n\
         \x20   return 1;\n\
         }\n",
    );
    build_module(&src, &dir.path().join("sproto/core.so"));
    dir.write(
        "cmod_shadow.lua",
        r#"local skynet = require "skynet"
skynet.start(function()
    local fails = {}
    local where = package.searchpath("sproto.core", package.cpath)
    if not where then fails[#fails + 1] = "fake not on lua_cpath" end
    local core = require "sproto.core"
    if core.impostor or not core.parse then fails[#fails + 1] = "user module won" end
    -- the documented override: drop the preload entry, then require
    package.preload["sproto.core"] = nil
    package.loaded["sproto.core"] = nil
    local mine = require "sproto.core"
    if not mine.impostor then fails[#fails + 1] = "override did not load the user's module" end
    if #fails == 0 then
        skynet.error("TEST cmod_shadow PASS")
    else
        skynet.error("TEST cmod_shadow FAIL: " .. table.concat(fails, "; "))
    end
end)
"#,
    );
    run_service_test(
        &dir,
        "cmod_shadow",
        &format!("{}/?.so", dir.path().display()),
    );
}
