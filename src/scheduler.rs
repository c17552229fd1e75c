//! The scheduler: the global run queue, the worker threads and the endless-loop monitor.
//!
//! Each worker has a one-service "next" slot. A service made runnable by a worker (a
//! message pushed into its idle queue) goes into that worker's slot and runs next on
//! the same worker, with no lock on the global queue and no wake-up: a request/reply
//! pair ping-pongs on one core with its Lua states cache-warm. The slot is LIFO: a
//! newer service evicts the older one to the global queue. After `LIFO_BUDGET`
//! consecutive slot runs the slot's service goes to the global queue's tail instead,
//! so busy pairs cannot starve the rest. Idle workers steal from other workers' slots.
//!
//! Wake-up policy (see docs/design/hot-path.md): with no more workers than cores,
//! pushing to the global queue wakes a sleeper whenever there is one. With more
//! workers than cores (`thread = 8` on 2 cores: the sample's and most production
//! configs), a push wakes one only when it can help: no woken worker is still looking
//! for work (`searching`: a wake-up is a token the woken worker holds until it finds
//! work or sleeps again, so a burst of pushes wakes one worker, not one per push), and
//! fewer workers are running than there are cores (a third running worker on 2 cores
//! only takes CPU time from the two running; a worker parked in the socket poll is not
//! running). When nothing runs at all, the parked poller is unparked rather than a
//! condvar sleeper woken (fewer threads in rotation). A woken worker that finds work while more
//! waits passes the token on, so parallelism ramps up under load. Filling a slot wakes
//! nobody. The timer thread wakes a sleeper every tick while work is waiting anywhere,
//! whatever the cap: the fallback for workers stuck in long handlers. No spinning.
//!
//! Sockets ([`Poller`]): there is no socket thread by default. One idle worker at a
//! time parks in the socket server's poll instead of on the condvar; the events it
//! reads go to its own slot, so the service they wake runs on that same thread right
//! away (a request/reply over TCP costs one thread wake-up per side instead of two: on
//! 2 cores cluster calls went from 14k to 21-27k round trips/s, sockecho from 80k to
//! 145k). A push with nobody on the condvar unparks the poller. When the poller takes
//! work, nobody polls until a worker goes idle; a busy worker turns the loop without
//! waiting every [`POLL_EVERY`] batches, and the timer thread wakes a sleeper when
//! nobody has polled for 10-20 ms (the poller is in a long handler), which then
//! takes the poll over. Before parking, the poller may spin briefly (the socket
//! server's `set_spin`, config `socket_spin`; see docs/ARCHITECTURE.md).
//!
//! Batches: worker i takes `max(1, len >> weight)` messages of a queue per turn, where
//! `len` is the backlog when the turn starts (so a turn is bounded by what was already
//! queued). Upstream gives its first four workers weight -1 (one message per turn) and
//! the next four weight 0; we give all of the first eight weight 0: on 2 cores a
//! flooded receiver (4 senders -> 1) went from ~1.0M to ~1.3M msgs/s, while call/reply
//! traffic (queues of one message) is unaffected.

use crate::cache_line::CacheLine;
use crate::context::Context;
use crate::runtime::Runtime;
use parking_lot::{Condvar, Mutex};
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

thread_local! {
    /// The index of the worker running on this thread (None off the workers).
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Consecutive services a worker may take from its own slot before it must take the
/// global queue's front instead.
const LIFO_BUDGET: u32 = 32;

const WEIGHTS: [i32; 32] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
];

/// What the monitor thread watches on each worker (on its own cache line: the worker
/// writes it twice per message).
#[derive(Default)]
#[repr(align(128))]
pub struct WorkerMonitor {
    version: AtomicU32,
    check_version: AtomicU32,
    source: AtomicU32,
    destination: AtomicU32,
}

impl WorkerMonitor {
    #[inline]
    fn trigger(&self, source: u32, destination: u32) {
        self.source.store(source, Ordering::Relaxed);
        self.destination.store(destination, Ordering::Relaxed);
        // Single writer (this worker): a plain store, no locked read-modify-write.
        let v = self.version.load(Ordering::Relaxed);
        self.version.store(v.wrapping_add(1), Ordering::Release);
    }
}

/// One worker's next slot, alone on its cache line: the owner fills and empties it on
/// nearly every message; other workers only peek at `occupied` when idle.
#[derive(Default)]
#[repr(align(128))]
struct Slot {
    occupied: AtomicBool,
    ctx: Mutex<Option<Arc<Context>>>,
}

impl Slot {
    /// Put `ctx` in; returns the evicted occupant.
    fn put(&self, ctx: Arc<Context>) -> Option<Arc<Context>> {
        let mut g = self.ctx.lock();
        self.occupied.store(true, Ordering::Relaxed);
        g.replace(ctx)
    }

    fn take(&self) -> Option<Arc<Context>> {
        if !self.occupied.load(Ordering::Relaxed) {
            return None;
        }
        let mut g = self.ctx.lock();
        self.occupied.store(false, Ordering::Relaxed);
        g.take()
    }
}

/// An I/O loop that idle workers drive themselves (the socket server in shared mode):
/// one idle worker at a time parks in its poll instead of on the condvar, so a socket
/// event is read and its service run on the same thread, with no hand-off.
pub trait Poller: Send + Sync {
    /// Run one turn unless another thread is (then false). With `park` it may block
    /// until an event or [`Poller::unpark`]; `may_park` is asked after the park is
    /// announced, so a racing `unpark` is never lost.
    fn poll(&self, park: bool, may_park: &dyn Fn() -> bool) -> bool;
    /// End a parked poll early.
    fn unpark(&self);
    /// A worker is parked in the poll.
    fn parked(&self) -> bool;
    /// Nobody is polling and nobody has for a while (a worker should take over).
    fn stale(&self) -> bool;
}

/// A busy worker turns the I/O loop once every this many batches (when nobody else is
/// polling), so sockets are served even while every worker is busy.
const POLL_EVERY: u32 = 64;

pub struct Scheduler {
    global: CacheLine<Mutex<VecDeque<Arc<Context>>>>,
    queued: CacheLine<AtomicUsize>,
    /// Per-worker next slots (stealable).
    slots: Vec<Slot>,
    sleepers: CacheLine<AtomicUsize>,
    /// Woken workers that have not yet found work or gone back to sleep.
    searching: CacheLine<AtomicUsize>,
    /// Workers that may be awake at once before a push stops waking more (the cores).
    awake_cap: usize,
    workers: usize,
    /// More workers than cores: only then do the gate and the cap apply (with no more
    /// workers than cores, every push wakes a sleeper, as measured best on 2 cores).
    oversubscribed: bool,
    /// Wake-ups sent and not yet taken by a sleeper (each one a `searching` token).
    sleep_lock: Mutex<usize>,
    wake: Condvar,
    /// Read by every worker on every turn: alone on its line.
    quit: CacheLine<AtomicBool>,
    pub monitors: Vec<WorkerMonitor>,
    poller: OnceLock<Arc<dyn Poller>>,
    /// Run by a worker about to idle (making Lua states ahead of time).
    idle_work: OnceLock<fn()>,
}

impl Scheduler {
    pub fn new(workers: usize) -> Scheduler {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Scheduler {
            global: CacheLine(Mutex::new(VecDeque::with_capacity(64))),
            queued: CacheLine(AtomicUsize::new(0)),
            slots: (0..workers).map(|_| Slot::default()).collect(),
            sleepers: CacheLine(AtomicUsize::new(0)),
            searching: CacheLine(AtomicUsize::new(0)),
            awake_cap: cores,
            workers,
            oversubscribed: workers > cores,
            sleep_lock: Mutex::new(0),
            wake: Condvar::new(),
            quit: CacheLine(AtomicBool::new(false)),
            monitors: (0..workers).map(|_| WorkerMonitor::default()).collect(),
            poller: OnceLock::new(),
            idle_work: OnceLock::new(),
        }
    }

    /// `f` runs each time a worker runs out of work, before it parks (set once, before
    /// the workers start; it must be cheap when there is nothing to do).
    pub fn set_idle_work(&self, f: fn()) {
        let _ = self.idle_work.set(f);
    }

    /// Wake an idle worker: a condvar sleeper, else (nobody on the condvar) the worker
    /// parked in the poll, if any.
    pub fn wake_idle(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            self.wake_searcher();
        } else if let Some(p) = self.poller.get() {
            p.unpark();
        }
    }

    /// More workers than cores (the wake-up gate and cap apply; nobody spins).
    pub fn oversubscribed(&self) -> bool {
        self.oversubscribed
    }

    /// Let idle workers drive `p` (see [`Poller`]); set once, before the workers start.
    pub fn set_poller(&self, p: Arc<dyn Poller>) {
        let _ = self.poller.set(p);
    }

    /// Make a service runnable: into the calling worker's slot, or onto the global
    /// queue (waking a sleeper) when called off the workers or when evicted.
    pub fn schedule(&self, ctx: Arc<Context>) {
        let evicted = match WORKER.with(|w| w.get()) {
            Some(i) => match self.slots[i].put(ctx) {
                None => return,
                old => old,
            },
            None => Some(ctx),
        };
        if let Some(ctx) = evicted {
            self.push_global(ctx);
        }
    }

    fn push_global(&self, ctx: Arc<Context>) {
        {
            let mut g = self.global.lock();
            g.push_back(ctx);
            self.queued.store(g.len(), Ordering::SeqCst);
        }
        self.wake_if_useful();
    }

    /// Wake a sleeper if one can help (see the module doc).
    #[inline]
    fn wake_if_useful(&self) {
        let sleepers = self.sleepers.load(Ordering::SeqCst);
        let poller = self.poller.get();
        if !self.oversubscribed {
            self.wake_idle();
            return;
        }
        let parked = poller.is_some_and(|p| p.parked());
        // Saturating: a worker may move from the condvar to the poll between the loads.
        let running = self.workers.saturating_sub(sleepers + parked as usize);
        if running == 0 {
            // Nobody runs: the work must not wait. The parked poller is the cheapest
            // to wake (it is not on the condvar), else a sleeper.
            match poller {
                Some(p) if parked => p.unpark(),
                _ if sleepers > 0 => self.wake_searcher(),
                _ => {}
            }
        } else if sleepers > 0
            && self.searching.load(Ordering::SeqCst) == 0
            && running < self.awake_cap
        {
            self.wake_searcher();
        }
    }

    /// Wake one sleeper, handing it a `searching` token. The token is counted under
    /// the sleep lock and taken by whichever sleeper wakes first, so none is lost.
    fn wake_searcher(&self) {
        let mut pending = self.sleep_lock.lock();
        if self.sleepers.load(Ordering::SeqCst) > *pending {
            *pending += 1;
            self.searching.fetch_add(1, Ordering::SeqCst);
            self.wake.notify_one();
        }
    }

    /// A woken worker found work or gave up: return its token; if it found work and
    /// more is waiting, wake the next one.
    fn done_searching(&self, found: bool) {
        self.searching.fetch_sub(1, Ordering::SeqCst);
        if found && self.queued.load(Ordering::SeqCst) > 0 {
            self.wake_if_useful();
        }
    }

    fn pop(&self) -> Option<Arc<Context>> {
        if self.queued.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut g = self.global.lock();
        let ctx = g.pop_front();
        self.queued.store(g.len(), Ordering::SeqCst);
        ctx
    }

    fn take_slot(&self, i: usize) -> Option<Arc<Context>> {
        self.slots[i].take()
    }

    /// The next service for worker `i`: its slot (within budget), the global queue,
    /// or another worker's slot.
    fn next_for(&self, i: usize, streak: &mut u32) -> Option<Arc<Context>> {
        if let Some(ctx) = self.take_slot(i) {
            if *streak < LIFO_BUDGET || self.queued.load(Ordering::Relaxed) == 0 {
                *streak = if *streak < LIFO_BUDGET {
                    *streak + 1
                } else {
                    0
                };
                return Some(ctx);
            }
            // Budget spent and others wait: go to the back of the line.
            self.push_global(ctx);
        }
        *streak = 0;
        if let Some(ctx) = self.pop() {
            return Some(ctx);
        }
        (0..self.slots.len())
            .filter(|&j| j != i)
            .find_map(|j| self.take_slot(j))
    }

    /// Wake a sleeper whatever the policy.
    pub fn wake_one(&self) {
        self.wake_searcher();
    }

    /// Timer fallback: wake a sleeper if work is waiting or nobody polls the sockets;
    /// with no sleeper, turn the socket loop here when it is stale.
    pub fn wake_if_pending(&self) {
        let waiting = self.queued.load(Ordering::SeqCst) > 0
            || self
                .slots
                .iter()
                .any(|s| s.occupied.load(Ordering::Relaxed));
        let sleepers = self.sleepers.load(Ordering::SeqCst);
        let stale = self.poller.get().is_some_and(|p| p.stale());
        if sleepers > 0 && (waiting || stale) {
            // Work waits, or nobody polls the sockets (the last poller is in a long
            // handler): a woken worker with nothing to run takes the poll over.
            self.wake_one();
        } else if let Some(p) = self.poller.get() {
            if waiting {
                p.unpark();
            }
            if stale {
                // Every worker is busy and none has turned the loop for 10-20 ms: this
                // (timer) thread does, so reads, accepts and flushes are never held
                // longer than that by long batches.
                p.poll(false, &|| false);
            }
        }
    }

    pub fn quit(&self) {
        self.quit.store(true, Ordering::SeqCst);
        if let Some(p) = self.poller.get() {
            p.unpark();
        }
        let _g = self.sleep_lock.lock();
        self.wake.notify_all();
    }

    pub fn is_quitting(&self) -> bool {
        self.quit.load(Ordering::SeqCst)
    }

    /// Sleep until woken (or 100 ms); true when it took a wake-up (a `searching`
    /// token, to give back with `done_searching`).
    fn sleep(&self) -> bool {
        let mut pending = self.sleep_lock.lock();
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        if *pending == 0 && self.queued.load(Ordering::SeqCst) == 0 && !self.is_quitting() {
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
}

/// How often an idle worker returns its allocator's free pages to the OS.
const TRIM_PERIOD: Duration = Duration::from_secs(1);

/// The body of worker thread `index`.
pub fn worker_main(rt: &'static Runtime, index: usize) {
    WORKER.with(|w| w.set(Some(index)));
    let weight = WEIGHTS.get(index).copied().unwrap_or(0);
    let monitor = &rt.scheduler.monitors[index];
    let mut held: Option<Arc<Context>> = None;
    let mut streak = 0u32;
    let mut trimmed = std::time::Instant::now();
    let sched = &rt.scheduler;
    let poller = sched.poller.get();
    let mut batches = 0u32;
    while !sched.is_quitting() {
        let next = held.take().or_else(|| sched.next_for(index, &mut streak));
        held = match next {
            Some(ctx) => {
                batches = batches.wrapping_add(1);
                if batches.is_multiple_of(POLL_EVERY) {
                    if let Some(p) = poller {
                        p.poll(false, &|| false);
                    }
                }
                dispatch_batch(rt, monitor, ctx, weight, index)
            }
            None => {
                // Idle: at most once a second, let the allocator return this thread's
                // free pages to the OS (it only does so when the thread allocates, and
                // an idle worker does not: memory freed by a burst would stay).
                if trimmed.elapsed() >= TRIM_PERIOD {
                    crate::message::trim_thread_heap();
                    trimmed = std::time::Instant::now();
                }
                if let Some(work) = sched.idle_work.get() {
                    work();
                }
                // Park in the I/O poll if nobody else is; events it delivers land in
                // this worker's slot and run next, here.
                let idle = || sched.queued.load(Ordering::SeqCst) == 0 && !sched.is_quitting();
                if poller.is_some_and(|p| p.poll(true, &idle)) {
                    continue;
                }
                if rt.scheduler.sleep() {
                    // Woken with a token: look once, then give it back (waking the
                    // next worker if this one found work and more is waiting).
                    let next = rt.scheduler.next_for(index, &mut streak);
                    rt.scheduler.done_searching(next.is_some());
                    next
                } else {
                    None
                }
            }
        };
    }
}

/// Run one turn of `ctx`; returns the queue to hold for the next turn, if any.
fn dispatch_batch(
    rt: &'static Runtime,
    monitor: &WorkerMonitor,
    ctx: Arc<Context>,
    weight: i32,
    index: usize,
) -> Option<Arc<Context>> {
    if ctx.is_retired() {
        rt.destroy(&ctx);
        return None;
    }
    let mut budget = 1usize;
    let mut done = 0usize;
    while done < budget {
        let popped = ctx.queue.pop()?;
        let (mut msg, overload) = (popped.msg, popped.overload);
        if done == 0 && weight >= 0 {
            budget = (popped.left >> weight).max(1);
        }
        done += 1;
        if overload > 0 {
            rt.log(
                ctx.handle(),
                &format!("error: May overload, message queue length = {overload}"),
            );
        }
        monitor.trigger(msg.source, ctx.handle());
        rt.dispatch(&ctx, &mut msg);
        monitor.trigger(0, 0);
        if ctx.is_retired() {
            rt.destroy(&ctx);
            return None;
        }
    }
    // Turn over: if another service is ready, run it and requeue this one only if it
    // still has messages; otherwise keep holding this one.
    match rt.scheduler.take_slot(index).or_else(|| rt.scheduler.pop()) {
        Some(next) => {
            if !ctx.queue.unschedule_if_empty() {
                rt.scheduler.push_global(ctx);
            }
            Some(next)
        }
        None => Some(ctx),
    }
}

/// The endless-loop monitor: every 5 s, a worker still inside the same dispatch as at
/// the previous check is reported and its service flagged.
pub fn monitor_main(rt: &'static Runtime) {
    'outer: loop {
        for m in &rt.scheduler.monitors {
            let version = m.version.load(Ordering::Acquire);
            if version == m.check_version.load(Ordering::Relaxed) {
                let dest = m.destination.load(Ordering::Relaxed);
                if dest != 0 {
                    if let Some(ctx) = rt.handles.grab(dest) {
                        ctx.set_endless();
                    }
                    rt.log(
                        0,
                        &format!(
                            "error: A message from [ :{:08x} ] to [ :{:08x} ] maybe in an endless loop (version = {})",
                            m.source.load(Ordering::Relaxed),
                            dest,
                            version
                        ),
                    );
                }
            } else {
                m.check_version.store(version, Ordering::Relaxed);
            }
        }
        for _ in 0..5 {
            if rt.scheduler.is_quitting() {
                break 'outer;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}
