//! `skynet.cluster.core` against every case of `tests/vectors/cluster.json` (recorded from
//! upstream skynet v1.8.0's `lua-cluster.c`): requests and pushes (numeric and named
//! addresses, single and multi-part), responses (ok, error, multi-part, a truncated
//! error), trace tags, `append`/`concat`, `isname`; each packed frame is also unpacked
//! and multi-part messages are reassembled. Hostile bodies raise a Lua error.

use mlua::{Function, LightUserData, Lua, MultiValue, Table, Value};
use serde_json::Value as Json;
use skynet::lua::modules::cluster::luaopen_skynet_cluster_core;
use skynet::message::{payload_free, payload_from};

fn cases() -> Vec<Json> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/cluster.json");
    let v: Json = serde_json::from_str(&std::fs::read_to_string(path).expect(path)).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn core() -> (Lua, Table) {
    let lua = Lua::new();
    // SAFETY: a valid lua_CFunction.
    let open = unsafe { lua.create_c_function(luaopen_skynet_cluster_core).unwrap() };
    let t: Table = open.call(()).unwrap();
    (lua, t)
}

fn block(bytes: &[u8]) -> Value {
    Value::LightUserData(LightUserData(payload_from(bytes) as *mut _))
}

fn bytes_of(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        other => panic!("not a string: {other:?}"),
    }
}

/// Read and free a returned (block, size).
fn take_block(p: &Value, sz: &Value) -> Vec<u8> {
    let Value::LightUserData(LightUserData(p)) = p else {
        panic!("not a block: {p:?}")
    };
    let n = sz.as_integer().unwrap() as usize;
    // SAFETY: the module returned a payload block of n bytes, ours to free.
    unsafe {
        let v = std::slice::from_raw_parts(*p as *const u8, n).to_vec();
        payload_free(*p as *mut u8);
        v
    }
}

fn addr_value(lua: &Lua, a: &Json) -> Value {
    match a {
        Json::Number(n) => Value::Integer(n.as_i64().unwrap()),
        Json::String(s) => Value::String(lua.create_string(s).unwrap()),
        _ => panic!("addr {a}"),
    }
}

fn as_bool(v: &Value) -> bool {
    !matches!(v, Value::Nil | Value::Boolean(false))
}

/// Reassemble a multi-part request from its part frames with append/concat.
fn reassemble(core: &Table, lua: &Lua, size: i64, parts: &[Vec<u8>]) -> Vec<u8> {
    let unpack: Function = core.get("unpackrequest").unwrap();
    let append: Function = core.get("append").unwrap();
    let concat: Function = core.get("concat").unwrap();
    let req = lua.create_table().unwrap();
    append.call::<()>((req.clone(), Value::Nil, size)).unwrap();
    for (i, p) in parts.iter().enumerate() {
        let r: Vec<Value> = unpack
            .call::<MultiValue>(lua.create_string(&p[2..]).unwrap())
            .unwrap()
            .into_vec();
        assert_eq!(r[0], Value::Boolean(false), "a part has no address");
        assert_eq!(r[1].as_integer(), Some(7));
        assert_eq!(
            as_bool(&r[4]),
            i + 1 < parts.len(),
            "padding until the last"
        );
        append
            .call::<()>((req.clone(), r[2].clone(), r[3].clone()))
            .unwrap();
    }
    let out: Vec<Value> = concat.call::<MultiValue>(req).unwrap().into_vec();
    take_block(&out[0], &out[1])
}

#[test]
fn every_golden_case() {
    let (lua, core) = core();
    let mut n = 0;
    for c in cases() {
        let kind = c["kind"].as_str().unwrap();
        match kind {
            "packrequest" | "packpush" => {
                let payload = unhex(c["payload_hex"].as_str().unwrap());
                let f: Function = core.get(kind).unwrap();
                let addr = addr_value(&lua, &c["addr"]);
                let r: Vec<Value> = f
                    .call::<MultiValue>((
                        addr.clone(),
                        c["session"].as_i64().unwrap(),
                        block(&payload),
                        payload.len() as i64,
                    ))
                    .unwrap()
                    .into_vec();
                let first = bytes_of(&r[0]);
                assert_eq!(
                    first,
                    unhex(c["first_hex"].as_str().unwrap()),
                    "{kind} {c:.200}"
                );
                assert_eq!(r[1].as_integer(), c["next_session"].as_i64());
                let parts: Vec<Vec<u8>> = match c.get("parts_hex") {
                    Some(ph) => {
                        let want: Vec<Vec<u8>> = ph
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|h| unhex(h.as_str().unwrap()))
                            .collect();
                        let Value::Table(t) = &r[2] else {
                            panic!("parts table expected")
                        };
                        let got: Vec<Vec<u8>> = t
                            .clone()
                            .sequence_values::<Value>()
                            .map(|v| bytes_of(&v.unwrap()))
                            .collect();
                        assert_eq!(got, want, "{kind} parts");
                        got
                    }
                    None => {
                        assert_eq!(r.len(), 2, "no parts for a small message");
                        vec![]
                    }
                };
                // unpack the first frame (without its 2-byte length)
                let u = &c["unpack_first"];
                let unpack: Function = core.get("unpackrequest").unwrap();
                let v: Vec<Value> = unpack
                    .call::<MultiValue>(lua.create_string(&first[2..]).unwrap())
                    .unwrap()
                    .into_vec();
                assert_eq!(v[0], addr, "unpacked address");
                assert_eq!(v[1].as_integer(), u["session"].as_i64());
                let padding = v.get(4).map(as_bool).unwrap_or(false);
                let is_push = v.get(5).map(as_bool).unwrap_or(false);
                assert_eq!(padding, u["padding"].as_bool().unwrap());
                assert_eq!(is_push, u["is_push"].as_bool().unwrap());
                assert_eq!(v[3].as_integer(), u["sz"].as_i64());
                if padding {
                    assert_eq!(v[2], Value::Nil);
                    let whole = reassemble(&core, &lua, u["sz"].as_i64().unwrap(), &parts);
                    assert_eq!(whole, payload, "reassembled payload");
                } else {
                    let msg = take_block(&v[2], &v[3]);
                    assert_eq!(msg, unhex(u["msg_hex"].as_str().unwrap()));
                }
            }
            "packresponse" => {
                let frames: Vec<Vec<u8>> = match c.get("parts_hex") {
                    Some(ph) => ph
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|h| unhex(h.as_str().unwrap()))
                        .collect(),
                    None => vec![unhex(c["hex"].as_str().unwrap())],
                };
                // The message: the data the frames carry, padded with its last byte
                // when the recorded error was truncated.
                let len = c["msg_len"].as_u64().unwrap() as usize;
                let mut msg: Vec<u8> = Vec::new();
                for f in &frames {
                    if !(frames.len() > 1 && f[6] == 2) {
                        msg.extend_from_slice(&f[7..]);
                    }
                }
                while msg.len() < len {
                    msg.push(*msg.last().unwrap());
                }
                assert!(msg.starts_with(c["msg_head"].as_str().unwrap().as_bytes()));
                let ok = c["ok"].as_bool().unwrap();
                let f: Function = core.get("packresponse").unwrap();
                // as a block + size, and as a string
                for as_string in [false, true] {
                    let m = if as_string {
                        Value::String(lua.create_string(&msg).unwrap())
                    } else {
                        block(&msg)
                    };
                    let r: Value = f
                        .call((c["session"].as_i64().unwrap(), ok, m.clone(), len as i64))
                        .unwrap();
                    if let Value::LightUserData(LightUserData(p)) = m {
                        // SAFETY: our block; packresponse borrows it.
                        unsafe { payload_free(p as *mut u8) };
                    }
                    let got: Vec<Vec<u8>> = match r {
                        Value::Table(t) => t
                            .sequence_values::<Value>()
                            .map(|v| bytes_of(&v.unwrap()))
                            .collect(),
                        v => vec![bytes_of(&v)],
                    };
                    assert_eq!(got, frames, "packresponse {c:.120}");
                }
                let unpack: Function = core.get("unpackresponse").unwrap();
                let want = c["unpack"].as_array().unwrap();
                assert_eq!(want.len(), frames.len());
                for (fr, w) in frames.iter().zip(want) {
                    let v: Vec<Value> = unpack
                        .call::<MultiValue>(lua.create_string(&fr[2..]).unwrap())
                        .unwrap()
                        .into_vec();
                    assert_eq!(v[0].as_integer(), w["session"].as_i64());
                    assert_eq!(as_bool(&v[1]), w["ok"].as_bool().unwrap());
                    let l = match &v[2] {
                        Value::String(s) => s.as_bytes().len() as i64,
                        Value::Integer(i) => *i,
                        o => panic!("{o:?}"),
                    };
                    assert_eq!(l, w["len"].as_i64().unwrap());
                    assert_eq!(
                        v.get(3).map(as_bool).unwrap_or(false),
                        w["padding"].as_bool().unwrap()
                    );
                    // the same through a (block, size) pair
                    let b = block(&fr[2..]);
                    let v2: Vec<Value> = unpack
                        .call::<MultiValue>((b.clone(), fr.len() as i64 - 2))
                        .unwrap()
                        .into_vec();
                    if let Value::LightUserData(LightUserData(p)) = b {
                        // SAFETY: our block.
                        unsafe { payload_free(p as *mut u8) };
                    }
                    assert_eq!(v2.len(), v.len());
                    assert_eq!(v2[0], v[0]);
                }
            }
            "packtrace" => {
                let f: Function = core.get("packtrace").unwrap();
                let r: Value = f.call(c["tag"].as_str().unwrap()).unwrap();
                let got = bytes_of(&r);
                assert_eq!(got, unhex(c["hex"].as_str().unwrap()));
                let unpack: Function = core.get("unpackrequest").unwrap();
                let v: Vec<Value> = unpack
                    .call::<MultiValue>(lua.create_string(&got[2..]).unwrap())
                    .unwrap()
                    .into_vec();
                assert_eq!(v.len(), 1);
                assert_eq!(bytes_of(&v[0]), c["tag"].as_str().unwrap().as_bytes());
            }
            "append_concat" => {
                let inputs: Vec<&str> = c["inputs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap())
                    .collect();
                let whole: String = inputs.concat();
                let append: Function = core.get("append").unwrap();
                let concat: Function = core.get("concat").unwrap();
                let t = lua.create_table().unwrap();
                append
                    .call::<()>((t.clone(), Value::Nil, whole.len() as i64))
                    .unwrap();
                for s in &inputs {
                    append
                        .call::<()>((t.clone(), block(s.as_bytes()), s.len() as i64))
                        .unwrap();
                }
                let out: Vec<Value> = concat.call::<MultiValue>(t.clone()).unwrap().into_vec();
                assert_eq!(take_block(&out[0], &out[1]), whole.as_bytes());
                // a wrong announced size gives nothing (and allocates nothing)
                t.set(1, 1i64 << 40).unwrap();
                let out: MultiValue = concat.call(t).unwrap();
                assert!(out.is_empty());
            }
            "isname" => {
                let f: Function = core.get("isname").unwrap();
                for (k, want) in c["cases"].as_object().unwrap() {
                    let r: Value = f.call(k.as_str()).unwrap();
                    assert_eq!(as_bool(&r), want.as_bool().unwrap(), "isname {k}");
                }
                let r: Value = f.call("abc").unwrap();
                assert!(!as_bool(&r));
            }
            other => panic!("unknown kind {other}"),
        }
        n += 1;
    }
    assert_eq!(n, 27, "every case ran");
}

#[test]
fn bad_input_raises() {
    let (lua, core) = core();
    lua.globals().set("core", core).unwrap();
    let errs: Vec<String> = lua
        .load(
            r##"
            local out = {}
            local function e(f, ...)
                local ok, err = pcall(f, ...)
                assert(not ok, "expected an error")
                out[#out + 1] = tostring(err)
            end
            e(core.unpackrequest, "")
            e(core.unpackrequest, "\0\1\2")
            e(core.unpackrequest, "\1" .. string.rep("x", 11))
            e(core.unpackrequest, "\2\1")
            e(core.unpackrequest, "\x80\200abc")
            e(core.unpackrequest, "\x90")
            e(core.packrequest, 1, 0, "msg")
            e(core.packrequest, 1, 1, nil)
            e(core.packrequest, "", 1, "msg")
            e(core.packrequest, string.rep("n", 256), 1, "msg")
            e(core.packtrace, string.rep("t", 0x8001))
            assert(select("#", core.unpackresponse("\1\0")) == 0)
            assert(select("#", core.unpackresponse("\1\0\0\0\9")) == 0)
            assert(select("#", core.unpackresponse("\1\0\0\0\2\1")) == 0)
            assert(type(core.nodename()) == "string")
            return table.unpack(out)
        "##,
        )
        .eval::<MultiValue>()
        .unwrap()
        .into_iter()
        .map(|v| v.to_string().unwrap())
        .collect();
    assert!(errs[0].contains("size == 0"), "{errs:?}");
    assert!(
        errs[1].contains("Invalid cluster message (size=3)"),
        "{errs:?}"
    );
    assert!(errs[2].contains("multi req must be 13"), "{errs:?}");
    assert!(
        errs[3].contains("Invalid cluster multi part message"),
        "{errs:?}"
    );
    assert!(errs[4].contains("Invalid cluster message"), "{errs:?}");
    assert!(
        errs[5].contains("Invalid req package type -112"),
        "{errs:?}"
    );
    assert!(errs[6].contains("Invalid request session 0"), "{errs:?}");
    assert!(errs[7].contains("Invalid request message"), "{errs:?}");
    assert!(errs[8].contains("name length is invalid"), "{errs:?}");
    assert!(errs[9].contains("name length is invalid"), "{errs:?}");
    assert!(errs[10].contains("trace tag is too long"), "{errs:?}");
}
