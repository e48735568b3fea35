//! Counters every thread bumps without locks, and their Prometheus text rendering.
//!
//! Each counter has exactly one writing thread (the listener, one handler or one runner), so
//! an increment is a relaxed load and store, not a locked read-modify-write; readers
//! (`/metrics`) sum the per-thread values. Rendering writes into a fixed buffer through
//! `core::fmt::Write`, so it allocates nothing.

use std::fmt::Write;

use httpd_runner_core::parse::Error as ParseError;
use httpd_runner_core::sync::{AtomicU64, Ordering};
use httpd_runner_core::text::FixedBuf;

use crate::alloc;

/// A counter with one writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning thread may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        // Relaxed load+store is exact with a single writer; readers only need some recent value.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts `n` (for gauges with one writer).
    #[inline]
    pub fn sub(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(n),
            Ordering::Relaxed,
        );
    }

    /// The current value.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Route labels for `requests_total`.
pub const ROUTES: [&str; 5] = ["run", "shutdown", "metrics", "health", "other"];
/// Status codes with their own label; anything else counts as `other`.
pub const CODES: [u16; 17] = [
    200, 400, 403, 404, 405, 408, 413, 414, 417, 431, 500, 501, 503, 505, 201, 204, 0,
];
/// Timeout kinds.
pub const TIMEOUTS: [&str; 4] = ["head", "body", "idle", "write"];
/// Upper bounds of the service-time histogram, in microseconds.
pub const BUCKETS_US: [u64; 14] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 500_000, 1_000_000,
];

/// Index of `code` in [`CODES`] (the last is "other").
#[must_use]
pub fn code_index(code: u16) -> usize {
    CODES
        .iter()
        .position(|&c| c == code)
        .unwrap_or(CODES.len() - 1)
}

/// What one handler counts.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct HandlerMetrics {
    /// Requests answered, by route and status.
    pub requests: [[Counter; CODES.len()]; ROUTES.len()],
    /// Bytes read from sockets.
    pub bytes_in: Counter,
    /// Bytes written to sockets.
    pub bytes_out: Counter,
    /// Request bodies read into their slot together with their head (no copy).
    pub bodies_in_place: Counter,
    /// Reads whose guess of the next head's length or body was wrong (then copied).
    pub in_place_misses: Counter,
    /// Wrong guesses that left more input in the slot than the read buffer could take back.
    pub in_place_spills: Counter,
    /// Times a loop turn stopped reading to write the runners' answers (see `HARVEST_BYTES`).
    pub harvests: Counter,
    /// Writes of several small responses copied into one buffer (see `GATHER_BYTES`).
    pub gathered_writes: Counter,
    /// Connections this handler closed.
    pub closed: Counter,
    /// Requests answered 503 because a runner's queue was full (`--ring-capacity`).
    pub shed: Counter,
    /// Requests answered 503 because they would have waited past `--shed-after` at their
    /// runner (the wait for a slot included).
    pub shed_queue: Counter,
    /// Requests answered 503 (and their connection closed) because they waited past
    /// `--shed-after` for a request slot.
    pub shed_waiting: Counter,
    /// Connections whose peer reset them (or shut both directions) while open.
    pub resets: Counter,
    /// Times the handler waited for quick runners (yielding) instead of sleeping.
    pub awaits: Counter,
    /// Of those, waits that ran out with no answer (then it slept).
    pub awaits_ran_out: Counter,
    /// Microseconds spent in those waits.
    pub await_us: Counter,
    /// Times the handler changed the cores it may run on (see `pin::Placement`).
    pub moves: Counter,
    /// Timeouts by kind.
    pub timeouts: [Counter; TIMEOUTS.len()],
    /// Parse errors by kind.
    pub parse_errors: [Counter; ParseError::ALL.len()],
    /// Service time histogram (dispatch to response ready), cumulative per bucket on render.
    pub service_buckets: [Counter; BUCKETS_US.len() + 1],
    /// Sum of service times, µs.
    pub service_sum_us: Counter,
}

impl HandlerMetrics {
    /// Records a service time.
    pub fn observe_service_us(&self, us: u64) {
        let i = BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BUCKETS_US.len());
        self.service_buckets[i].inc();
        self.service_sum_us.add(us);
    }
}

/// What one runner counts.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct RunnerMetrics {
    /// Jobs run.
    pub jobs: Counter,
    /// Runner panics caught (each answered 500).
    pub panics: Counter,
    /// Times the runner polled its rings instead of sleeping (`--spin-us`, light load).
    pub polls: Counter,
    /// Polls that found a job (the rest ran out and slept).
    pub poll_hits: Counter,
    /// Times the runner went to sleep with its rings empty.
    pub sleeps: Counter,
    /// Times the runner found its rings empty and began to spin.
    pub idles: Counter,
}

/// Picks one counter out of a runner's metrics.
type RunnerField = fn(&RunnerMetrics) -> &Counter;

/// What the listener counts.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct ListenerMetrics {
    /// Connections accepted and handed to a handler.
    pub accepted: Counter,
    /// Connections refused (503 and close) at the connection limit or a full hand-off ring.
    pub refused: Counter,
}

/// All metrics, made at startup.
#[derive(Debug)]
pub struct Metrics {
    /// Listener counters.
    pub listener: ListenerMetrics,
    /// Per handler.
    pub handlers: Vec<HandlerMetrics>,
    /// Per runner.
    pub runners: Vec<RunnerMetrics>,
    /// Jobs queued or running at each runner, per handler: `depth[h * runners + r]`.
    pub depth: Vec<Counter>,
    /// Bytes reserved at startup.
    pub reserved_bytes: AtomicU64,
}

impl Metrics {
    /// Zeroed metrics for `handlers` and `runners` threads.
    #[must_use]
    pub fn new(handlers: usize, runners: usize, reserved_bytes: u64) -> Self {
        Self {
            listener: ListenerMetrics::default(),
            handlers: (0..handlers).map(|_| HandlerMetrics::default()).collect(),
            runners: (0..runners).map(|_| RunnerMetrics::default()).collect(),
            depth: (0..handlers * runners)
                .map(|_| Counter::default())
                .collect(),
            reserved_bytes: AtomicU64::new(reserved_bytes),
        }
    }

    fn sum(&self, f: impl Fn(&HandlerMetrics) -> u64) -> u64 {
        self.handlers.iter().map(f).sum()
    }

    /// Connections open right now.
    #[must_use]
    pub fn open_connections(&self) -> u64 {
        self.listener
            .accepted
            .get()
            .saturating_sub(self.sum(|h| h.closed.get()))
    }

    /// Total requests answered.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.sum(|h| h.requests.iter().flatten().map(Counter::get).sum())
    }

    /// Writes the Prometheus text exposition.
    ///
    /// # Errors
    /// When `out` is too small.
    pub fn render(&self, out: &mut FixedBuf<'_>) -> std::fmt::Result {
        let p = "httpd_runner";
        writeln!(
            out,
            "# HELP {p}_requests_total Requests answered, by route and status code."
        )?;
        writeln!(out, "# TYPE {p}_requests_total counter")?;
        for (r, route) in ROUTES.iter().enumerate() {
            for (c, code) in CODES.iter().enumerate() {
                let n = self.sum(|h| h.requests[r][c].get());
                if n > 0 || (r == 0 && *code == 200) {
                    if *code == 0 {
                        writeln!(
                            out,
                            "{p}_requests_total{{route=\"{route}\",code=\"other\"}} {n}"
                        )?;
                    } else {
                        writeln!(
                            out,
                            "{p}_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}"
                        )?;
                    }
                }
            }
        }
        counter(
            out,
            p,
            "received_bytes_total",
            "Bytes read from client sockets.",
            self.sum(|h| h.bytes_in.get()),
        )?;
        counter(
            out,
            p,
            "sent_bytes_total",
            "Bytes written to client sockets.",
            self.sum(|h| h.bytes_out.get()),
        )?;
        counter(
            out,
            p,
            "bodies_in_place_total",
            "Request bodies read into their slot in the same read as their head (not copied).",
            self.sum(|h| h.bodies_in_place.get()),
        )?;
        counter(
            out,
            p,
            "in_place_misses_total",
            "Reads split on a wrong guess of the next request's head and body lengths (then copied).",
            self.sum(|h| h.in_place_misses.get()),
        )?;
        counter(
            out,
            p,
            "in_place_spills_total",
            "Wrong guesses whose input did not all fit back in the read buffer (the rest is handed out from the slot).",
            self.sum(|h| h.in_place_spills.get()),
        )?;
        counter(
            out,
            p,
            "harvests_total",
            "Times a handler stopped reading mid-turn to write the answers already back from runners.",
            self.sum(|h| h.harvests.get()),
        )?;
        counter(
            out,
            p,
            "gathered_writes_total",
            "Socket writes that sent several small responses copied into one buffer instead of a writev.",
            self.sum(|h| h.gathered_writes.get()),
        )?;
        gauge(
            out,
            p,
            "connections_open",
            "Client connections open now.",
            self.open_connections(),
        )?;
        counter(
            out,
            p,
            "connections_accepted_total",
            "Client connections accepted.",
            self.listener.accepted.get(),
        )?;
        counter(
            out,
            p,
            "connections_refused_total",
            "Client connections refused with 503 (limit or full hand-off).",
            self.listener.refused.get(),
        )?;
        counter(
            out,
            p,
            "shed_total",
            "Requests answered 503 with Retry-After under overload, for any reason below.",
            self.sum(|h| h.shed.get() + h.shed_queue.get() + h.shed_waiting.get()),
        )?;
        writeln!(out, "# HELP {p}_shed_by_reason_total Requests shed with 503: ring_full (--ring-capacity), queue_wait (expected wait at the runner past --shed-after), slot_wait (waited past --shed-after for a request slot).\n# TYPE {p}_shed_by_reason_total counter")?;
        for (reason, v) in [
            ("ring_full", self.sum(|h| h.shed.get())),
            ("queue_wait", self.sum(|h| h.shed_queue.get())),
            ("slot_wait", self.sum(|h| h.shed_waiting.get())),
        ] {
            writeln!(out, "{p}_shed_by_reason_total{{reason=\"{reason}\"}} {v}")?;
        }
        counter(
            out,
            p,
            "connections_reset_total",
            "Connections closed at once because the peer reset them (or shut both directions).",
            self.sum(|h| h.resets.get()),
        )?;
        counter(
            out,
            p,
            "runner_awaits_total",
            "Times a handler waited for quick runners' answers (yielding its core) instead of sleeping.",
            self.sum(|h| h.awaits.get()),
        )?;
        counter(
            out,
            p,
            "runner_awaits_ran_out_total",
            "Waits for runners that ran out with no answer (the handler then slept).",
            self.sum(|h| h.awaits_ran_out.get()),
        )?;
        counter(
            out,
            p,
            "handler_moves_total",
            "Times a handler moved off the runners' cores (load turned light) or back (it did not).",
            self.sum(|h| h.moves.get()),
        )?;
        let await_us = self.sum(|h| h.await_us.get());
        writeln!(
            out,
            "# HELP {p}_runner_await_seconds_total Time handlers spent waiting for runners' answers instead of sleeping.\n# TYPE {p}_runner_await_seconds_total counter\n{p}_runner_await_seconds_total {}.{:06}",
            await_us / 1_000_000,
            await_us % 1_000_000
        )?;
        let per_runner: [(&str, &str, RunnerField); 6] = [
            ("jobs_total", "Jobs run, per runner.", |r| &r.jobs),
            ("panics_total", "Runner panics caught (answered 500).", |r| &r.panics),
            (
                "polls_total",
                "Times an idle runner polled its rings instead of sleeping (--spin-us, light load).",
                |r| &r.polls,
            ),
            ("poll_hits_total", "Polls that found a job before they ran out.", |r| &r.poll_hits),
            ("sleeps_total", "Times a runner slept with its rings empty.", |r| &r.sleeps),
            (
                "idles_total",
                "Times a runner found its rings empty and spun before polling or sleeping.",
                |r| &r.idles,
            ),
        ];
        for (name, help, field) in per_runner {
            writeln!(
                out,
                "# HELP {p}_runner_{name} {help}\n# TYPE {p}_runner_{name} counter"
            )?;
            for (i, r) in self.runners.iter().enumerate() {
                writeln!(
                    out,
                    "{p}_runner_{name}{{runner=\"{i}\"}} {}",
                    field(r).get()
                )?;
            }
        }
        writeln!(out, "# HELP {p}_runner_queue_depth Jobs queued or running at each runner.\n# TYPE {p}_runner_queue_depth gauge")?;
        let runners = self.runners.len();
        for r in 0..runners {
            let d: u64 = (0..self.handlers.len())
                .map(|h| self.depth[h * runners + r].get())
                .sum();
            writeln!(out, "{p}_runner_queue_depth{{runner=\"{r}\"}} {d}")?;
        }
        writeln!(out, "# HELP {p}_timeouts_total Connections timed out, by phase.\n# TYPE {p}_timeouts_total counter")?;
        for (i, kind) in TIMEOUTS.iter().enumerate() {
            writeln!(
                out,
                "{p}_timeouts_total{{kind=\"{kind}\"}} {}",
                self.sum(|h| h.timeouts[i].get())
            )?;
        }
        writeln!(out, "# HELP {p}_parse_errors_total Requests refused by the parser, by kind.\n# TYPE {p}_parse_errors_total counter")?;
        for (i, e) in ParseError::ALL.iter().enumerate() {
            writeln!(
                out,
                "{p}_parse_errors_total{{kind=\"{}\"}} {}",
                e.kind(),
                self.sum(|h| h.parse_errors[i].get())
            )?;
        }
        let a = alloc::after_startup();
        gauge(
            out,
            p,
            "allocator_counting",
            "1 if the counting allocator is installed (allocation figures are real).",
            u64::from(alloc::installed()),
        )?;
        counter(
            out,
            p,
            "allocations_after_startup_total",
            "Heap allocations since startup completed.",
            a.allocations,
        )?;
        counter(
            out,
            p,
            "reallocations_after_startup_total",
            "Heap reallocations since startup completed.",
            a.reallocations,
        )?;
        counter(
            out,
            p,
            "allocated_bytes_after_startup_total",
            "Bytes allocated since startup completed.",
            a.bytes,
        )?;
        gauge(
            out,
            p,
            "memory_reserved_bytes",
            "Memory reserved at startup for buffers, slots, rings and tables.",
            self.reserved_bytes.load(Ordering::Relaxed),
        )?;
        writeln!(out, "# HELP {p}_request_duration_seconds Time from dispatch to response ready.\n# TYPE {p}_request_duration_seconds histogram")?;
        let mut cumulative = 0;
        for (i, le) in BUCKETS_US.iter().enumerate() {
            cumulative += self.sum(|h| h.service_buckets[i].get());
            writeln!(
                out,
                "{p}_request_duration_seconds_bucket{{le=\"{}.{:06}\"}} {cumulative}",
                le / 1_000_000,
                le % 1_000_000
            )?;
        }
        cumulative += self.sum(|h| h.service_buckets[BUCKETS_US.len()].get());
        writeln!(
            out,
            "{p}_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        )?;
        let sum_us = self.sum(|h| h.service_sum_us.get());
        writeln!(
            out,
            "{p}_request_duration_seconds_sum {}.{:06}",
            sum_us / 1_000_000,
            sum_us % 1_000_000
        )?;
        writeln!(out, "{p}_request_duration_seconds_count {cumulative}")
    }
}

fn counter(out: &mut FixedBuf<'_>, p: &str, name: &str, help: &str, v: u64) -> std::fmt::Result {
    sample(out, p, name, "counter", help, v)
}

fn gauge(out: &mut FixedBuf<'_>, p: &str, name: &str, help: &str, v: u64) -> std::fmt::Result {
    sample(out, p, name, "gauge", help, v)
}

/// One unlabelled metric with its HELP and TYPE lines.
fn sample(
    out: &mut FixedBuf<'_>,
    p: &str,
    name: &str,
    kind: &str,
    help: &str,
    v: u64,
) -> std::fmt::Result {
    writeln!(
        out,
        "# HELP {p}_{name} {help}\n# TYPE {p}_{name} {kind}\n{p}_{name} {v}"
    )
}
