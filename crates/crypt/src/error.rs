//! The errors of `skynet.crypt`, displayed with upstream's exact texts.

use std::fmt;

/// Result of this crate's fallible functions.
pub type Result<T> = std::result::Result<T, Error>;

/// An error a Lua caller of `skynet.crypt` sees as the message of a raised error.
///
/// `Display` gives upstream's text. Sizes print like upstream's `%d` of `(int)size`
/// (so a length above `i32::MAX` would print negative there, and here too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// DES key of the wrong length (`desencode`/`desdecode`).
    KeySize(usize),
    /// Ciphertext length not a positive multiple of 8 (`desdecode`).
    DesTextLength(usize),
    /// Padding of a decrypted text does not check out (`desdecode`).
    DesText,
    /// Padding mode outside `crypt.padding` (`desencode`/`desdecode`).
    PaddingMode(i32),
    /// Odd-length hex text (`hexdecode`).
    HexSize(usize),
    /// A character that is not a hex digit (`hexdecode`).
    HexText,
    /// Malformed base64 (`base64decode`).
    Base64Text,
    /// First 8-byte argument of the wrong length (`hmac64`, `hmac64_md5`, `dhsecret`).
    Uint64X,
    /// Second 8-byte argument of the wrong length (`hmac64`, `hmac64_md5`, `dhsecret`).
    Uint64Y,
    /// Key of `hmac_hash` not 8 bytes.
    Uint64Key,
    /// Key of `dhexchange` not 8 bytes.
    DhKey,
    /// A zero Diffie-Hellman key (`dhexchange`, `dhsecret`).
    Zero,
    /// Empty key string (`xor_str`).
    XorEmpty,
    /// A caller-supplied output buffer of the wrong size (a Rust API misuse; never
    /// raised by the Lua binding, which sizes buffers with the `*_len` functions).
    OutputSize { want: usize, got: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Upstream prints sizes with `%d` after an `(int)` cast.
        let c_int = |n: usize| n as i32;
        match *self {
            Error::KeySize(n) => write!(f, "Invalid key size {}, need 8 bytes", c_int(n)),
            Error::DesTextLength(n) => write!(f, "Invalid des crypt text length {}", c_int(n)),
            Error::DesText => f.write_str("Invalid des crypt text"),
            Error::PaddingMode(m) => write!(f, "Invalid padding mode {m}"),
            Error::HexSize(n) => write!(f, "Invalid hex text size {}", c_int(n)),
            Error::HexText => f.write_str("Invalid hex text"),
            Error::Base64Text => f.write_str("Invalid base64 text"),
            Error::Uint64X => f.write_str("Invalid uint64 x"),
            Error::Uint64Y => f.write_str("Invalid uint64 y"),
            Error::Uint64Key => f.write_str("Invalid uint64 key"),
            Error::DhKey => f.write_str("Invalid dh uint64 key"),
            Error::Zero => f.write_str("Can't be 0"),
            Error::XorEmpty => f.write_str("Can't xor empty string"),
            Error::OutputSize { want, got } => {
                write!(f, "output buffer of {got} bytes, need {want}")
            }
        }
    }
}

impl std::error::Error for Error {}
