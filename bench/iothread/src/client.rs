//! The load generator (a separate process, so the server's getrusage counts only the
//! server): `conns` loopback connections spread over `threads` threads, each thread an
//! epoll loop; every connection sends one `size`-byte message, waits for all of it to
//! come back, and sends the next (sockecho's `socket.write` then `socket.read(fd, n)`).

use std::io::{Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

fn run_thread(addr: SocketAddr, conns: usize, size: usize) {
    let mut poll = Poll::new().expect("poll");
    let msg = vec![b'x'; size];
    let mut socks = Vec::new();
    for i in 0..conns {
        let s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s.set_nonblocking(true).expect("nonblocking");
        let mut s = TcpStream::from_std(s);
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)
            .expect("register");
        socks.push((s, 0usize));
    }
    for (s, _) in socks.iter_mut() {
        s.write_all(&msg).expect("write");
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if poll.poll(&mut events, None).is_err() {
            continue;
        }
        for ev in events.iter() {
            let (s, got) = &mut socks[ev.token().0];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => std::process::exit(0),
                    Ok(n) => *got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => std::process::exit(0),
                }
            }
            while *got >= size {
                *got -= size;
                if s.write_all(&msg).is_err() {
                    std::process::exit(0);
                }
            }
        }
    }
}

pub fn run(port: u16, conns: usize, threads: usize, size: usize) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let threads = threads.clamp(1, conns);
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let n = conns / threads + usize::from(t < conns % threads);
            std::thread::spawn(move || run_thread(addr, n, size))
        })
        .collect();
    for h in hs {
        let _ = h.join();
    }
}
