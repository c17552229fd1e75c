//! # The socket thread's hot path: mio loop vs tokio vs workers that poll
//!
//! Issue 14 asks whether a tokio-based socket thread would serve skynet-rs better than
//! its mio loop, and a parallel change proposes dropping the socket thread for
//! leader/follower polling by idle workers. This crate measures the three on the path
//! that `bench/run.sh sockecho` exercises, with nothing else in the process:
//!
//! * **Load** (`client.rs`, a child process so the server's getrusage is the server's
//!   alone): 32 loopback connections, each sending 64 bytes and waiting for the echo
//!   before sending again, as `cases.sockecho` in `bench/bench_main.lua` does.
//! * **Server, same thread structure as the runtime** (`sched.rs`): services with
//!   `mq.rs`-style queues (`in_global`, batch of `max(1, left)` per turn), the global
//!   run queue behind a mutex, workers sleeping on a condvar with `scheduler.rs`'s
//!   wake-up policy (its oversubscription gate included: `thread = 8` on 2 cores). The
//!   I/O side reads one block per readiness (the looper's adaptive size and shrink) and
//!   pushes it to the connection's service, scheduling it and waking a worker when it
//!   was idle. The worker spins `work_ns` for the Lua handler, then writes the echo
//!   directly to the fd under the connection's lock, like `SocketServer::send` with
//!   nothing queued. The echo service of sockecho is one service for every connection
//!   (`--services 1`); the sample's agents are one per connection (`--services N`).
//! * **Variants** (only the I/O side differs): `mio` = a socket thread running the
//!   looper's edge-triggered loop (`io_mio.rs`); `tokio` = a socket thread running a
//!   tokio `current_thread` runtime, one task per connection (`io_tokio.rs`);
//!   `workers-poll` = no socket thread, an idle worker leads the same mio loop and runs
//!   what it read inline, promoting a follower to poll meanwhile (`workers_poll.rs`;
//!   `workers-poll-inline` is the same without the promotion, a lower bound).
//!
//! Printed per run (one `RESULT` line): round trips/s, the server process's CPU time
//! (user + system, getrusage) per round trip, and its voluntary and involuntary context
//! switches per round trip, all over the measured window after a warm-up. `summary`
//! reads such lines and prints medians and paired ratios to `mio` (see `run.sh`).
//!
//! Not modelled (the same for every variant, or off the hot path): the socket
//! thread's request queue (sends that had to queue, starts, closes), the runtime's
//! two-block socket message (header + data), mimalloc, Lua itself.

mod client;
mod io_mio;
mod io_tokio;
mod sched;
mod workers_poll;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sched::Server;

const USAGE: &str = "usage:
  iothread-bench [--variant mio|tokio|workers-poll|workers-poll-inline]
                 [--workers N] [--load NAME]
                 [--conns N] [--services N] [--work-ns NS] [--size BYTES]
                 [--secs S] [--warmup S] [--client-threads N]
  iothread-bench summary < results      (medians and ratios to mio)
  iothread-bench client PORT CONNS THREADS SIZE
loads: io (1 service, no work), sockecho (1 service, 2 us per message),
       sample (50 connections, one service each, 10 us per message);
       flags override them";

struct Opts {
    variant: String,
    workers: usize,
    load: String,
    conns: usize,
    services: usize,
    work_ns: u64,
    size: usize,
    secs: f64,
    warmup: f64,
    client_threads: usize,
}

fn parse(args: &[String]) -> Opts {
    let mut o = Opts {
        variant: "mio".into(),
        workers: 2,
        load: "sockecho".into(),
        conns: 32,
        services: 1,
        work_ns: 2000,
        size: 64,
        secs: 2.0,
        warmup: 0.5,
        client_threads: 1,
    };
    // The load first: explicit flags override its settings.
    if let Some(i) = args.iter().position(|a| a == "--load") {
        o.load = args.get(i + 1).cloned().unwrap_or_default();
    }
    match o.load.as_str() {
        "io" => (o.services, o.work_ns) = (1, 0),
        "sockecho" => (o.services, o.work_ns) = (1, 2000),
        "sample" => (o.conns, o.services, o.work_ns) = (50, usize::MAX, 10_000),
        _ => die(&format!("unknown load {}", o.load)),
    }
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let val = it
            .next()
            .unwrap_or_else(|| die(&format!("{flag} needs a value")));
        let num = || -> f64 { val.parse().unwrap_or_else(|_| die(&format!("bad {flag}"))) };
        match flag.as_str() {
            "--variant" => o.variant = val.clone(),
            "--load" => {}
            "--workers" => o.workers = num() as usize,
            "--conns" => o.conns = num() as usize,
            "--services" => o.services = num() as usize,
            "--work-ns" => o.work_ns = num() as u64,
            "--size" => o.size = num() as usize,
            "--secs" => o.secs = num(),
            "--warmup" => o.warmup = num(),
            "--client-threads" => o.client_threads = num() as usize,
            _ => die(&format!("unknown flag {flag}")),
        }
    }
    o.services = o.services.min(o.conns);
    o
}

fn die(msg: &str) -> ! {
    eprintln!("{msg}\n{USAGE}");
    std::process::exit(2);
}

/// (CPU seconds, voluntary, involuntary context switches) of this process so far.
fn usage() -> (f64, i64, i64) {
    // SAFETY: getrusage fills the zeroed struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (
        secs(ru.ru_utime) + secs(ru.ru_stime),
        ru.ru_nvcsw,
        ru.ru_nivcsw,
    )
}

fn server(o: &Opts) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let srv = Arc::new(Server::new(o.workers, o.services, o.work_ns));
    match o.variant.as_str() {
        "mio" => io_mio::start(srv.clone(), listener, o.workers),
        "tokio" => io_tokio::start(srv.clone(), listener, o.workers),
        "workers-poll" => workers_poll::start(srv.clone(), listener, o.workers, true),
        "workers-poll-inline" => workers_poll::start(srv.clone(), listener, o.workers, false),
        v => die(&format!("unknown variant {v}")),
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = std::process::Command::new(exe)
        .args(["client", &port.to_string(), &o.conns.to_string()])
        .args([o.client_threads.to_string(), o.size.to_string()])
        .spawn()
        .expect("spawn client");
    let t0 = Instant::now();
    while srv.accepted.load(Ordering::SeqCst) < o.conns || srv.echoed.load(Ordering::SeqCst) == 0 {
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            die("the client did not connect");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_secs_f64(o.warmup));
    let (b0, u0, t0) = (srv.echoed.load(Ordering::SeqCst), usage(), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(o.secs));
    let (b1, u1, dt) = (
        srv.echoed.load(Ordering::SeqCst),
        usage(),
        t0.elapsed().as_secs_f64(),
    );
    let _ = child.kill();
    let _ = child.wait();
    let rts = ((b1 - b0) / o.size as u64).max(1) as f64;
    println!(
        "RESULT variant={} workers={} load={} rt_per_s={:.0} cpu_us_per_rt={:.3} \
         vcsw_per_rt={:.4} ivcsw_per_rt={:.4} conns={} services={} work_ns={}",
        o.variant,
        o.workers,
        o.load,
        rts / dt,
        (u1.0 - u0.0) * 1e6 / rts,
        (u1.1 - u0.1) as f64 / rts,
        (u1.2 - u0.2) as f64 / rts,
        o.conns,
        o.services,
        o.work_ns
    );
    std::process::exit(0);
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Medians per (load, workers, variant), and ratios to `mio` as the median of the
/// per-round ratios: the k-th run of a variant is paired with the k-th `mio` run of the
/// same load and worker count, which ran next to it (`run.sh` interleaves them), so
/// the pair shared the machine's background load.
fn summary() {
    const METRICS: [&str; 4] = ["rt_per_s", "cpu_us_per_rt", "vcsw_per_rt", "ivcsw_per_rt"];
    type Key = (String, usize, usize);
    let order = |v: &str| {
        ["mio", "tokio", "workers-poll"]
            .iter()
            .position(|x| *x == v)
    };
    let mut runs: BTreeMap<Key, (String, Vec<Vec<f64>>)> = BTreeMap::new();
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let Some(rest) = line.strip_prefix("RESULT ") else {
            continue;
        };
        let kv: BTreeMap<&str, &str> = rest.split(' ').filter_map(|f| f.split_once('=')).collect();
        let variant = kv["variant"].to_string();
        let key = (
            kv["load"].to_string(),
            kv["workers"].parse().unwrap_or(0),
            order(&variant).unwrap_or(9),
        );
        let e = runs
            .entry(key)
            .or_insert_with(|| (variant, vec![Vec::new(); METRICS.len()]));
        for (i, m) in METRICS.iter().enumerate() {
            e.1[i].push(kv.get(m).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN));
        }
    }
    println!(
        "| load | workers | variant | runs | round trips/s | CPU us/rt (min-max) | vol. cs/rt | invol. cs/rt | rt/s vs mio | CPU/rt vs mio | vol. cs/rt vs mio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut base: Option<(String, usize, Vec<Vec<f64>>)> = None;
    for ((load, workers, _), (variant, vals)) in runs {
        if variant == "mio" {
            base = Some((load.clone(), workers, vals.clone()));
        }
        let ratio = |i: usize| match &base {
            Some((l, w, b)) if *l == load && *w == workers => {
                let mut r: Vec<f64> = vals[i].iter().zip(&b[i]).map(|(x, y)| x / y).collect();
                format!("{:.2}", median(&mut r))
            }
            _ => "-".into(),
        };
        let (r0, r1, r2) = (ratio(0), ratio(1), ratio(2));
        let mut sorted = vals.clone();
        let med: Vec<f64> = sorted.iter_mut().map(|v| median(v)).collect();
        let cpu = &sorted[1];
        println!(
            "| {load} | {workers} | {variant} | {} | {:.0} | {:.2} ({:.1}-{:.1}) | {:.3} | {:.3} | {r0} | {r1} | {r2} |",
            cpu.len(),
            med[0],
            med[1],
            cpu[0],
            cpu[cpu.len() - 1],
            med[2],
            med[3],
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("client") => {
            let n = |i: usize| -> usize {
                args.get(i)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| die("client PORT CONNS THREADS SIZE"))
            };
            client::run(n(1) as u16, n(2), n(3), n(4));
        }
        Some("summary") => summary(),
        Some("-h" | "--help") => println!("{USAGE}"),
        _ => server(&parse(&args)),
    }
}
