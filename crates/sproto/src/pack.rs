//! Zero packing ("0-pack", spec §5).
//!
//! The input is cut into 8-byte words (the last one zero-padded). A word is written as
//! a bitmap byte of its non-zero bytes followed by those bytes, except that runs of
//! dense words are copied raw behind `ff <count-1>`: a run starts at a word with 8
//! non-zero bytes, absorbs following words with at least 6 non-zero bytes, and is at
//! most 256 words long.
//!
//! `unpack` accepts any well-formed stream (also non-canonical ones) and always
//! produces a multiple of 8 bytes; truncated streams are errors. Output never exceeds
//! 8 bytes per input byte, so no input can cause a large allocation.

use crate::error::{Error, Result};

/// Worst-case packed size of `n` input bytes (the bound the Lua binding reserves).
pub fn packed_bound(n: usize) -> usize {
    n.div_ceil(2048) * 2 + n + 2
}

fn word_at(input: &[u8], index: usize) -> [u8; 8] {
    let mut w = [0u8; 8];
    let start = index * 8;
    let end = (start + 8).min(input.len());
    w[..end - start].copy_from_slice(&input[start..end]);
    w
}

/// Appends the packed form of `input` to `out`.
pub fn pack_into(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(packed_bound(input.len()));
    let words = input.len().div_ceil(8);
    let mut run_start = 0;
    let mut run_len = 0usize;
    let flush_run = |out: &mut Vec<u8>, start: usize, len: usize| {
        out.push(0xff);
        out.push((len - 1) as u8);
        let from = start * 8;
        let to = ((start + len) * 8).min(input.len());
        out.extend_from_slice(&input[from..to]);
        out.resize(out.len() + (start + len) * 8 - to, 0);
    };
    for i in 0..words {
        let w = word_at(input, i);
        let nonzero = w.iter().filter(|&&b| b != 0).count();
        if run_len > 0 {
            if nonzero >= 6 && run_len < 256 {
                run_len += 1;
                continue;
            }
            flush_run(out, run_start, run_len);
            run_len = 0;
        }
        if nonzero == 8 {
            run_start = i;
            run_len = 1;
            continue;
        }
        let tag_at = out.len();
        out.push(0);
        let mut tag = 0u8;
        for (bit, &b) in w.iter().enumerate() {
            if b != 0 {
                tag |= 1 << bit;
                out.push(b);
            }
        }
        out[tag_at] = tag;
    }
    if run_len > 0 {
        flush_run(out, run_start, run_len);
    }
}

/// Packs `input`.
pub fn pack(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    pack_into(input, &mut out);
    out
}

/// Appends the unpacked form of `input` to `out`. On error `out` is left as it was.
pub fn unpack_into(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let base = out.len();
    let r = unpack_inner(input, out);
    if r.is_err() {
        out.truncate(base);
    }
    r
}

fn unpack_inner(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let mut i = 0;
    while i < input.len() {
        let tag = input[i];
        i += 1;
        if tag == 0xff {
            let Some(&count) = input.get(i) else {
                return Err(Error::Unpack(format!(
                    "run marker at byte {} has no count",
                    i - 1
                )));
            };
            i += 1;
            let need = (count as usize + 1) * 8;
            if input.len() - i < need {
                return Err(Error::Unpack(format!(
                    "run of {need} bytes at byte {} exceeds the {} bytes left",
                    i - 2,
                    input.len() - i
                )));
            }
            out.extend_from_slice(&input[i..i + need]);
            i += need;
        } else {
            let need = tag.count_ones() as usize;
            if input.len() - i < need {
                return Err(Error::Unpack(format!(
                    "word at byte {} needs {need} bytes, {} left",
                    i - 1,
                    input.len() - i
                )));
            }
            for bit in 0..8 {
                if tag & (1 << bit) != 0 {
                    out.push(input[i]);
                    i += 1;
                } else {
                    out.push(0);
                }
            }
        }
    }
    Ok(())
}

/// Unpacks `input`.
pub fn unpack(input: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 2);
    unpack_into(input, &mut out)?;
    Ok(out)
}
