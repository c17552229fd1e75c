//! Unit tests of the socket server alone: events are collected through a channel sink.

use super::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Ev {
    owner: u32,
    kind: i32,
    id: i32,
    ud: i32,
    data: Vec<u8>,
    text: String,
    /// The thread that delivered the event.
    thread: Option<String>,
}

fn server() -> (Arc<SocketServer>, Receiver<Ev>) {
    let (sink, rx) = channel_sink();
    (SocketServer::new(sink).unwrap(), rx)
}

fn channel_sink() -> (Sink, Receiver<Ev>) {
    let (tx, rx) = channel();
    let tx = parking_lot::Mutex::new(tx);
    let sink: Sink = Arc::new(move |owner, p, sz| {
        // SAFETY: p is a payload block of sz bytes holding a SocketMessage header.
        let m = unsafe { std::ptr::read_unaligned(p as *const SocketMessage) };
        let text = unsafe { std::slice::from_raw_parts(p.add(HEADER_SIZE), sz - HEADER_SIZE) };
        let text = String::from_utf8_lossy(text).into_owned();
        let mut data = Vec::new();
        if !m.buffer.is_null() {
            let n = m.ud as usize + if m.kind == SOCKET_UDP { 19 } else { 0 };
            // SAFETY: DATA blocks hold ud bytes; UDP blocks hold ud + address bytes.
            let n = if m.kind == SOCKET_UDP {
                let fam = unsafe { *m.buffer.add(m.ud as usize) };
                m.ud as usize + if fam == 1 { 7 } else { 19 }
            } else {
                n
            };
            data = unsafe { std::slice::from_raw_parts(m.buffer, n) }.to_vec();
            unsafe { payload_free(m.buffer) };
        }
        unsafe { payload_free(p) };
        let _ = tx.lock().send(Ev {
            owner,
            kind: m.kind,
            id: m.id,
            ud: m.ud,
            data,
            text,
            thread: std::thread::current().name().map(str::to_string),
        });
    });
    (sink, rx)
}

/// Shared mode, driven by a thread named "driver" that parks in `poll` until the
/// server exits (poll returns false once the loop is gone).
fn shared_server() -> (Arc<SocketServer>, Receiver<Ev>, std::thread::JoinHandle<()>) {
    let (sink, rx) = channel_sink();
    let srv = SocketServer::new_shared(sink).unwrap();
    let s2 = srv.clone();
    let driver = std::thread::Builder::new()
        .name("driver".into())
        .spawn(move || while s2.poll(true, &|| true) {})
        .unwrap();
    (srv, rx, driver)
}

fn next(rx: &Receiver<Ev>) -> Ev {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("socket event")
}

/// Next event that is not DATA (DATA events are collected into `buf`).
fn next_kind(rx: &Receiver<Ev>, kind: i32) -> Ev {
    loop {
        let e = next(rx);
        if e.kind == kind {
            return e;
        }
    }
}

fn listen(srv: &SocketServer, rx: &Receiver<Ev>, owner: u32) -> (i32, u16) {
    let lid = srv.listen(owner, "127.0.0.1", 0, 32).unwrap();
    let e = next(rx);
    assert_eq!(
        (e.kind, e.id, e.text.as_str()),
        (SOCKET_CONNECT, lid, "127.0.0.1")
    );
    let port = e.ud as u16;
    srv.start(owner, lid);
    let e = next(rx);
    assert_eq!(
        (e.kind, e.id, e.text.as_str()),
        (SOCKET_CONNECT, lid, "start")
    );
    (lid, port)
}

/// Accept one connection and start it for `owner`.
fn accept(srv: &SocketServer, rx: &Receiver<Ev>, lid: i32, owner: u32) -> i32 {
    let e = next_kind(rx, SOCKET_ACCEPT);
    assert_eq!(e.id, lid);
    assert!(e.text.starts_with("127.0.0.1:"), "{}", e.text);
    let id = e.ud;
    srv.start(owner, id);
    let e = next(rx);
    assert_eq!(
        (e.kind, e.id, e.owner, e.text.as_str()),
        (SOCKET_CONNECT, id, owner, "start")
    );
    id
}

fn read_until(rx: &Receiver<Ev>, id: i32, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let e = next(rx);
        assert_eq!((e.kind, e.id), (SOCKET_DATA, id), "{e:?}");
        got.extend_from_slice(&e.data);
    }
    got
}

#[test]
fn ids_count_from_one_and_listen_accept_start() {
    let (srv, rx) = server();
    let (lid, port) = listen(&srv, &rx, 7);
    assert!(lid >= 1);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"early").unwrap();
    let e = next(&rx);
    assert_eq!((e.kind, e.id, e.owner), (SOCKET_ACCEPT, lid, 7));
    let id = e.ud;
    assert_eq!(id, lid + 1);
    // Nothing is read before start.
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    srv.start(9, id);
    let e = next(&rx);
    assert_eq!(
        (e.kind, e.owner, e.text.as_str()),
        (SOCKET_CONNECT, 9, "start")
    );
    assert_eq!(read_until(&rx, id, 5), b"early");
    // Transfer.
    srv.start(11, id);
    let e = next(&rx);
    assert_eq!(
        (e.kind, e.owner, e.text.as_str()),
        (SOCKET_CONNECT, 11, "transfer")
    );
    // Echo.
    c.write_all(b"hello").unwrap();
    let data = read_until(&rx, id, 5);
    assert!(srv.send(id, Buffer::Slice(&data)));
    let mut back = [0u8; 5];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello");
    // netstat
    let info = srv.info();
    let l = info.iter().find(|i| i.id == lid).unwrap();
    assert_eq!((l.kind, l.accept, l.owner), ("LISTEN", 1, 7));
    assert_eq!(
        l.sock.as_deref(),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    let t = info.iter().find(|i| i.id == id).unwrap();
    assert_eq!((t.kind, t.owner, t.read, t.write), ("TCP", 11, 10, 5));
    assert!(t.reading && !t.writing);
    assert_eq!(t.peer, Some(c.local_addr().unwrap().to_string()));
    // Start on a dead id.
    srv.start(3, 999_999);
    let e = next(&rx);
    assert_eq!(
        (e.kind, e.owner, e.text.as_str()),
        (SOCKET_ERROR, 3, "invalid socket")
    );
    srv.exit();
}

#[test]
fn connect_ok_and_refused() {
    let (srv, rx) = server();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let id = srv.connect(5, "127.0.0.1", port).unwrap();
    let e = next(&rx);
    assert_eq!(
        (e.kind, e.id, e.owner, e.text.as_str()),
        (SOCKET_CONNECT, id, 5, "127.0.0.1")
    );
    let (mut peer, _) = l.accept().unwrap();
    srv.send(id, Buffer::Vec(b"ping".to_vec()));
    let mut b = [0u8; 4];
    peer.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    drop(l);
    let id2 = srv.connect(5, "127.0.0.1", port).unwrap();
    let e = next_kind(&rx, SOCKET_ERROR);
    assert_eq!((e.id, e.text.as_str()), (id2, "Connection refused"));
    assert!(!srv.send(id2, Buffer::Slice(b"x")));
    srv.exit();
}

#[test]
fn half_close_then_close() {
    let (srv, rx) = server();
    let (lid, port) = listen(&srv, &rx, 1);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let id = accept(&srv, &rx, lid, 2);
    c.write_all(b"last words").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_until(&rx, id, 10), b"last words");
    let e = next(&rx);
    assert_eq!((e.kind, e.id, e.owner), (SOCKET_CLOSE, id, 2));
    // Still writable after the peer's half close.
    assert!(srv.send(id, Buffer::Slice(b"reply")));
    let mut b = [0u8; 5];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"reply");
    srv.close(id);
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // No second CLOSE.
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    // Closing an unknown id does nothing.
    srv.close(id);
    assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
    srv.exit();
}

#[test]
fn close_flushes_and_shutdown_discards_and_warns() {
    let (srv, rx) = server();
    let (lid, port) = listen(&srv, &rx, 1);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let id = accept(&srv, &rx, lid, 2);
    // 8 MiB to a peer that does not read: WARNING(s) with growing sizes.
    let chunk = vec![7u8; 64 * 1024];
    for _ in 0..128 {
        assert!(srv.send(id, Buffer::Slice(&chunk)));
    }
    let w = next_kind(&rx, SOCKET_WARNING);
    assert_eq!(w.id, id);
    assert!(w.ud >= 1024, "{w:?}");
    srv.close(id);
    let e = next_kind(&rx, SOCKET_CLOSE);
    assert_eq!(e.id, id);
    // Sends after close are refused.
    assert!(!srv.send(id, Buffer::Slice(b"late")));
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), 128 * 64 * 1024);
    assert!(all.iter().all(|&b| b == 7));

    // shutdown: pending output is discarded.
    let mut c2 = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let id2 = accept(&srv, &rx, lid, 2);
    for _ in 0..128 {
        srv.send(id2, Buffer::Slice(&chunk));
    }
    srv.shutdown(id2);
    let e = next_kind(&rx, SOCKET_CLOSE);
    assert_eq!(e.id, id2);
    let mut all = Vec::new();
    let _ = c2.read_to_end(&mut all);
    assert!(all.len() < 128 * 64 * 1024);
    srv.exit();
}

#[test]
fn warning_drains_to_zero() {
    let (srv, rx) = server();
    let (lid, port) = listen(&srv, &rx, 1);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let id = accept(&srv, &rx, lid, 2);
    let big = vec![1u8; 6 << 20];
    srv.send(id, Buffer::Vec(big));
    let w = next_kind(&rx, SOCKET_WARNING);
    assert!(w.ud >= 1024);
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; 6 << 20];
        c.read_exact(&mut got).unwrap();
        c
    });
    loop {
        let w = next_kind(&rx, SOCKET_WARNING);
        if w.ud == 0 {
            break;
        }
    }
    let _c = reader.join().unwrap();
    srv.exit();
}

#[test]
fn low_priority_after_high() {
    let (srv, rx) = server();
    let (lid, port) = listen(&srv, &rx, 1);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let id = accept(&srv, &rx, lid, 2);
    // Fill the pipe so later sends queue.
    // (bigger than loopback's socket buffers: some of it must queue)
    let fill = vec![b'f'; 32 << 20];
    srv.send(id, Buffer::Slice(&fill));
    srv.send_lowpriority(id, Buffer::Slice(b"LOW"));
    srv.send(id, Buffer::Slice(b"HIGH"));
    let mut all = vec![0u8; (32 << 20) + 7];
    c.read_exact(&mut all).unwrap();
    assert_eq!(&all[32 << 20..], b"HIGHLOW");
    srv.exit();
}

#[test]
fn udp_v4_and_v6() {
    let (srv, rx) = server();
    for (host, any) in [("127.0.0.1", "127.0.0.1:0"), ("::1", "[::1]:0")] {
        let Ok(peer) = UdpSocket::bind(any) else {
            continue;
        };
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let pa = peer.local_addr().unwrap();
        let id = srv.udp(4, host, 0).unwrap();
        let addr = udp_address_encode(&pa);
        assert_eq!(addr.len(), if pa.is_ipv4() { 7 } else { 19 });
        assert!(srv.udp_send(id, &addr, Buffer::Slice(b"dgram")));
        let mut b = [0u8; 64];
        let (n, from) = peer.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"dgram");
        peer.send_to(b"answer", from).unwrap();
        let e = next(&rx);
        assert_eq!((e.kind, e.id, e.owner, e.ud), (SOCKET_UDP, id, 4, 6));
        assert_eq!(&e.data[..6], b"answer");
        assert_eq!(udp_address_decode(&e.data[6..]), Some(pa));
        // Default peer + plain send.
        srv.udp_connect(id, host, pa.port()).unwrap();
        assert!(srv.send(id, Buffer::Slice(b"conn")));
        let (n, _) = peer.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"conn");
        // Wrong family is refused.
        let other = if pa.is_ipv4() {
            "[::1]:9".parse().unwrap()
        } else {
            "127.0.0.1:9".parse().unwrap()
        };
        assert!(!srv.udp_send(id, &udp_address_encode(&other), Buffer::Slice(b"x")));
        srv.close(id);
        let e = next(&rx);
        assert_eq!((e.kind, e.id), (SOCKET_CLOSE, id));
    }
    srv.exit();
}

/// Echo everything for `n` connections on the calling thread until `total` bytes moved.
fn echo_loop(srv: &SocketServer, rx: &Receiver<Ev>, lid: i32, expect_bytes: usize) {
    let mut moved = 0;
    while moved < expect_bytes {
        let e = next(rx);
        match e.kind {
            SOCKET_ACCEPT if e.id == lid => srv.start(1, e.ud),
            SOCKET_DATA => {
                moved += e.data.len();
                assert!(srv.send(e.id, Buffer::Vec(e.data)));
            }
            _ => {}
        }
    }
}

#[test]
fn thousand_connections() {
    // Needs ~2,000 fds in this process: lift the soft limit to the hard one.
    // SAFETY: plain getrlimit/setrlimit on this process.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    let (srv, rx) = server();
    let (lid, port) = listen(&srv, &rx, 1);
    let n = 1000;
    let client = std::thread::spawn(move || {
        let mut cs: Vec<TcpStream> = (0..n)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        for (i, c) in cs.iter_mut().enumerate() {
            c.write_all(format!("{i:08}").as_bytes()).unwrap();
        }
        for (i, c) in cs.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            c.read_exact(&mut b).unwrap();
            assert_eq!(b, *format!("{i:08}").as_bytes());
        }
    });
    echo_loop(&srv, &rx, lid, n * 8);
    client.join().unwrap();
    srv.exit();
}

#[test]
fn sixteen_mb_each_way() {
    let (srv, rx) = server();
    let (lid, port) = listen(&srv, &rx, 1);
    const N: usize = 16 << 20;
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let data: Vec<u8> = (0..N).map(|i| (i % 251) as u8).collect();
        w.write_all(&data).unwrap();
    });
    let reader = std::thread::spawn(move || {
        let mut c = c;
        let mut got = vec![0u8; N];
        c.read_exact(&mut got).unwrap();
        got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8)
    });
    let t = Instant::now();
    echo_loop(&srv, &rx, lid, N);
    writer.join().unwrap();
    assert!(reader.join().unwrap());
    eprintln!("16 MiB echoed in {:?}", t.elapsed());
    srv.exit();
}

#[test]
fn echo_round_trips() {
    let (srv, rx) = server();
    let (lid, port) = listen(&srv, &rx, 1);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_nodelay(true).unwrap();
    let id = accept(&srv, &rx, lid, 1);
    srv.nodelay(id);
    let srv2 = srv.clone();
    let echo = std::thread::spawn(move || {
        while let Ok(e) = rx.recv_timeout(Duration::from_secs(5)) {
            match e.kind {
                SOCKET_DATA => {
                    srv2.send(e.id, Buffer::Vec(e.data));
                }
                SOCKET_CLOSE => break,
                _ => {}
            }
        }
    });
    let n = 5000;
    let t = Instant::now();
    let mut b = [0u8; 64];
    for _ in 0..n {
        c.write_all(&[9u8; 64]).unwrap();
        c.read_exact(&mut b).unwrap();
    }
    let el = t.elapsed();
    eprintln!("echo: {:.0} round trips/s", n as f64 / el.as_secs_f64());
    drop(c);
    echo.join().unwrap();
    srv.exit();
}

/// Runs `emfile_child` in a child process so the lowered fd limit stays there.
#[test]
fn fd_exhaustion_keeps_listener() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "socket::tests::emfile_child",
            "--ignored",
            "--nocapture",
        ])
        .env("SKYNET_EMFILE_CHILD", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

fn cpu_time() -> Duration {
    // SAFETY: plain getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) as u64 * 1_000_000
        + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) as u64;
    Duration::from_micros(us)
}

#[test]
#[ignore]
fn emfile_child() {
    if std::env::var("SKYNET_EMFILE_CHILD").is_err() {
        return;
    }
    let (srv, rx) = server();
    let (lid, port) = listen(&srv, &rx, 1);
    // Client sockets are created before the limit drops; connecting needs no new fd.
    let clients: Vec<socket2::Socket> = (0..20)
        .map(|_| socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap())
        .collect();
    let maxfd = clients
        .iter()
        .map(std::os::fd::AsRawFd::as_raw_fd)
        .max()
        .unwrap();
    let lim = libc::rlimit {
        rlim_cur: (maxfd + 4) as libc::rlim_t,
        rlim_max: 20000,
    };
    // SAFETY: plain setrlimit in this child process.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for c in &clients {
        c.connect(&addr.into()).unwrap();
    }
    let mut accepted = Vec::new();
    let mut errors = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while accepted.len() + errors < 20 && Instant::now() < deadline {
        let Ok(e) = rx.recv_timeout(Duration::from_millis(500)) else {
            break;
        };
        match e.kind {
            SOCKET_ACCEPT => accepted.push(e.ud),
            SOCKET_ERROR => {
                assert_eq!(e.id, lid);
                assert_eq!(e.text, "Too many open files");
                errors += 1;
            }
            _ => {}
        }
    }
    assert!(errors > 0, "no EMFILE seen ({} accepted)", accepted.len());
    // No busy loop while exhausted.
    let c0 = cpu_time();
    std::thread::sleep(Duration::from_millis(300));
    let spent = cpu_time() - c0;
    assert!(spent < Duration::from_millis(60), "cpu {spent:?}");
    // Free the fds: the listener still accepts.
    for id in accepted {
        srv.shutdown(id);
    }
    drop(clients);
    std::thread::sleep(Duration::from_millis(100));
    let _c = TcpStream::connect(addr).unwrap();
    loop {
        let e = next(&rx);
        if e.kind == SOCKET_ACCEPT {
            assert_eq!(e.id, lid);
            break;
        }
    }
    srv.exit();
}

#[test]
fn write_error_is_reported() {
    let (srv, rx) = server();
    let (lid, port) = listen(&srv, &rx, 1);
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let id = accept(&srv, &rx, lid, 2);
    // Reset the connection, then keep writing until the error surfaces.
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    std::thread::sleep(Duration::from_millis(50));
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..8 {
        if !srv.send(id, Buffer::Slice(&chunk)) {
            break;
        }
    }
    // The reader side sees the reset first (ERROR from read) or the writer does.
    let e = next_kind(&rx, SOCKET_ERROR);
    assert_eq!(e.id, id);
    assert!(
        e.text == "Connection reset by peer" || e.text == "Broken pipe",
        "{}",
        e.text
    );
    assert!(!srv.send(id, Buffer::Slice(b"x")));
    srv.exit();
}

#[test]
fn shared_mode_runs_on_the_polling_thread() {
    let (srv, rx, driver) = shared_server();
    let (lid, port) = listen(&srv, &rx, 7);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let id = accept(&srv, &rx, lid, 7);
    c.write_all(b"hello").unwrap();
    let e = next(&rx);
    assert_eq!(
        (e.kind, e.id, e.data.as_slice()),
        (SOCKET_DATA, id, &b"hello"[..])
    );
    assert_eq!(e.thread.as_deref(), Some("driver"));
    // Replies still go out directly from any thread.
    assert!(srv.send(id, Buffer::Slice(b"back")));
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"back");
    srv.exit();
    driver.join().unwrap();
    // exit closed every socket: the listener refuses, the connection reads EOF.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(c.read(&mut got).unwrap(), 0);
}

#[test]
fn shared_mode_one_poller_and_unpark() {
    let (sink, _rx) = channel_sink();
    let srv = SocketServer::new_shared(sink).unwrap();
    let (tx, done) = channel();
    let s2 = srv.clone();
    let t = std::thread::spawn(move || {
        let turned = s2.poll(true, &|| true);
        tx.send(turned).unwrap();
    });
    // Parked: nothing happens until unpark, and nobody else gets the loop meanwhile.
    assert!(done.recv_timeout(Duration::from_millis(100)).is_err());
    assert!(
        !srv.poll(false, &|| false),
        "a second thread polled while one is parked"
    );
    srv.unpark();
    assert!(done.recv_timeout(Duration::from_secs(5)).unwrap());
    t.join().unwrap();
    // may_park = false never blocks.
    assert!(srv.poll(true, &|| false));
    // With nobody polling, info still answers (the caller turns the loop).
    let lid = srv.listen(3, "127.0.0.1", 0, 8).unwrap();
    let info = srv.info();
    assert!(
        info.iter().any(|i| i.id == lid),
        "listener missing from info"
    );
    srv.exit();
    assert!(!srv.poll(false, &|| false), "polled after exit");
}
