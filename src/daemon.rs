//! Daemon mode (`daemon = "pidfile"` in the config): refuse a second instance, detach,
//! write and lock the pid file, and remove it on orderly exit (SIGTERM included: unlike
//! upstream we never leave a stale pid file behind).

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// The pid recorded in `path` if that process is alive (and is not us).
pub fn running_pid(path: &str) -> Option<i32> {
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    if pid == 0 || pid == std::process::id() as i32 {
        return None;
    }
    // SAFETY: signal 0 only probes.
    let r = unsafe { libc::kill(pid, 0) };
    if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH) {
        Some(pid)
    } else {
        None
    }
}

/// Detach and write the pid file. Err is the message for stderr.
pub fn daemonize(path: &str) -> Result<std::fs::File, String> {
    if let Some(pid) = running_pid(path) {
        return Err(format!("Skynet is already running, pid = {pid}."));
    }
    // SAFETY: called before any thread is started.
    if unsafe { libc::daemon(1, 1) } != 0 {
        return Err(format!(
            "Can't daemonize: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|_| format!("Can't create pidfile [{path}]."))?;
    // SAFETY: flock on our own fd.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let holder = running_pid(path).unwrap_or(0);
        return Err(if holder != 0 {
            format!("Can't lock pidfile, lock is held by pid {holder}.")
        } else {
            "Can't lock and read pidfile.".to_string()
        });
    }
    f.set_len(0).map_err(|_| "Can't write pid.".to_string())?;
    writeln!(f, "{}", std::process::id()).map_err(|_| "Can't write pid.".to_string())?;
    f.flush().map_err(|_| "Can't write pid.".to_string())?;
    redirect_std_to_null();
    Ok(f)
}

fn redirect_std_to_null() {
    if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Remove the pid file on orderly exit.
pub fn remove(path: &str) {
    let _ = std::fs::remove_file(path);
}
