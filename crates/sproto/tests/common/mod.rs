//! Shared helpers for the golden-vector tests: locating and reading the vector files,
//! hex, and conversion between the vectors' typed-value (TV) JSON notation and
//! [`sproto::Value`].

#![allow(dead_code)]

use serde_json::Value as Json;
use sproto::Value;

pub fn vectors_dir() -> String {
    format!("{}/tests/vectors", env!("CARGO_MANIFEST_DIR"))
}

pub fn load(name: &str) -> Json {
    let path = format!("{}/{name}", vectors_dir());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Schema name -> text, from sproto_schemas.json.
pub fn schema_texts() -> std::collections::HashMap<String, String> {
    let j = load("sproto_schemas.json");
    j["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn parse_float(s: &str) -> f64 {
    match s {
        "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        "nan" => f64::NAN,
        s => s.parse().unwrap(),
    }
}

/// TV JSON -> Value (tables become Struct/Array/Map by their JSON shape).
pub fn tv_to_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => Value::Integer(n.as_i64().expect("integer TV")),
        Json::String(s) => Value::str(s),
        Json::Array(a) => Value::Array(a.iter().map(tv_to_value).collect()),
        Json::Object(o) => {
            if let Some(s) = o.get("$int") {
                Value::Integer(s.as_str().unwrap().parse().unwrap())
            } else if let Some(s) = o.get("$float") {
                Value::Double(parse_float(s.as_str().unwrap()))
            } else if let Some(s) = o.get("$bin") {
                Value::String(hex(s.as_str().unwrap()))
            } else if let Some(pairs) = o.get("$table") {
                Value::Map(
                    pairs
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| (tv_to_value(&p[0]), tv_to_value(&p[1])))
                        .collect(),
                )
            } else {
                Value::Struct(o.iter().map(|(k, v)| (k.clone(), tv_to_value(v))).collect())
            }
        }
    }
}

/// Any table-shaped Value as (key, value) pairs (None for scalars).
fn table_pairs(v: &Value) -> Option<Vec<(Value, Value)>> {
    Some(match v {
        Value::Struct(f) => f.iter().map(|(k, v)| (Value::str(k), v.clone())).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (Value::Integer(i as i64 + 1), v.clone()))
            .collect(),
        Value::Map(m) => m.clone(),
        _ => return None,
    })
}

/// Lua-value equality between an expected value (from a TV) and an actual one:
/// tables compare as key/value sets regardless of representation, floats bitwise
/// (any NaN equals any NaN), integer and float never equal.
pub fn lua_eq(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Double(a), Value::Double(b)) => {
            (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
        }
        (Value::Nil, Value::Nil) => true,
        (Value::Boolean(a), Value::Boolean(b)) => a == b,
        (Value::Integer(a), Value::Integer(b)) => a == b,
        (Value::String(a), Value::String(b)) => a == b,
        _ => match (table_pairs(expected), table_pairs(actual)) {
            (Some(e), Some(a)) => {
                e.len() == a.len()
                    && e.iter()
                        .all(|(ek, ev)| a.iter().any(|(ak, av)| lua_eq(ek, ak) && lua_eq(ev, av)))
            }
            _ => false,
        },
    }
}
