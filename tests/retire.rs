//! Retiring a service whose queue a worker holds (runtime level, no binary): the
//! queue must stay reachable so a worker drains it and the callers it owes get errors.

use skynet::context::Context;
use skynet::runtime;
use std::sync::Arc;

#[test]
fn retire_while_a_worker_holds_the_empty_queue() {
    let rt = runtime::init(0, 1, false);
    // A new queue starts "scheduled": exactly the state of a queue a worker holds
    // after dispatching its last message, just before its next (empty) pop.
    let ctx = rt.handles.register(|h| Arc::new(Context::new(h)));
    assert!(rt.retire(ctx.handle()));
    // The worker pops next. Before the fix this was None: the worker let the queue go
    // and nobody ever destroyed the retired service (owed callers hung forever).
    let mut popped = ctx
        .queue
        .pop()
        .expect("retired service lost: its queue went idle without a drain")
        .msg;
    // The marker is not delivered to the service; the worker then sees the flag.
    rt.dispatch(&ctx, &mut popped);
    assert!(ctx.is_retired());
    assert_eq!(
        ctx.message_count.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // Retiring twice is refused; the handle is gone.
    assert!(!rt.retire(ctx.handle()));
    assert!(rt.handles.grab(ctx.handle()).is_none());
}
