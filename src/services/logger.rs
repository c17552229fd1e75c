//! The `logger` native service: one line per `PTYPE_TEXT` message.
//!
//! Without a parameter it writes `[:%08x] text` to stdout; with a file path it appends
//! to that file, each line prefixed with a local timestamp `%d/%m/%y %H:%M:%S.cc`.
//! `PTYPE_SYSTEM` (sent on SIGHUP) reopens the file, for log rotation. Every line is
//! flushed at once.

use crate::api::{self, ptype, Context, Message, NativeService};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Arc;

pub struct Logger {
    path: Option<String>,
    file: Option<File>,
}

impl Default for Logger {
    fn default() -> Self {
        Self::new()
    }
}

impl Logger {
    pub fn new() -> Logger {
        Logger {
            path: None,
            file: None,
        }
    }

    fn open(path: &str) -> Result<File, String> {
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| format!("Can't open log file {path} : {e}"))
    }

    fn write_line(&mut self, source: u32, text: &[u8]) {
        let mut line = Vec::with_capacity(text.len() + 40);
        if self.file.is_some() {
            let now = api::now();
            line.extend_from_slice(
                timestamp(api::starttime() as i64 + (now / 100) as i64, now % 100).as_bytes(),
            );
        }
        let _ = write!(line, "[:{source:08x}] ");
        line.extend_from_slice(text);
        line.push(b'\n');
        match self.file.as_mut() {
            Some(f) => {
                let _ = f.write_all(&line);
            }
            None => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&line);
                let _ = out.flush();
            }
        }
    }
}

/// `dd/mm/yy HH:MM:SS.cc ` in local time.
fn timestamp(secs: i64, centis: u64) -> String {
    let t = secs as libc::time_t;
    // SAFETY: zeroed tm is a valid out-parameter for localtime_r.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: valid in and out pointers.
    unsafe { libc::localtime_r(&t, &mut tm) };
    format!(
        "{:02}/{:02}/{:02} {:02}:{:02}:{:02}.{:02} ",
        tm.tm_mday,
        tm.tm_mon + 1,
        tm.tm_year % 100,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        centis
    )
}

impl NativeService for Logger {
    fn init(&mut self, _ctx: &Arc<Context>, param: Option<&str>) -> Result<(), String> {
        if let Some(path) = param.filter(|p| !p.is_empty()) {
            self.file = Some(Self::open(path)?);
            self.path = Some(path.to_string());
        }
        Ok(())
    }

    fn dispatch(&mut self, _ctx: &Arc<Context>, msg: &mut Message) -> bool {
        match msg.ty {
            ptype::TEXT => self.write_line(msg.source, msg.bytes()),
            ptype::SYSTEM => {
                if let Some(path) = &self.path {
                    if let Ok(f) = Self::open(path) {
                        self.file = Some(f);
                    }
                }
            }
            _ => {}
        }
        false
    }
}
