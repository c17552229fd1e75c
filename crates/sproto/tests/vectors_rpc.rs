//! sproto_rpc.json scenarios replayed through `rpc::Host`: every packet byte for byte,
//! every dispatch result, every error. (`api_calls` exercise the Lua API and are run by
//! the Lua binding tests.)

mod common;

use std::sync::Arc;

use common::*;
use serde_json::Value as Json;
use sproto::rpc::{Host, Incoming, Responder};
use sproto::{ProtoKey, Sproto, Value};

struct Actor {
    host: Host,
    peer: Option<Arc<Sproto>>,
    responder: Option<Responder>,
}

fn actors(j: &Json, scenario: &str) -> (Actor, Actor) {
    let sp = |n: &str| Arc::new(Sproto::parse(j["schemas"][n].as_str().unwrap()).unwrap());
    let actor = |host: Arc<Sproto>, peer: Option<Arc<Sproto>>| Actor {
        host: Host::new(host, "package").unwrap(),
        peer,
        responder: None,
    };
    match scenario {
        "skynet_sample" => (
            actor(sp("proto.s2c"), Some(sp("proto.c2s"))),
            actor(sp("proto.c2s"), Some(sp("proto.s2c"))),
        ),
        "sproto_testrpc" => (
            actor(sp("testrpc_client"), Some(sp("testrpc_server"))),
            actor(sp("testrpc_server"), None),
        ),
        other => panic!("unknown scenario {other}"),
    }
}

fn opt_bytes(step: &Json, key: &str) -> Option<Vec<u8>> {
    step.get(key)
        .map(|u| u.as_str().unwrap().as_bytes().to_vec())
}

fn check_packet(step: &Json, label: &str, result: sproto::Result<Vec<u8>>) {
    match step.get("error") {
        Some(e) => {
            let err = result.expect_err(label).to_string();
            let e = e.as_str().unwrap();
            let same_meaning =
                err == e || (e.contains("nil expected") && err.contains("nil expected"));
            assert!(same_meaning, "{label}: {err} vs {e}");
        }
        None => {
            let packet = result.unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(
                to_hex(&packet),
                step["packed_hex"].as_str().unwrap(),
                "{label}"
            );
            let unpacked = sproto::unpack(&packet).unwrap();
            assert_eq!(
                to_hex(&unpacked),
                step["unpacked_hex"].as_str().unwrap(),
                "{label}"
            );
        }
    }
}

#[test]
fn scenarios() {
    let j = load("sproto_rpc.json");
    let mut steps_run = 0;
    for scenario in j["scenarios"].as_array().unwrap() {
        let (mut client, mut server) = actors(&j, scenario["name"].as_str().unwrap());
        for step in scenario["steps"].as_array().unwrap() {
            let actor = match step["actor"].as_str().unwrap() {
                "client" => &mut client,
                _ => &mut server,
            };
            let label = step
                .get("call")
                .or(step.get("label"))
                .map(|c| c.as_str().unwrap().to_string())
                .unwrap_or_else(|| format!("dispatch {}", step["input_hex"]));
            match step["op"].as_str().unwrap() {
                "attach_send" => {
                    let key = match &step["proto"] {
                        Json::String(s) => ProtoKey::Name(s),
                        n => ProtoKey::Tag(n.as_i64().unwrap()),
                    };
                    let session = step.get("session").map(|s| s.as_i64().unwrap());
                    let peer = actor.peer.clone().unwrap();
                    let args = tv_to_value(&step["args"]);
                    let ud = opt_bytes(step, "ud");
                    let r = actor
                        .host
                        .request(&peer, key, &args, session, ud.as_deref());
                    check_packet(step, &label, r);
                }
                "response_closure" => {
                    let responder = actor.responder.as_ref().expect("a responder");
                    let args = tv_to_value(&step["args"]);
                    let ud = opt_bytes(step, "ud");
                    check_packet(step, &label, responder.respond(&args, ud.as_deref()));
                }
                "dispatch" => {
                    let input = hex(step["input_hex"].as_str().unwrap());
                    let result = actor.host.dispatch(&input);
                    if let Some(e) = step.get("error") {
                        let err = result.expect_err(&label).to_string();
                        let e = e.as_str().unwrap();
                        assert!(err.starts_with(e), "{label}: {err} vs {e}");
                        continue;
                    }
                    let returns = step["returns"].as_array().unwrap();
                    let tv = |i: usize| tv_to_value(&returns[i]);
                    let opt = |v: &Option<Value>| v.clone().unwrap_or(Value::Nil);
                    let ud_value =
                        |u: &Option<Vec<u8>>| u.clone().map(Value::String).unwrap_or(Value::Nil);
                    match result.unwrap_or_else(|e| panic!("{label}: {e}")) {
                        Incoming::Request(r) => {
                            assert_eq!(returns[0], "REQUEST", "{label}");
                            assert_eq!(returns[1].as_str().unwrap(), r.name, "{label}");
                            assert!(lua_eq(&tv(2), &opt(&r.args)), "{label}: {:?}", r.args);
                            assert_eq!(returns[3].is_null(), r.responder.is_none(), "{label}");
                            assert!(lua_eq(&tv(4), &ud_value(&r.ud)), "{label}");
                            actor.responder = r.responder;
                        }
                        Incoming::Response(r) => {
                            assert_eq!(returns[0], "RESPONSE", "{label}");
                            assert_eq!(returns[1].as_i64().unwrap(), r.session, "{label}");
                            assert!(lua_eq(&tv(2), &opt(&r.result)), "{label}: {:?}", r.result);
                            assert!(lua_eq(&tv(3), &ud_value(&r.ud)), "{label}");
                        }
                    }
                }
                op => panic!("unknown op {op}"),
            }
            steps_run += 1;
        }
    }
    assert!(steps_run > 60, "{steps_run}");
}

#[test]
fn sessions_are_consumed_by_their_response() {
    let j = load("sproto_rpc.json");
    let (mut client, mut server) = actors(&j, "skynet_sample");
    let peer = client.peer.clone().unwrap();
    let args = Value::structure([("userid", Value::str("zed"))]);
    let packet = client
        .host
        .request(&peer, ProtoKey::Name("signin"), &args, Some(42), None)
        .unwrap();
    assert_eq!(client.host.pending_sessions(), 1);
    let Incoming::Request(req) = server.host.dispatch(&packet).unwrap() else {
        panic!()
    };
    let reply = req
        .responder
        .unwrap()
        .respond(&Value::structure([("ok", Value::Boolean(true))]), None)
        .unwrap();
    assert!(
        matches!(client.host.dispatch(&reply).unwrap(), Incoming::Response(r) if r.session == 42)
    );
    assert_eq!(client.host.pending_sessions(), 0);
    assert_eq!(
        client.host.dispatch(&reply).unwrap_err().to_string(),
        "Unknown session"
    );
}
