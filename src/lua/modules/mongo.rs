//! `skynet.mongo.driver`: the MongoDB wire framing that upstream's
//! `lualib/skynet/db/mongo.lua` uses, with upstream's function set and error texts.
//!
//! Functions:
//! * `op_msg(request_id, flags, cmd)`: an OP_MSG message (opcode 2013): the standard
//!   16-byte header (total length, request id, response-to 0, opcode), the 32-bit flag
//!   bits, one kind-0 section holding the `bson` document `cmd`. Flags 0 for commands
//!   awaiting a reply, 2 (`moreToCome`) for fire-and-forget.
//! * `length(head)`: the remaining length of a reply whose first 4 bytes (the
//!   little-endian total length) are `head`: the total minus those 4 bytes.
//! * `reply(data)`: parses a reply without its length prefix. Returns `false` when
//!   `data` is shorter than the remaining header (16 bytes), else `true`, the
//!   `responseTo` id and a light userdata pointing at the reply's document inside
//!   `data` (for `bson.decode`; valid while `data` is alive, as upstream: the caller
//!   keeps the string). Only OP_MSG with flags 0 or `moreToCome`, one kind-0 section.
//!
//! Differences from upstream, on input it reads out of bounds for: a reply too short
//! to hold its section kind and a document length, and a `length` head shorter than 4
//! bytes, raise a Lua error.

#![allow(non_snake_case)]

use std::ffi::{c_char, c_int};

use mlua::ffi::{self, lua_State};

use crate::lua::ffi::{check_bytes, new_lib, raise, raise_string};
use crate::lua::modules::bson::doc_bytes;

/// The OP_MSG opcode.
pub const OP_MSG: i32 = 2013;
/// OP_MSG flag bit: the message carries a CRC-32C checksum (unsupported).
pub const CHECKSUM_PRESENT: i32 = 1;
/// OP_MSG flag bit: no reply follows / more messages follow.
pub const MORE_TO_COME: i32 = 2;

/// The 21 bytes an OP_MSG message has before its section-0 document of `doc_len`
/// bytes: length, request id, response-to, opcode, flags, section kind 0.
pub fn op_msg_head(request_id: i32, flags: i32, doc_len: usize) -> [u8; 21] {
    let mut h = [0u8; 21];
    let total = (21 + doc_len) as u32;
    h[0..4].copy_from_slice(&total.to_le_bytes());
    h[4..8].copy_from_slice(&request_id.to_le_bytes());
    h[8..12].copy_from_slice(&0i32.to_le_bytes());
    h[12..16].copy_from_slice(&OP_MSG.to_le_bytes());
    h[16..20].copy_from_slice(&flags.to_le_bytes());
    h
}

/// A parsed reply: `responseTo` and the document's byte range in the input.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub response_to: i32,
    pub doc: std::ops::Range<usize>,
}

/// Why a reply was refused (texts as upstream's, where upstream has one).
#[derive(Debug, PartialEq, Eq)]
pub enum ReplyError {
    Opcode(i32),
    Checksum,
    Flags(i32),
    PayloadType(u8),
    Sections,
    Truncated,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Opcode(o) => write!(f, "Unsupported opcode:{o}"),
            ReplyError::Checksum => f.write_str("Unsupported OP_MSG flag checksumPresent"),
            ReplyError::Flags(x) => write!(f, "Unsupported OP_MSG flag:{x}"),
            ReplyError::PayloadType(t) => write!(f, "Unsupported OP_MSG payload type: {t}"),
            ReplyError::Sections => f.write_str("Unsupported OP_MSG reply: >1 section"),
            ReplyError::Truncated => f.write_str("Invalid OP_MSG reply: truncated"),
        }
    }
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses a reply without its 4-byte length: `Ok(None)` if shorter than the 16 header
/// bytes that remain (requestID, responseTo, opCode, flagBits).
pub fn parse_reply(data: &[u8]) -> Result<Option<Reply>, ReplyError> {
    if data.len() < 16 {
        return Ok(None);
    }
    let opcode = i32_at(data, 8);
    if opcode != OP_MSG {
        return Err(ReplyError::Opcode(opcode));
    }
    let response_to = i32_at(data, 4);
    let flags = i32_at(data, 12);
    if flags != 0 {
        if flags & CHECKSUM_PRESENT != 0 {
            return Err(ReplyError::Checksum);
        }
        if flags != MORE_TO_COME {
            return Err(ReplyError::Flags(flags));
        }
    }
    let section = &data[16..];
    let Some(&kind) = section.first() else {
        return Err(ReplyError::Truncated);
    };
    if kind != 0 {
        return Err(ReplyError::PayloadType(kind));
    }
    if section.len() < 5 {
        return Err(ReplyError::Truncated);
    }
    let doc_len = i32_at(section, 1);
    if i64::from(doc_len) != section.len() as i64 - 1 {
        return Err(ReplyError::Sections);
    }
    Ok(Some(Reply {
        response_to,
        doc: 17..data.len(),
    }))
}

unsafe extern "C-unwind" fn l_reply(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; `data` stays at index 1 and the pointer we
    // return points into it (the caller keeps the string, as upstream requires).
    unsafe {
        let data = check_bytes(L, 1);
        match parse_reply(data) {
            Ok(None) => {
                ffi::lua_pushboolean(L, 0);
                1
            }
            Ok(Some(r)) => {
                ffi::lua_pushboolean(L, 1);
                ffi::lua_pushinteger(L, i64::from(r.response_to));
                ffi::lua_pushlightuserdata(L, data[r.doc].as_ptr() as *mut _);
                3
            }
            Err(e) => raise_string(L, e.to_string()),
        }
    }
}

unsafe extern "C-unwind" fn l_length(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        let head = check_bytes(L, 1);
        if head.len() < 4 {
            raise(L, "Invalid reply length");
        }
        ffi::lua_pushinteger(L, i64::from(i32_at(head, 0)) - 4);
        1
    }
}

unsafe extern "C-unwind" fn l_op_msg(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state; the document stays at index 3 while its
    // bytes are copied into the Lua buffer.
    unsafe {
        let id = ffi::luaL_checkinteger(L, 1) as i32;
        let flags = ffi::luaL_checkinteger(L, 2) as i32;
        let Some(doc) = doc_bytes(L, 3) else {
            raise(L, "opmsg require cmd document");
        };
        let head = op_msg_head(id, flags, doc.len());
        let mut b: ffi::luaL_Buffer = std::mem::zeroed();
        ffi::luaL_buffinit(L, &mut b);
        ffi::luaL_addlstring(&mut b, head.as_ptr() as *const c_char, head.len());
        ffi::luaL_addlstring(&mut b, doc.as_ptr() as *const c_char, doc.len());
        ffi::luaL_pushresult(&mut b);
        1
    }
}

/// `require "skynet.mongo.driver"`.
///
/// # Safety
/// Called by Lua as a `lua_CFunction`.
pub unsafe extern "C-unwind" fn luaopen_skynet_mongo_driver(L: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with its state.
    unsafe {
        new_lib(
            L,
            &[
                (c"reply", l_reply as ffi::lua_CFunction),
                (c"length", l_length),
                (c"op_msg", l_op_msg),
            ],
        );
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{ping: 1}` as BSON.
    const PING: &[u8] = b"\x0f\x00\x00\x00\x10ping\x00\x01\x00\x00\x00\x00";

    fn reply_bytes(response_to: i32, opcode: i32, flags: i32, kind: u8, doc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&7i32.to_le_bytes()); // requestID
        v.extend_from_slice(&response_to.to_le_bytes());
        v.extend_from_slice(&opcode.to_le_bytes());
        v.extend_from_slice(&flags.to_le_bytes());
        v.push(kind);
        v.extend_from_slice(doc);
        v
    }

    #[test]
    fn op_msg_head_is_the_documented_layout() {
        let h = op_msg_head(0x0102_0304, MORE_TO_COME, PING.len());
        let mut want = Vec::new();
        want.extend_from_slice(&(21 + 15u32).to_le_bytes()); // messageLength
        want.extend_from_slice(&[4, 3, 2, 1]); // requestID
        want.extend_from_slice(&[0; 4]); // responseTo
        want.extend_from_slice(&[0xdd, 0x07, 0, 0]); // opCode 2013
        want.extend_from_slice(&[2, 0, 0, 0]); // flagBits: moreToCome
        want.push(0); // section kind 0
        assert_eq!(h.to_vec(), want);
    }

    #[test]
    fn replies() {
        let r = reply_bytes(42, OP_MSG, 0, 0, PING);
        assert_eq!(
            parse_reply(&r),
            Ok(Some(Reply {
                response_to: 42,
                doc: 17..32
            }))
        );
        assert_eq!(&r[17..], PING);
        let r = reply_bytes(1, OP_MSG, MORE_TO_COME, 0, PING);
        assert!(matches!(parse_reply(&r), Ok(Some(_))));
        assert_eq!(parse_reply(&r[..15]), Ok(None));
        assert_eq!(
            parse_reply(&reply_bytes(1, 1, 0, 0, PING)),
            Err(ReplyError::Opcode(1))
        );
        assert_eq!(
            parse_reply(&reply_bytes(1, OP_MSG, 1, 0, PING)),
            Err(ReplyError::Checksum)
        );
        assert_eq!(
            parse_reply(&reply_bytes(1, OP_MSG, 1 << 16, 0, PING)),
            Err(ReplyError::Flags(65536))
        );
        assert_eq!(
            parse_reply(&reply_bytes(1, OP_MSG, 0, 1, PING)),
            Err(ReplyError::PayloadType(1))
        );
        let mut two = PING.to_vec();
        two.extend_from_slice(PING);
        assert_eq!(
            parse_reply(&reply_bytes(1, OP_MSG, 0, 0, &two)),
            Err(ReplyError::Sections)
        );
        assert_eq!(
            parse_reply(&reply_bytes(1, OP_MSG, 0, 0, &PING[..3])),
            Err(ReplyError::Truncated)
        );
        assert_eq!(
            parse_reply(&reply_bytes(1, OP_MSG, 0, 0, &[])),
            Err(ReplyError::Truncated)
        );
        assert_eq!(
            ReplyError::Flags(3).to_string(),
            "Unsupported OP_MSG flag:3"
        );
    }
}
