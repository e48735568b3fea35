//! The command-line entry point shared by the `httpd-runner` binary and the examples: parse
//! options, start, print the banner, set the startup mark, wait, print the summary.
//!
//! The binary that calls [`run`] should install [`crate::alloc::CountingAlloc`] as its global
//! allocator, so the allocation figures it reports are real.

use std::process::ExitCode;

use clap::Parser;

use crate::alloc;
use crate::{Builder, Config};

/// Runs a server configured from the command line; `customize` can swap the runner.
/// Exit codes: 0 after a clean shutdown, 1 when startup or a thread fails, 2 for bad options
/// (including options whose memory cannot be reserved).
pub fn run(customize: impl FnOnce(Builder) -> Builder) -> ExitCode {
    let cfg = Config::parse();
    let mut server = match customize(Builder::new(cfg)).start() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("httpd-runner: {e}");
            // Options that cannot fit in memory are bad options.
            let code = if e.kind() == std::io::ErrorKind::OutOfMemory {
                2
            } else {
                1
            };
            return ExitCode::from(code);
        }
    };
    if alloc::installed() {
        // Every thread has finished its setup (start waits for them): what is live now is
        // exactly what startup reserved on the heap.
        server.set_reserved_bytes(alloc::live());
    }
    eprintln!("{}", server.banner());
    alloc::mark_startup_complete();
    eprintln!(
        "startup complete: {} heap bytes live, allocations counted from here",
        alloc::live_at_startup()
    );
    match server.wait() {
        Ok(s) => {
            let after = alloc::after_startup();
            eprintln!(
                "stopped ({:?}): {} connections, {} requests, {} allocations after startup",
                s.reason, s.connections, s.requests, after.allocations
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("httpd-runner: {e}");
            ExitCode::from(1)
        }
    }
}
