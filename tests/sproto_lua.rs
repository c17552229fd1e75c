//! `sproto.core` + `skynet/lualib/sproto*.lua` in a plain Lua 5.4 state, checked against the
//! golden vectors in `crates/sproto/tests/vectors` using their authoritative Lua source inputs:
//! schemas (bundles, loadability, errors), encode/decode/default cases, pack/unpack,
//! RPC scenarios and API calls, plus sprotoloader's global slots.

use std::collections::HashMap;

use mlua::{Lua, MultiValue, Value};
use serde_json::Value as Json;
use skynet::lua::modules::sproto::luaopen_sproto_core;

fn vectors(name: &str) -> Json {
    let path = format!(
        "{}/crates/sproto/tests/vectors/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A Lua state with `sproto.core` preloaded and `skynet/lualib/` on `package.path`.
fn lua() -> Lua {
    let lua = Lua::new();
    // SAFETY: a valid lua_CFunction.
    let open = unsafe { lua.create_c_function(luaopen_sproto_core) }.unwrap();
    let package: mlua::Table = lua.globals().get("package").unwrap();
    let preload: mlua::Table = package.get("preload").unwrap();
    preload.set("sproto.core", open).unwrap();
    let path: String = package.get("path").unwrap();
    let lualib = format!("{}/skynet/lualib/?.lua;{path}", env!("CARGO_MANIFEST_DIR"));
    package.set("path", lualib).unwrap();
    lua.load("sproto = require 'sproto'; sprotoparser = require 'sprotoparser'")
        .exec()
        .unwrap();
    lua
}

/// Loads every loadable vector schema into the global `S[name]`.
fn load_schemas(lua: &Lua) {
    let j = vectors("sproto_schemas.json");
    let texts = lua.create_table().unwrap();
    for s in j["schemas"].as_array().unwrap() {
        if s["loadable"].as_bool() == Some(true) {
            texts
                .set(s["name"].as_str().unwrap(), s["text"].as_str().unwrap())
                .unwrap();
        }
    }
    lua.globals().set("TEXTS", texts).unwrap();
    lua.load("S = {} for k, v in pairs(TEXTS) do S[k] = sproto.parse(v) end")
        .exec()
        .unwrap();
}

fn float_of(s: &str) -> f64 {
    match s {
        "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        "nan" => f64::NAN,
        s => s.parse().unwrap(),
    }
}

/// Does the Lua value match the typed-value JSON?
fn tv_matches(e: &Json, a: &Value) -> bool {
    match (e, a) {
        (Json::Null, Value::Nil) => true,
        (Json::Bool(x), Value::Boolean(y)) => x == y,
        (Json::Number(n), Value::Integer(i)) => n.as_i64() == Some(*i),
        (Json::String(s), Value::String(t)) => s.as_bytes() == t.as_bytes().as_ref(),
        (Json::Array(items), Value::Table(t)) => {
            let pairs: Vec<(Value, Value)> = t.pairs().map(|p| p.unwrap()).collect();
            pairs.len() == items.len()
                && items
                    .iter()
                    .enumerate()
                    .all(|(i, item)| tv_matches(item, &t.raw_get::<Value>(i as i64 + 1).unwrap()))
        }
        (Json::Object(o), a) => {
            if let Some(s) = o.get("$int") {
                return matches!(a, Value::Integer(i) if s.as_str().unwrap().parse::<i64>().unwrap() == *i);
            }
            if let Some(s) = o.get("$float") {
                let f = float_of(s.as_str().unwrap());
                return matches!(a, Value::Number(x) if (x.is_nan() && f.is_nan()) || x.to_bits() == f.to_bits());
            }
            if let Some(s) = o.get("$bin") {
                return matches!(a, Value::String(t) if t.as_bytes().as_ref() == hex(s.as_str().unwrap()));
            }
            if o.contains_key("$function") {
                return matches!(a, Value::Function(_));
            }
            let Value::Table(t) = a else { return false };
            let actual: Vec<(Value, Value)> = t.pairs().map(|p| p.unwrap()).collect();
            let expected: Vec<(Json, &Json)> = match o.get("$table") {
                Some(list) => list
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].clone(), &p[1]))
                    .collect(),
                None => o
                    .iter()
                    .map(|(k, v)| (Json::String(k.clone()), v))
                    .collect(),
            };
            actual.len() == expected.len()
                && expected.iter().all(|(k, v)| {
                    actual
                        .iter()
                        .any(|(ak, av)| tv_matches(k, ak) && tv_matches(v, av))
                })
        }
        _ => false,
    }
}

/// Error text without the `chunk:line: ` prefix.
fn message(e: &mlua::Error) -> String {
    let s = match e {
        mlua::Error::CallbackError { cause, .. } => return message(cause),
        mlua::Error::RuntimeError(s) => s.clone(),
        other => other.to_string(),
    };
    s.lines().next().unwrap_or("").to_string()
}

/// Upstream error text `expected` is matched by our message `actual`.
fn same_error(expected: &str, actual: &str) -> bool {
    if expected == "decode error" || expected.starts_with("memory allocation") {
        return actual.contains("decode error");
    }
    actual.contains(expected)
}

fn bytes_of(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        other => panic!("expected a string, got {other:?}"),
    }
}

#[test]
fn schema_vectors() {
    let lua = lua();
    let j = vectors("sproto_schemas.json");
    for s in j["schemas"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        lua.globals()
            .set("TEXT", s["text"].as_str().unwrap())
            .unwrap();
        let r = lua.load("return sprotoparser.parse(TEXT)").eval::<Value>();
        if let Some(e) = s.get("error") {
            let err = message(&r.expect_err(name));
            let e = e.as_str().unwrap();
            if e.starts_with("syntax") || e.starts_with("Undefined") || e.starts_with("redefine ") {
                assert!(err.contains(e), "{name}: {err} vs {e}");
            }
            continue;
        }
        let bundle = bytes_of(&r.unwrap_or_else(|e| panic!("{name}: {e}")));
        assert_eq!(to_hex(&bundle), s["bundle_hex"].as_str().unwrap(), "{name}");
        lua.globals()
            .set("BUNDLE", lua.create_string(&bundle).unwrap())
            .unwrap();
        let loaded = lua
            .load("return pcall(sproto.new, BUNDLE)")
            .eval::<(bool, Value)>()
            .unwrap();
        assert_eq!(loaded.0, s["loadable"].as_bool().unwrap(), "{name}");
        if !loaded.0 {
            let Value::String(m) = loaded.1 else { panic!() };
            assert!(m.to_str().unwrap().contains("value expected"), "{name}");
        }
    }
}

#[test]
fn encode_vectors() {
    let lua = lua();
    load_schemas(&lua);
    let j = vectors("sproto_encode.json");
    let mut run = 0;
    for case in j["encode_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let g = lua.globals();
        g.set("SCHEMA", case["schema"].as_str().unwrap()).unwrap();
        g.set("TYPE", case["type"].as_str().unwrap()).unwrap();
        let src = format!(
            "local sp = S[SCHEMA]\nlocal v = {}\nlocal e = sp:encode(TYPE, v)\nreturn e, sp:pencode(TYPE, v), sp:decode(TYPE, e)",
            case["lua"].as_str().unwrap()
        );
        let r = lua.load(&src).eval::<MultiValue>();
        if let Some(e) = case.get("error") {
            let err = message(&r.expect_err(name));
            assert!(same_error(e.as_str().unwrap(), &err), "{name}: {err}");
            run += 1;
            continue;
        }
        if case.get("decode_error").is_some() {
            assert!(r.is_err(), "{name}: decode should fail");
            run += 1;
            continue;
        }
        let r: Vec<Value> = r
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .into_iter()
            .collect();
        let (encoded, packed) = (bytes_of(&r[0]), bytes_of(&r[1]));
        let order_dependent = case
            .get("order_dependent")
            .is_some_and(|v| v.as_bool().unwrap());
        let check = |what: &str, actual: &[u8]| {
            if let Some(h) = case.get(format!("{what}_hex")) {
                if order_dependent {
                    assert_eq!(
                        actual.len(),
                        h.as_str().unwrap().len() / 2,
                        "{name}: {what} length"
                    );
                } else {
                    assert_eq!(to_hex(actual), h.as_str().unwrap(), "{name}: {what}");
                }
            } else {
                let len = case[format!("{what}_len")].as_u64().unwrap() as usize;
                assert_eq!(actual.len(), len, "{name}: {what} length");
                assert_eq!(
                    to_hex(&actual[..64]),
                    case[format!("{what}_head_hex")].as_str().unwrap()
                );
                assert_eq!(
                    to_hex(&actual[len - 64..]),
                    case[format!("{what}_tail_hex")].as_str().unwrap()
                );
            }
        };
        check("encoded", &encoded);
        if !order_dependent {
            check("packed", &packed);
        }
        assert_eq!(
            r[3],
            Value::Integer(case["decoded_size"].as_i64().unwrap()),
            "{name}: size"
        );
        if let Some(d) = case.get("decoded") {
            assert!(tv_matches(d, &r[2]), "{name}: decoded {:?}", r[2]);
        }
        run += 1;
    }
    assert_eq!(run, j["encode_cases"].as_array().unwrap().len());
}

#[test]
fn decode_and_default_vectors() {
    let lua = lua();
    load_schemas(&lua);
    let j = vectors("sproto_encode.json");
    for case in j["decode_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let g = lua.globals();
        g.set("SCHEMA", case["schema"].as_str().unwrap()).unwrap();
        g.set("TYPE", case["type"].as_str().unwrap()).unwrap();
        g.set(
            "INPUT",
            lua.create_string(hex(case["input_hex"].as_str().unwrap()))
                .unwrap(),
        )
        .unwrap();
        let r = lua
            .load("return S[SCHEMA]:decode(TYPE, INPUT)")
            .eval::<(Value, Value)>();
        match case.get("error") {
            Some(e) => {
                let err = message(&r.expect_err(name));
                assert!(same_error(e.as_str().unwrap(), &err), "{name}: {err}");
            }
            None => {
                let (t, size) = r.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(tv_matches(&case["decoded"], &t), "{name}: {t:?}");
                assert_eq!(size, Value::Integer(case["decoded_size"].as_i64().unwrap()));
            }
        }
    }
    for case in j["default_cases"].as_array().unwrap() {
        let g = lua.globals();
        g.set("SCHEMA", case["schema"].as_str().unwrap()).unwrap();
        g.set("TYPE", case["type"].as_str().unwrap()).unwrap();
        g.set("WHAT", case.get("what").and_then(|w| w.as_str()))
            .unwrap();
        let r = lua
            .load("return S[SCHEMA]:default(TYPE, WHAT)")
            .eval::<Value>();
        match case.get("error") {
            Some(e) => assert!(same_error(e.as_str().unwrap(), &message(&r.unwrap_err()))),
            None => assert!(tv_matches(&case["result"], &r.unwrap()), "{case}"),
        }
    }
}

#[test]
fn pack_vectors() {
    let lua = lua();
    let j = vectors("sproto_pack.json");
    for case in j["pack_cases"].as_array().unwrap() {
        lua.globals()
            .set(
                "INPUT",
                lua.create_string(hex(case["input_hex"].as_str().unwrap()))
                    .unwrap(),
            )
            .unwrap();
        let (p, u): (Value, Value) = lua
            .load("local p = sproto.pack(INPUT) return p, sproto.unpack(p)")
            .eval()
            .unwrap();
        assert_eq!(
            to_hex(&bytes_of(&p)),
            case["packed_hex"].as_str().unwrap(),
            "{}",
            case["name"]
        );
        assert_eq!(
            to_hex(&bytes_of(&u)),
            case["unpacked_hex"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
    for case in j["unpack_cases"].as_array().unwrap() {
        lua.globals()
            .set(
                "INPUT",
                lua.create_string(hex(case["packed_hex"].as_str().unwrap()))
                    .unwrap(),
            )
            .unwrap();
        let r = lua.load("return sproto.unpack(INPUT)").eval::<Value>();
        match case.get("unpacked_hex") {
            Some(h) => assert_eq!(to_hex(&bytes_of(&r.unwrap())), h.as_str().unwrap()),
            None => assert!(message(&r.unwrap_err()).contains("Invalid unpack stream")),
        }
    }
}

#[test]
fn rpc_scenarios() {
    let lua = lua();
    let j = vectors("sproto_rpc.json");
    let texts = lua.create_table().unwrap();
    for (k, v) in j["schemas"].as_object().unwrap() {
        texts.set(k.as_str(), v.as_str().unwrap()).unwrap();
    }
    lua.globals().set("RPC", texts).unwrap();
    let mut steps = 0;
    for scenario in j["scenarios"].as_array().unwrap() {
        let setup = match scenario["name"].as_str().unwrap() {
            "skynet_sample" => {
                r#"HOST = { client = sproto.parse(RPC["proto.s2c"]):host "package",
                            server = sproto.parse(RPC["proto.c2s"]):host "package" }
                   SEND = { client = HOST.client:attach(sproto.parse(RPC["proto.c2s"])),
                            server = HOST.server:attach(sproto.parse(RPC["proto.s2c"])) }"#
            }
            _ => {
                r#"local server_proto = sproto.parse(RPC.testrpc_server)
                   HOST = { server = server_proto:host "package",
                            client = sproto.parse(RPC.testrpc_client):host "package" }
                   SEND = { client = HOST.client:attach(server_proto) }"#
            }
        };
        lua.load(setup).exec().unwrap();
        for step in scenario["steps"].as_array().unwrap() {
            let g = lua.globals();
            let label = step
                .get("call")
                .or(step.get("label"))
                .map(|c| c.to_string())
                .unwrap_or_default();
            g.set("ACTOR", step["actor"].as_str().unwrap()).unwrap();
            g.set("UD", step.get("ud").and_then(|u| u.as_str()))
                .unwrap();
            let packet = match step["op"].as_str().unwrap() {
                "attach_send" => {
                    match &step["proto"] {
                        Json::String(s) => g.set("PROTO", s.as_str()).unwrap(),
                        n => g.set("PROTO", n.as_i64().unwrap()).unwrap(),
                    }
                    g.set("SESSION", step.get("session").and_then(|s| s.as_i64()))
                        .unwrap();
                    let src = format!(
                        "return SEND[ACTOR](PROTO, {}, SESSION, UD)",
                        step["args_lua"].as_str().unwrap()
                    );
                    Some(lua.load(&src).eval::<Value>())
                }
                "response_closure" => {
                    let src = format!(
                        "return LAST_RESPONDER({}, UD)",
                        step["args_lua"].as_str().unwrap()
                    );
                    Some(lua.load(&src).eval::<Value>())
                }
                _ => None,
            };
            match packet {
                Some(r) => match step.get("error") {
                    Some(e) => {
                        let err = message(&r.expect_err(&label));
                        assert!(same_error(e.as_str().unwrap(), &err), "{label}: {err}");
                    }
                    None => {
                        let p = bytes_of(&r.unwrap_or_else(|e| panic!("{label}: {e}")));
                        assert_eq!(to_hex(&p), step["packed_hex"].as_str().unwrap(), "{label}");
                    }
                },
                None => {
                    g.set(
                        "INPUT",
                        lua.create_string(hex(step["input_hex"].as_str().unwrap()))
                            .unwrap(),
                    )
                    .unwrap();
                    let src = "local r = table.pack(HOST[ACTOR]:dispatch(INPUT))
                               if ACTOR == 'server' then LAST_RESPONDER = r[4] end
                               return r";
                    let r = lua.load(src).eval::<mlua::Table>();
                    match step.get("error") {
                        Some(e) => {
                            let err = message(&r.expect_err(&label));
                            assert!(same_error(e.as_str().unwrap(), &err), "{label}: {err}");
                        }
                        None => {
                            let t = r.unwrap_or_else(|e| panic!("{label}: {e}"));
                            for (i, expected) in
                                step["returns"].as_array().unwrap().iter().enumerate()
                            {
                                let actual: Value = t.raw_get(i as i64 + 1).unwrap();
                                assert!(
                                    tv_matches(expected, &actual),
                                    "{label}: return {i}: {actual:?}"
                                );
                            }
                        }
                    }
                }
            }
            steps += 1;
        }
    }
    assert!(steps > 60);
}

#[test]
fn rpc_api_calls() {
    let lua = lua();
    let j = vectors("sproto_rpc.json");
    lua.globals()
        .set("TEXT", j["schemas"]["testrpc_server"].as_str().unwrap())
        .unwrap();
    lua.load("sp = sproto.parse(TEXT)").exec().unwrap();
    for c in j["api_calls"].as_array().unwrap() {
        let call = c["call"].as_str().unwrap();
        // The queryproto entries list fields of the result rather than one expression.
        let src = if let Some(rest) = call.strip_prefix("sp:queryproto(") {
            let arg = &rest[..rest.find(')').unwrap()];
            if call.contains("type(response)") || !call.contains(".tag") {
                format!("local p = sp:queryproto({arg}) return p.tag, p.name, p.request ~= nil, p.response ~= nil, type(p.response)")
            } else {
                format!("local p = sp:queryproto({arg}) return p.tag, p.name, p.request ~= nil, p.response ~= nil")
            }
        } else {
            format!("return {call}\n")
        };
        let r = lua.load(&src).eval::<MultiValue>();
        match c.get("error") {
            Some(e) => {
                let err = message(&r.expect_err(call));
                assert!(same_error(e.as_str().unwrap(), &err), "{call}: {err}");
            }
            None => {
                let got: Vec<Value> = r
                    .unwrap_or_else(|e| panic!("{call}: {e}"))
                    .into_iter()
                    .collect();
                let expected = c["returns"].as_array().unwrap();
                assert_eq!(got.len(), expected.len(), "{call}: {got:?}");
                for (e, a) in expected.iter().zip(&got) {
                    assert!(tv_matches(e, a), "{call}: {a:?} vs {e}");
                }
            }
        }
    }
}

#[test]
fn loader_slots_are_shared_between_states() {
    let j = vectors("sproto_rpc.json");
    let text = j["schemas"]["proto.c2s"].as_str().unwrap().to_string();
    let writer = lua();
    writer.globals().set("TEXT", text).unwrap();
    writer
        .load("local l = require 'sprotoloader' l.save(sprotoparser.parse(TEXT), 7)")
        .exec()
        .unwrap();
    // Another state on another thread sees the schema.
    let handle = std::thread::spawn(|| {
        let reader = lua();
        let r: (bool, String) = reader
            .load(
                "local sp = require('sprotoloader').load(7)
                 local bin = sp:encode('signin.request', { userid = 'x' })
                 return sp:exist_proto('signin'), sp:decode('signin.request', bin).userid",
            )
            .eval()
            .unwrap();
        let bad = reader
            .load("require('sprotoloader').load(16)")
            .exec()
            .unwrap_err();
        let empty = reader
            .load("require('sprotoloader').load(15)")
            .exec()
            .unwrap_err();
        (r, message(&bad), message(&empty))
    });
    let ((exists, userid), bad, empty) = handle.join().unwrap();
    assert!(exists);
    assert_eq!(userid, "x");
    assert!(bad.contains("Invalid global slot index 16"), "{bad}");
    assert!(empty.contains("nil sproto at index 15"), "{empty}");
}

#[test]
fn errors_leave_the_state_usable_and_reentrancy_is_safe() {
    let lua = lua();
    let r: HashMap<String, String> = lua
        .load(
            r#"
            local sp = sproto.parse ".P { name 0 : string  kids 1 : *P  n 2 : integer }"
            local out = {}
            -- A metamethod that itself encodes while an outer encode is running.
            local inner = setmetatable({}, { __index = function(t, k)
                if k == "name" then return sp:encode("P", { name = "inner" }) end
            end })
            out.reentrant = sp:decode("P", sp:encode("P", inner)).name
            out.reentrant_expected = sp:encode("P", { name = "inner" })
            -- A metamethod that raises in the middle of an encode.
            local ok, err = pcall(sp.encode, sp, "P", setmetatable({}, { __index = function() error("boom") end }))
            out.raised = tostring(ok) .. ":" .. tostring(err):match("boom")
            -- Type error deep inside, then a normal encode still works.
            ok, err = pcall(sp.encode, sp, "P", { kids = { { n = "x" } } })
            out.typeerr = err
            out.after = sp:decode("P", sp:encode("P", { name = "ok", kids = { { n = 1 } } })).kids[1].n .. ""
            ok, err = pcall(sp.decode, sp, "P", "\1\0\0\0\255\255\255\255")
            out.decodeerr = err
            return out
            "#,
        )
        .eval()
        .unwrap();
    assert_eq!(r["reentrant"], r["reentrant_expected"], "{r:?}");
    assert_eq!(r["reentrant"].len(), 13);
    assert_eq!(r["raised"], "false:boom");
    assert!(
        r["typeerr"].contains("P.n[0] is not an integer (Is a string)"),
        "{r:?}"
    );
    assert_eq!(r["after"], "1");
    assert!(r["decodeerr"].starts_with("decode error"), "{r:?}");
}

/// Throughput of the Lua path (`sp:pencode` / `sp:pdecode` from and to Lua tables).
/// Run with `cargo test --release --test sproto_lua -- --ignored --nocapture`.
#[test]
#[ignore]
fn lua_throughput() {
    let lua = lua();
    let report: String = lua
        .load(
            r#"
            local c2s = sproto.parse [[
                .package { type 0 : integer  session 1 : integer  ud 2 : string }
                signin 3 { request { userid 0 : string } response { ok 0 : boolean } }
            ]]
            local game = sproto.parse [[
                .Item { id 0 : integer  name 1 : string  count 2 : integer  price 3 : double  tags 4 : *string }
                .Player { id 0 : integer  name 1 : string  level 2 : integer  online 3 : boolean
                          pos 4 : *integer  gold 5 : integer(2)  items 6 : *Item }
            ]]
            local items = {}
            for i = 0, 11 do
                items[#items + 1] = { id = 1000 + i, name = "item-number-" .. i, count = i * 3,
                                      price = i * 1.25, tags = { "rare", "tradable" } }
            end
            local player = { id = 123456789, name = "a player with a longish name", level = 42,
                             online = true, pos = { 100, -200, 300 }, gold = 12345.67, items = items }
            local out = {}
            local function bench(label, sp, ty, value)
                local packed = sp:pencode(ty, value)
                local n, t0 = 0, os.clock()
                repeat
                    for _ = 1, 1000 do sp:pencode(ty, value) end
                    n = n + 1000
                until os.clock() - t0 > 0.7
                local enc = n / (os.clock() - t0)
                n, t0 = 0, os.clock()
                repeat
                    for _ = 1, 1000 do sp:pdecode(ty, packed) end
                    n = n + 1000
                until os.clock() - t0 > 0.7
                local dec = n / (os.clock() - t0)
                local size = #sp:encode(ty, value)
                out[#out + 1] = string.format("%-8s %5d B: pencode %9.0f msg/s (%6.1f MB/s), pdecode %9.0f msg/s (%6.1f MB/s)",
                    label, size, enc, enc * size / 1e6, dec, dec * size / 1e6)
            end
            bench("signin", c2s, "signin.request", { userid = "alice" })
            bench("nested", game, "Player", player)
            return table.concat(out, "\n")
            "#,
        )
        .eval()
        .unwrap();
    println!("{report}");
}
