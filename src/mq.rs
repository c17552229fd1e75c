//! Message queues: one FIFO per service, and the global run queue of services that
//! have messages waiting.
//!
//! Invariants (upstream's): a service queue is in the global queue at most once, held
//! by at most one worker at a time. `in_global` is set when the queue is pushed to the
//! global queue (or while a worker holds it) and cleared only by a pop that finds the
//! queue empty, under the queue's own lock, so a push after that pop re-schedules it.
//! A new queue starts with `in_global` set: messages sent during `init` wait until the
//! launcher schedules it explicitly.

use crate::message::Message;
use parking_lot::Mutex;
use std::collections::VecDeque;

const DEFAULT_QUEUE_SIZE: usize = 64;
pub const OVERLOAD_THRESHOLD: usize = 1024;

struct State {
    messages: VecDeque<Message>,
    in_global: bool,
    overload_threshold: usize,
    /// Queue length recorded when the threshold was crossed; reported once.
    overload: usize,
    /// Set when the owning service has been drained for good: pushes are refused.
    dead: bool,
}

pub struct MessageQueue {
    state: Mutex<State>,
}

/// A popped message, the queue length left behind, and the length to report as an
/// overload (0 unless the threshold was just crossed).
pub struct Popped {
    pub msg: Message,
    pub left: usize,
    pub overload: usize,
}

/// What a push did, so the caller can schedule the service.
#[must_use]
pub enum Pushed {
    /// The queue was idle: the caller must put it in the global queue.
    Schedule,
    /// Already scheduled or held by a worker.
    Queued,
}

impl Default for MessageQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageQueue {
    pub fn new() -> Self {
        MessageQueue {
            state: Mutex::new(State {
                messages: VecDeque::with_capacity(DEFAULT_QUEUE_SIZE),
                in_global: true,
                overload_threshold: OVERLOAD_THRESHOLD,
                overload: 0,
                dead: false,
            }),
        }
    }

    /// Append a message; a dead queue hands the message back.
    pub fn push(&self, msg: Message) -> Result<Pushed, Message> {
        let mut s = self.state.lock();
        if s.dead {
            return Err(msg);
        }
        s.messages.push_back(msg);
        if s.in_global {
            Ok(Pushed::Queued)
        } else {
            s.in_global = true;
            Ok(Pushed::Schedule)
        }
    }

    /// Pop one message. `None` means empty, and the queue is now unscheduled.
    pub fn pop(&self) -> Option<Popped> {
        let mut s = self.state.lock();
        match s.messages.pop_front() {
            Some(msg) => {
                let left = s.messages.len();
                while left > s.overload_threshold {
                    s.overload = left;
                    s.overload_threshold *= 2;
                }
                let overload = std::mem::take(&mut s.overload);
                Some(Popped {
                    msg,
                    left,
                    overload,
                })
            }
            None => {
                s.overload_threshold = OVERLOAD_THRESHOLD;
                s.in_global = false;
                None
            }
        }
    }

    /// Unschedule the queue if it is empty (true); a non-empty queue stays scheduled
    /// and the caller must requeue it.
    pub fn unschedule_if_empty(&self) -> bool {
        let mut s = self.state.lock();
        if s.messages.is_empty() {
            s.in_global = false;
            s.overload_threshold = OVERLOAD_THRESHOLD;
            true
        } else {
            false
        }
    }

    /// Refuse further pushes and take every queued message (the service is gone).
    pub fn close(&self) -> VecDeque<Message> {
        let mut s = self.state.lock();
        s.dead = true;
        std::mem::take(&mut s.messages)
    }

    pub fn len(&self) -> usize {
        self.state.lock().messages.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(session: i32) -> Message {
        Message::empty(1, session, 0)
    }

    #[test]
    fn fifo_and_scheduling_flag() {
        let q = MessageQueue::new();
        // New queues start scheduled (init in progress).
        assert!(matches!(q.push(m(1)), Ok(Pushed::Queued)));
        assert_eq!(q.pop().unwrap().msg.session, 1);
        assert!(q.pop().is_none()); // clears the flag
        assert!(matches!(q.push(m(2)), Ok(Pushed::Schedule)));
        assert!(matches!(q.push(m(3)), Ok(Pushed::Queued)));
        let first = q.pop().unwrap();
        assert_eq!((first.msg.session, first.left), (2, 1));
        assert_eq!(q.pop().unwrap().msg.session, 3);
        assert!(q.pop().is_none());
        assert!(q.unschedule_if_empty());
        assert!(matches!(q.push(m(4)), Ok(Pushed::Schedule)));
        assert!(!q.unschedule_if_empty());
        assert_eq!(q.close().len(), 1);
        assert!(q.push(m(5)).is_err());
    }

    #[test]
    fn overload_threshold_doubles_and_resets() {
        let q = MessageQueue::new();
        for i in 0..3000 {
            let _ = q.push(m(i));
        }
        assert_eq!(q.pop().unwrap().overload, 2999); // crossed 1024 and 2048
        assert_eq!(q.pop().unwrap().overload, 0); // threshold is 4096 now
        while q.pop().is_some() {}
        for i in 0..1100 {
            let _ = q.push(m(i));
        }
        assert_eq!(q.pop().unwrap().overload, 1099);
    }
}
