//! `skynet CONFIG`: the drop-in entry point (same as upstream's `skynet config`).

use clap::Parser;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "skynet",
    version,
    about = "skynet-rs: a drop-in Rust runtime for skynet game servers",
    after_help = "Config reference: https://github.com/cloudwu/skynet/wiki/Config"
)]
struct Cli {
    /// The skynet config file (Lua syntax; $NAME is replaced by the environment variable).
    config: Option<String>,
    /// Ignored (upstream ignores extra arguments too).
    #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

fn main() -> ExitCode {
    // No transparent huge pages: every service state is a few dozen KB spread over the
    // allocator's arenas, and faulting those in as 2 MB pages spent ~40% of service
    // start-up zeroing memory (spawn 3.4k -> 4.7k services/s without them).
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    let cli = Cli::parse();
    let Some(config) = cli.config else {
        eprintln!("Need a config file. Please read skynet wiki : https://github.com/cloudwu/skynet/wiki/Config");
        eprintln!("usage: skynet configfilename");
        return ExitCode::from(1);
    };
    match skynet::start::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            ExitCode::from(1)
        }
    }
}

#[global_allocator]
static GLOBAL: mimalloc_global::MiMalloc = mimalloc_global::MiMalloc;

/// Rust's heap on mimalloc, like the Lua states and the payloads.
mod mimalloc_global {
    use libmimalloc_sys as mi;
    use std::alloc::{GlobalAlloc, Layout};
    use std::ffi::c_void;

    pub struct MiMalloc;

    unsafe impl GlobalAlloc for MiMalloc {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            mi::mi_malloc_aligned(l.size(), l.align()) as *mut u8
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            mi::mi_zalloc_aligned(l.size(), l.align()) as *mut u8
        }
        unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
            mi::mi_free(p as *mut c_void)
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            mi::mi_realloc_aligned(p as *mut c_void, new, l.align()) as *mut u8
        }
    }
}
