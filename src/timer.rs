//! The centisecond timer.
//!
//! One thread polls the monotonic clock every 2.5 ms and fires every elapsed tick in
//! order. Timers due within 256 ticks sit in a wheel of per-tick buckets (creation
//! order kept); later ones wait in a min-heap and fire from it when due. Expiry is a
//! `PTYPE_RESPONSE` with the timer's session, source 0, pushed to the owner.
//!
//! `now()` is centiseconds since start plus the centisecond part of the wall clock at
//! start (upstream's observable offset), readable from any thread without a lock.

use parking_lot::Mutex;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const WHEEL: usize = 256;

/// A timer's target: which service, which session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerEvent {
    pub handle: u32,
    pub session: i32,
}

struct Wheel {
    /// The last tick processed.
    tick: u64,
    buckets: Vec<Vec<TimerEvent>>,
    far: BinaryHeap<Reverse<(u64, u64, TimerEvent)>>,
    seq: u64,
}

pub struct Timer {
    wheel: Mutex<Wheel>,
    start: Instant,
    /// Centiseconds of the wall clock at start (0..99), added to `now`.
    start_cs: u64,
    /// Wall-clock UNIX seconds at start.
    start_time: u64,
    now: AtomicU64,
}

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer {
    pub fn new() -> Timer {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let start_cs = (wall.subsec_millis() / 10) as u64;
        Timer {
            wheel: Mutex::new(Wheel {
                tick: 0,
                buckets: (0..WHEEL).map(|_| Vec::new()).collect(),
                far: BinaryHeap::new(),
                seq: 0,
            }),
            start: Instant::now(),
            start_cs,
            start_time: wall.as_secs(),
            now: AtomicU64::new(start_cs),
        }
    }

    /// Centiseconds since start, plus the start offset.
    pub fn now(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    /// Wall-clock UNIX seconds at start.
    pub fn start_time(&self) -> u64 {
        self.start_time
    }

    /// Schedule `ev` after `ticks` (> 0) centiseconds.
    pub fn add(&self, ev: TimerEvent, ticks: u64) {
        let mut w = self.wheel.lock();
        let expire = w.tick + ticks.max(1);
        if ticks < WHEEL as u64 {
            w.buckets[(expire as usize) % WHEEL].push(ev);
        } else {
            w.seq += 1;
            let seq = w.seq;
            w.far.push(Reverse((expire, seq, ev)));
        }
    }

    /// Advance to the current time, calling `fire` for each due timer in tick order.
    /// Returns the number of ticks processed.
    pub fn update(&self, mut fire: impl FnMut(TimerEvent)) -> u64 {
        let elapsed = (self.start.elapsed().as_millis() / 10) as u64;
        self.advance_to(elapsed, &mut fire)
    }

    fn advance_to(&self, target: u64, fire: &mut impl FnMut(TimerEvent)) -> u64 {
        let mut ticks = 0;
        let mut due = Vec::new();
        loop {
            {
                let mut w = self.wheel.lock();
                if w.tick >= target {
                    break;
                }
                w.tick += 1;
                let tick = w.tick;
                while let Some(Reverse((expire, _, _))) = w.far.peek() {
                    if *expire > tick {
                        break;
                    }
                    let Reverse((_, _, ev)) = w.far.pop().unwrap();
                    due.push(ev);
                }
                due.append(&mut w.buckets[(tick as usize) % WHEEL]);
            }
            // Fire outside the lock: pushing may log or schedule.
            self.now
                .store(self.start_cs + self.wheel.lock().tick, Ordering::Relaxed);
            for ev in due.drain(..) {
                fire(ev);
            }
            ticks += 1;
        }
        ticks
    }
}

/// Monotonic clock in nanoseconds (`skynet.hpc`).
pub fn hpc() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(session: i32) -> TimerEvent {
        TimerEvent { handle: 1, session }
    }

    #[test]
    fn fires_in_time_order_near_and_far() {
        let t = Timer::new();
        t.add(ev(10), 10);
        t.add(ev(5), 5);
        t.add(ev(300), 300);
        t.add(ev(6), 5);
        t.add(ev(1000), 1000);
        let mut got = Vec::new();
        t.advance_to(4, &mut |e| got.push(e.session));
        assert!(got.is_empty());
        t.advance_to(5, &mut |e| got.push(e.session));
        assert_eq!(got, vec![5, 6]); // same tick: creation order
        t.advance_to(299, &mut |e| got.push(e.session));
        assert_eq!(got, vec![5, 6, 10]);
        t.advance_to(300, &mut |e| got.push(e.session));
        assert_eq!(got, vec![5, 6, 10, 300]);
        let n = t.advance_to(1000, &mut |e| got.push(e.session));
        assert_eq!(n, 700);
        assert_eq!(got, vec![5, 6, 10, 300, 1000]);
    }

    #[test]
    fn now_starts_with_wall_clock_fraction() {
        let t = Timer::new();
        assert!(t.now() < 100);
        let before = t.now();
        t.add(ev(1), 3);
        let mut fired = 0;
        t.advance_to(3, &mut |_| fired += 1);
        assert_eq!(fired, 1);
        assert_eq!(t.now(), before + 3);
    }

    #[test]
    fn wheel_wraps_around_many_times() {
        let t = Timer::new();
        let mut got = 0;
        for round in 0..5u64 {
            t.add(ev(round as i32), 200);
            t.advance_to((round + 1) * 200, &mut |_| got += 1);
        }
        assert_eq!(got, 5);
    }
}
