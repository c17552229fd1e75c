//! The mio loop of `src/socket/looper.rs`, reduced to the sockecho path: one
//! edge-triggered registration (READABLE | WRITABLE) per socket, one `read` per
//! readiness into a fresh block of the socket's adaptive read size (4 KiB, x4 when
//! filled, halved when less than half is used, never below 1 KiB), a ready list for
//! sockets whose read filled the block (read again next turn, after the others), and a
//! poll with no wait while that list is non-empty. Used by the `mio` variant (on its
//! own socket thread) and by `workers-poll` (run by whichever worker leads).

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::sched::{Server, MAX_CONNS};

pub const RSIZE_INIT: usize = 4096;
pub const RSIZE_MIN: usize = 1024;
pub const RSIZE_MAX: usize = 1 << 20;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);

struct Sock {
    stream: TcpStream,
    rsize: usize,
    in_ready: bool,
}

pub struct MioLoop {
    poll: Poll,
    /// Taken out while the events are handled (the handlers borrow the loop).
    events: Option<Events>,
    listener: TcpListener,
    socks: Vec<Option<Sock>>,
    ready: VecDeque<usize>,
}

/// The runtime's read-size policy: returns the next read size for a read of `n` into
/// `cap`, and whether the socket goes on the ready list (the block was filled).
pub fn adapt(cap: usize, n: usize) -> (usize, bool) {
    if n == cap {
        ((cap * 4).min(RSIZE_MAX), true)
    } else if n < cap / 2 {
        ((cap / 2).max(RSIZE_MIN), false)
    } else {
        (cap, false)
    }
}

/// Shrink a mostly-empty block before delivery, as `read_tcp` does.
pub fn shrink(buf: &mut Vec<u8>, cap: usize) {
    let n = buf.len();
    if cap - n >= 4096 && n <= cap / 4 {
        buf.shrink_to(n + 1);
    }
}

impl MioLoop {
    pub fn new(listener: std::net::TcpListener) -> MioLoop {
        let poll = Poll::new().expect("poll");
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .expect("register listener");
        MioLoop {
            poll,
            events: Some(Events::with_capacity(1024)),
            listener,
            socks: (0..MAX_CONNS).map(|_| None).collect(),
            ready: VecDeque::new(),
        }
    }

    pub fn waker(&self) -> Waker {
        Waker::new(self.poll.registry(), WAKER).expect("waker")
    }

    /// Wait for events (no wait while the ready list is non-empty). With `polling`
    /// (workers-poll), the flag is raised while blocked, and a wait is skipped when
    /// work was queued meanwhile (checked after raising it, so no wake-up is lost).
    pub fn wait(&mut self, polling: Option<&AtomicBool>, srv: &Server) {
        let mut timeout = (!self.ready.is_empty()).then_some(Duration::ZERO);
        if let Some(flag) = polling {
            flag.store(true, Ordering::SeqCst);
            if srv.sched.has_queued() {
                timeout = Some(Duration::ZERO);
            }
        }
        let events = self.events.as_mut().expect("events");
        if let Err(e) = self.poll.poll(events, timeout) {
            events.clear();
            if e.kind() != std::io::ErrorKind::Interrupted {
                eprintln!("poll: {e}");
            }
        }
        if let Some(flag) = polling {
            flag.store(false, Ordering::SeqCst);
        }
    }

    /// Handle the events of the last wait, then give every socket on the ready list
    /// one more read. Every read block goes to `deliver(conn, block)`.
    pub fn handle(&mut self, srv: &Server, mut deliver: impl FnMut(usize, Vec<u8>)) {
        let events = self.events.take().expect("events");
        for ev in events.iter() {
            match ev.token() {
                WAKER => {}
                LISTENER => self.accept(srv),
                Token(id) => self.readable(id, &mut deliver),
            }
        }
        self.events = Some(events);
        for _ in 0..self.ready.len() {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            if let Some(s) = self.socks[id].as_mut() {
                s.in_ready = false;
                self.readable(id, &mut deliver);
            }
        }
    }

    fn accept(&mut self, srv: &Server) {
        while let Ok((mut stream, _)) = self.listener.accept() {
            let id = srv.add_conn(stream.as_raw_fd());
            self.poll
                .registry()
                .register(
                    &mut stream,
                    Token(id),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .expect("register");
            self.socks[id] = Some(Sock {
                stream,
                rsize: RSIZE_INIT,
                in_ready: true,
            });
            // `start` puts the socket on the ready list.
            self.ready.push_back(id);
        }
    }

    fn readable(&mut self, id: usize, deliver: &mut impl FnMut(usize, Vec<u8>)) {
        let Some(s) = self.socks[id].as_mut() else {
            return;
        };
        let cap = s.rsize;
        let mut buf = Vec::<u8>::with_capacity(cap);
        // SAFETY: reading at most `cap` bytes into the block's spare capacity.
        let n = unsafe { libc::read(s.stream.as_raw_fd(), buf.as_mut_ptr().cast(), cap) };
        if n == 0 {
            // The client closed: forget the socket.
            if let Some(mut s) = self.socks[id].take() {
                let _ = self.poll.registry().deregister(&mut s.stream);
            }
            return;
        }
        if n < 0 {
            return; // EAGAIN (edge already consumed) or an error the next read meets.
        }
        let n = n as usize;
        // SAFETY: the kernel filled n bytes.
        unsafe { buf.set_len(n) };
        let (next, again) = adapt(cap, n);
        s.rsize = next;
        shrink(&mut buf, cap);
        if again && !s.in_ready {
            s.in_ready = true;
            self.ready.push_back(id);
        }
        deliver(id, buf);
    }
}

/// Variant `mio`: a dedicated socket thread running the loop; the workers block on
/// the run queue's condvar.
pub fn start(srv: Arc<Server>, listener: std::net::TcpListener, workers: usize) {
    for _ in 0..workers {
        let srv = srv.clone();
        std::thread::spawn(move || srv.worker_main());
    }
    std::thread::spawn(move || {
        let mut lp = MioLoop::new(listener);
        loop {
            lp.wait(None, &srv);
            lp.handle(&srv, |conn, data| srv.deliver_offworker(conn, data));
        }
    });
}
