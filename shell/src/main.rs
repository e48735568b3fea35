//! The `httpd-runner` binary: the default echo runner behind the command line.

use std::process::ExitCode;

use httpd_runner::alloc::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() -> ExitCode {
    httpd_runner::cli::run(|builder| builder)
}
