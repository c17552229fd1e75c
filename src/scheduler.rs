//! The scheduler: the global run queue, the worker threads and the endless-loop monitor.
//!
//! Wake-up policy (see ../shared/design/hot-path.md): a worker keeps the service it
//! holds while the global queue is empty, so a request/reply pair ping-pongs on one
//! worker with no thread hand-off. A sleeping worker is woken when a push from a worker
//! leaves two or more services waiting, or at once when the push comes from outside
//! the workers (timer, socket, main thread). The timer thread also wakes one sleeper
//! every tick while work is waiting, as a fallback. No spinning: 2 cores.
//!
//! Batch weights follow upstream's table: worker i processes `len >> weight` messages
//! of a queue per turn (weight -1: one message), so some workers favour fairness and
//! others throughput under floods.

use crate::context::Context;
use crate::runtime::Runtime;
use parking_lot::{Condvar, Mutex};
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

const WEIGHTS: [i32; 32] = [
    -1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
    3, 3,
];

/// What the monitor thread watches on each worker.
#[derive(Default)]
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
        self.version.fetch_add(1, Ordering::Release);
    }
}

pub struct Scheduler {
    global: Mutex<VecDeque<Arc<Context>>>,
    queued: AtomicUsize,
    sleepers: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
    quit: AtomicBool,
    pub monitors: Vec<WorkerMonitor>,
}

impl Scheduler {
    pub fn new(workers: usize) -> Scheduler {
        Scheduler {
            global: Mutex::new(VecDeque::with_capacity(64)),
            queued: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
            quit: AtomicBool::new(false),
            monitors: (0..workers).map(|_| WorkerMonitor::default()).collect(),
        }
    }

    /// Put a service queue on the run queue and wake a worker if the policy says so.
    pub fn schedule(&self, ctx: Arc<Context>) {
        let len = {
            let mut g = self.global.lock();
            g.push_back(ctx);
            let len = g.len();
            self.queued.store(len, Ordering::SeqCst);
            len
        };
        if self.sleepers.load(Ordering::SeqCst) > 0 && (len >= 2 || !IS_WORKER.with(|w| w.get())) {
            self.wake_one();
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

    pub fn wake_one(&self) {
        let _g = self.sleep_lock.lock();
        self.wake.notify_one();
    }

    /// Timer fallback: wake a sleeper if work is waiting.
    pub fn wake_if_pending(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 && self.queued.load(Ordering::SeqCst) > 0 {
            self.wake_one();
        }
    }

    pub fn quit(&self) {
        self.quit.store(true, Ordering::SeqCst);
        let _g = self.sleep_lock.lock();
        self.wake.notify_all();
    }

    pub fn is_quitting(&self) -> bool {
        self.quit.load(Ordering::SeqCst)
    }

    fn sleep(&self) {
        let mut g = self.sleep_lock.lock();
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        if self.queued.load(Ordering::SeqCst) == 0 && !self.is_quitting() {
            self.wake.wait_for(&mut g, Duration::from_millis(100));
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The body of worker thread `index`.
pub fn worker_main(rt: &'static Runtime, index: usize) {
    IS_WORKER.with(|w| w.set(true));
    let weight = WEIGHTS.get(index).copied().unwrap_or(0);
    let monitor = &rt.scheduler.monitors[index];
    let mut held: Option<Arc<Context>> = None;
    while !rt.scheduler.is_quitting() {
        held = match held.take().or_else(|| rt.scheduler.pop()) {
            Some(ctx) => dispatch_batch(rt, monitor, ctx, weight),
            None => {
                rt.scheduler.sleep();
                None
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
    match rt.scheduler.pop() {
        Some(next) => {
            rt.scheduler.schedule(ctx);
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
