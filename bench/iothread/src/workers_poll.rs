//! Variant `workers-poll` (leader/follower): no socket thread. An idle worker that
//! finds no runnable service takes the poll (a `try_lock`; the others sleep on the run
//! queue's condvar as usual), blocks in it, runs the mio loop's turn itself, and keeps
//! the first service made runnable in its own slot, running it inline (further ones go
//! to the global queue under the usual wake-up policy). Before processing, a leader
//! that found work promotes one sleeping follower, which takes the poll while the
//! leader runs the handlers (the classic leader/follower hand-off). Work pushed while
//! a worker is blocked in the poll wakes it through the poll's waker.
//!
//! `workers-poll-inline` leaves the promotion out: the leader runs what it read and
//! then polls again, so with one busy service one worker does everything and nothing
//! is handed between threads. It is a lower bound, not a design: while its handlers
//! run, nobody reads the sockets (other workers take the poll only when they wake up
//! idle, at the latest after their 100 ms sleep).

use std::sync::Arc;

use parking_lot::Mutex;

use crate::io_mio::MioLoop;
use crate::sched::Server;

fn worker(srv: &Server, lp: &Mutex<MioLoop>, promote: bool) {
    let mut held = None;
    let mut slot = None;
    loop {
        if let Some(svc) = held
            .take()
            .or_else(|| slot.take())
            .or_else(|| srv.sched.pop())
        {
            held = srv.run_turn(svc, &mut slot);
            continue;
        }
        if let Some(mut l) = lp.try_lock() {
            l.wait(Some(&srv.sched.polling), srv);
            l.handle(srv, |conn, data| {
                if let Some(svc) = srv.deliver(conn, data) {
                    if slot.is_none() {
                        slot = Some(svc);
                    } else {
                        srv.sched.push_global(svc);
                    }
                }
            });
            drop(l);
            if promote && slot.is_some() {
                srv.sched.wake_searcher();
            }
            continue;
        }
        held = srv.sched.idle();
    }
}

pub fn start(srv: Arc<Server>, listener: std::net::TcpListener, workers: usize, promote: bool) {
    let lp = MioLoop::new(listener);
    let _ = srv.sched.poll_waker.set(lp.waker());
    let lp = Arc::new(Mutex::new(lp));
    for _ in 0..workers {
        let (srv, lp) = (srv.clone(), lp.clone());
        std::thread::spawn(move || worker(&srv, &lp, promote));
    }
}
