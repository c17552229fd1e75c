//! sproto_schemas.json: `parse(text)` produces exactly `bundle_hex`, loading succeeds
//! iff `loadable`, the loaded schema matches the decoded description, re-serializing a
//! loaded bundle reproduces it, and every `error` entry fails to parse.

mod common;

use common::*;
use sproto::{Container, FieldType, Sproto};

#[test]
fn every_schema_vector() {
    let j = load("sproto_schemas.json");
    let schemas = j["schemas"].as_array().unwrap();
    let (mut ok, mut errs) = (0, 0);
    for s in schemas {
        let name = s["name"].as_str().unwrap();
        let text = s["text"].as_str().unwrap();
        let result = sproto::parse(text, "=text");
        if let Some(expected_err) = s.get("error").and_then(|e| e.as_str()) {
            let err = match result {
                Ok(b) => panic!(
                    "{name}: expected error {expected_err:?}, got bundle {}",
                    to_hex(&b)
                ),
                Err(e) => e,
            };
            // Reference texts that are meaningful are reproduced verbatim.
            let meaningful = !expected_err.starts_with("assertion")
                && !expected_err.starts_with("attempt to")
                && !expected_err.starts_with("bad argument");
            // Which of two protocols sharing a tag is named depends on hash order.
            let expected_err = match expected_err.strip_prefix("redefined protocol tag ") {
                Some(rest) => {
                    &expected_err
                        [..expected_err.len() - rest.len() + rest.find(" at ").unwrap() + 4]
                }
                None => expected_err,
            };
            if meaningful {
                assert!(
                    err.to_string().contains(expected_err),
                    "{name}: {err} does not contain {expected_err:?}"
                );
            }
            errs += 1;
            continue;
        }
        let bundle = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            to_hex(&bundle),
            s["bundle_hex"].as_str().unwrap(),
            "{name}: bundle"
        );
        let loaded = Sproto::from_bundle(&bundle);
        assert_eq!(
            loaded.is_ok(),
            s["loadable"].as_bool().unwrap(),
            "{name}: loadable {loaded:?}"
        );
        if let Ok(sp) = loaded {
            assert_eq!(sp.to_bundle(), bundle, "{name}: re-serialized bundle");
            check_description(name, &sp, s);
        }
        ok += 1;
    }
    assert!(ok >= 40 && errs >= 30, "ok={ok} errs={errs}");
}

fn check_description(name: &str, sp: &Sproto, s: &serde_json::Value) {
    let types = s["types"].as_array().unwrap();
    assert_eq!(sp.types().len(), types.len(), "{name}: type count");
    for t in types {
        let index = t["index"].as_u64().unwrap() as usize;
        let ty = sp.type_at(index);
        assert_eq!(ty.name(), t["name"].as_str().unwrap(), "{name}: type name");
        let fields = t["fields"].as_array().unwrap();
        assert_eq!(
            ty.fields().len(),
            fields.len(),
            "{name}.{}: field count",
            ty.name()
        );
        for (f, jf) in ty.fields().iter().zip(fields) {
            let ctx = format!("{name}.{}.{}", ty.name(), f.name());
            assert_eq!(f.name(), jf["name"].as_str().unwrap(), "{ctx}");
            assert_eq!(f.tag() as u64, jf["tag"].as_u64().unwrap(), "{ctx}");
            let buildin = jf.get("buildin").map(|v| v.as_u64().unwrap());
            let type_word = jf.get("type").map(|v| v.as_u64().unwrap());
            match f.field_type() {
                FieldType::Integer => {
                    assert_eq!(buildin, Some(0), "{ctx}");
                    assert_eq!(type_word, f.precision().map(u64::from), "{ctx}");
                }
                FieldType::Boolean => assert_eq!(buildin, Some(1), "{ctx}"),
                FieldType::String => assert_eq!((buildin, type_word), (Some(2), None), "{ctx}"),
                FieldType::Binary => assert_eq!((buildin, type_word), (Some(2), Some(1)), "{ctx}"),
                FieldType::Double => assert_eq!(buildin, Some(3), "{ctx}"),
                FieldType::Struct(i) => {
                    assert_eq!((buildin, type_word), (None, Some(i as u64)), "{ctx}")
                }
            }
            let array = jf.get("array").is_some_and(|v| v.as_bool().unwrap());
            assert_eq!(array, f.is_array(), "{ctx}");
            let key = jf.get("key").map(|v| v.as_u64().unwrap());
            let map = jf.get("map").is_some_and(|v| v.as_bool().unwrap());
            match f.container() {
                Container::KeyMap { key_tag, .. } => {
                    assert_eq!((key, map), (Some(key_tag as u64), false), "{ctx}")
                }
                Container::PairMap => assert!(key.is_some() && map, "{ctx}"),
                _ => assert_eq!((key, map), (None, false), "{ctx}"),
            }
        }
    }
    let protos = s["protocols"].as_array().unwrap();
    assert_eq!(sp.protocols().len(), protos.len(), "{name}: protocol count");
    for (p, jp) in sp.protocols().iter().zip(protos) {
        assert_eq!(p.name(), jp["name"].as_str().unwrap());
        assert_eq!(p.tag() as u64, jp["tag"].as_u64().unwrap());
        let idx = |k: &str| jp.get(k).map(|v| v.as_u64().unwrap() as usize);
        assert_eq!(p.request(), idx("request"), "{name}: {} request", p.name());
        assert_eq!(
            p.response(),
            idx("response"),
            "{name}: {} response",
            p.name()
        );
        assert_eq!(
            p.confirm(),
            jp.get("confirm").is_some_and(|v| v.as_bool().unwrap())
        );
    }
}

#[test]
fn syntax_errors_report_line_numbers() {
    let j = load("sproto_schemas.json");
    for s in j["schemas"].as_array().unwrap() {
        let Some(e) = s.get("error").and_then(|e| e.as_str()) else {
            continue;
        };
        if e.starts_with("syntax error") {
            let err = sproto::parse(s["text"].as_str().unwrap(), "=text").unwrap_err();
            assert!(err.syntax);
            assert_eq!(err.to_string(), e, "{}", s["name"]);
        }
    }
}

#[test]
fn semantic_errors_carry_the_definition_line() {
    let err = sproto::parse(
        ".A {}\n.B {\n  a 0 : integer\n  a 1 : string\n}\n",
        "x.sproto",
    )
    .unwrap_err();
    assert!(!err.syntax);
    assert_eq!(err.line, 4);
    assert_eq!(err.reason, "redefine a in type B");
    assert_eq!(
        err.to_string(),
        "redefine a in type B at [x.sproto] line (4)"
    );
}
