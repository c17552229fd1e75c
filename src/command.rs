//! The text commands of `skynet.core.command` (core.md §7): TIMEOUT, REG, QUERY, NAME,
//! EXIT, KILL, LAUNCH, GETENV, SETENV, STARTTIME, ABORT, MONITOR, STAT, LOGON, LOGOFF,
//! SIGNAL (plus the 2016 names ENDLESS and MQLEN).

use crate::context::Context;
use crate::message::{ptype, Message};
use crate::runtime::{parse_hex_address, Runtime};
use std::io::Write;
use std::sync::atomic::Ordering;

/// Run `cmd` for service `ctx`; `None` is upstream's NULL result.
pub fn run(rt: &Runtime, ctx: &Context, cmd: &str, param: Option<&str>) -> Option<String> {
    let param_str = param.unwrap_or("");
    match cmd {
        "TIMEOUT" => {
            let ticks = parse_c_long(param_str);
            Some(rt.timeout(ctx, ticks).to_string())
        }
        "REG" => {
            if param_str.is_empty() {
                Some(format!(":{:x}", ctx.handle()))
            } else if let Some(name) = param_str.strip_prefix('.') {
                rt.handles
                    .bind_name(name, ctx.handle())
                    .then(|| name.to_string())
            } else {
                rt.log(
                    ctx.handle(),
                    &format!("error: Can't register global name {param_str} in C"),
                );
                None
            }
        }
        "QUERY" => {
            let name = param_str.strip_prefix('.')?;
            rt.handles.find_name(name).map(|h| format!(":{h:x}"))
        }
        "NAME" => {
            let mut it = param_str.split_whitespace();
            let name = it.next()?;
            let handle = parse_hex_address(it.next()?)?;
            if handle == 0 {
                return None;
            }
            if let Some(local) = name.strip_prefix('.') {
                rt.handles
                    .bind_name(local, handle)
                    .then(|| local.to_string())
            } else {
                rt.log(
                    ctx.handle(),
                    &format!("error: Can't set global name {name} in C"),
                );
                None
            }
        }
        "EXIT" => {
            rt.log(ctx.handle(), "KILL self");
            rt.retire(ctx.handle());
            None
        }
        "KILL" => {
            if let Some(h) = to_handle(rt, ctx, param_str) {
                rt.log(ctx.handle(), &format!("KILL :{h:x}"));
                rt.retire(h);
            }
            None
        }
        "LAUNCH" => rt.launch(param_str).map(|h| format!(":{h:08X}")),
        "GETENV" => crate::env::get(param_str),
        "SETENV" => {
            if let Some((k, v)) = param_str.split_once(' ') {
                crate::env::set_if_absent(k, v);
            }
            None
        }
        "STARTTIME" => Some(rt.timer.start_time().to_string()),
        "ABORT" => {
            rt.abort();
            None
        }
        "MONITOR" => {
            if param_str.is_empty() {
                let m = rt.exit_monitor();
                (m != 0).then(|| format!(":{m:x}"))
            } else {
                let h = to_handle(rt, ctx, param_str).unwrap_or(0);
                rt.set_exit_monitor(h);
                None
            }
        }
        "STAT" => Some(stat(rt, ctx, param_str)),
        "ENDLESS" => ctx.take_endless().then(|| "1".to_string()),
        "MQLEN" => Some(ctx.queue.len().to_string()),
        "LOGON" => {
            logon(rt, ctx, param_str);
            None
        }
        "LOGOFF" => {
            logoff(rt, ctx, param_str);
            None
        }
        "SIGNAL" => {
            let (addr, sig) = match param_str.split_once(' ') {
                Some((a, n)) => (a, parse_c_long(n) as i32),
                None => (param_str, 0),
            };
            if let Some(h) = to_handle(rt, ctx, addr) {
                signal(rt, h, sig);
            }
            None
        }
        _ => None,
    }
}

fn stat(rt: &Runtime, ctx: &Context, what: &str) -> String {
    match what {
        "mqlen" => ctx.queue.len().to_string(),
        "endless" => if ctx.take_endless() { "1" } else { "0" }.to_string(),
        "cpu" => format!("{:.6}", ctx.cpu_ns.load(Ordering::Relaxed) as f64 / 1e9),
        "time" => {
            let since = ctx.running_since.load(Ordering::Relaxed);
            if !rt.profile || since == 0 {
                "0".to_string()
            } else {
                format!("{:.6}", rt.clock_ns().saturating_sub(since) as f64 / 1e9)
            }
        }
        "message" => ctx.message_count.load(Ordering::Relaxed).to_string(),
        _ => String::new(),
    }
}

/// `:hex` or `.name` to a handle; anything else logs the convert error.
fn to_handle(rt: &Runtime, ctx: &Context, s: &str) -> Option<u32> {
    let h = if s.starts_with(':') {
        parse_hex_address(s)
    } else if let Some(name) = s.strip_prefix('.') {
        rt.handles.find_name(name)
    } else {
        None
    };
    if h.is_none() {
        rt.log(ctx.handle(), &format!("error: Can't convert {s} to handle"));
    }
    h
}

/// Deliver `SIGNAL n` to a service's module (from any thread).
pub fn signal(rt: &Runtime, handle: u32, sig: i32) {
    if let Some(target) = rt.handles.grab(handle) {
        if let Some(handler) = target.signal_handler.get() {
            handler(sig);
        }
    }
}

/// `[socket] <type> <id> <ud> ` then `[inline]` or the hex of the data block.
fn describe_socket_message(payload: &[u8]) -> String {
    const HEADER: usize = 24; // int type, id, ud; pointer buffer (64-bit layout)
    if payload.len() < HEADER {
        return "[socket] ?".to_string();
    }
    let int = |i: usize| i32::from_ne_bytes(payload[i..i + 4].try_into().unwrap());
    let (ty, id, ud) = (int(0), int(4), int(8));
    let buffer = usize::from_ne_bytes(payload[16..24].try_into().unwrap()) as *const u8;
    let mut s = format!("[socket] {ty} {id} {ud} ");
    if buffer.is_null() {
        s.push('[');
        s.push_str(&String::from_utf8_lossy(&payload[HEADER..]));
        s.push(']');
    } else {
        // SAFETY: a DATA/UDP message's buffer holds `ud` bytes owned by the message.
        let data = unsafe { std::slice::from_raw_parts(buffer, ud.max(0) as usize) };
        for b in data {
            s.push_str(&format!("{b:02x}"));
        }
    }
    s
}

/// strtol-like: optional sign, base auto-detect (0x, leading 0), stops at junk.
pub fn parse_c_long(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (16, h)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    let v = i64::from_str_radix(&digits[..end], radix).unwrap_or(0);
    if neg {
        -v
    } else {
        v
    }
}

fn logon(rt: &Runtime, ctx: &Context, addr: &str) {
    let Some(h) = to_handle(rt, ctx, addr) else {
        return;
    };
    let Some(target) = rt.handles.grab(h) else {
        return;
    };
    let Some(dir) = crate::env::get("logpath") else {
        return;
    };
    let mut slot = target.logfile.lock();
    if slot.is_some() {
        return;
    }
    let path = format!("{dir}/{h:08x}.log");
    match std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
    {
        Ok(mut f) => {
            let now = rt.timer.now();
            let secs = rt.timer.start_time() as i64 + (now / 100) as i64;
            let _ = write!(f, "open time: {} {}", now, ctime(secs));
            *slot = Some(f);
            target.set_logging(true);
            rt.log(ctx.handle(), &format!("Open log file {path}"));
        }
        Err(_) => rt.log(ctx.handle(), &format!("Open log file {path} fail")),
    }
}

fn logoff(rt: &Runtime, ctx: &Context, addr: &str) {
    let Some(h) = to_handle(rt, ctx, addr) else {
        return;
    };
    let Some(target) = rt.handles.grab(h) else {
        return;
    };
    let mut slot = target.logfile.lock();
    if let Some(mut f) = slot.take() {
        target.set_logging(false);
        rt.log(ctx.handle(), &format!("Close log file :{h:08x}"));
        let _ = writeln!(f, "close time: {}", rt.timer.now());
    }
}

/// C's `ctime()` rendering (ends with a newline).
fn ctime(secs: i64) -> String {
    let mut buf = [0 as libc::c_char; 64];
    let t = secs as libc::time_t;
    // SAFETY: ctime_r writes at most 26 bytes into buf.
    unsafe {
        if libc::ctime_r(&t, buf.as_mut_ptr()).is_null() {
            return "\n".into();
        }
        std::ffi::CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

/// One record of a per-service message log (config.md §6).
pub fn write_message_log(ctx: &Context, msg: &Message, now: u64) {
    let mut slot = ctx.logfile.lock();
    let Some(f) = slot.as_mut() else { return };
    let mut line = if msg.ty == ptype::SOCKET {
        describe_socket_message(msg.bytes())
    } else {
        let mut s = format!(":{:08x} {} {} {} ", msg.source, msg.ty, msg.session, now);
        for b in msg.bytes() {
            s.push_str(&format!("{b:02x}"));
        }
        s
    };
    line.push('\n');
    let _ = f.write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::parse_c_long;

    #[test]
    fn strtol_semantics() {
        assert_eq!(parse_c_long("100"), 100);
        assert_eq!(parse_c_long("-5"), -5);
        assert_eq!(parse_c_long("0x1f"), 31);
        assert_eq!(parse_c_long("010"), 8);
        assert_eq!(parse_c_long("abc"), 0);
        assert_eq!(parse_c_long("12abc"), 12);
        assert_eq!(parse_c_long(""), 0);
    }
}
