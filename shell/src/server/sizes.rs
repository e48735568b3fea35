//! What startup reserves: the sizes and counts of every pool for a configuration, the
//! memory plan they make (term by term, for the banner and the refusal), and how
//! `--memory` lowers the connections and slots until the plan fits.

use std::io;

use httpd_runner_core::class;
use httpd_runner_core::limits::{ACCEPT_RING_SLOTS, RUNNER_RING_SLOTS, SPARE_RING_SLOTS};
use httpd_runner_core::msg::{Job, Slot};
use httpd_runner_core::ring::Ring;

use crate::access;
use crate::config::Config;
use crate::handler;
use crate::memory::{MemoryPlan, Term};
use crate::metrics::Metrics;
use crate::net::Accepted;

/// Sizes of what startup reserves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    pub(super) handlers: usize,
    pub(super) runners: usize,
    pub(super) slots_per_handler: usize,
    pub(super) conns_per_handler: usize,
    /// Bytes of each buffer class.
    pub(super) bytes: class::Sizes,
    /// Buffers of each class per handler (slots, large heads) and per runner (spares).
    pub(super) counts: class::Counts,
    /// Per runner: run arena, two frame halves, kept-request table.
    pub(super) runner_scratch_bytes: usize,
    /// Per handler: the buffer `/metrics` renders into, sized for the thread counts.
    pub(super) metrics_bytes: usize,
    /// The access log's rings and write buffer (0 without one).
    pub(super) access_bytes: usize,
}

impl Sizes {
    pub(crate) fn of(cfg: &Config) -> Self {
        let bytes = class::Sizes::new(&cfg.limits());
        let conns_per_handler = cfg.connections_per_handler() + cfg.admin_connections_per_handler();
        let slots_per_handler = cfg.slots_per_handler() as usize;
        Self {
            handlers: cfg.handler_count(),
            runners: cfg.runner_count(),
            slots_per_handler,
            conns_per_handler,
            bytes,
            counts: class::Counts::new(
                &bytes,
                conns_per_handler,
                slots_per_handler,
                cfg.large_slots_asked().map(|n| n as usize),
            ),
            runner_scratch_bytes: cfg.scratch_bytes()
                + 2 * cfg.frame_scratch_bytes()
                + crate::runner::kept_table_bytes(cfg),
            metrics_bytes: Metrics::render_bound(cfg.handler_count(), cfg.runner_count())
                .max(bytes.large_response),
            access_bytes: cfg
                .access_log_to()
                .map_or(0, |_| access::AccessWriter::bytes(cfg.handler_count())),
        }
    }

    pub(super) fn small_slot_bytes(&self) -> usize {
        let b = &self.bytes;
        b.small_head + b.small_body + b.response
    }

    pub(super) fn large_slot_bytes(&self) -> usize {
        let b = &self.bytes;
        b.large_head + b.large_body + b.large_response
    }

    /// The rest: each handler's lists of connections (free, waiting for a turn, with
    /// answers to write, waiting for a large head buffer), of free slots and of large head
    /// buffers (free, and the own buffers parked), its deadlines by slot, its event
    /// and gather buffers, the metrics, and [`STARTUP_OTHER_BYTES`] for what startup leaves
    /// besides.
    fn table_bytes(&self) -> usize {
        let (h, r) = (self.handlers, self.runners);
        let word = std::mem::size_of::<usize>();
        let per_handler = 4 * std::mem::size_of::<u32>() * self.conns_per_handler
            + (std::mem::size_of::<httpd_runner_core::deadline::Watch>() + word)
                * self.slots_per_handler
            + 2 * 2 * word * self.counts.large_heads
            + httpd_runner_core::limits::GATHER_BYTES
            + handler::EVENTS * std::mem::size_of::<mio::event::Event>();
        per_handler * h
            + crate::metrics::Metrics::bytes(h, r)
            + STARTUP_OTHER_BYTES
            + STARTUP_OTHER_BYTES_PER_THREAD * (1 + h + r)
    }

    pub(crate) fn plan(&self) -> MemoryPlan {
        let (h, r) = (self.handlers, self.runners);
        let c = &self.counts;
        let slot = std::mem::size_of::<Slot<'static>>();
        let spare_rings = if c.spare_responses > 0 { h * r } else { 0 };
        let ring_bytes = std::mem::size_of::<Ring<Job<'static>, RUNNER_RING_SLOTS>>() * 2 * h * r
            + std::mem::size_of::<Ring<Accepted, ACCEPT_RING_SLOTS>>() * h
            + std::mem::size_of::<Ring<&'static mut [u8], SPARE_RING_SLOTS>>() * spare_rings
            + self.access_bytes;
        let term = |what, count: usize, each: usize, options| Term {
            what,
            count: count as u64,
            each: each as u64,
            options,
        };
        MemoryPlan {
            terms: [
                term(
                    "connections",
                    self.conns_per_handler * h,
                    self.bytes.read + handler::CONNECTION_BYTES,
                    "--max-connections",
                ),
                term(
                    "large head buffers",
                    c.large_heads * h,
                    self.bytes.large_read,
                    "--max-head-bytes, --max-connections",
                ),
                term(
                    "small request slots",
                    c.small_slots * h,
                    self.small_slot_bytes() + slot,
                    "--slots",
                ),
                term(
                    "large request slots",
                    c.large_slots * h,
                    self.large_slot_bytes() + slot,
                    "--slots, --max-body-bytes, --max-head-bytes",
                ),
                term(
                    "spare response buffers",
                    c.spare_responses * r,
                    self.bytes.large_response,
                    "--runners, --max-body-bytes",
                ),
                term(
                    "metrics buffers",
                    h,
                    self.metrics_bytes,
                    "--handlers, --runners, --max-body-bytes",
                ),
                term(
                    "rings",
                    1,
                    ring_bytes,
                    "--handlers, --runners, --access-log",
                ),
                term(
                    "runner scratch",
                    r,
                    self.runner_scratch_bytes,
                    "--scratch, --frame-scratch, --runners",
                ),
                term(
                    "tables",
                    1,
                    self.table_bytes(),
                    "--max-connections, --slots",
                ),
            ],
        }
    }
}

/// The options with `--max-connections` and `--slots` lowered, in proportion, as little as
/// needed for the plan to fit in `--memory` (unchanged without it or when it fits).
///
/// # Errors
/// The plan does not fit even with one connection and one slot per handler: the error names
/// the terms.
pub(super) fn fit_memory(cfg: Config) -> io::Result<Config> {
    let Some(budget) = cfg.memory_budget() else {
        return Ok(cfg);
    };
    let scaled = |k: u64| {
        let scale = |n: u64| (n * k / 1024).max(1);
        let conns = scale(u64::from(cfg.max_connections_open())) as u32;
        let slots = scale(u64::from(cfg.slots_per_handler())) as u32;
        cfg.clone().max_connections(conns).slots(slots)
    };
    let fits = |c: &Config| Sizes::of(c).plan().total() <= budget;
    if fits(&cfg) {
        return Ok(cfg);
    }
    let smallest = cfg.clone().max_connections(1).slots(1);
    if !fits(&smallest) {
        return Err(Sizes::of(&smallest).plan().refusal(budget, "--memory"));
    }
    // The largest scale (in 1024ths) that fits.
    let (mut lo, mut hi) = (0u64, 1024u64);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if fits(&scaled(mid)) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let fitted = if lo == 0 { smallest } else { scaled(lo) };
    Ok(fitted.fitted_to_memory(cfg.max_connections_open(), cfg.slots_per_handler()))
}

/// Heap bytes startup leaves live besides the terms of the plan (the factory, the listener's
/// tables), and per thread (its handle, name, ring ends), rounded up.
const STARTUP_OTHER_BYTES: usize = 16 * 1024;
/// See [`STARTUP_OTHER_BYTES`].
const STARTUP_OTHER_BYTES_PER_THREAD: usize = 8 * 1024;
