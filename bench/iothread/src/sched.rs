//! The worker side, modelled on `src/mq.rs` and `src/scheduler.rs`: per-service
//! message queues with an `in_global` flag, one global queue of runnable services
//! behind a mutex, workers that sleep on a condvar (100 ms timeout) and the same
//! wake-up policy (every push wakes a sleeper when workers <= cores; with more workers
//! than cores only when no woken worker is still searching and fewer than `cores` are
//! awake). A worker "processes" a message by spinning `work_ns` (the Lua handler's
//! share) and writes the echo directly to the fd under the connection's lock, as
//! `SocketServer::send` does when nothing is queued for that socket.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Connection slots (the bench never has more connections than this).
pub const MAX_CONNS: usize = 1024;

/// One read block handed from the I/O side to a service (a `PTYPE_SOCKET` DATA
/// message in the runtime).
pub struct Msg {
    pub conn: usize,
    pub data: Vec<u8>,
}

struct SvcQ {
    msgs: VecDeque<Msg>,
    in_global: bool,
}

/// A service's message queue (`mq.rs`).
pub struct Service {
    q: Mutex<SvcQ>,
}

impl Service {
    fn new() -> Service {
        Service {
            q: Mutex::new(SvcQ {
                msgs: VecDeque::new(),
                in_global: false,
            }),
        }
    }

    /// Append; true when the service just became runnable (the caller schedules it).
    fn push(&self, msg: Msg) -> bool {
        let mut q = self.q.lock();
        q.msgs.push_back(msg);
        !std::mem::replace(&mut q.in_global, true)
    }

    /// Pop one message and the number left; `None` unschedules the empty queue.
    fn pop(&self) -> Option<(Msg, usize)> {
        let mut q = self.q.lock();
        match q.msgs.pop_front() {
            Some(m) => {
                let left = q.msgs.len();
                Some((m, left))
            }
            None => {
                q.in_global = false;
                None
            }
        }
    }

    fn unschedule_if_empty(&self) -> bool {
        let mut q = self.q.lock();
        if q.msgs.is_empty() {
            q.in_global = false;
            true
        } else {
            false
        }
    }
}

/// A socket slot as the workers see it: the fd and the lock a direct write holds.
pub struct Conn {
    pub fd: AtomicI32,
    lock: Mutex<()>,
}

/// The global run queue and the sleep/wake machinery (`scheduler.rs`).
pub struct Scheduler {
    global: Mutex<VecDeque<Arc<Service>>>,
    queued: AtomicUsize,
    sleepers: AtomicUsize,
    searching: AtomicUsize,
    awake_cap: usize,
    workers: usize,
    oversubscribed: bool,
    sleep_lock: Mutex<usize>,
    wake: Condvar,
    /// workers-poll only: a worker is blocked in the poll, and the waker that gets it out.
    pub polling: AtomicBool,
    pub poll_waker: OnceLock<mio::Waker>,
}

impl Scheduler {
    fn new(workers: usize) -> Scheduler {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Scheduler {
            global: Mutex::new(VecDeque::with_capacity(64)),
            queued: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            searching: AtomicUsize::new(0),
            awake_cap: cores,
            workers,
            oversubscribed: workers > cores,
            sleep_lock: Mutex::new(0),
            wake: Condvar::new(),
            polling: AtomicBool::new(false),
            poll_waker: OnceLock::new(),
        }
    }

    pub fn push_global(&self, svc: Arc<Service>) {
        {
            let mut g = self.global.lock();
            g.push_back(svc);
            self.queued.store(g.len(), Ordering::SeqCst);
        }
        self.wake_if_useful();
    }

    /// The runtime's policy; a worker blocked in the poll (workers-poll) counts as idle
    /// and is woken through the poll's waker when no condvar sleeper is there.
    fn wake_if_useful(&self) {
        let sleepers = self.sleepers.load(Ordering::SeqCst);
        let polling = self.polling.load(Ordering::SeqCst) as usize;
        let idle = sleepers + polling;
        if idle > 0
            && (!self.oversubscribed
                || (self.searching.load(Ordering::SeqCst) == 0
                    && self.workers - idle < self.awake_cap))
        {
            if sleepers > 0 {
                self.wake_searcher();
            } else if let Some(w) = self.poll_waker.get() {
                let _ = w.wake();
            }
        }
    }

    /// Wake one condvar sleeper (a `searching` token); false when none was asleep.
    pub fn wake_searcher(&self) -> bool {
        let mut pending = self.sleep_lock.lock();
        if self.sleepers.load(Ordering::SeqCst) > *pending {
            *pending += 1;
            self.searching.fetch_add(1, Ordering::SeqCst);
            self.wake.notify_one();
            true
        } else {
            false
        }
    }

    fn done_searching(&self, found: bool) {
        self.searching.fetch_sub(1, Ordering::SeqCst);
        if found && self.queued.load(Ordering::SeqCst) > 0 {
            self.wake_if_useful();
        }
    }

    pub fn pop(&self) -> Option<Arc<Service>> {
        if self.queued.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut g = self.global.lock();
        let s = g.pop_front();
        self.queued.store(g.len(), Ordering::SeqCst);
        s
    }

    pub fn has_queued(&self) -> bool {
        self.queued.load(Ordering::SeqCst) > 0
    }

    /// Sleep until woken (or 100 ms); true when it took a wake-up token.
    fn sleep(&self) -> bool {
        let mut pending = self.sleep_lock.lock();
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        if *pending == 0 && self.queued.load(Ordering::SeqCst) == 0 {
            self.wake.wait_for(&mut pending, Duration::from_millis(100));
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        if *pending > 0 {
            *pending -= 1;
            true
        } else {
            false
        }
    }

    /// Idle: sleep, and on a wake-up look once for work.
    pub fn idle(&self) -> Option<Arc<Service>> {
        if self.sleep() {
            let next = self.pop();
            self.done_searching(next.is_some());
            next
        } else {
            None
        }
    }
}

/// Everything the I/O side and the workers share.
pub struct Server {
    pub sched: Scheduler,
    services: Vec<Arc<Service>>,
    conns: Vec<Conn>,
    work: Duration,
    /// Bytes echoed (round trips = bytes / message size).
    pub echoed: AtomicU64,
    pub accepted: AtomicUsize,
}

impl Server {
    pub fn new(workers: usize, services: usize, work_ns: u64) -> Server {
        Server {
            sched: Scheduler::new(workers),
            services: (0..services.max(1))
                .map(|_| Arc::new(Service::new()))
                .collect(),
            conns: (0..MAX_CONNS)
                .map(|_| Conn {
                    fd: AtomicI32::new(-1),
                    lock: Mutex::new(()),
                })
                .collect(),
            work: Duration::from_nanos(work_ns),
            echoed: AtomicU64::new(0),
            accepted: AtomicUsize::new(0),
        }
    }

    /// A new connection: its slot id (connection `i` belongs to service `i % services`).
    pub fn add_conn(&self, fd: RawFd) -> usize {
        let id = self.accepted.fetch_add(1, Ordering::SeqCst);
        assert!(id < MAX_CONNS, "too many connections");
        self.conns[id].fd.store(fd, Ordering::Release);
        id
    }

    /// Hand a read block to the connection's service; returns the service when it just
    /// became runnable (the caller schedules it).
    pub fn deliver(&self, conn: usize, data: Vec<u8>) -> Option<Arc<Service>> {
        let svc = &self.services[conn % self.services.len()];
        svc.push(Msg { conn, data }).then(|| svc.clone())
    }

    /// Deliver from off the workers (a socket thread): schedule on the global queue.
    pub fn deliver_offworker(&self, conn: usize, data: Vec<u8>) {
        if let Some(svc) = self.deliver(conn, data) {
            self.sched.push_global(svc);
        }
    }

    fn process(&self, msg: Msg) {
        if !self.work.is_zero() {
            let t = Instant::now();
            while t.elapsed() < self.work {
                std::hint::spin_loop();
            }
        }
        let c = &self.conns[msg.conn];
        let _g = c.lock.lock();
        write_all(c.fd.load(Ordering::Acquire), &msg.data);
        self.echoed
            .fetch_add(msg.data.len() as u64, Ordering::Relaxed);
    }

    /// One turn of `svc` (`dispatch_batch`): `max(1, left)` messages, then switch to
    /// the worker's slot or the global queue's front if another service is ready.
    pub fn run_turn(
        &self,
        svc: Arc<Service>,
        slot: &mut Option<Arc<Service>>,
    ) -> Option<Arc<Service>> {
        let mut budget = 1usize;
        let mut done = 0usize;
        while done < budget {
            let (msg, left) = svc.pop()?;
            if done == 0 {
                budget = left.max(1);
            }
            done += 1;
            self.process(msg);
        }
        match slot.take().or_else(|| self.sched.pop()) {
            Some(next) => {
                if !svc.unschedule_if_empty() {
                    self.sched.push_global(svc);
                }
                Some(next)
            }
            None => Some(svc),
        }
    }

    /// A worker of the variants with a socket thread (`worker_main`).
    pub fn worker_main(&self) {
        let mut held: Option<Arc<Service>> = None;
        let mut slot = None;
        loop {
            held = match held.take().or_else(|| self.sched.pop()) {
                Some(svc) => self.run_turn(svc, &mut slot),
                None => self.sched.idle(),
            };
        }
    }
}

/// Write everything; a full socket buffer (never hit by the small echoes) waits in
/// poll(2) rather than queueing to the I/O side.
fn write_all(fd: RawFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: writing from a live slice to an fd the server owns.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n >= 0 {
            data = &data[n as usize..];
            continue;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => {
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut p, 1, 100) };
            }
            // The peer went away: the run is over.
            _ => return,
        }
    }
}
