//! `bson` through Lua: every golden case of `tests/vectors/bson.json` (recorded from
//! upstream skynet v1.8.0's `lua-bson.c`), round trips of every value type, `bson.type`,
//! and hostile input (truncated documents, bad lengths, deep nesting, random mutations)
//! that must raise a Lua error, never crash. One check runs in a `skynet` service.

#![allow(non_snake_case)]

mod common;

use std::ffi::c_int;
use std::time::Duration;

use mlua::ffi::{self, lua_State};
use mlua::{Lua, Table};
use serde_json::Value as Json;
use skynet::lua::modules::bson::luaopen_bson;

fn cases() -> Vec<Json> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/bson.json");
    let v: Json = serde_json::from_str(&std::fs::read_to_string(path).expect(path)).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `mkdoc(s)`: a full userdata holding the bytes of `s` (a hand-made document).
unsafe extern "C-unwind" fn mkdoc(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with a string argument (checked).
    unsafe {
        let mut n = 0usize;
        let p = ffi::luaL_checklstring(L, 1, &mut n);
        let u = ffi::lua_newuserdatauv(L, n, 1);
        std::ptr::copy_nonoverlapping(p as *const u8, u as *mut u8, n);
        1
    }
}

fn lua() -> Lua {
    setup(Lua::new())
}

/// With the `debug` library (to forge a document's index).
fn lua_with_debug() -> Lua {
    // SAFETY: the test loads no C modules; `debug` is only used to set a user value.
    setup(unsafe { Lua::unsafe_new() })
}

fn setup(lua: Lua) -> Lua {
    // SAFETY: valid lua_CFunctions.
    let (open, mk) = unsafe {
        (
            lua.create_c_function(luaopen_bson).unwrap(),
            lua.create_c_function(mkdoc).unwrap(),
        )
    };
    let package: Table = lua.globals().get("package").unwrap();
    let preload: Table = package.get("preload").unwrap();
    preload.set("bson", open).unwrap();
    lua.globals().set("mkdoc", mk).unwrap();
    lua.load("bson = require 'bson'").exec().unwrap();
    lua.load(COMMON).exec().unwrap();
    lua
}

/// Helpers shared by the plain-state checks and the service.
const COMMON: &str = r#"
function hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end
function deq(a, b)
    if type(a) ~= type(b) then return false end
    if type(a) ~= "table" then return a == b end
    for k, v in pairs(a) do if not deq(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
end
function docs(bson)
    return {
        int = {a = 1}, float = {f = 1.5}, string = {s = "hello"},
        bool = {t = true, f = false},
        nested = {o = {x = 1, y = {z = "deep"}}},
        array = {arr = {1, 2, 3, "four"}},
        int64 = {big = 1 << 40}, negative = {n = -5},
        binary = {b = bson.binary "\0\1\2"},
        date = {d = bson.date(1700000000)},
        timestamp = {ts = bson.timestamp(1700000000, 7)},
        objectid = {_id = bson.objectid "0123456789abcdef01234567"},
        regex = {r = bson.regex("^a.*", "i")},
        null = {n = bson.null},
        minmax = {lo = bson.minkey, hi = bson.maxkey},
    }
end
function roundtrip(bson)
    local doc = {
        i = 7, neg = -2147483648, big = -(1 << 40), f = -0.25, s = "héllo\0x", t = true, no = false,
        arr = {1, "two", {three = 3}, {4}}, empty = {},
        bin = bson.binary "\0\255\1", oid = bson.objectid "0123456789abcdef01234567",
        date = bson.date(1700000000), ts = bson.timestamp(1700000001, 9),
        re = bson.regex("a.b?", "im"), null = bson.null, lo = bson.minkey, hi = bson.maxkey,
        i64 = bson.int64(5),
        deep = {a = {b = {c = {d = {e = "end"}}}}},
    }
    local d = bson.encode(doc)
    local back = d:decode()
    assert(deq(bson.decode(d), back))
    -- int64 decodes as a plain integer; everything else as it went in
    assert(back.i64 == 5, "int64")
    back.i64 = nil; doc.i64 = nil
    assert(deq(doc, back), "round trip")
    assert(#d == #tostring(d))
    -- an encoded document embedded as a value
    local outer = bson.encode {inner = d, light = bson.to_lightuserdata(d)}:decode()
    local again = d:decode()
    assert(deq(outer.inner, again) and deq(outer.light, again))
    -- __pairs objects (nested and top level) and __len arrays read through metamethods
    local pobj = setmetatable({}, {__pairs = function() return next, {x = 1, y = "z"}, nil end})
    local arr = setmetatable({}, {__len = function() return 3 end, __index = function(_, i) return i * 10 end})
    assert(deq(bson.encode {p = pobj, a = arr}:decode(), {p = {x = 1, y = "z"}, a = {10, 20, 30}}))
    assert(deq(bson.encode(pobj):decode(), {x = 1, y = "z"}))
    -- encode_order keeps argument order and takes number keys as strings
    local o = bson.encode_order("z", 1, "a", 2, 3, "x")
    assert(hex(tostring(o)) == "1c000000107a00010000001061000200000002330002000000780000", hex(tostring(o)))
    return true
end
function types(bson)
    local function pack(...) return table.pack(...) end
    local function same(t, ...)
        local want = table.pack(...)
        assert(t.n == want.n, "count")
        for i = 1, t.n do assert(t[i] == want[i], tostring(t[i]) .. " ~= " .. tostring(want[i])) end
    end
    same(pack(bson.type(1)), "number", 1)
    same(pack(bson.type(true)), "boolean", true)
    same(pack(bson.type("s")), "string", "s")
    same(pack(bson.type(nil)), "nil")
    same(pack(bson.type(bson.null)), "nil")
    same(pack(bson.type(bson.minkey)), "minkey")
    same(pack(bson.type(bson.maxkey)), "maxkey")
    same(pack(bson.type(bson.binary "ab")), "binary", "ab", 0)
    same(pack(bson.type(bson.objectid "0123456789ABCDEF01234567")), "objectid", "0123456789abcdef01234567")
    same(pack(bson.type(bson.date(12345))), "date", 12345)
    same(pack(bson.type(bson.timestamp(100, 3))), "timestamp", 100, 3)
    same(pack(bson.type(bson.regex("p", "f"))), "regex", "p", "f")
    same(pack(bson.type(bson.regex("p"))), "regex", "p", "")
    same(pack(bson.type(bson.int64(-9))), "int64", -9)
    local id1, id2 = bson.objectid(), bson.objectid()
    assert(#id1 == 14 and id1 ~= id2 and id1:sub(1, 2) == "\0\7")
    local t = {} ; assert(select(1, bson.type(t)) == "table" and select(2, bson.type(t)) == t)
    assert(not pcall(bson.type, print))
    return true
end
"#;

fn lua_err(lua: &Lua, code: &str) -> String {
    let r: String = lua
        .load(format!(
            "local ok, e = pcall(function() {code} end) if ok then return 'NO ERROR' end return tostring(e)"
        ))
        .eval()
        .unwrap();
    r
}

/// Elements of a document body, documents' elements sorted (order-insensitive form of
/// the encodings upstream made in Lua's hash order).
fn canon(doc: &[u8], sort: bool) -> Vec<Vec<u8>> {
    let mut body = &doc[4..doc.len() - 1];
    let mut out = Vec::new();
    while !body.is_empty() {
        let t = body[0];
        let kend = 1 + body[1..].iter().position(|&c| c == 0).unwrap() + 1;
        let vlen = match t {
            1 | 9 | 17 | 18 => 8,
            2 => 4 + u32::from_le_bytes(body[kend..kend + 4].try_into().unwrap()) as usize,
            3 | 4 => u32::from_le_bytes(body[kend..kend + 4].try_into().unwrap()) as usize,
            5 => 5 + u32::from_le_bytes(body[kend..kend + 4].try_into().unwrap()) as usize,
            7 => 12,
            8 => 1,
            10 | 127 | 255 => 0,
            11 => {
                let a = body[kend..].iter().position(|&c| c == 0).unwrap() + 1;
                a + body[kend + a..].iter().position(|&c| c == 0).unwrap() + 1
            }
            16 => 4,
            _ => panic!("type {t}"),
        };
        let mut e = body[..kend].to_vec();
        let v = &body[kend..kend + vlen];
        if t == 3 || t == 4 {
            for sub in canon(v, t == 3) {
                e.extend(sub);
            }
        } else {
            e.extend_from_slice(v);
        }
        out.push(e);
        body = &body[kend + vlen..];
    }
    if sort {
        out.sort();
    }
    out
}

#[test]
fn golden_encode_cases() {
    let lua = lua();
    let got: Table = lua
        .load(
            "local out = {} for k, d in pairs(docs(bson)) do out[k] = tostring(bson.encode(d)) end return out",
        )
        .eval()
        .unwrap();
    let mut n = 0;
    for c in cases() {
        let name = c["name"].as_str().unwrap();
        let want = c["hex"].as_str().map(unhex);
        match c["kind"].as_str().unwrap() {
            "encode" => {
                let ours: mlua::LuaString = got.get(name).unwrap();
                let ours = ours.as_bytes().to_vec();
                let want = want.unwrap();
                if ["bool", "nested", "minmax"].contains(&name) {
                    // Several keys: upstream's bytes follow its table order.
                    assert_eq!(ours.len(), want.len(), "{name}");
                    assert_eq!(canon(&ours, true), canon(&want, true), "{name}");
                } else {
                    assert_eq!(ours, want, "{name}");
                }
                n += 1;
            }
            "encode_order" => {
                let ours: mlua::LuaString = lua
                    .load("return tostring(bson.encode_order('find', 'coll', 'filter', 1, 'limit', 2))")
                    .eval()
                    .unwrap();
                assert_eq!(ours.as_bytes().to_vec(), want.unwrap(), "{name}");
                n += 1;
            }
            "decode" => {
                let ok: bool = lua
                    .load("return deq(bson.decode(bson.encode {a = 1, arr = {1, 2}, o = {k = true}, s = 'x'}), {a = 1, arr = {1, 2}, o = {k = true}, s = 'x'})")
                    .eval()
                    .unwrap();
                assert!(ok);
                n += 1;
            }
            "decode_error" => {
                // Upstream's `decode` of a string (not a document) returns nothing.
                let r: mlua::MultiValue = lua.load("return bson.decode('\\5\\0')").eval().unwrap();
                assert_eq!(r.len(), 0);
                n += 1;
            }
            k => panic!("unknown kind {k}"),
        }
    }
    assert_eq!(n, 18);
    // Decoding upstream's bytes gives the documents back.
    for c in cases() {
        if c["kind"] == "encode" {
            let code = format!(
                "return deq(bson.decode(mkdoc('{}')), docs(bson)[{:?}])",
                lua_bytes(&unhex(c["hex"].as_str().unwrap())),
                c["name"].as_str().unwrap()
            );
            let ok: bool = lua.load(code).eval().unwrap();
            let name = c["name"].as_str().unwrap();
            assert!(ok, "decoding upstream's {name}");
        }
    }
}

fn lua_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("\\x{x:02x}")).collect()
}

#[test]
fn round_trips_and_types() {
    let lua = lua();
    lua.load("assert(roundtrip(bson)) assert(types(bson))")
        .exec()
        .unwrap();
}

#[test]
fn encode_errors() {
    let lua = lua();
    let cases = [
        (
            "bson.encode {a = {1, nil, 3}}",
            "Bson array has a hole (nil), Use bson.null instead",
        ),
        (
            "bson.encode {[1.5] = 1}",
            "Bson dictionary's key can't be number",
        ),
        ("bson.encode {[true] = 1}", "Invalid key type : boolean"),
        ("bson.encode {f = print}", "Invalid value type : function"),
        ("bson.encode {['\\xff'] = 1}", "Invalid utf8 string"),
        ("bson.encode {s = '\\xc0\\x80'}", "Invalid utf8 string"),
        (
            "local t = {} t.t = t bson.encode(t)",
            "Too depth while encoding bson",
        ),
        ("bson.encode {o = '\\0\\7short'}", "Invalid object id short"),
        ("bson.encode {d = '\\0\\9xx'}", "Invalid date"),
        ("bson.encode {d = '\\0\\17xx'}", "Invalid timestamp"),
        ("bson.encode {d = '\\0\\18xx'}", "Invalid int64"),
        ("bson.encode {d = '\\0\\200'}", "Invalid subtype 200"),
        ("bson.encode {d = '\\0\\11nonul'}", "Invalid regex"),
        ("bson.encode {d = '\\0\\5'}", "Invalid binary"),
        (
            "bson.encode {d = mkdoc('\\3\\0\\0\\0')}",
            "Invalid bson document",
        ),
        (
            "bson.encode {d = mkdoc('\\99\\0\\0\\0\\0')}",
            "Invalid bson block (5:99)",
        ),
        (
            "bson.encode(setmetatable({}, {__len = function() return 1.5 end}))",
            "NO ERROR",
        ),
        (
            "bson.encode {a = setmetatable({}, {__len = function() return 1.5 end})}",
            "__len should return integer",
        ),
        (
            "bson.encode {a = setmetatable({}, {__pairs = function() error 'boom' end})}",
            "boom",
        ),
        ("bson.encode_order('a')", "Invalid ordered dict"),
        (
            "bson.encode_order('a', 1, {}, 2)",
            "Argument 3 need a string",
        ),
        ("bson.encode(1)", "(table expected, got number)"),
        ("bson.objectid 'abc'", "Invalid objectid abc"),
    ];
    for (code, want) in cases {
        let e = lua_err(&lua, code);
        assert!(e.ends_with(want), "{code}: got {e:?}, want {want:?}");
    }
    // A failed encode leaves the state usable.
    lua.load("assert(#bson.encode {a = 1} == 12)")
        .exec()
        .unwrap();
}

#[test]
fn hostile_documents_raise() {
    let lua = lua();
    let cases: &[(&[u8], &str)] = &[
        (
            b"\x0c\x00\x00\x00\x10a\x00\x01",
            "Invalid bson block (8:12)",
        ),
        (b"\xff\xff\xff\x7f\x00", "Invalid bson block (5:2147483647)"),
        (b"\xfb\xff\xff\xff\x00", "Invalid bson block (5:-5)"),
        (b"\x04\x00\x00\x00", "Invalid bson block (0:-1)"),
        (
            b"\x0c\x00\x00\x00\x10a\x00\x01\x00\x00\x00\x01",
            "Invalid document end",
        ),
        (
            b"\x08\x00\x00\x00\x10ab\x00",
            "Invalid bson block : cstring",
        ),
        (
            b"\x0a\x00\x00\x00\x20a\x00\x00\x00\x00",
            "Invalid bson type : 32",
        ),
        (
            b"\x0d\x00\x00\x00\x02s\x00\x00\x00\x00\x00\x00\x00",
            "Invalid bson string , length = 0",
        ),
        (
            b"\x0e\x00\x00\x00\x02s\x00\x09\x00\x00\x00ab\x00\x00",
            "Invalid bson block (2:9)",
        ),
        (
            b"\x0d\x00\x00\x00\x03d\x00\x09\x00\x00\x00\x00\x00",
            "Invalid bson block (1:4)",
        ),
        (
            b"\x0e\x00\x00\x00\x05b\x00\xff\xff\xff\xff\x00\x00\x00",
            "Invalid bson block (1:-1)",
        ),
        (
            b"\x0b\x00\x00\x00\x07o\x00\x01\x02\x03\x00",
            "Invalid bson block (3:12)",
        ),
    ];
    for (bytes, want) in cases {
        let e = lua_err(&lua, &format!("bson.decode(mkdoc('{}'))", lua_bytes(bytes)));
        assert!(e.ends_with(want), "{bytes:?}: got {e:?}, want {want:?}");
    }
    // Deep nesting: 5000 nested documents.
    let depth = 5000usize;
    let mut doc = b"\x05\x00\x00\x00\x00".to_vec();
    for _ in 0..depth {
        let mut outer = Vec::new();
        let n = 4 + 1 + 2 + doc.len() + 1;
        outer.extend_from_slice(&(n as u32).to_le_bytes());
        outer.extend_from_slice(b"\x03a\x00");
        outer.extend_from_slice(&doc);
        outer.push(0);
        doc = outer;
    }
    let e = lua_err(&lua, &format!("bson.decode(mkdoc('{}'))", lua_bytes(&doc)));
    assert!(e.ends_with("Too depth while decoding bson"), "{e}");

    // Random mutations of a rich document: errors or tables, never a crash.
    let good: mlua::LuaString = lua
        .load("return tostring(bson.encode {a = 1, s = 'str', o = {x = {1, 2, bson.binary 'b'}, r = bson.regex('x', 'y')}, d = bson.date(5), ts = bson.timestamp(1, 2), id = bson.objectid(), f = 0.5, n = bson.null})")
        .eval()
        .unwrap();
    let good = good.as_bytes().to_vec();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let f: mlua::Function = lua
        .load("return function(s) return pcall(bson.decode, mkdoc(s)) end")
        .eval()
        .unwrap();
    for _ in 0..3000 {
        let mut b = good.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % b.len();
            b[i] = next() as u8;
        }
        if next() % 4 == 0 {
            b.truncate((next() as usize) % b.len());
        }
        let s = lua.create_string(&b).unwrap();
        let _: mlua::MultiValue = f.call(s).unwrap();
    }
}

#[test]
fn makeindex_and_replace_in_place() {
    let lua = lua_with_debug();
    lua.load(
        r#"
        local function doc(i, big, f, b, id, d, ts)
            return bson.encode_order("i", i, "big", bson.int64(big), "f", f, "b", b,
                "s", "str", "id", bson.objectid(id), "arr", {1, 2}, "d", bson.date(d),
                "ts", bson.timestamp(ts, 9))
        end
        local d = doc(1, 5, 1.5, true, "0123456789abcdef01234567", 10, 100)
        local ok, e = pcall(function() d.i = 2 end)
        assert(not ok and e:find "call makeindex first", e)
        assert(d:makeindex() == d)
        d.i = -7
        d.big = 1 << 40
        d.f = 2.5
        d.b = false
        d.id = bson.objectid "ffeeddccbbaa998877665544"
        d.d = bson.date(20)
        d.ts = bson.timestamp(200, 3)
        local want = doc(-7, 1 << 40, 2.5, false, "ffeeddccbbaa998877665544", 20, 200)
        -- timestamp(200, 3) vs (200, 9): only the increment differs
        assert(tostring(d):sub(1, -10) == tostring(want):sub(1, -10), hex(tostring(d)) .. "\n" .. hex(tostring(want)))
        assert(d:decode().ts == bson.timestamp(200, 3))
        local function err(f) local ok, e = pcall(f) assert(not ok) return e end
        local cases = {
            {function() d.s = "x" end, "Can't replace key : s"},
            {function() d.arr = {} end, "Can't replace key : arr"},
            {function() d.nokey = 1 end, "Can't replace key : nokey"},
            {function() d.i = 1.5 end, "1.500000 must be a 32bit integer "},
            {function() d.big = 0.5 end, "0.500000 must be a 64bit integer "},
            {function() d.id = bson.date(1) end, "Type mismatch, need bson type 7"},
            {function() d.d = "\0\9abcdefg" end, "Invalid date"},
            {function() d.f = {} end, "(number expected, got table)"},
        }
        for _, c in ipairs(cases) do
            local e = err(c[1])
            assert(e:sub(-#c[2]) == c[2], e)
        end
        -- a forged index cannot write outside the document
        debug.setuservalue(d, {i = (1 << 40) << 5 | 16})
        assert(err(function() d.i = 1 end):find "Can't replace type 16")
        "#,
    )
    .exec()
    .unwrap();
}

#[test]
fn bson_in_a_service() {
    let src = format!(
        "local skynet = require 'skynet'\nlocal bson = require 'bson'\n{COMMON}\nskynet.start(function()\n  assert(roundtrip(bson)) assert(types(bson))\n  skynet.error('BSON ' .. hex(tostring(bson.encode_order('find', 'coll', 'filter', 1, 'limit', 2))))\n  skynet.error('BSON DONE')\nend)\n"
    );
    let log = common::run_service("bsontest", &src, "BSON DONE", Duration::from_secs(10));
    assert!(
        log.contains("BSON 2b0000000266696e640005000000636f6c6c001066696c7465720001000000106c696d6974000200000000"),
        "{log}"
    );
}
