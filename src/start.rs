//! Process startup and shutdown (config.md §4): config, defaults, signals, daemon,
//! logger, bootstrap, threads; and teardown when the last service is gone.

use crate::api::NativeService;
use crate::message::{ptype, Message};
use crate::{config, daemon, env, runtime};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

extern "C" fn on_signal(sig: libc::c_int) {
    if let Some(rt) = runtime::try_get() {
        match sig {
            libc::SIGHUP => rt.sighup.store(true, Ordering::Relaxed),
            _ => rt.sigterm.store(true, Ordering::Relaxed),
        }
    }
}

fn install_signals() {
    // SAFETY: plain sigaction setup with an async-signal-safe handler (atomic stores).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        for sig in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT] {
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Every native service a `LAUNCH` can name: the framework's, then the sample's.
fn native_service(name: &str) -> Option<Box<dyn NativeService>> {
    crate::services::create(name).or_else(|| crate::sample::create(name))
}

/// Run the node described by the config file at `path` until every service is gone.
pub fn run(path: &str) -> Result<(), String> {
    let entries = config::load(path).map_err(|e| e.0)?;
    for (k, v) in &entries {
        env::set(k, v);
    }
    let threads_text = env::get_or_default("thread", "8");
    let threads: i64 = threads_text.trim().parse().unwrap_or(0);
    if !(1..=1024).contains(&threads) {
        return Err(format!("Invalid thread {threads} , should be in [1,1024]"));
    }
    let harbor: u32 = match env::get_or_default("harbor", "1").trim().parse::<i64>() {
        Ok(h) if (0..=255).contains(&h) => h as u32,
        _ => return Err("Invalid config key harbor: must be an integer in [0,255]".into()),
    };
    crate::sample::package::frame_timeout_cs(env::get("frame_timeout").as_deref())?;
    env::get_or_default("cpath", "./cservice/?.so");
    let bootstrap = env::get_or_default("bootstrap", "snlua bootstrap");
    let logservice = env::get_or_default("logservice", "logger");
    let profile = env::get_or_default("profile", "true") == "true";
    let logger_param = env::get("logger");
    let pidfile = env::get("daemon");

    if let Some(p) = &pidfile {
        let _ = PIDFILE.set(p.clone());
    }
    let _pid_lock = match &pidfile {
        Some(p) => Some(daemon::daemonize(p)?),
        None => None,
    };

    let rt = runtime::init(harbor, threads as usize, profile, native_service);
    // Idle workers make Lua states ahead of time; a service start takes one and asks
    // for the next (src/lua/prestart.rs).
    rt.scheduler.set_idle_work(crate::lua::prestart::refill);
    crate::lua::prestart::set_waker(|| runtime::get().scheduler.wake_idle());
    runtime::on_dropped_multicast(crate::lua::modules::multicast::release_dropped);
    install_signals();

    let sink: crate::socket::Sink = Arc::new(|owner, data, size| {
        // SAFETY: the socket server hands over a payload block of `size` bytes.
        let msg = unsafe { Message::new(0, 0, ptype::SOCKET, data, size) };
        if let Err(m) = runtime::get().push(owner, msg) {
            // SAFETY: the undelivered socket message is ours, whole.
            unsafe { free_socket_message(m.data, m.size) };
        }
    });
    // Idle workers poll the sockets themselves (see scheduler::Poller);
    // `socket_thread = true` gives the socket server its own thread instead.
    let socket_thread = env::get_or_default("socket_thread", "false") == "true";
    let spin_text = env::get_or_default("socket_spin", "50");
    let socket_spin: u64 = spin_text.trim().parse().map_err(|_| {
        format!(
            "config key socket_spin = {spin_text:?}: expected microseconds (0 turns spinning off)"
        )
    })?;
    let server = match socket_thread {
        true => crate::socket::SocketServer::new(sink),
        false => crate::socket::SocketServer::new_shared(sink),
    };
    match server {
        Ok(s) => {
            if !socket_thread {
                // Spinning pays only when the spinner has a core of its own.
                if !rt.scheduler.oversubscribed() {
                    s.set_spin(Duration::from_micros(socket_spin));
                }
                rt.scheduler.set_poller(s.clone());
            }
            rt.install_socket_server(s)
        }
        Err(e) => return Err(format!("Can't start the socket server: {e}")),
    }

    let logger_line = match &logger_param {
        Some(p) => format!("{logservice} {p}"),
        None => logservice.clone(),
    };
    match rt.launch(&logger_line) {
        Some(h) => {
            rt.handles.bind_name("logger", h);
            rt.set_logger(h);
        }
        None => {
            finish(pidfile.as_deref());
            return Err(format!(
                "Can't launch {logservice} service (config keys logservice = {logservice:?}, logger = {:?})",
                logger_param.as_deref().unwrap_or("")
            ));
        }
    }

    let boot = bootstrap.trim_start();
    let (module, args) = match boot.split_once(' ') {
        Some((m, a)) => (m, a.trim_start()),
        None => (boot, ""),
    };
    let boot_line = if args.is_empty() {
        module.to_string()
    } else {
        format!("{module} {args}")
    };

    let mut threads_handles = Vec::new();
    for i in 0..rt.workers {
        threads_handles.push(
            std::thread::Builder::new()
                .name(format!("worker{i}"))
                .spawn(move || crate::scheduler::worker_main(runtime::get(), i))
                .map_err(|e| e.to_string())?,
        );
    }
    threads_handles.push(
        std::thread::Builder::new()
            .name("monitor".into())
            .spawn(|| crate::scheduler::monitor_main(runtime::get()))
            .map_err(|e| e.to_string())?,
    );
    let timer = std::thread::Builder::new()
        .name("timer".into())
        .spawn(|| timer_main(runtime::get()))
        .map_err(|e| e.to_string())?;

    if rt.launch(&boot_line).is_none() {
        rt.log(0, &format!("Bootstrap error : {bootstrap}\n"));
        std::thread::sleep(Duration::from_millis(100));
        std::process::exit(1);
    }

    let _ = timer.join();
    for t in threads_handles {
        let _ = t.join();
    }
    finish(pidfile.as_deref());
    Ok(())
}

/// The shared-mode socket server as the workers' I/O loop.
impl crate::scheduler::Poller for crate::socket::SocketServer {
    fn poll(&self, park: bool, may_park: &dyn Fn() -> bool) -> bool {
        crate::socket::SocketServer::poll(self, park, may_park)
    }

    fn unpark(&self) {
        crate::socket::SocketServer::unpark(self)
    }

    fn parked(&self) -> bool {
        crate::socket::SocketServer::parked(self)
    }

    fn stale(&self) -> bool {
        // Two centiseconds: a poll gap of 10-20 ms before a sleeper takes over.
        self.poll_stale(2)
    }
}

/// Free an undeliverable socket message and the data block it carries.
///
/// # Safety
/// `data` (null or `size` bytes) is an owned socket message payload from the socket
/// server, whose `buffer` field (if any) is owned too.
unsafe fn free_socket_message(data: *mut u8, size: usize) {
    if data.is_null() {
        return;
    }
    // SAFETY: socket payloads start with { i32 type, i32 id, i32 ud, *mut u8 buffer }.
    unsafe {
        if size >= 24 {
            let buffer = std::ptr::read_unaligned(data.add(16) as *const *mut u8);
            crate::message::payload_free(buffer);
        }
        crate::message::payload_free(data);
    }
}

fn finish(pidfile: Option<&str>) {
    if let Some(p) = pidfile {
        daemon::remove(p);
    }
}

/// How long an orderly shutdown (SIGTERM/SIGINT) may take before the process exits
/// anyway: a service stuck in an endless loop never gives its worker back.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The pid file to remove if the shutdown grace period runs out.
static PIDFILE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The timer thread: ticks, SIGHUP/SIGTERM handling, the workers' wake-up fallback.
fn timer_main(rt: &'static runtime::Runtime) {
    let mut aborting: Option<std::time::Instant> = None;
    while !rt.scheduler.is_quitting() {
        rt.timer.update(|ev| rt.fire_timer(ev));
        if rt.sighup.swap(false, Ordering::Relaxed) {
            let logger = rt.logger_handle();
            if logger != 0 {
                let _ = rt.push(logger, Message::empty(0, 0, ptype::SYSTEM));
            }
        }
        if rt.sigterm.load(Ordering::Relaxed) {
            match aborting {
                None => {
                    aborting = Some(std::time::Instant::now());
                    rt.abort();
                }
                Some(t) if t.elapsed() > SHUTDOWN_GRACE => {
                    eprintln!("skynet: services did not stop within {SHUTDOWN_GRACE:?}; exiting");
                    if let Some(p) = PIDFILE.get() {
                        daemon::remove(p);
                    }
                    std::process::exit(1);
                }
                Some(_) => {}
            }
        }
        rt.scheduler.wake_if_pending();
        std::thread::sleep(Duration::from_micros(2500));
    }
}
