//! sproto: schema parser, binary schema bundles, wire codec, 0-packing and RPC layer,
//! byte-compatible with cloudwu/sproto (contract: `docs/spec/sproto.md` of the skynet-rs
//! repository; "spec §N" in this crate's comments means that file). No Lua, no
//! dependencies.
//!
//! Layers, bottom-up:
//!
//! * [`parser`]: schema text -> canonical bundle bytes (identical to the reference
//!   `sprotoparser.parse`);
//! * [`Sproto`] (module `schema`): a loaded bundle; validates everything the codec
//!   relies on, so encoding/decoding never index out of range;
//! * [`encode`]/[`decode`]: the wire codec, driven by callbacks ([`StructSource`],
//!   [`StructSink`]) so bindings can read and write their native data directly;
//! * [`value`]: a [`Value`] tree model with the reference Lua binding's coercion rules;
//! * [`mod@pack`] — 0-pack/unpack;
//! * [`rpc`]: package headers, sessions, request/response dispatch.
//!
//! Every function taking bytes from outside returns `Err` on malformed input; none
//! panics, reads out of bounds, or allocates proportionally to a length field rather
//! than to the input actually present.

pub mod decode;
pub mod encode;
mod error;
pub mod pack;
pub mod parser;
mod raw;
pub mod rpc;
mod schema;
pub mod value;

pub use decode::{decode, ArrayReader, FieldValue, Scalars, StructArray, StructReader, StructSink};
pub use encode::{encode, ArrayWriter, FieldWriter, StructSource, MAX_DEPTH, MAX_MESSAGE_SIZE};
pub use error::{Error, Result};
pub use pack::{pack, pack_into, packed_bound, unpack, unpack_into};
pub use parser::{parse, ParseError};
pub use raw::Blobs;
pub use schema::{
    Container, Field, FieldType, ProtoKey, Protocol, Sproto, Type, MAX_DECIMAL_PRECISION, MAX_TAG,
};
pub use value::{Value, ValueBuilder, ValueSource};
