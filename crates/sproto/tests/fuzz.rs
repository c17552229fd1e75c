//! Bounded property/fuzz tests (deterministic seeds, a few seconds in total):
//!
//! * decode, unpack, bundle loading and RPC dispatch on random and mutated bytes never
//!   panic (they may only return `Err`);
//! * `unpack(pack(x))` is `x` zero-padded to a multiple of 8;
//! * random schemas: `parse` -> bundle -> `from_bundle` -> `to_bundle` reproduces the
//!   bundle, and random values of every type survive encode -> decode;
//! * mutated schema texts never make the parser panic.

mod common;

use std::fmt::Write;
use std::sync::Arc;

use common::*;
use sproto::rpc::Host;
use sproto::{Container, FieldType, Sproto, Value};

/// xorshift64* — small, deterministic, good enough for input generation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            3 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            4 if v.len() >= 4 => {
                // Plant a suspicious length field.
                let i = rng.below(v.len() - 3);
                let len: u32 = [0xffff_ffff, 0xffff_fffc, 0x7fff_ffff, 3][rng.below(4)];
                v[i..i + 4].copy_from_slice(&len.to_le_bytes());
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.splice(i..i, [0xff, 0xff]);
            }
        }
    }
    v
}

fn vector_schemas() -> Vec<Arc<Sproto>> {
    schema_texts()
        .values()
        .filter_map(|t| Sproto::parse(t).ok().map(Arc::new))
        .collect()
}

fn encoded_samples() -> Vec<(String, String, Vec<u8>)> {
    let j = load("sproto_encode.json");
    let mut out = Vec::new();
    for c in j["encode_cases"].as_array().unwrap() {
        if let Some(h) = c.get("encoded_hex") {
            out.push((
                c["schema"].as_str().unwrap().to_string(),
                c["type"].as_str().unwrap().to_string(),
                hex(h.as_str().unwrap()),
            ));
        }
    }
    out
}

#[test]
fn decode_never_panics_on_random_or_mutated_bytes() {
    let mut rng = Rng(0x5eed_0001);
    let texts = schema_texts();
    let samples = encoded_samples();
    let schemas: std::collections::HashMap<_, _> = texts
        .iter()
        .filter_map(|(n, t)| Sproto::parse(t).ok().map(|s| (n.clone(), s)))
        .collect();
    let mut errors = 0;
    for round in 0..200_000 {
        let (schema, ty, base) = &samples[rng.below(samples.len())];
        let sp = &schemas[schema];
        let input = if round % 4 == 0 {
            rng.bytes(64)
        } else {
            mutate(&mut rng, base)
        };
        // Decode as the intended type and as a random other type.
        let other = sp.types()[rng.below(sp.types().len())].name().to_string();
        for t in [ty.as_str(), other.as_str()] {
            if sp.decode_value(t, &input).is_err() {
                errors += 1;
            }
        }
    }
    assert!(
        errors > 40_000,
        "mutations should often be rejected ({errors})"
    );
}

#[test]
fn pack_round_trips_and_unpack_never_panics() {
    let mut rng = Rng(0x5eed_0002);
    for _ in 0..20_000 {
        let mut input = rng.bytes(300);
        // Bias towards sparse and dense words.
        for b in input.iter_mut() {
            match rng.below(3) {
                0 => *b = 0,
                1 => *b |= 1,
                _ => {}
            }
        }
        let packed = sproto::pack(&input);
        assert!(packed.len() <= sproto::packed_bound(input.len()));
        let mut expected = input.clone();
        expected.resize(input.len().div_ceil(8) * 8, 0);
        assert_eq!(sproto::unpack(&packed).unwrap(), expected);
        let _ = sproto::unpack(&mutate(&mut rng, &packed));
        let junk = rng.bytes(100);
        if let Ok(out) = sproto::unpack(&junk) {
            assert!(out.len() <= junk.len() * 8 && out.len() % 8 == 0);
        }
    }
}

#[test]
fn bundle_loading_never_panics_on_mutations() {
    let mut rng = Rng(0x5eed_0003);
    let bundles: Vec<Vec<u8>> = vector_schemas().iter().map(|s| s.to_bundle()).collect();
    let mut loaded = 0;
    for _ in 0..100_000 {
        let pick = rng.below(bundles.len());
        let b = mutate(&mut rng, &bundles[pick]);
        if let Ok(sp) = Sproto::from_bundle(&b) {
            loaded += 1;
            // Whatever loads must be usable without panics.
            for ty in sp.types() {
                let _ = sp.decode_value(ty.name(), &rng.bytes(40));
                let _ = sp.encode_value(ty.name(), &Value::Struct(vec![]));
            }
        }
    }
    assert!(loaded > 0);
}

#[test]
fn dispatch_never_panics_on_mutated_packets() {
    let mut rng = Rng(0x5eed_0004);
    let j = load("sproto_rpc.json");
    let sp = |n: &str| Arc::new(Sproto::parse(j["schemas"][n].as_str().unwrap()).unwrap());
    let mut server = Host::new(sp("proto.c2s"), "package").unwrap();
    let mut client = Host::new(sp("proto.s2c"), "package").unwrap();
    let peer = sp("proto.c2s");
    let mut packets = Vec::new();
    for s in j["scenarios"].as_array().unwrap() {
        for st in s["steps"].as_array().unwrap() {
            for k in ["packed_hex", "input_hex"] {
                if let Some(h) = st.get(k) {
                    packets.push(hex(h.as_str().unwrap()));
                }
            }
        }
    }
    for i in 0..100_000i64 {
        if i % 3 == 0 {
            let args = Value::structure([("userid", Value::str("u"))]);
            let _ = client.request(
                &peer,
                sproto::ProtoKey::Name("signin"),
                &args,
                Some(i % 50),
                None,
            );
        }
        let pick = rng.below(packets.len());
        let p = mutate(&mut rng, &packets[pick]);
        if let Ok(sproto::rpc::Incoming::Request(r)) = server.dispatch(&p) {
            if let Some(resp) = r.responder {
                let _ = resp.respond(&Value::structure([("ok", Value::Boolean(true))]), None);
            }
        }
        let _ = client.dispatch(&p);
    }
}

// ---------------------------------------------------------------------------------
// Random schemas

const BUILTINS: [&str; 5] = ["integer", "boolean", "string", "binary", "double"];

/// A random schema text with `n` top-level types, nested types, maps and protocols.
fn random_schema(rng: &mut Rng) -> String {
    let n = 1 + rng.below(4);
    let names: Vec<String> = (0..n).map(|i| format!("T{i}")).collect();
    let mut s = String::new();
    for name in &names {
        let _ = writeln!(s, ".{name} {{");
        if rng.chance(30) {
            let _ = writeln!(s, "  .Inner {{ k 0 : integer v 1 : string }}");
            let _ = writeln!(s, "  inner_map 900 : *Inner()");
            let _ = writeln!(s, "  inner_keyed 901 : *Inner(k)");
        }
        let mut tag = rng.below(3);
        for f in 0..rng.below(7) {
            let array = if rng.chance(30) { "*" } else { "" };
            let ty = if rng.chance(25) {
                names[rng.below(names.len())].clone()
            } else {
                BUILTINS[rng.below(5)].to_string()
            };
            let suffix = if ty == "integer" && rng.chance(30) {
                format!("({})", rng.below(5))
            } else {
                String::new()
            };
            let sep = ["\n", " ", "\t# comment\n", "\r\n"][rng.below(4)];
            let _ = write!(s, "  f{f} {tag} : {array}{ty}{suffix}{sep}");
            tag += 1 + if rng.chance(20) { rng.below(200) } else { 0 };
        }
        s.push_str("}\n");
    }
    for p in 0..rng.below(4) {
        let _ = write!(s, "p{p} {} {{", p * 3 + rng.below(3));
        if rng.chance(50) {
            let _ = write!(s, " request {}", names[rng.below(n)]);
        }
        match rng.below(3) {
            0 => s.push_str(" response { ok 0 : boolean }"),
            1 => s.push_str(" response nil"),
            _ => {}
        }
        s.push_str(" }\n");
    }
    s
}

fn random_scalar(rng: &mut Rng, f: &sproto::Field) -> Value {
    match f.field_type() {
        FieldType::Integer => match f.precision() {
            Some(p) => Value::Double(
                (rng.below(2_000_001) as i64 - 1_000_000) as f64 / 10f64.powi(p as i32),
            ),
            None => Value::Integer(match rng.below(4) {
                0 => rng.below(0x7fff) as i64,
                1 => -(rng.below(1000) as i64),
                2 => rng.next() as i64,
                _ => rng.next() as i32 as i64,
            }),
        },
        FieldType::Boolean => Value::Boolean(rng.chance(50)),
        FieldType::Double => Value::Double(f64::from_bits(rng.next()) % 1e9),
        FieldType::String | FieldType::Binary => Value::String(rng.bytes(12)),
        FieldType::Struct(_) => unreachable!(),
    }
}

fn key_for(ty: FieldType, i: usize) -> Value {
    match ty {
        FieldType::Integer => Value::Integer(i as i64 * 7 - 3),
        FieldType::Boolean => Value::Boolean(i == 1),
        FieldType::Double => Value::Double(i as f64 + 0.5),
        _ => Value::str(&format!("k{i}")),
    }
}

fn random_value(rng: &mut Rng, sp: &Sproto, ty: usize, depth: usize) -> Value {
    let mut fields = Vec::new();
    for f in sp.type_at(ty).fields() {
        if rng.chance(40) {
            continue;
        }
        let elem = |rng: &mut Rng| match f.field_type() {
            FieldType::Struct(t) if depth < 3 => Some(random_value(rng, sp, t, depth + 1)),
            FieldType::Struct(_) => None,
            _ => Some(random_scalar(rng, f)),
        };
        let v = match f.container() {
            Container::Single => elem(rng),
            Container::Array => (0..rng.below(4))
                .map(|_| elem(rng))
                .collect::<Option<Vec<_>>>()
                .map(Value::Array),
            Container::KeyMap { key_field, .. } => {
                let FieldType::Struct(t) = f.field_type() else {
                    unreachable!()
                };
                let key_f = &sp.type_at(t).fields()[key_field];
                let count = if key_f.field_type() == FieldType::Boolean {
                    2
                } else {
                    3
                };
                let mut entries = Vec::new();
                for i in 0..rng.below(count + 1) {
                    if depth >= 3 {
                        break;
                    }
                    let Value::Struct(mut e) = random_value(rng, sp, t, depth + 1) else {
                        unreachable!()
                    };
                    let k = key_for(key_f.field_type(), i);
                    e.retain(|(n, _)| n != key_f.name());
                    e.push((key_f.name().to_string(), k.clone()));
                    entries.push((k, Value::Struct(e)));
                }
                Some(Value::Map(entries))
            }
            Container::PairMap => {
                let FieldType::Struct(t) = f.field_type() else {
                    unreachable!()
                };
                let (kf, vf) = (&sp.type_at(t).fields()[0], &sp.type_at(t).fields()[1]);
                let mut entries = Vec::new();
                for i in 0..rng.below(3) {
                    let v = match (vf.field_type(), vf.is_array()) {
                        (_, true) => break,
                        (FieldType::Struct(vt), _) if depth < 3 => {
                            random_value(rng, sp, vt, depth + 1)
                        }
                        (FieldType::Struct(_), _) => break,
                        _ => random_scalar(rng, vf),
                    };
                    entries.push((key_for(kf.field_type(), i), v));
                }
                Some(Value::Map(entries))
            }
        };
        if let Some(v) = v {
            fields.push((f.name().to_string(), v));
        }
    }
    Value::Struct(fields)
}

#[test]
fn random_schemas_round_trip() {
    let mut rng = Rng(0x5eed_0005);
    let mut parsed = 0;
    for _ in 0..4000 {
        let text = random_schema(&mut rng);
        let bundle = match sproto::parse(&text, "=random") {
            Ok(b) => b,
            Err(e) => {
                // Only protocol tag collisions are expected to fail.
                assert!(e.reason.contains("redefined protocol tag"), "{e}\n{text}");
                continue;
            }
        };
        let sp = Sproto::from_bundle(&bundle).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(sp.to_bundle(), bundle, "{text}");
        parsed += 1;
        for (i, ty) in sp.types().iter().enumerate() {
            let v = random_value(&mut rng, &sp, i, 0);
            let bytes = sp
                .encode_value(ty.name(), &v)
                .unwrap_or_else(|e| panic!("{e}: {v:?}\n{text}"));
            let (back, used) = sp.decode_value(ty.name(), &bytes).unwrap();
            assert_eq!(used, bytes.len());
            assert!(lua_eq(&v, &back), "{text}\n{v:?}\n{back:?}");
            // Packing is transparent to decoding.
            let (again, _) = sp
                .decode_value(ty.name(), &sproto::unpack(&sproto::pack(&bytes)).unwrap())
                .unwrap();
            assert!(lua_eq(&v, &again));
        }
        // Mutated schema text: the parser must not panic.
        let mutated = mutate(&mut rng, text.as_bytes());
        let _ = sproto::parse(&String::from_utf8_lossy(&mutated), "=mutated");
    }
    assert!(parsed > 2500, "{parsed}");
}
