//! The single error type of the crate.
//!
//! Every fallible operation returns [`Error`]. Its `Display` text starts with the message
//! upstream sproto would raise for the same condition (`decode error`, `Invalid unpack
//! stream`, `The table is too deep`, ...) so that a Lua binding can surface it unchanged;
//! a detail naming the exact problem follows after a colon where upstream has none.

use std::fmt;

/// What went wrong, with enough detail to locate the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Schema text rejected by the parser.
    Parse(crate::parser::ParseError),
    /// A binary bundle rejected by the loader.
    InvalidBundle(String),
    /// Malformed wire bytes (truncated, wrong lengths, inline value on a data field...).
    Decode(String),
    /// Malformed 0-packed stream.
    Unpack(String),
    /// A struct nested deeper than [`crate::MAX_DEPTH`] levels.
    TooDeep,
    /// An encoded message larger than [`crate::MAX_MESSAGE_SIZE`].
    TooLarge,
    /// A value that does not fit the schema (message is the full user-facing text,
    /// e.g. `Person.age[0] is not an integer (Is a string)`).
    Encode(String),
    /// Unknown type name.
    TypeNotFound(String),
    /// Unknown protocol name or tag (message is `<name> not found`).
    ProtocolNotFound(String),
    /// RPC-level failure (`Unknown session`, `session not found`, ...).
    Rpc(String),
    /// A decoded map entry lacks its key or value field (message is the full text).
    Map(String),
}

impl Error {
    pub(crate) fn decode(detail: impl Into<String>) -> Self {
        Error::Decode(detail.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Parse(e) => write!(f, "{e}"),
            Error::InvalidBundle(d) => write!(f, "invalid sproto bundle: {d}"),
            Error::Decode(d) => write!(f, "decode error: {d}"),
            Error::Unpack(d) => write!(f, "Invalid unpack stream: {d}"),
            Error::TooDeep => f.write_str("The table is too deep"),
            Error::TooLarge => write!(f, "object is too large (>{})", crate::MAX_MESSAGE_SIZE),
            Error::Encode(m) | Error::Rpc(m) | Error::Map(m) => f.write_str(m),
            Error::TypeNotFound(name) => write!(f, "type {name} not found"),
            Error::ProtocolNotFound(name) => write!(f, "{name} not found"),
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::parser::ParseError> for Error {
    fn from(e: crate::parser::ParseError) -> Self {
        Error::Parse(e)
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;
