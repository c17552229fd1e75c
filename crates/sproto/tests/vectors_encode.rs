//! sproto_encode.json through the `Value` model: encode cases (bytes, packed bytes,
//! decode round trip, errors), hand-made decode cases, and `default` cases.
//!
//! Inputs come from the JSON `value` fields; the few cases whose input exists only as
//! Lua source (deep nesting, long strings) are rebuilt here, and the one that needs a
//! Lua metatable (`__index` array) is covered by the Lua binding tests instead.

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::Value as Json;
use sproto::{Error, Sproto, Value};

fn schemas() -> HashMap<String, Sproto> {
    schema_texts()
        .into_iter()
        .filter_map(|(name, text)| Sproto::parse(&text).ok().map(|sp| (name, sp)))
        .collect()
}

/// Input value of an encode case: the JSON value, or a rebuild of its Lua source.
fn input_of(case: &Json) -> Option<Value> {
    let name = case["name"].as_str().unwrap();
    let nested = |levels: usize| {
        let mut v = Value::Struct(vec![]);
        for _ in 0..levels {
            v = Value::structure([("self", v)]);
        }
        v
    };
    Some(match name {
        "depth_63_ok" => nested(63),
        "depth_64_error" => nested(64),
        "string_64KiB" => Value::structure([("s", Value::str(&"0123456789abcdef".repeat(4096)))]),
        "two_3000_byte_strings" => Value::structure([(
            "sa",
            Value::Array(vec![
                Value::str(&"a".repeat(3000)),
                Value::str(&"b".repeat(3000)),
            ]),
        )]),
        "too_large" => Value::structure([("s", Value::String(vec![b'x'; 16 * 1024 * 1024]))]),
        _ if case["lua"].as_str().unwrap().contains("setmetatable") => return None,
        _ => tv_to_value(case.get("value").expect("value field")),
    })
}

/// Compares bytes with `<what>_hex`, or with the `_len`/`_head_hex`/`_tail_hex` summary.
fn check_bytes(case: &Json, what: &str, actual: &[u8]) {
    let name = case["name"].as_str().unwrap();
    if let Some(h) = case.get(format!("{what}_hex")) {
        assert_eq!(to_hex(actual), h.as_str().unwrap(), "{name}: {what}");
        return;
    }
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

#[test]
fn encode_cases() {
    let sps = schemas();
    let j = load("sproto_encode.json");
    let mut checked = 0;
    for case in j["encode_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let sp = &sps[case["schema"].as_str().unwrap()];
        let ty = case["type"].as_str().unwrap();
        let Some(input) = input_of(case) else {
            continue;
        };
        let result = sp.encode_value(ty, &input);
        if let Some(err) = case.get("error") {
            let e = result.expect_err(name);
            assert_eq!(e.to_string(), err.as_str().unwrap(), "{name}");
            checked += 1;
            continue;
        }
        let encoded = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        let order_dependent = case
            .get("order_dependent")
            .is_some_and(|v| v.as_bool().unwrap());
        if order_dependent {
            let reference = hex(case["encoded_hex"].as_str().unwrap());
            assert_eq!(encoded.len(), reference.len(), "{name}: length");
            let expected = tv_to_value(&case["decoded"]);
            let (theirs, _) = sp.decode_value(ty, &reference).unwrap();
            assert!(
                lua_eq(&expected, &theirs),
                "{name}: reference decode {theirs:?}"
            );
        } else {
            check_bytes(case, "encoded", &encoded);
            check_bytes(case, "packed", &sproto::pack(&encoded));
        }
        let decoded = sp.decode_value(ty, &encoded);
        if case.get("decode_error").is_some() {
            assert!(decoded.is_err(), "{name}: decode should fail");
        } else {
            let (value, size) = decoded.unwrap_or_else(|e| panic!("{name}: decode {e}"));
            assert_eq!(
                size as u64,
                case["decoded_size"].as_u64().unwrap(),
                "{name}: size"
            );
            if let Some(expected) = case.get("decoded") {
                assert!(
                    lua_eq(&tv_to_value(expected), &value),
                    "{name}: decoded {value:?}"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 165, "checked {checked}");
}

#[test]
fn decode_cases() {
    let sps = schemas();
    let j = load("sproto_encode.json");
    let mut checked = 0;
    for case in j["decode_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let sp = &sps[case["schema"].as_str().unwrap()];
        let input = hex(case["input_hex"].as_str().unwrap());
        let result = sp.decode_value(case["type"].as_str().unwrap(), &input);
        match case.get("error").map(|e| e.as_str().unwrap()) {
            Some(expected) => {
                let e = result.expect_err(name);
                match &e {
                    Error::Decode(_) => assert!(
                        expected == "decode error" || expected.starts_with("memory"),
                        "{name}: {e} vs {expected}"
                    ),
                    _ => assert_eq!(e.to_string(), expected, "{name}"),
                }
            }
            None => {
                let (value, size) = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    size as u64,
                    case["decoded_size"].as_u64().unwrap(),
                    "{name}"
                );
                let expected = tv_to_value(&case["decoded"]);
                assert!(lua_eq(&expected, &value), "{name}: {value:?}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 54);
}

#[test]
fn default_cases() {
    let sps = schemas();
    let j = load("sproto_encode.json");
    for case in j["default_cases"].as_array().unwrap() {
        let sp = &sps[case["schema"].as_str().unwrap()];
        let name = case["type"].as_str().unwrap();
        // Mirrors lsproto `default(type [, "REQUEST"|"RESPONSE"])`.
        let index = match case.get("what").map(|w| w.as_str().unwrap()) {
            None => Ok(sp.type_index(name)),
            Some(what @ ("REQUEST" | "RESPONSE")) => {
                let p = sp.protocol(sproto::ProtoKey::Name(name)).unwrap();
                if what == "REQUEST" {
                    Ok(p.request())
                } else if p.confirm() {
                    Err("Need a sproto_type object")
                } else {
                    Ok(p.response())
                }
            }
            Some(_) => Err("Invalid type"),
        };
        match (index, case.get("error")) {
            (Err(msg), Some(e)) => assert!(e.as_str().unwrap().contains(msg)),
            (Ok(None), None) => assert!(case["result"].is_null()),
            (Ok(Some(i)), None) => {
                let v = sp.default_value(i);
                assert!(lua_eq(&tv_to_value(&case["result"]), &v), "{name}: {v:?}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}
