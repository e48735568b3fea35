//! Counters every thread bumps without locks, and their Prometheus text rendering.
//!
//! Each counter has exactly one writing thread (the listener, one handler or one runner), so
//! an increment is a relaxed load and store, not a locked read-modify-write; readers
//! (`/metrics`) sum the per-thread values. Rendering writes into a fixed buffer through
//! `core::fmt::Write`, so it allocates nothing; that buffer is sized at startup for the
//! number of threads ([`Metrics::render_bound`]). Every series is there from startup, at 0.

use std::fmt::Write;

use httpd_runner_core::admit::Shed;
use httpd_runner_core::conn::Timeout;
use httpd_runner_core::deadline::Expiry;
use httpd_runner_core::observe::STATUS_CLASSES;
use httpd_runner_core::parse::Error as ParseError;
use httpd_runner_core::response::{status_index, COUNTED_STATUSES};
use httpd_runner_core::route::RouteLabel;
use httpd_runner_core::sync::{AtomicU64, Ordering};

use crate::alloc;
use crate::listener::AcceptError;

mod latency;
mod process;
mod ticks;
pub(crate) use latency::Latency;

/// A counter with one writer.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning thread may call this.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        // Relaxed load+store is exact with a single writer; readers only need some recent value.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one.
    #[inline]
    pub(crate) fn inc(&self) {
        self.add(1);
    }

    /// Subtracts `n` (for gauges with one writer).
    #[inline]
    pub(crate) fn sub(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(n),
            Ordering::Relaxed,
        );
    }

    /// Sets the value (for gauges with one writer).
    #[inline]
    pub(crate) fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Raises the value to `v` if it is lower (a maximum with one writer).
    #[inline]
    pub(crate) fn raise(&self, v: u64) {
        if v > self.get() {
            self.set(v);
        }
    }

    /// The current value.
    #[must_use]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Status labels: the counted statuses and `other`.
const STATUS_LABELS: usize = COUNTED_STATUSES.len() + 1;

/// What one handler counts.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct HandlerMetrics {
    /// Requests answered, by route and status.
    pub requests: [[Counter; STATUS_LABELS]; RouteLabel::ALL.len()],
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
    /// Large head buffers lent out now (a gauge).
    pub large_heads: Counter,
    /// Times a head outgrew its connection's buffer while no large one was free.
    pub large_head_waits: Counter,
    /// Chunked bodies moved from a small request slot to a large one.
    pub slot_moves: Counter,
    /// Times a request waited for a slot of its class, by class.
    pub slot_waits: [Counter; 2],
    /// Writes of several small responses copied into one buffer (see `GATHER_BYTES`).
    pub gathered_writes: Counter,
    /// Connections this handler closed.
    pub closed: Counter,
    /// Requests answered 503 under overload, by reason.
    pub shed: [Counter; Shed::ALL.len()],
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
    pub timeouts: [Counter; Timeout::ALL.len()],
    /// Parse errors by kind.
    pub parse_errors: [Counter; ParseError::ALL.len()],
    /// Request received to its response's last byte written, by route and status class.
    pub last_byte: [[Latency; STATUS_CLASSES.len()]; RouteLabel::ALL.len()],
    /// Access-log records dropped because the ring to the writer was full.
    pub access_dropped: Counter,
    /// Requests answered 504 because their deadline passed, by where they were.
    pub expired: [Counter; Expiry::ALL.len()],
}

impl HandlerMetrics {
    /// Counts one answered request.
    #[inline]
    pub(crate) fn count_request(&self, route: RouteLabel, status: u16) {
        self.requests[route.index()][status_index(status)].inc();
    }

    /// Records a response's time to its last byte.
    #[inline]
    pub(crate) fn observe_last_byte(&self, route: RouteLabel, status: u16, us: u64) {
        let class = httpd_runner_core::observe::status_class(status);
        self.last_byte[route.index()][class].observe(us);
    }
}

/// What one runner counts.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct RunnerMetrics {
    /// Jobs run.
    pub jobs: Counter,
    /// Runner panics caught (each answered 500).
    pub panics: Counter,
    /// Responses whose body outgrew its buffer while the runner answered success (sent as
    /// 500, never truncated).
    pub overflows: Counter,
    /// Times the runner polled its rings instead of sleeping (`--spin-us`, light load).
    pub polls: Counter,
    /// Polls that found a job (the rest ran out and slept).
    pub poll_hits: Counter,
    /// Times the runner went to sleep with its rings empty.
    pub sleeps: Counter,
    /// Times the runner found its rings empty and began to spin.
    pub idles: Counter,
    /// Calls that returned an error status (sent as that status).
    pub errors: Counter,
    /// Ticks run.
    pub ticks: Counter,
    /// Ticks missed entirely (a long call held the thread past a whole period).
    pub ticks_skipped: Counter,
    /// How late each tick ran.
    pub tick_lateness: Latency,
    /// Dispatched by a handler to taken by this runner.
    pub queue_wait: Latency,
    /// Time in `run`.
    pub service: Latency,
    /// Calls (`run`, tick, alarm) longer than `--stall-threshold`.
    pub stalls: Counter,
    /// The longest such call, µs.
    pub stall_max_us: Counter,
    /// The latest a tick ran, µs.
    pub tick_lateness_max_us: Counter,
    /// Requests kept for a later answer now (a gauge).
    pub kept: Counter,
}

/// What the listener counts.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct ListenerMetrics {
    /// Connections accepted and handed to a handler.
    pub accepted: Counter,
    /// Connections refused (503 and close) at the connection limit or a full hand-off ring.
    pub refused: Counter,
    /// Failed `accept` calls, by [`AcceptError`] kind.
    pub accept_errors: [Counter; AcceptError::ALL.len()],
}

/// All metrics, made at startup.
#[derive(Debug)]
pub(crate) struct Metrics {
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
    /// 1 while draining (written by whoever starts the drain, once).
    pub draining: Counter,
    /// When the server started, µs since the Unix epoch.
    pub started_unix_us: u64,
    /// Access-log lines written (by the access-log thread).
    pub access_lines: Counter,
}

impl Metrics {
    /// Bytes of the metrics for `handlers` and `runners` threads.
    pub(crate) const fn bytes(handlers: usize, runners: usize) -> usize {
        std::mem::size_of::<Self>()
            + handlers * std::mem::size_of::<HandlerMetrics>()
            + runners * std::mem::size_of::<RunnerMetrics>()
            + handlers * runners * std::mem::size_of::<Counter>()
    }

    /// Zeroed metrics for `handlers` and `runners` threads.
    #[must_use]
    pub(crate) fn new(
        handlers: usize,
        runners: usize,
        reserved_bytes: u64,
        started_unix_us: u64,
    ) -> Self {
        Self {
            listener: ListenerMetrics::default(),
            handlers: (0..handlers).map(|_| HandlerMetrics::default()).collect(),
            runners: (0..runners).map(|_| RunnerMetrics::default()).collect(),
            depth: (0..handlers * runners)
                .map(|_| Counter::default())
                .collect(),
            reserved_bytes: AtomicU64::new(reserved_bytes),
            draining: Counter::default(),
            started_unix_us,
            access_lines: Counter::default(),
        }
    }

    /// Most bytes [`render`](Self::render) writes for `handlers` and `runners` threads, for
    /// any values: the text with every counter at 0, plus room on each line for a value of
    /// the most digits.
    #[must_use]
    pub(crate) fn render_bound(handlers: usize, runners: usize) -> usize {
        /// Counts bytes and lines.
        struct Measure(usize, usize);
        impl Write for Measure {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0 += s.len();
                self.1 += s.bytes().filter(|&b| b == b'\n').count();
                Ok(())
            }
        }
        let mut m = Measure(0, 0);
        let _ = Self::new(handlers, runners, 0, 0).render(&mut m);
        // A u64 has at most 20 digits, µs as seconds 21 characters; the zero had at least 1.
        m.0 + m.1 * 21
    }

    pub(crate) fn sum(&self, f: impl Fn(&HandlerMetrics) -> u64) -> u64 {
        self.handlers.iter().map(f).sum()
    }

    /// Connections open right now.
    #[must_use]
    pub(crate) fn open_connections(&self) -> u64 {
        self.listener
            .accepted
            .get()
            .saturating_sub(self.sum(|h| h.closed.get()))
    }

    /// Total requests answered.
    #[must_use]
    pub(crate) fn requests(&self) -> u64 {
        self.sum(|h| h.requests.iter().flatten().map(Counter::get).sum())
    }

    /// Writes the Prometheus text exposition: the unlabelled series from [`SCALARS`], then
    /// one family per label enum of the core, then the histogram.
    ///
    /// # Errors
    /// When `out` is too small.
    pub(crate) fn render(&self, out: &mut impl Write) -> std::fmt::Result {
        self.render_requests(out)?;
        for s in SCALARS {
            let v = match s.value {
                Value::Handlers(f) => self.sum(|h| f(h).get()),
                Value::Whole(f) => f(self),
            };
            sample(out, s.name, s.kind, s.help, v)?;
        }
        let await_us = self.sum(|h| h.await_us.get());
        family(
            out,
            "runner_await_seconds_total",
            "counter",
            "Time handlers spent waiting for runners' answers instead of sleeping.",
        )?;
        writeln!(out, "{P}_runner_await_seconds_total {}", Seconds(await_us))?;
        family(out, "shed_by_reason_total", "counter", "Requests shed with 503: ring_full (--ring-capacity), queue_wait (expected wait at the runner past --shed-after), slot_wait (waited past --shed-after for a request slot).")?;
        for r in Shed::ALL {
            let v = self.sum(|h| h.shed[r.index()].get());
            writeln!(
                out,
                "{P}_shed_by_reason_total{{reason=\"{}\"}} {v}",
                r.label()
            )?;
        }
        family(
            out,
            "timeouts_total",
            "counter",
            "Connections timed out, by phase.",
        )?;
        for t in Timeout::ALL {
            let v = self.sum(|h| h.timeouts[t.index()].get());
            writeln!(out, "{P}_timeouts_total{{kind=\"{}\"}} {v}", t.label())?;
        }
        family(
            out,
            "parse_errors_total",
            "counter",
            "Requests refused by the parser, by kind.",
        )?;
        for e in ParseError::ALL {
            let v = self.sum(|h| h.parse_errors[e.index()].get());
            writeln!(out, "{P}_parse_errors_total{{kind=\"{}\"}} {v}", e.kind())?;
        }
        family(
            out,
            "expired_total",
            "counter",
            "Requests answered 504 because their deadline passed, by where they were: queue (not run), running (the late answer was discarded), kept (waiting for a later answer).",
        )?;
        for e in Expiry::ALL {
            let i = e.index().unwrap_or(0);
            let v = self.sum(|h| h.expired[i].get());
            writeln!(out, "{P}_expired_total{{where=\"{}\"}} {v}", e.label())?;
        }
        family(
            out,
            "accept_errors_total",
            "counter",
            "Failed accepts, by errno: out of descriptors (emfile, enfile), buffers (enobufs) or memory (enomem) pause accepting briefly; econnaborted is a client that left first.",
        )?;
        for e in AcceptError::ALL {
            let v = self.listener.accept_errors[e.index()].get();
            writeln!(out, "{P}_accept_errors_total{{kind=\"{}\"}} {v}", e.label())?;
        }
        self.render_runners(out)?;
        self.render_latency(out)?;
        self.render_ticks(out)?;
        crate::logger::render(out)?;
        self.render_process(out)
    }

    fn render_requests(&self, out: &mut impl Write) -> std::fmt::Result {
        family(
            out,
            "requests_total",
            "counter",
            "Requests answered, by route and status code.",
        )?;
        for route in RouteLabel::ALL {
            for (c, code) in COUNTED_STATUSES.iter().map(Some).chain([None]).enumerate() {
                let n = self.sum(|h| h.requests[route.index()][c].get());
                let route = route.label();
                match code {
                    Some(code) => writeln!(
                        out,
                        "{P}_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}"
                    )?,
                    None => writeln!(
                        out,
                        "{P}_requests_total{{route=\"{route}\",code=\"other\"}} {n}"
                    )?,
                }
            }
        }
        Ok(())
    }

    fn render_runners(&self, out: &mut impl Write) -> std::fmt::Result {
        for (name, help, field) in PER_RUNNER {
            family(out, name, "counter", help)?;
            for (i, r) in self.runners.iter().enumerate() {
                writeln!(out, "{P}_{name}{{runner=\"{i}\"}} {}", field(r).get())?;
            }
        }
        family(
            out,
            "runner_queue_depth",
            "gauge",
            "Jobs queued or running at each runner.",
        )?;
        let runners = self.runners.len();
        for r in 0..runners {
            let d: u64 = (0..self.handlers.len())
                .map(|h| self.depth[h * runners + r].get())
                .sum();
            writeln!(out, "{P}_runner_queue_depth{{runner=\"{r}\"}} {d}")?;
        }
        Ok(())
    }
}

/// Every series' name prefix.
const P: &str = "httpd_runner";

/// Microseconds shown as seconds with six decimals.
struct Seconds(u64);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// Where an unlabelled series' value comes from.
enum Value {
    /// One counter of every handler, summed.
    Handlers(fn(&HandlerMetrics) -> &Counter),
    /// Computed from the whole.
    Whole(fn(&Metrics) -> u64),
}

/// One unlabelled series.
struct Scalar {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: Value,
}

const fn handlers(
    name: &'static str,
    help: &'static str,
    f: fn(&HandlerMetrics) -> &Counter,
) -> Scalar {
    Scalar {
        name,
        kind: "counter",
        help,
        value: Value::Handlers(f),
    }
}

const fn whole(
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    f: fn(&Metrics) -> u64,
) -> Scalar {
    Scalar {
        name,
        kind,
        help,
        value: Value::Whole(f),
    }
}

/// The unlabelled series, in the order they are rendered.
const SCALARS: &[Scalar] = &[
    handlers("received_bytes_total", "Bytes read from client sockets.", |h| &h.bytes_in),
    handlers("sent_bytes_total", "Bytes written to client sockets.", |h| &h.bytes_out),
    handlers("bodies_in_place_total", "Request bodies read into their slot in the same read as their head (not copied).", |h| &h.bodies_in_place),
    handlers("in_place_misses_total", "Reads split on a wrong guess of the next request's head and body lengths (then copied).", |h| &h.in_place_misses),
    handlers("in_place_spills_total", "Wrong guesses whose input did not all fit back in the read buffer (the rest is handed out from the slot).", |h| &h.in_place_spills),
    handlers("harvests_total", "Times a handler stopped reading mid-turn to write the answers already back from runners.", |h| &h.harvests),
    handlers("gathered_writes_total", "Socket writes that sent several small responses copied into one buffer instead of a writev.", |h| &h.gathered_writes),
    whole("large_head_buffers_in_use", "gauge", "Large head buffers lent to connections whose head outgrew their own read buffer.", |m| m.sum(|h| h.large_heads.get())),
    handlers("large_head_waits_total", "Times a head outgrew its connection's read buffer while every large head buffer was lent (the connection waits).", |h| &h.large_head_waits),
    handlers("slot_moves_total", "Chunked request bodies moved from a small request slot to a large one as they grew.", |h| &h.slot_moves),
    whole("slot_waits_small_total", "counter", "Times a request waited for a request slot while none was free.", |m| m.sum(|h| h.slot_waits[0].get())),
    whole("slot_waits_large_total", "counter", "Times a request needing a large request slot (long head or body) waited for one.", |m| m.sum(|h| h.slot_waits[1].get())),
    whole("connections_open", "gauge", "Client connections open now.", Metrics::open_connections),
    whole("connections_accepted_total", "counter", "Client connections accepted.", |m| m.listener.accepted.get()),
    whole("connections_refused_total", "counter", "Client connections refused with 503 (limit or full hand-off).", |m| m.listener.refused.get()),
    whole("shed_total", "counter", "Requests answered 503 with Retry-After under overload, for any reason in shed_by_reason_total.", |m| m.sum(|h| h.shed.iter().map(Counter::get).sum())),
    handlers("connections_reset_total", "Connections closed at once because the peer reset them (or shut both directions).", |h| &h.resets),
    handlers("runner_awaits_total", "Times a handler waited for quick runners' answers (yielding its core) instead of sleeping.", |h| &h.awaits),
    handlers("runner_awaits_ran_out_total", "Waits for runners that ran out with no answer (the handler then slept).", |h| &h.awaits_ran_out),
    handlers("handler_moves_total", "Times a handler moved off the runners' cores (load turned light) or back (it did not).", |h| &h.moves),
    whole("allocator_counting", "gauge", "1 if the counting allocator is installed (allocation figures are real).", |_| u64::from(alloc::installed())),
    whole("allocations_after_startup_total", "counter", "Heap allocations since startup completed.", |_| alloc::after_startup().allocations),
    whole("reallocations_after_startup_total", "counter", "Heap reallocations since startup completed.", |_| alloc::after_startup().reallocations),
    whole("allocated_bytes_after_startup_total", "counter", "Bytes allocated since startup completed.", |_| alloc::after_startup().bytes),
    whole("draining", "gauge", "1 from a shutdown request until the graceful shutdown starts (--drain-delay): /health answers 503 meanwhile.", |m| m.draining.get()),
    whole("memory_reserved_bytes", "gauge", "Memory reserved at startup for buffers, slots, rings and tables.", |m| m.reserved_bytes.load(Ordering::Relaxed)),
    whole("access_log_lines_total", "counter", "Access-log lines written (--access-log).", |m| m.access_lines.get()),
    handlers("access_log_dropped_total", "Access-log lines dropped because the writer fell behind (never waited for).", |h| &h.access_dropped),
];

/// Picks one counter out of a runner's metrics.
type RunnerField = fn(&RunnerMetrics) -> &Counter;

/// The per-runner counters (`runner="N"`).
const PER_RUNNER: [(&str, &str, RunnerField); 11] = [
    ("runner_jobs_total", "Jobs run, per runner.", |r| &r.jobs),
    (
        "runner_panics_total",
        "Runner panics caught (answered 500).",
        |r| &r.panics,
    ),
    (
        "runner_overflows_total",
        "Responses whose body outgrew its buffer while the runner answered success: sent as 500 (over the body limit) or 503 (no spare response buffer free), never truncated.",
        |r| &r.overflows,
    ),
    (
        "runner_polls_total",
        "Times an idle runner polled its rings instead of sleeping (--spin-us, light load).",
        |r| &r.polls,
    ),
    (
        "runner_poll_hits_total",
        "Polls that found a job before they ran out.",
        |r| &r.poll_hits,
    ),
    (
        "runner_sleeps_total",
        "Times a runner slept with its rings empty.",
        |r| &r.sleeps,
    ),
    (
        "runner_idles_total",
        "Times a runner found its rings empty and spun before polling or sleeping.",
        |r| &r.idles,
    ),
    (
        "runner_errors_total",
        "Calls that returned an error status, sent as that status.",
        |r| &r.errors,
    ),
    ("ticks_total", "Ticks run, per runner.", |r| &r.ticks),
    (
        "runner_stalls_total",
        "Calls (run, tick, alarm) that took longer than --stall-threshold, per runner; each is logged (at most one line a second per runner).",
        |r| &r.stalls,
    ),
    (
        "ticks_skipped_total",
        "Ticks missed entirely because a call held the runner past a whole period.",
        |r| &r.ticks_skipped,
    ),
];

/// A family's HELP and TYPE lines.
fn family(out: &mut impl Write, name: &str, kind: &str, help: &str) -> std::fmt::Result {
    writeln!(out, "# HELP {P}_{name} {help}\n# TYPE {P}_{name} {kind}")
}

/// One unlabelled series with its HELP and TYPE lines.
fn sample(out: &mut impl Write, name: &str, kind: &str, help: &str, v: u64) -> std::fmt::Result {
    family(out, name, kind, help)?;
    writeln!(out, "{P}_{name} {v}")
}
