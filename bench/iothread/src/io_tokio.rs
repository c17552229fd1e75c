//! Variant `tokio`: the socket thread runs a tokio `current_thread` runtime with one
//! task per connection. A task reads with `AsyncReadExt::read_buf` on tokio's
//! `TcpStream` (a short read clears tokio's readiness, so, like the mio loop, there is
//! one `read` per readiness and no extra EAGAIN read), into a fresh block of the same
//! adaptive size, and hands it to the service exactly as the mio loop does. A read
//! that filled its block yields to the other tasks first (the mio loop's ready list).
//! The workers write the echo to the raw fd themselves, as in the runtime.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::io_mio::{adapt, shrink, RSIZE_INIT};
use crate::sched::Server;

async fn conn_task(srv: Arc<Server>, id: usize, mut stream: TcpStream) {
    let mut rsize = RSIZE_INIT;
    loop {
        let cap = rsize;
        let mut buf = Vec::with_capacity(cap);
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let (next, again) = adapt(cap, n);
                rsize = next;
                shrink(&mut buf, cap);
                srv.deliver_offworker(id, buf);
                if again {
                    tokio::task::yield_now().await;
                }
            }
        }
    }
}

pub fn start(srv: Arc<Server>, listener: std::net::TcpListener, workers: usize) {
    for _ in 0..workers {
        let srv = srv.clone();
        std::thread::spawn(move || srv.worker_main());
    }
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("tokio runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            while let Ok((stream, _)) = listener.accept().await {
                let id = srv.add_conn(stream.as_raw_fd());
                tokio::spawn(conn_task(srv.clone(), id, stream));
            }
        });
    });
}
