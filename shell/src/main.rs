//! The `httpd-runner` binary: parse options, start the server, wait for shutdown.

use std::process::ExitCode;

use clap::Parser;
use httpd_runner::alloc::{self, CountingAlloc};
use httpd_runner::{Builder, Config};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() -> ExitCode {
    let cfg = Config::parse();
    let server = match Builder::new(cfg).start() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("httpd-runner: {e}");
            return ExitCode::from(1);
        }
    };
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
