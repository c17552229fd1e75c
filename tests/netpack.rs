//! `skynet.netpack` in a plain Lua state: framing, split headers, events, pack.

use mlua::{LightUserData, Lua, MultiValue, Value};
use skynet::lua::modules::netpack::luaopen_skynet_netpack;
use skynet::message::payload_from;
use skynet::socket::{
    make_message, SOCKET_ACCEPT, SOCKET_CLOSE, SOCKET_CONNECT, SOCKET_DATA, SOCKET_ERROR,
    SOCKET_WARNING,
};

fn lua() -> Lua {
    let lua = Lua::new();
    // SAFETY: a valid lua_CFunction.
    let open = unsafe { lua.create_c_function(luaopen_skynet_netpack) }.unwrap();
    let np: mlua::Table = open.call(()).unwrap();
    lua.globals().set("netpack", np).unwrap();
    lua
}

/// A socket message as `(lightuserdata, size)`.
fn msg(kind: i32, id: i32, ud: i32, data: Option<&[u8]>, text: &[u8]) -> (LightUserData, i64) {
    let buf = data.map(payload_from).unwrap_or(std::ptr::null_mut());
    let (p, sz) = make_message(kind, id, ud, buf, text);
    (LightUserData(p as *mut _), sz as i64)
}

fn data(id: i32, bytes: &[u8]) -> (LightUserData, i64) {
    msg(SOCKET_DATA, id, bytes.len() as i32, Some(bytes), b"")
}

const HELPERS: &str = r#"
Q = nil
function feed(m, sz)
    local r = table.pack(netpack.filter(Q, m, sz))
    Q = r[1]
    netpack_free_msg(m)
    return table.unpack(r, 2, r.n)
end
function str(m, sz) return netpack.tostring(m, sz) end
function popall()
    local out = {}
    while true do
        local fd, m, sz = netpack.pop(Q)
        if not fd then break end
        out[#out + 1] = fd .. "=" .. netpack.tostring(m, sz)
    end
    return table.concat(out, ",")
end
"#;

fn setup() -> Lua {
    let lua = lua();
    let free = lua
        .create_function(|_, p: LightUserData| {
            // SAFETY: message blocks made by make_message.
            unsafe { skynet::message::payload_free(p.0 as *mut u8) };
            Ok(())
        })
        .unwrap();
    lua.globals().set("netpack_free_msg", free).unwrap();
    lua.load(HELPERS).exec().unwrap();
    lua
}

fn feed(lua: &Lua, m: (LightUserData, i64)) -> Vec<Value> {
    let f: mlua::Function = lua.globals().get("feed").unwrap();
    let r: MultiValue = f.call(m).unwrap();
    r.into_vec()
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_str().unwrap().to_string(),
        Value::Integer(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn popall(lua: &Lua) -> String {
    lua.load("return popall()").eval().unwrap()
}

#[test]
fn one_packet_is_returned_directly() {
    let lua = setup();
    let r = feed(&lua, data(5, b"\x00\x03abc"));
    assert_eq!(s(&r[0]), "data");
    assert_eq!(s(&r[1]), "5");
    let sz = match r[3] {
        Value::Integer(i) => i,
        _ => panic!(),
    };
    assert_eq!(sz, 3);
    let st: String = lua
        .globals()
        .get::<mlua::Function>("str")
        .unwrap()
        .call((r[2].clone(), sz))
        .unwrap();
    assert_eq!(st, "abc");
}

#[test]
fn several_packets_and_split_headers() {
    let lua = setup();
    // Two packets and the first byte of a third header.
    let r = feed(&lua, data(7, b"\x00\x01x\x00\x02yz\x00"));
    assert_eq!(s(&r[0]), "more");
    assert_eq!(popall(&lua), "7=x,7=yz");
    // Second header byte and part of the body; nothing complete.
    let r = feed(&lua, data(7, b"\x04ab"));
    assert!(r.is_empty(), "{r:?}");
    // Interleaved other fd.
    let r = feed(&lua, data(8, b"\x00\x00"));
    assert_eq!(s(&r[0]), "data");
    assert_eq!(s(&r[1]), "8");
    // Complete it plus a partial next packet: "more".
    let r = feed(&lua, data(7, b"cd\x00\x05hel"));
    assert_eq!(s(&r[0]), "more");
    assert_eq!(popall(&lua), "7=abcd");
    let r = feed(&lua, data(7, b"lo"));
    assert_eq!(s(&r[0]), "data");
    // Close drops the partial packet.
    feed(&lua, data(7, b"\x00\x09part"));
    let r = feed(&lua, msg(SOCKET_CLOSE, 7, 0, None, b""));
    assert_eq!((s(&r[0]), s(&r[1])), ("close".into(), "7".into()));
    let r = feed(&lua, data(7, b"\x00\x01z"));
    assert_eq!(s(&r[0]), "data");
}

#[test]
fn events() {
    let lua = setup();
    let r = feed(&lua, msg(SOCKET_ACCEPT, 3, 9, None, b"1.2.3.4:5"));
    assert_eq!(
        r.iter().map(s).collect::<Vec<_>>(),
        ["open", "9", "1.2.3.4:5"]
    );
    let r = feed(
        &lua,
        msg(SOCKET_ERROR, 9, 0, None, b"Connection reset by peer"),
    );
    assert_eq!(
        r.iter().map(s).collect::<Vec<_>>(),
        ["error", "9", "Connection reset by peer"]
    );
    let r = feed(&lua, msg(SOCKET_WARNING, 9, 2048, None, b""));
    assert_eq!(
        r.iter().map(s).collect::<Vec<_>>(),
        ["warning", "9", "2048"]
    );
    let r = feed(&lua, msg(SOCKET_CONNECT, 3, 8888, None, b"0.0.0.0"));
    assert_eq!(
        r.iter().map(s).collect::<Vec<_>>(),
        ["init", "3", "0.0.0.0", "8888"]
    );
}

#[test]
fn pack_tostring_clear() {
    let lua = setup();
    let out: String = lua
        .load(
            r#"local p, sz = netpack.pack("abc"); assert(sz == 5); return netpack.tostring(p, sz)"#,
        )
        .eval()
        .unwrap();
    assert_eq!(out.as_bytes(), b"\x00\x03abc");
    let out: String = lua
        .load(r#"local p, sz = netpack.pack(string.rep("x", 300)); return netpack.tostring(p, sz):sub(1, 2)"#)
        .eval()
        .unwrap();
    assert_eq!(out.as_bytes(), b"\x01\x2c");
    let err = lua
        .load(r#"netpack.pack(string.rep("x", 65536))"#)
        .exec()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Invalid size (too long) of data : 65536"),
        "{err}"
    );
    assert_eq!(
        lua.load(r#"return netpack.tostring(nil, 0)"#)
            .eval::<String>()
            .unwrap(),
        ""
    );
    feed(&lua, data(1, b"\x00\x01a\x00\x01b\x00\x03c"));
    lua.load("netpack.clear(Q)").exec().unwrap();
    assert_eq!(popall(&lua), "");
    // The queue is collected without leaks or crashes.
    lua.load("Q = nil collectgarbage()").exec().unwrap();
}
