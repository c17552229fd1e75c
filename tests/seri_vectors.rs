//! lua-seri (`skynet.pack` / `skynet.unpack` / `skynet.packstring`) against the golden
//! vectors in `tests/vectors/seri.json` (produced by the upstream C code), plus
//! hostile-input, metamethod-error and round-trip checks.

#![allow(non_snake_case)]

use std::ffi::{c_char, c_int, c_void, CString};

use mlua::ffi::*;
use serde_json::Value;
use skynet::lua::modules::seri;

// ---------------------------------------------------------------------------------------
// Lua state and helpers
// ---------------------------------------------------------------------------------------

struct State(*mut lua_State);

impl Drop for State {
    fn drop(&mut self) {
        unsafe { lua_close(self.0) }
    }
}

/// `lud(n)`: a light userdata whose pointer value is `n`.
unsafe extern "C-unwind" fn l_lud(L: *mut lua_State) -> c_int {
    let n = luaL_checkinteger(L, 1);
    lua_pushlightuserdata(L, n as usize as *mut c_void);
    1
}

/// `seri_tostring(ptr, size)`: copy a packed buffer into a string (skynet.tostring).
unsafe extern "C-unwind" fn l_tostring(L: *mut lua_State) -> c_int {
    if lua_isnoneornil(L, 1) != 0 {
        return 0;
    }
    let p = lua_touserdata(L, 1) as *const c_char;
    let n = luaL_checkinteger(L, 2);
    lua_pushlstring(L, p, n as usize);
    1
}

/// `trash(ptr, size)`: free a buffer from `pack` (skynet.trash).
unsafe extern "C-unwind" fn l_trash(L: *mut lua_State) -> c_int {
    if lua_type(L, 1) == LUA_TLIGHTUSERDATA {
        skynet::message::payload_free(lua_touserdata(L, 1) as *mut u8);
    }
    0
}

fn new_state() -> State {
    unsafe {
        let L = luaL_newstate();
        assert!(!L.is_null());
        luaL_openlibs(L);
        let funcs: [(&str, lua_CFunction); 6] = [
            ("pack", seri::l_pack),
            ("unpack", seri::l_unpack),
            ("packstring", seri::l_packstring),
            ("lud", l_lud),
            ("seri_tostring", l_tostring),
            ("trash", l_trash),
        ];
        for (name, f) in funcs {
            let name = CString::new(name).unwrap();
            lua_pushcfunction(L, f);
            lua_setglobal(L, name.as_ptr());
        }
        State(L)
    }
}

/// Clear the stack, run `src` and leave all its results on the stack; returns their count.
unsafe fn eval(L: *mut lua_State, src: &str) -> Result<c_int, String> {
    lua_settop(L, 0);
    let name = c"=vector";
    if luaL_loadbufferx(
        L,
        src.as_ptr() as *const c_char,
        src.len(),
        name.as_ptr(),
        c"t".as_ptr(),
    ) != LUA_OK
    {
        let e = string_at(L, -1);
        lua_settop(L, 0);
        return Err(format!("load error: {}", String::from_utf8_lossy(&e)));
    }
    if lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK {
        let e = if lua_type(L, -1) == LUA_TSTRING {
            String::from_utf8_lossy(&string_at(L, -1)).into_owned()
        } else {
            format!("<{} error object>", lua_type(L, -1))
        };
        lua_settop(L, 0);
        return Err(e);
    }
    Ok(lua_gettop(L))
}

unsafe fn string_at(L: *mut lua_State, idx: c_int) -> Vec<u8> {
    assert_eq!(lua_type(L, idx), LUA_TSTRING, "expected a string");
    let mut len = 0usize;
    let p = lua_tolstring(L, idx, &mut len) as *const u8;
    std::slice::from_raw_parts(p, len).to_vec()
}

/// Call a C function with the `n` values on top of the stack, protected; returns the
/// number of results left on the stack (above `base`) or the error message.
unsafe fn pcall_c(L: *mut lua_State, f: lua_CFunction, n: c_int) -> Result<c_int, String> {
    let base = lua_gettop(L) - n;
    lua_pushcfunction(L, f);
    lua_insert(L, base + 1);
    if lua_pcall(L, n, LUA_MULTRET, 0) != LUA_OK {
        let e = if lua_type(L, -1) == LUA_TSTRING {
            String::from_utf8_lossy(&string_at(L, -1)).into_owned()
        } else {
            "<non-string error>".to_owned()
        };
        lua_settop(L, base);
        return Err(e);
    }
    Ok(lua_gettop(L) - base)
}

/// `l_unpack(string)`: decode `bytes`, leaving the values on a cleared stack.
unsafe fn unpack_string(L: *mut lua_State, bytes: &[u8]) -> Result<c_int, String> {
    lua_settop(L, 0);
    lua_pushlstring(L, bytes.as_ptr() as *const c_char, bytes.len());
    pcall_c(L, seri::l_unpack, 1)
}

/// `l_unpack(lightuserdata, size)` on a cleared stack.
unsafe fn unpack_pointer(L: *mut lua_State, bytes: &[u8]) -> Result<c_int, String> {
    lua_settop(L, 0);
    lua_pushlightuserdata(L, bytes.as_ptr() as *mut c_void);
    lua_pushinteger(L, bytes.len() as i64);
    pcall_c(L, seri::l_unpack, 2)
}

fn hex_decode(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("bad hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 (FIPS 180-4), enough to check the summarized vectors.
fn sha256(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(chunk[i * 4..i * 4 + 4].try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

// ---------------------------------------------------------------------------------------
// Typed-value (TV) comparison, see vectors/README.md
// ---------------------------------------------------------------------------------------

fn tv_float(s: &str) -> f64 {
    s.parse::<f64>()
        .unwrap_or_else(|_| panic!("bad $float {s}"))
}

unsafe fn count_entries(L: *mut lua_State, idx: c_int) -> usize {
    let mut n = 0;
    lua_pushnil(L);
    while lua_next(L, idx) != 0 {
        n += 1;
        lua_pop(L, 1);
    }
    n
}

/// Push a TV used as a table key.
unsafe fn push_tv_key(L: *mut lua_State, tv: &Value) {
    match tv {
        Value::Bool(b) => lua_pushboolean(L, *b as c_int),
        Value::Number(n) => lua_pushinteger(L, n.as_i64().expect("integer key")),
        Value::String(s) => {
            lua_pushlstring(L, s.as_ptr() as *const c_char, s.len());
        }
        Value::Object(o) if o.contains_key("$int") => {
            lua_pushinteger(L, o["$int"].as_str().unwrap().parse().unwrap())
        }
        Value::Object(o) if o.contains_key("$float") => {
            lua_pushnumber(L, tv_float(o["$float"].as_str().unwrap()))
        }
        Value::Object(o) if o.contains_key("$bin") => {
            let b = hex_decode(o["$bin"].as_str().unwrap());
            lua_pushlstring(L, b.as_ptr() as *const c_char, b.len());
        }
        other => panic!("unsupported key TV {other}"),
    }
}

/// Check that the Lua value at `idx` equals the TV `tv`.
unsafe fn check_tv(L: *mut lua_State, idx: c_int, tv: &Value) -> Result<(), String> {
    let idx = lua_absindex(L, idx);
    let t = lua_type(L, idx);
    let fail = |what: &str| Err(format!("expected {tv}, found {what} (lua type {t})"));
    match tv {
        Value::Null => {
            if t != LUA_TNIL {
                return fail("non-nil");
            }
        }
        Value::Bool(b) => {
            if t != LUA_TBOOLEAN || (lua_toboolean(L, idx) != 0) != *b {
                return fail("other boolean/type");
            }
        }
        Value::Number(n) => {
            let want = n.as_i64().expect("JSON integer");
            if t != LUA_TNUMBER || lua_isinteger(L, idx) == 0 {
                return fail("non-integer");
            }
            let got = lua_tointegerx(L, idx, std::ptr::null_mut());
            if got != want {
                return fail(&got.to_string());
            }
        }
        Value::String(s) => {
            if t != LUA_TSTRING || string_at(L, idx) != s.as_bytes() {
                return fail("other string/type");
            }
        }
        Value::Array(items) => {
            if t != LUA_TTABLE {
                return fail("non-table");
            }
            let n = count_entries(L, idx);
            if n != items.len() {
                return fail(&format!("table with {n} entries"));
            }
            for (i, v) in items.iter().enumerate() {
                lua_rawgeti(L, idx, i as i64 + 1);
                let r = check_tv(L, -1, v);
                lua_pop(L, 1);
                r.map_err(|e| format!("[{}]: {e}", i + 1))?;
            }
        }
        Value::Object(o) => {
            if let Some(s) = o.get("$int") {
                let want: i64 = s.as_str().unwrap().parse().unwrap();
                if t != LUA_TNUMBER
                    || lua_isinteger(L, idx) == 0
                    || lua_tointegerx(L, idx, std::ptr::null_mut()) != want
                {
                    return fail("other integer/type");
                }
            } else if let Some(s) = o.get("$float") {
                let want = tv_float(s.as_str().unwrap());
                if t != LUA_TNUMBER || lua_isinteger(L, idx) != 0 {
                    return fail("non-float");
                }
                let got = lua_tonumberx(L, idx, std::ptr::null_mut());
                if !(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan())) {
                    return fail(&got.to_string());
                }
            } else if let Some(s) = o.get("$bin") {
                if t != LUA_TSTRING || string_at(L, idx) != hex_decode(s.as_str().unwrap()) {
                    return fail("other string/type");
                }
            } else if let Some(p) = o.get("$lud") {
                if t != LUA_TLIGHTUSERDATA
                    || lua_touserdata(L, idx) as usize as u64 != p.as_u64().unwrap()
                {
                    return fail("other light userdata/type");
                }
            } else if let Some(pairs) = o.get("$table") {
                let pairs = pairs.as_array().unwrap();
                if t != LUA_TTABLE {
                    return fail("non-table");
                }
                let n = count_entries(L, idx);
                if n != pairs.len() {
                    return fail(&format!("table with {n} entries"));
                }
                for pair in pairs {
                    let kv = pair.as_array().unwrap();
                    push_tv_key(L, &kv[0]);
                    lua_rawget(L, idx);
                    let r = check_tv(L, -1, &kv[1]);
                    lua_pop(L, 1);
                    r.map_err(|e| format!("[{}]: {e}", kv[0]))?;
                }
            } else {
                if t != LUA_TTABLE {
                    return fail("non-table");
                }
                let n = count_entries(L, idx);
                if n != o.len() {
                    return fail(&format!("table with {n} entries"));
                }
                for (k, v) in o {
                    lua_pushlstring(L, k.as_ptr() as *const c_char, k.len());
                    lua_rawget(L, idx);
                    let r = check_tv(L, -1, v);
                    lua_pop(L, 1);
                    r.map_err(|e| format!(".{k}: {e}"))?;
                }
            }
        }
    }
    Ok(())
}

/// The `count` values on top of the stack equal the TV list `want`.
unsafe fn check_values(L: *mut lua_State, count: c_int, want: &[Value]) -> Result<(), String> {
    if count as usize != want.len() {
        return Err(format!("{count} values, expected {}", want.len()));
    }
    let base = lua_gettop(L) - count;
    for (i, v) in want.iter().enumerate() {
        check_tv(L, base + 1 + i as c_int, v).map_err(|e| format!("value {}: {e}", i + 1))?;
    }
    Ok(())
}

fn load_vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/seri.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).expect("parse seri.json")
}

// ---------------------------------------------------------------------------------------
// Golden vectors
// ---------------------------------------------------------------------------------------

unsafe fn run_pack_case(L: *mut lua_State, case: &Value) -> Result<(), String> {
    let args = case["lua_args"].as_str().unwrap();
    let packstring = eval(L, &format!("return packstring({args})"));
    let via_pack = eval(
        L,
        &format!("local p, n = pack({args}) local s = seri_tostring(p, n) trash(p) return s"),
    );
    if let Some(err) = case.get("error").and_then(Value::as_str) {
        for (what, r) in [("packstring", &packstring), ("pack", &via_pack)] {
            match r {
                Ok(_) => return Err(format!("{what} succeeded, expected error {err:?}")),
                Err(e) if !e.contains(err) => {
                    return Err(format!("{what} error {e:?}, expected {err:?}"))
                }
                Err(_) => {}
            }
        }
        // The worker API reports the same failure as Err and restores the stack.
        let n = eval(L, &format!("return {args}"))?;
        let mut out = Vec::new();
        match seri::pack_values(L, 1, n, &mut out) {
            Ok(()) => return Err("pack_values succeeded on an error case".into()),
            Err(e) if !e.contains(err) => return Err(format!("pack_values error {e:?}")),
            Err(_) => {}
        }
        if lua_gettop(L) != n {
            return Err("pack_values did not restore the stack".into());
        }
        return Ok(());
    }
    packstring.map_err(|e| format!("packstring failed: {e}"))?;
    let bytes = string_at(L, -1);
    via_pack.map_err(|e| format!("pack failed: {e}"))?;
    let bytes_pack = string_at(L, -1);

    // Worker API on the evaluated arguments.
    let nargs = eval(L, &format!("return {args}"))?;
    if nargs as i64 != case["nargs"].as_i64().unwrap() {
        return Err(format!("lua_args gave {nargs} values"));
    }
    let mut out = vec![0xaa]; // appends
    seri::pack_values(L, 1, nargs, &mut out)?;
    if lua_gettop(L) != nargs {
        return Err("pack_values changed the stack height".into());
    }

    let order_dependent = case.get("order_dependent") == Some(&Value::Bool(true));
    if !order_dependent {
        if bytes_pack != bytes {
            return Err(format!(
                "pack {} != packstring {}",
                hex(&bytes_pack),
                hex(&bytes)
            ));
        }
        if out[1..] != bytes[..] || out[0] != 0xaa {
            return Err(format!("pack_values gave {}", hex(&out)));
        }
    } else if bytes_pack.len() != bytes.len() || out.len() != bytes.len() + 1 {
        return Err("pack / pack_values lengths differ from packstring".into());
    }

    if let Some(want) = case.get("packed_hex").and_then(Value::as_str) {
        if order_dependent {
            if bytes.len() * 2 != want.len() {
                return Err(format!("length {} differs from {want}", hex(&bytes)));
            }
        } else if hex(&bytes) != want {
            return Err(format!("packed {} expected {want}", hex(&bytes)));
        }
    } else {
        let len = case["packed_len"].as_u64().unwrap() as usize;
        if bytes.len() != len {
            return Err(format!("packed length {} expected {len}", bytes.len()));
        }
        let head = case["packed_head_hex"].as_str().unwrap();
        let tail = case["packed_tail_hex"].as_str().unwrap();
        if hex(&bytes[..head.len() / 2]) != head
            || hex(&bytes[bytes.len() - tail.len() / 2..]) != tail
        {
            return Err("head/tail mismatch".into());
        }
        if sha256(&bytes) != case["packed_sha256"].as_str().unwrap() {
            return Err("sha256 mismatch".into());
        }
    }

    // Decoding.
    let count = case["unpacked_count"].as_i64().unwrap() as c_int;
    let mut inputs = vec![("our bytes", bytes.clone())];
    if order_dependent {
        inputs.push((
            "vector bytes",
            hex_decode(case["packed_hex"].as_str().unwrap()),
        ));
    }
    for (what, input) in &inputs {
        for (how, n) in [
            ("unpack(string)", unpack_string(L, input)),
            ("unpack(ptr, size)", unpack_pointer(L, input)),
        ] {
            let n = n.map_err(|e| format!("{how} of {what} failed: {e}"))?;
            match case.get("unpacked").and_then(Value::as_array) {
                Some(want) => {
                    check_values(L, n, want).map_err(|e| format!("{how} of {what}: {e}"))?
                }
                None => {
                    if n != count {
                        return Err(format!("{how} gave {n} values, expected {count}"));
                    }
                    // Too large to list: re-packing the decoded values must reproduce them.
                    let mut again = Vec::new();
                    seri::pack_values(L, lua_gettop(L) - n + 1, lua_gettop(L), &mut again)?;
                    if again != *input {
                        return Err(format!("{how}: re-packing differs"));
                    }
                }
            }
        }
        lua_settop(L, 0);
        let n = seri::unpack_values(L, input)?;
        if n != count || lua_gettop(L) != n {
            return Err(format!("unpack_values pushed {n} / top {}", lua_gettop(L)));
        }
    }
    lua_settop(L, 0);
    Ok(())
}

unsafe fn run_unpack_case(L: *mut lua_State, case: &Value) -> Result<(), String> {
    let input = hex_decode(case["input_hex"].as_str().unwrap());
    if let Some(err) = case.get("error").and_then(Value::as_str) {
        // Only the kind of message is compared: upstream's numbers are C line numbers.
        let expect = if err.starts_with("Invalid serialize stream") {
            "Invalid serialize stream"
        } else {
            err
        };
        for (how, r) in [
            ("unpack(string)", unpack_string(L, &input)),
            ("unpack(ptr, size)", unpack_pointer(L, &input)),
        ] {
            match r {
                Ok(n) => return Err(format!("{how} returned {n} values, expected error")),
                Err(e) if !e.contains(expect) => {
                    return Err(format!("{how} error {e:?}, expected {expect:?}"))
                }
                Err(_) => {}
            }
        }
        lua_settop(L, 0);
        lua_pushboolean(L, 1);
        if seri::unpack_values(L, &input).is_ok() || lua_gettop(L) != 1 {
            return Err("unpack_values accepted it or left values behind".into());
        }
        lua_settop(L, 0);
        return Ok(());
    }
    let want = case["values"].as_array().unwrap();
    let count = case["count"].as_i64().unwrap() as usize;
    assert_eq!(count, want.len());
    for (how, r) in [
        ("unpack(string)", unpack_string(L, &input)),
        ("unpack(ptr, size)", unpack_pointer(L, &input)),
    ] {
        let n = r.map_err(|e| format!("{how} failed: {e}"))?;
        check_values(L, n, want).map_err(|e| format!("{how}: {e}"))?;
    }
    lua_settop(L, 0);
    Ok(())
}

#[test]
fn golden_pack_cases() {
    let v = load_vectors();
    let cases = v["pack_cases"].as_array().unwrap();
    assert!(cases.len() >= 90, "vector file looks truncated");
    let st = new_state();
    let mut failures = Vec::new();
    for case in cases {
        if let Err(e) = unsafe { run_pack_case(st.0, case) } {
            failures.push(format!("{}: {e}", case["name"]));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} pack cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{} pack cases passed", cases.len());
}

#[test]
fn golden_unpack_cases() {
    let v = load_vectors();
    let cases = v["unpack_cases"].as_array().unwrap();
    assert!(cases.len() >= 30, "vector file looks truncated");
    let st = new_state();
    let mut failures = Vec::new();
    for case in cases {
        if let Err(e) = unsafe { run_unpack_case(st.0, case) } {
            failures.push(format!("{}: {e}", case["name"]));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} unpack cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{} unpack cases passed", cases.len());
}

// ---------------------------------------------------------------------------------------
// Behaviour beyond the vectors
// ---------------------------------------------------------------------------------------

/// Run a Lua chunk that must return `true` (anything else, or an error, fails).
fn assert_lua(st: &State, src: &str) {
    unsafe {
        let n = eval(st.0, src).unwrap_or_else(|e| panic!("{e}\nin: {src}"));
        assert!(
            n >= 1 && lua_type(st.0, 1) == LUA_TBOOLEAN && lua_toboolean(st.0, 1) != 0,
            "chunk did not return true: {src}"
        );
        lua_settop(st.0, 0);
    }
}

#[test]
fn unpack_argument_forms() {
    let st = new_state();
    assert_lua(
        &st,
        "return select('#', unpack()) == 0 and select('#', unpack(nil)) == 0",
    );
    assert_lua(
        &st,
        "return select('#', unpack('')) == 0 and select('#', unpack(lud(0), 0)) == 0",
    );
    assert_lua(&st, "return select('#', unpack(lud(1234), 0)) == 0");
    assert_lua(
        &st,
        "local ok, e = pcall(unpack, lud(0), 5) return not ok and e:find('deserialize null pointer', 1, true) ~= nil",
    );
    assert_lua(&st, "local ok = pcall(unpack, lud(1234), -1) return not ok");
    assert_lua(&st, "local ok = pcall(unpack, lud(1234)) return not ok"); // size required
                                                                          // pack -> (ptr, size) -> unpack, then free.
    assert_lua(
        &st,
        r#"local p, n = pack(1, "two", {3, x = 4}, nil)
           assert(type(p) == "userdata" and math.type(n) == "integer")
           local a, b, c, d = unpack(p, n)
           local cnt = select('#', unpack(p, n))
           trash(p)
           return cnt == 4 and a == 1 and b == "two" and c[1] == 3 and c.x == 4 and d == nil"#,
    );
    // An empty pack still yields a valid (freeable) pointer and size 0.
    assert_lua(
        &st,
        "local p, n = pack() local ok = type(p) == 'userdata' and n == 0 trash(p) return ok",
    );
    // The packed buffer is NUL-terminated past its size (payload_alloc contract).
    unsafe {
        let L = st.0;
        eval(L, "return pack('abc')").unwrap();
        let p = lua_touserdata(L, 1) as *const u8;
        let n = lua_tointegerx(L, 2, std::ptr::null_mut()) as usize;
        assert_eq!(std::slice::from_raw_parts(p, n + 1), b"\x1cabc\0");
        skynet::message::payload_free(p as *mut u8);
        lua_settop(L, 0);
    }
}

#[test]
fn pairs_metamethod_errors_propagate() {
    let st = new_state();
    assert_lua(
        &st,
        r#"local t = setmetatable({}, { __pairs = function() error("boom") end })
           local ok, e = pcall(packstring, t)
           local ok2, e2 = pcall(pack, 1, {t})
           return not ok and e:find("boom") ~= nil and not ok2 and e2:find("boom") ~= nil"#,
    );
    // The error object is re-raised as is (not stringified).
    assert_lua(
        &st,
        r#"local obj = {}
           local t = setmetatable({}, { __pairs = function() error(obj) end })
           local ok, e = pcall(packstring, t)
           return not ok and e == obj"#,
    );
    // Errors from the iterator, after some pairs were written.
    assert_lua(
        &st,
        r#"local t = setmetatable({}, { __pairs = function()
               local i = 0
               return function() i = i + 1 if i > 2 then error("iter fail") end return i, i end
           end })
           local ok, e = pcall(packstring, "x", t)
           return not ok and e:find("iter fail") ~= nil"#,
    );
    // A __pairs returning a non-function.
    assert_lua(
        &st,
        r#"local t = setmetatable({}, { __pairs = function() return 42 end })
           return not pcall(packstring, t)"#,
    );
    // Nested packing from inside __pairs uses its own scratch buffer.
    assert_lua(
        &st,
        r#"local inner = packstring({1, 2, 3})
           local t = setmetatable({}, { __pairs = function()
               local s = packstring({4, 5, {6}})
               return next, { s, inner }, nil
           end })
           local r = unpack(packstring("a", t, "b"))
           local a, u, b = unpack(packstring("a", t, "b"))
           local x = unpack(u[1])
           local y = unpack(u[2])
           return a == "a" and b == "b" and x[3][1] == 6 and y[3] == 3 and r == "a""#,
    );
    // The worker API turns a metamethod error into Err and restores the stack.
    unsafe {
        let L = st.0;
        eval(
            L,
            "return 1, setmetatable({}, { __pairs = function() error('bad pairs', 0) end })",
        )
        .unwrap();
        let mut out = Vec::new();
        let e = seri::pack_values(L, 1, 2, &mut out).unwrap_err();
        assert_eq!(e, "bad pairs");
        assert_eq!(lua_gettop(L), 2);
        eval(
            L,
            "return setmetatable({}, { __pairs = function() error({}) end })",
        )
        .unwrap();
        let e = seri::pack_values(L, 1, 1, &mut out).unwrap_err();
        assert!(e.contains("table value"), "{e}");
        assert_eq!(lua_gettop(L), 1);
        lua_settop(L, 0);
    }
    // After all those failures the thread's scratch buffer still works.
    assert_lua(&st, "return packstring(1, 2) == '\\10\\1\\10\\2'");
}

#[test]
fn unsupported_types_and_depth() {
    let st = new_state();
    assert_lua(
        &st,
        r#"local ok, e = pcall(packstring, {1, {2, {x = coroutine.create(print)}}})
           return not ok and e == "Unsupport type thread to serialize""#,
    );
    assert_lua(
        &st,
        r#"local ok, e = pcall(pack, {[print] = 1})
           return not ok and e == "Unsupport type function to serialize""#,
    );
    // Depth counts keys too.
    assert_lua(
        &st,
        r#"local k = 1 for i = 1, 31 do k = { k } end
           local ok1 = pcall(packstring, { [k] = true })
           local k2 = 1 for i = 1, 32 do k2 = { k2 } end
           local ok2, e = pcall(packstring, { [k2] = true })
           return ok1 and not ok2 and e == "serialize can't pack too depth table""#,
    );
    // A self-referencing table hits the depth limit instead of recursing forever.
    assert_lua(
        &st,
        r#"local t = {} t[1] = t
           local ok, e = pcall(packstring, t)
           return not ok and e == "serialize can't pack too depth table""#,
    );
}

#[test]
fn hostile_inputs_are_rejected() {
    let st = new_state();
    let L = st.0;
    let bad: &[(&str, &str)] = &[
        ("25ffffffff", "4 GiB string length"),
        ("25ffffff7f41", "2 GiB string length"),
        ("15ffff", "64 KiB string, no bytes"),
        ("fe32ffffffffffffff7f", "i64::MAX array size"),
        ("fe22ffffff7f00", "2^31-1 array size"),
        ("fe22ffffffff00", "negative array size"),
        ("fe0a0500", "array size larger than the input"),
        ("fe", "missing array size"),
        ("fe09", "array size as boolean"),
        ("0e", "missing array item"),
        ("060a01", "missing value of pair"),
        ("32010203", "truncated qword"),
        ("12ff", "truncated word"),
        ("22ffff", "truncated dword"),
        ("03010203", "truncated pointer"),
        ("0f", "type 7 with cookie"),
        ("ff", "type 7 cookie 31"),
        ("fa", "number cookie 31"),
        ("0d", "long string cookie 1"),
        ("2c6869", "short string truncated"),
    ];
    unsafe {
        for (h, what) in bad {
            let input = hex_decode(h);
            match unpack_string(L, &input) {
                Ok(n) => panic!("{what} ({h}): accepted with {n} values"),
                Err(e) => assert!(
                    e.starts_with("Invalid serialize stream"),
                    "{what}: unexpected message {e}"
                ),
            }
            lua_settop(L, 0);
            assert!(seri::unpack_values(L, &input).is_err(), "{what}");
            assert_eq!(lua_gettop(L), 0, "{what}: stack not restored");
        }

        // Nesting: MAX_UNPACK_DEPTH levels decode, one more is rejected.
        let depth = seri::MAX_UNPACK_DEPTH as usize;
        let nested = |levels: usize| {
            let mut v = vec![0x0e; levels];
            v.push(0x00); // innermost array item: nil
            v.extend(std::iter::repeat_n(0x00, levels)); // terminators
            v
        };
        assert_eq!(seri::unpack_values(L, &nested(depth)), Ok(1));
        lua_settop(L, 0);
        let e = seri::unpack_values(L, &nested(depth + 1)).unwrap_err();
        assert!(e.starts_with("Invalid serialize stream"), "{e}");
        // Far deeper than any stack: still a clean error.
        let e = seri::unpack_values(L, &vec![0x0e; 1 << 20]).unwrap_err();
        assert!(e.starts_with("Invalid serialize stream"), "{e}");
        assert_eq!(lua_gettop(L), 0);

        // More top-level values than a Lua stack can hold: an error, not a crash.
        let many = vec![0u8; 1_100_000];
        assert!(unpack_string(L, &many).is_err());
        lua_settop(L, 0);
        // ...while a large but feasible count works.
        let n = unpack_string(L, &vec![0x02u8; 200_000]).unwrap();
        assert_eq!(n, 200_000);
        lua_settop(L, 0);
    }
}

/// Mutated and random inputs never crash and always leave the stack as it was.
#[test]
fn fuzz_unpack_never_crashes() {
    let st = new_state();
    let L = st.0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    unsafe {
        let n = eval(
            L,
            r#"return packstring(1, -1, 2^40|0, 1.5, "str", string.rep("L", 40),
                   {1, 2, {3, {4}}, a = "b", [true] = false, [2.5] = lud(77)}, nil, true)"#,
        )
        .unwrap();
        assert_eq!(n, 1);
        let base = string_at(L, 1);
        lua_settop(L, 0);
        let mut ok = 0;
        for i in 0..40_000 {
            let mut input = if i % 2 == 0 {
                let mut b = base.clone();
                for _ in 0..1 + rnd() % 4 {
                    let at = (rnd() as usize) % b.len();
                    b[at] = rnd() as u8;
                }
                b.truncate(1 + (rnd() as usize) % b.len());
                b
            } else {
                (0..rnd() % 48).map(|_| rnd() as u8).collect()
            };
            if i % 7 == 0 {
                input.reverse();
            }
            lua_pushboolean(L, 1);
            match seri::unpack_values(L, &input) {
                Ok(n) => {
                    ok += 1;
                    assert_eq!(lua_gettop(L), 1 + n);
                }
                Err(e) => {
                    assert!(
                        e.starts_with("Invalid serialize stream") || e == "table index is NaN",
                        "{e}"
                    );
                    assert_eq!(lua_gettop(L), 1);
                }
            }
            lua_settop(L, 0);
        }
        assert!(ok > 100, "fuzzer never produced a valid stream ({ok})");
    }
}

/// Randomly generated Lua values survive pack -> unpack unchanged.
#[test]
fn random_round_trip() {
    let st = new_state();
    assert_lua(
        &st,
        r#"
        local seed = 12345
        local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n end
        local ints = { 0, 1, -1, 255, 256, 65535, 65536, -65536, 0x7fffffff, 0x80000000,
                       -0x80000000, -0x80000001, 0xffffffff, math.maxinteger, math.mininteger }
        local function gen(d)
            local k = rnd(d > 2 and 7 or 9)
            if k == 0 then return rnd(2) == 0
            elseif k == 1 then return ints[rnd(#ints) + 1]
            elseif k == 2 then return rnd(100000) - 50000
            elseif k == 3 then return (rnd(1000000) - 500000) / 7
            elseif k == 4 then return string.rep(string.char(rnd(256)), rnd(40))
            elseif k == 5 then return string.rep("s", ({0, 31, 32, 65535, 65536, 3})[rnd(6) + 1])
            elseif k == 6 then return lud(rnd(1 << 30))
            else
                local t = {}
                for i = 1, rnd(d == 0 and 40 or 12) do t[i] = gen(d + 1) end
                for i = 1, rnd(6) do
                    local key = gen(d + 1)
                    if key ~= nil and key == key then t[key] = gen(d + 1) end
                end
                return t
            end
        end
        local function eq(a, b)
            if type(a) ~= type(b) then return false end
            if type(a) == "number" then return math.type(a) == math.type(b) and a == b end
            if type(a) ~= "table" then return a == b end
            for k, v in pairs(a) do
                local w
                if type(k) == "table" then return true end -- table keys: identity differs
                w = b[k]
                if not eq(v, w) then return false end
            end
            for k in pairs(b) do if type(k) ~= "table" and a[k] == nil then return false end end
            return true
        end
        for round = 1, 300 do
            local n = rnd(5)
            local vals = {}
            for i = 1, n do vals[i] = gen(0) end
            local s = packstring(table.unpack(vals, 1, n))
            local back = table.pack(unpack(s))
            assert(back.n == n, "count")
            for i = 1, n do assert(eq(vals[i], back[i]), "value " .. i .. " round " .. round) end
            assert(#packstring(table.unpack(back, 1, n)) == #s, "re-pack length")
            local p, sz = pack(table.unpack(vals, 1, n))
            assert(sz == #s and seri_tostring(p, sz) == s)
            trash(p)
        end
        return true"#,
    );
}

/// Integer width selection and float/integer distinction, checked from Rust.
#[test]
fn number_boundaries() {
    let st = new_state();
    let L = st.0;
    let cases: &[(i64, usize)] = &[
        (0, 1),
        (1, 2),
        (255, 2),
        (256, 3),
        (65535, 3),
        (65536, 5),
        (i32::MAX as i64, 5),
        (i32::MAX as i64 + 1, 9),
        (-1, 5),
        (i32::MIN as i64, 5),
        (i32::MIN as i64 - 1, 9),
        (u32::MAX as i64, 9),
        (i64::MAX, 9),
        (i64::MIN, 9),
    ];
    unsafe {
        for &(v, len) in cases {
            lua_settop(L, 0);
            lua_pushinteger(L, v);
            lua_pushnumber(L, v as f64);
            let mut out = Vec::new();
            seri::pack_values(L, 1, 2, &mut out).unwrap();
            assert_eq!(out.len(), len + 9, "{v}");
            assert_eq!(out[len], 0x42, "{v} as float");
            lua_settop(L, 0);
            assert_eq!(seri::unpack_values(L, &out), Ok(2));
            assert_eq!(lua_isinteger(L, 1), 1);
            assert_eq!(lua_tointegerx(L, 1, std::ptr::null_mut()), v);
            assert_eq!(lua_isinteger(L, 2), 0);
            assert_eq!(lua_tonumberx(L, 2, std::ptr::null_mut()), v as f64);
        }
        // NaN survives as a value (only NaN keys are rejected).
        lua_settop(L, 0);
        lua_pushnumber(L, f64::NAN);
        let mut out = Vec::new();
        seri::pack_values(L, -1, -1, &mut out).unwrap();
        lua_settop(L, 0);
        assert_eq!(seri::unpack_values(L, &out), Ok(1));
        assert!(lua_tonumberx(L, 1, std::ptr::null_mut()).is_nan());
        lua_settop(L, 0);
    }
}
