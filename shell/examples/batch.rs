//! Dynamic batching, as an ML dispatcher does it: requests are kept until `BATCH_SIZE` are
//! waiting or `BATCH_WAIT_US` microseconds have passed since the first, then processed in
//! one pass and all answered. The pass costs a fixed `BATCH_COST_US` (a model call's setup,
//! simulated by spinning) plus a little per request, so larger batches serve more requests
//! per second at some added latency.
//!
//! ```sh
//! BATCH_SIZE=16 cargo run --release --example batch
//! curl -d 'some input' http://127.0.0.1:8080/run
//! # {"batch":3,"size":1,"position":0,"bytes":10,"checksum":"..."}
//! ```
//!
//! Requests are spread over runners as usual (`/run/KEY` pins a key to one); each runner
//! batches its own. A request whose deadline passes while it waits gets 504 and leaves the
//! batch. Nothing is allocated after startup: the batch is a fixed table of kept requests.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use httpd_runner::alloc::CountingAlloc;
use httpd_runner::{Context, Error, Kept, Request, Response, Runner};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Most requests in one batch.
const MAX_BATCH: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Settings {
    size: usize,
    wait: Duration,
    cost: Duration,
}

/// One runner's batcher.
struct Batcher {
    settings: Settings,
    pending: heapless::Vec<Kept, MAX_BATCH>,
    batches: u64,
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Stands in for the fixed cost of one pass (a model call): busy for `d`.
fn work_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

impl Batcher {
    /// Processes everything pending, and the request being run if `current` has it, in one
    /// pass, and answers each request: the kept ones through the context, the current one
    /// through its own response (a kept handle cannot answer the request being run).
    fn flush(
        &mut self,
        cx: &mut Context<'_>,
        current: Option<(&Request<'_>, &mut Response<'_, '_>)>,
    ) {
        cx.cancel_alarm();
        let size = self.pending.len() + usize::from(current.is_some());
        if size == 0 {
            return;
        }
        self.batches += 1;
        work_for(self.settings.cost);
        let batch = self.batches;
        let answer = |position: usize, req: &Request<'_>, resp: &mut Response<'_, '_>| {
            let body = req.body();
            let _ = resp.header("Content-Type", b"application/json");
            writeln!(
                resp.body_mut(),
                r#"{{"batch":{batch},"size":{size},"position":{position},"bytes":{},"checksum":"{:08x}"}}"#,
                body.len(),
                fnv1a32(body)
            )
            .map_err(|_| Error::status(500))
        };
        for (position, kept) in std::mem::take(&mut self.pending).into_iter().enumerate() {
            // `false`: its deadline passed while it waited (the client has its 504).
            cx.answer(kept, |req, resp| answer(position, req, resp));
        }
        if let Some((req, resp)) = current {
            let _ = answer(size - 1, req, resp);
        }
    }
}

impl Runner for Batcher {
    fn run(
        &mut self,
        cx: &mut Context<'_>,
        req: &Request<'_>,
        resp: &mut Response<'_, '_>,
    ) -> Result<(), Error> {
        if self.pending.len() + 1 >= self.settings.size || self.pending.is_full() {
            // This request completes the batch: it is answered now, with the kept ones.
            self.flush(cx, Some((req, resp)));
            return Ok(());
        }
        let kept = cx.keep()?;
        let _ = self.pending.push(kept);
        if self.pending.len() == 1 {
            // The first of a batch: it leaves after `wait` at the latest.
            cx.alarm_in(self.settings.wait);
        }
        Ok(())
    }

    fn alarm(&mut self, cx: &mut Context<'_>) {
        self.flush(cx, None);
    }
}

fn env(name: &str, default: u64, max: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v <= max)
        .unwrap_or(default)
}

fn main() -> ExitCode {
    let settings = Settings {
        size: env("BATCH_SIZE", 16, MAX_BATCH as u64).max(1) as usize,
        wait: Duration::from_micros(env("BATCH_WAIT_US", 500, 1_000_000)),
        cost: Duration::from_micros(env("BATCH_COST_US", 50, 100_000)),
    };
    httpd_runner::cli::run(move |builder| {
        builder.runner(move |_| Batcher {
            settings,
            pending: heapless::Vec::new(),
            batches: 0,
        })
    })
}
