//! sproto_pack.json: pack/unpack byte for byte, including truncated streams.

mod common;

use common::*;

#[test]
fn pack_cases() {
    let j = load("sproto_pack.json");
    let cases = j["pack_cases"].as_array().unwrap();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let input = hex(case["input_hex"].as_str().unwrap());
        assert_eq!(input.len() as u64, case["input_len"].as_u64().unwrap());
        let packed = sproto::pack(&input);
        assert_eq!(
            to_hex(&packed),
            case["packed_hex"].as_str().unwrap(),
            "{name}: pack"
        );
        assert!(
            packed.len() <= sproto::packed_bound(input.len()),
            "{name}: bound"
        );
        let unpacked = sproto::unpack(&packed).unwrap();
        assert_eq!(
            to_hex(&unpacked),
            case["unpacked_hex"].as_str().unwrap(),
            "{name}: unpack"
        );
    }
    assert_eq!(cases.len(), 35);
}

#[test]
fn unpack_cases() {
    let j = load("sproto_pack.json");
    for case in j["unpack_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let result = sproto::unpack(&hex(case["packed_hex"].as_str().unwrap()));
        match case.get("unpacked_hex") {
            Some(h) => assert_eq!(to_hex(&result.unwrap()), h.as_str().unwrap(), "{name}"),
            None => {
                let e = result.expect_err(name).to_string();
                assert!(
                    e.starts_with(case["error"].as_str().unwrap()),
                    "{name}: {e}"
                );
            }
        }
    }
}

#[test]
fn unpack_into_keeps_buffer_on_error() {
    let mut out = vec![7u8];
    assert!(sproto::unpack_into(&[0xff, 0x00, 1, 2], &mut out).is_err());
    assert_eq!(out, [7]);
}
