//! Platform layer of the socket server: every raw-fd system call lives here.
//!
//! The rest of `socket/` deals in [`RawFd`]s owned by `socket2::Socket`s and in
//! `std::net::SocketAddr`s; this module turns them into `libc` calls and turns errno
//! values into the exact texts skynet reports (`strerror`, `gai_strerror`).
//!
//! Invariants: every function here is non-blocking on a non-blocking fd, never
//! retries on `EAGAIN` (the caller decides) and retries on `EINTR` itself.

use std::ffi::{CStr, CString};
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// `strerror(errno)` without Rust's `" (os error N)"` suffix.
pub fn strerror(errno: i32) -> String {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: buf is writable for its whole length; the XSI strerror_r NUL-terminates.
    let rc = unsafe { libc::strerror_r(errno, buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return "Unknown error".to_string();
    }
    // SAFETY: NUL-terminated above.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The errno text of an `io::Error` (falls back to its Display form).
pub fn error_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => strerror(n),
        None => e.to_string(),
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Outcome of a non-blocking transfer.
pub enum Io {
    /// `n` bytes moved (`0` on a read means end of stream).
    Done(usize),
    /// The kernel buffer is empty (read) or full (write).
    WouldBlock,
    /// A real error: the errno.
    Err(i32),
}

fn classify(rc: isize) -> Io {
    if rc >= 0 {
        return Io::Done(rc as usize);
    }
    match errno() {
        libc::EAGAIN => Io::WouldBlock,
        e => Io::Err(e),
    }
}

/// `read(2)` into `len` bytes at `buf`, retrying on `EINTR`.
///
/// # Safety
/// `buf` must be valid for `len` bytes of writes.
pub unsafe fn read(fd: RawFd, buf: *mut u8, len: usize) -> Io {
    loop {
        // SAFETY: `buf` is writable for `len` bytes (the contract).
        let rc = unsafe { libc::read(fd, buf as *mut libc::c_void, len) };
        if rc < 0 && errno() == libc::EINTR {
            continue;
        }
        return classify(rc);
    }
}

/// `send(2)` of `data` (MSG_NOSIGNAL: a dead peer is an `EPIPE`, never a signal).
pub fn write(fd: RawFd, data: &[u8]) -> Io {
    loop {
        // SAFETY: data is a valid slice.
        let rc = unsafe {
            libc::send(
                fd,
                data.as_ptr() as *const libc::c_void,
                data.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if rc < 0 && errno() == libc::EINTR {
            continue;
        }
        if rc < 0 && errno() == libc::ENOTSOCK {
            // A bound non-socket fd (a pipe or a tty): plain write.
            // SAFETY: as above.
            let rc = unsafe { libc::write(fd, data.as_ptr() as *const libc::c_void, data.len()) };
            return classify(rc);
        }
        return classify(rc);
    }
}

/// Gathering write of up to 64 slices.
pub fn writev(fd: RawFd, parts: &[&[u8]]) -> Io {
    let mut iov: [MaybeUninit<libc::iovec>; 64] = [MaybeUninit::uninit(); 64];
    let n = parts.len().min(64);
    for (i, p) in parts[..n].iter().enumerate() {
        iov[i].write(libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        });
    }
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr() as *mut libc::iovec;
    msg.msg_iovlen = n as _;
    loop {
        // SAFETY: msg points at n initialised iovecs over live slices.
        let rc = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
        if rc < 0 && errno() == libc::EINTR {
            continue;
        }
        return classify(rc);
    }
}

/// Encode an address as a `sockaddr_storage`.
pub fn to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as _;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as _;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Decode a `sockaddr_storage` (None for non-IP families).
pub fn from_sockaddr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: family says sockaddr_in.
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: family says sockaddr_in6.
            let s6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(s6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(s6.sin6_port),
                s6.sin6_flowinfo,
                s6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// `sendto(2)` (or `send` when `to` is None: a connected UDP socket).
pub fn sendto(fd: RawFd, data: &[u8], to: Option<&SocketAddr>) -> Io {
    loop {
        let rc = match to {
            Some(a) => {
                let (ss, len) = to_sockaddr(a);
                // SAFETY: valid slice and sockaddr.
                unsafe {
                    libc::sendto(
                        fd,
                        data.as_ptr() as *const libc::c_void,
                        data.len(),
                        libc::MSG_NOSIGNAL,
                        &ss as *const _ as *const libc::sockaddr,
                        len,
                    )
                }
            }
            // SAFETY: valid slice.
            None => unsafe {
                libc::send(
                    fd,
                    data.as_ptr() as *const libc::c_void,
                    data.len(),
                    libc::MSG_NOSIGNAL,
                )
            },
        };
        if rc < 0 && errno() == libc::EINTR {
            continue;
        }
        return classify(rc);
    }
}

/// `recvfrom(2)` into `len` bytes at `buf`; returns the byte count and the sender.
///
/// # Safety
/// `buf` must be valid for `len` bytes of writes.
pub unsafe fn recvfrom(fd: RawFd, buf: *mut u8, len: usize) -> (Io, Option<SocketAddr>) {
    loop {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut sl = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `buf` is writable for `len` bytes (the contract); `ss`/`sl` are valid
        // out-parameters of the right size.
        let rc = unsafe {
            libc::recvfrom(
                fd,
                buf as *mut libc::c_void,
                len,
                0,
                &mut ss as *mut _ as *mut libc::sockaddr,
                &mut sl,
            )
        };
        if rc < 0 && errno() == libc::EINTR {
            continue;
        }
        let from = if rc >= 0 { from_sockaddr(&ss) } else { None };
        return (classify(rc), from);
    }
}

/// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`.
pub fn accept(fd: RawFd) -> Result<(RawFd, Option<SocketAddr>), i32> {
    loop {
        // SAFETY: out-parameters are valid.
        let (rc, ss) = unsafe {
            let mut ss: libc::sockaddr_storage = std::mem::zeroed();
            let mut sl = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            let rc = libc::accept4(
                fd,
                &mut ss as *mut _ as *mut libc::sockaddr,
                &mut sl,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            );
            (rc, ss)
        };
        if rc >= 0 {
            return Ok((rc, from_sockaddr(&ss)));
        }
        match errno() {
            libc::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// The spare fd kept open so that an accept failing with EMFILE/ENFILE can still take
/// the pending connection off the queue (and close it) instead of spinning on it.
pub struct ReserveFd(RawFd);

impl ReserveFd {
    pub fn open() -> ReserveFd {
        ReserveFd(open_devnull())
    }

    /// Release the spare, accept and drop one pending connection, take the spare back.
    /// Returns Some(false) if no connection was pending (accept4 fails with EMFILE
    /// before it looks at the queue), None if there is no spare fd to release, else
    /// Some(true) (a connection was dropped, or accept failed otherwise).
    pub fn drop_one(&mut self, listen_fd: RawFd) -> Option<bool> {
        if self.0 < 0 {
            self.0 = open_devnull();
            if self.0 < 0 {
                return None;
            }
        }
        // SAFETY: we own self.0.
        unsafe { libc::close(self.0) };
        let dropped = match accept(listen_fd) {
            Ok((fd, _)) => {
                // SAFETY: fresh fd we own.
                unsafe { libc::close(fd) };
                true
            }
            Err(e) => e != libc::EAGAIN,
        };
        self.0 = open_devnull();
        Some(dropped)
    }
}

impl Drop for ReserveFd {
    fn drop(&mut self) {
        if self.0 >= 0 {
            // SAFETY: we own it.
            unsafe { libc::close(self.0) };
        }
    }
}

fn open_devnull() -> RawFd {
    // SAFETY: constant NUL-terminated path.
    unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }
}

/// Set `O_NONBLOCK` on an fd.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a caller-provided fd.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `TCP_NODELAY` on a raw fd (errors ignored: UDP or non-socket fds).
pub fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: valid option pointer and length.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &one as *const _ as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// `connect(2)` on a raw fd (UDP default peer).
pub fn connect(fd: RawFd, addr: &SocketAddr) -> Result<(), i32> {
    let (ss, len) = to_sockaddr(addr);
    // SAFETY: valid sockaddr.
    let rc = unsafe { libc::connect(fd, &ss as *const _ as *const libc::sockaddr, len) };
    if rc < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// The kernel's cap on listen backlogs (`net.core.somaxconn`), 4096 if unreadable.
pub fn somaxconn() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// Resolve `host:port` with getaddrinfo; errors carry the `gai_strerror` text.
pub fn resolve(host: &str, port: u16, passive: bool, udp: bool) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let h = CString::new(host).map_err(|_| "Invalid host".to_string())?;
    let p = CString::new(port.to_string()).unwrap();
    // SAFETY: zeroed addrinfo hints are valid.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = if udp {
        libc::SOCK_DGRAM
    } else {
        libc::SOCK_STREAM
    };
    hints.ai_flags = libc::AI_NUMERICSERV | if passive { libc::AI_PASSIVE } else { 0 };
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    let hp = if host.is_empty() {
        std::ptr::null()
    } else {
        h.as_ptr()
    };
    // SAFETY: valid pointers; res freed below.
    let rc = unsafe { libc::getaddrinfo(hp, p.as_ptr(), &hints, &mut res) };
    if rc != 0 {
        // SAFETY: gai_strerror returns a static string.
        let msg = unsafe { CStr::from_ptr(libc::gai_strerror(rc)) };
        return Err(msg.to_string_lossy().into_owned());
    }
    let mut out = Vec::new();
    let mut cur = res;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getaddrinfo returned.
        unsafe {
            let ai = &*cur;
            if !ai.ai_addr.is_null() {
                let mut ss: libc::sockaddr_storage = std::mem::zeroed();
                std::ptr::copy_nonoverlapping(
                    ai.ai_addr as *const u8,
                    &mut ss as *mut _ as *mut u8,
                    (ai.ai_addrlen as usize).min(size_of::<libc::sockaddr_storage>()),
                );
                if let Some(a) = from_sockaddr(&ss) {
                    out.push(a);
                }
            }
            cur = ai.ai_next;
        }
    }
    // SAFETY: res came from getaddrinfo.
    unsafe { libc::freeaddrinfo(res) };
    if out.is_empty() {
        return Err("No address associated with hostname".to_string());
    }
    Ok(out)
}
