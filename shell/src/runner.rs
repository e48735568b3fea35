//! Runner threads: pop jobs from every handler's ring, run the user's [`Runner`] on them,
//! push the slots back, wake handlers that sleep.
//!
//! A runner owns its [`Runner`] instance (built on its own thread by the factory, so its state
//! lives on its core), drains its input rings in turn, and sleeps (park) when all are empty.
//! A panic in user code is caught: that request is answered 500, the instance is rebuilt by
//! the factory, and the runner goes on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use httpd_runner_core::admit::ServiceTime;
use httpd_runner_core::msg::{Done, Job, Request, Response, Runner, Slot};
use httpd_runner_core::ring::{Consumer, Producer};

use crate::hints::Streak;
use crate::shared::Shared;
use httpd_runner_core::limits::RUNNER_RING_SLOTS as RING_SLOTS;

/// Builds the runner for runner thread `index`; called once per runner thread, on that thread
/// (and again after a panic).
pub(crate) type Factory = Arc<dyn Fn(usize) -> Box<dyn Runner> + Send + Sync>;

/// The default runner: the response body is the request body (no copy), with the request's
/// `Content-Type` or `application/octet-stream`. An empty body gets none: RFC 9110 §8.3 asks
/// for it with content only, and on a small response the field is a third of the bytes
/// (pipelined GETs: 1.06-1.24M against 1.13-1.37M req/s with and without it).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Echo;

impl Runner for Echo {
    fn run(&mut self, req: &Request<'_>, resp: &mut Response<'_, '_>) {
        resp.echo_request_body();
        if req.body().is_empty() {
            return;
        }
        let content_type = req
            .header("content-type")
            .unwrap_or(b"application/octet-stream");
        if resp.header("Content-Type", content_type).is_err() {
            let _ = resp.header("Content-Type", b"application/octet-stream");
        }
    }
}

/// Echo after `ms` milliseconds of simulated work (the thread sleeps), for capacity and
/// load-shedding tests. A request may ask for its own delay with `X-Delay-Ms` (at most 60 s),
/// which makes runners finish out of order on purpose.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delay {
    /// Milliseconds per request.
    pub ms: u64,
}

impl Runner for Delay {
    fn run(&mut self, req: &Request<'_>, resp: &mut Response<'_, '_>) {
        let ms = req
            .header("x-delay-ms")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok())
            .map_or(self.ms, |ms| ms.min(60_000));
        std::thread::sleep(Duration::from_millis(ms));
        Echo.run(req, resp);
    }
}

/// A long run of jobs is measured every this many jobs (see `admit::ServiceTime`).
const MEASURE_EVERY: u64 = 16;

/// Spins before parking, when all rings are empty. Short: this machine has two cores, and a
/// spinning runner steals time from the handler that would feed it.
const IDLE_SPINS: u32 = 64;

/// A yield that kept a polling runner away this long means another thread ran on its core:
/// the core is wanted, so the runner stops polling and sleeps.
const CONTENDED_YIELD: Duration = Duration::from_micros(20);

/// Everything one runner thread owns.
pub(crate) struct RunnerThread {
    pub(crate) index: usize,
    pub(crate) jobs: Vec<Consumer<'static, Job<'static>, RING_SLOTS>>,
    pub(crate) done: Vec<Producer<'static, Done<'static>, RING_SLOTS>>,
    pub(crate) shared: &'static Shared,
    pub(crate) factory: Factory,
}

impl RunnerThread {
    /// The thread body: runs until every handler has finished and the rings are drained.
    pub(crate) fn run(mut self, ready: impl FnOnce()) {
        let mut runner = (self.factory)(self.index);
        let handlers = self.jobs.len();
        let mut woke = vec![false; handlers];
        let bell = &self.shared.runner_bells[self.index];
        let metrics = &self.shared.metrics.runners[self.index];
        ready();
        let mut idle = 0u32;
        // Jobs run since the rings were last found empty, and how many stretches in a row were
        // one job each (requests arriving one at a time).
        let mut stretch = 0u32;
        let mut singles = Streak::default();
        let spin = Duration::from_micros(u64::from(self.shared.cfg.spin_window_us()));
        // Time per job, for the handlers' shedding (`admit::should_shed`), and what they last
        // read of it.
        let mut service = ServiceTime::default();
        let mut published = 0;
        let hint = &self.shared.runner_service[self.index];
        // The last clock reading while the runner has been busy since (`None` once it idles):
        // time per job is measured between readings, and a run's stamp (its one reading, see
        // `Ticket::answered_us`) ends one measurement and starts the next, so a busy runner
        // reads the clock once per run, plus once per `MEASURE_EVERY` jobs of a long run.
        let mut mark: Option<u64> = None;
        loop {
            let mut did = false;
            for ((jobs, done), woke) in self.jobs.iter_mut().zip(&mut self.done).zip(&mut woke) {
                let mut next = jobs.pop();
                if next.is_some() && mark.is_none() && !service.is_measured() {
                    // Until the first measurement, the first job is measured from its start.
                    let now = micros_since(self.shared.started);
                    hint.first_job_started(now);
                    mark = Some(now);
                }
                let mut ran = 0;
                // Once every handler has finished (its connections closed at the shutdown
                // deadline), queued jobs have no one to answer: they are not run.
                let orphaned = next.is_some() && self.shared.shutdown.handlers_finished();
                while let Some(slot) = next {
                    if !orphaned && !serve(slot, &mut runner) {
                        metrics.panics.inc();
                        runner = (self.factory)(self.index);
                    }
                    metrics.jobs.inc();
                    next = jobs.pop();
                    let last = next.is_none();
                    ran += 1;
                    match mark {
                        // After idling: the reading at the end of this job starts the count.
                        None => {
                            let now = micros_since(self.shared.started);
                            if last {
                                slot.ticket.answered_us = now;
                            }
                            mark = Some(now);
                            ran = 0;
                        }
                        Some(from) if last || ran == MEASURE_EVERY || !service.is_measured() => {
                            let now = micros_since(self.shared.started);
                            if last {
                                slot.ticket.answered_us = now;
                            }
                            service.observe(now.saturating_sub(from), ran);
                            mark = Some(now);
                            ran = 0;
                            // At least 1 µs once measured: 0 means "not yet" to readers.
                            let per_job = service.per_job_us().max(1);
                            if per_job != published && service.worth_publishing(published) {
                                published = per_job;
                                hint.set(published);
                            }
                        }
                        Some(_) => {}
                    }
                    push_back(done, slot);
                    stretch += 1;
                    *woke = true;
                    did = true;
                }
            }
            for (h, w) in woke.iter_mut().enumerate() {
                if std::mem::take(w) && self.shared.handler_bells[h].should_wake() {
                    self.shared.shutdown.wake_handler(h);
                }
            }
            if did {
                idle = 0;
                continue;
            }
            mark = None;
            if self.shared.shutdown.handlers_finished() && self.jobs.iter().all(Consumer::is_empty)
            {
                return;
            }
            if idle == 0 {
                metrics.idles.inc();
                singles.observe(std::mem::take(&mut stretch) == 1);
            }
            idle += 1;
            if idle < IDLE_SPINS {
                std::hint::spin_loop();
                continue;
            }
            // Poll only while requests come one at a time (one-job stretches here, one
            // connection per turn at every handler, `LIGHT_STREAK` in a row): then this
            // runner's wake-up is most of a request's latency, and polling takes no time a
            // busy handler needs. Under load stretches are long, handlers busy, runners sleep.
            // A poll that runs out starts the streak again: a client slower than the window
            // costs one wasted window per `LIGHT_STREAK` requests, not one per request.
            if !spin.is_zero() && singles.is_light() && self.shared.load_is_light() {
                metrics.polls.inc();
                if self.poll_for(spin) {
                    metrics.poll_hits.inc();
                    idle = 0;
                    continue;
                }
                singles.reset();
            }
            bell.prepare_sleep();
            if self.jobs.iter().all(Consumer::is_empty) {
                metrics.sleeps.inc();
                // The timeout is a safety net only: pushes and shutdown unpark us.
                std::thread::park_timeout(Duration::from_millis(500));
            }
            bell.awake();
        }
    }

    /// `--spin-us`: polls the input rings for up to `window`, yielding the core between checks
    /// (so a thread sharing it runs at once). Gives up early when load stops being light or a
    /// yield shows the core is wanted ([`CONTENDED_YIELD`]). Returns whether a job arrived.
    fn poll_for(&self, window: Duration) -> bool {
        let start = Instant::now();
        let mut last = start;
        loop {
            if self.jobs.iter().any(|r| !r.is_empty()) {
                return true;
            }
            if self.shared.shutdown.is_requested() || !self.shared.load_is_light() {
                return false;
            }
            std::thread::yield_now();
            let now = Instant::now();
            if now - start >= window || now - last >= CONTENDED_YIELD {
                return false;
            }
            last = now;
        }
    }
}

/// Microseconds since `start`, without the 128-bit arithmetic of `Duration::as_micros`.
fn micros_since(start: Instant) -> u64 {
    let d = start.elapsed();
    d.as_secs() * 1_000_000 + u64::from(d.subsec_micros())
}

/// Runs `runner` on one slot. Returns `false` if it panicked (the slot then holds a 500).
fn serve(slot: &mut Slot<'_>, runner: &mut Box<dyn Runner>) -> bool {
    let ok = catch_unwind(AssertUnwindSafe(|| {
        slot.serve(|req, resp| runner.run(req, resp))
    }))
    .is_ok();
    if !ok {
        slot.serve(|_, resp| {
            resp.reset();
            resp.set_status(500);
            let _ = resp.header("Content-Type", b"text/plain; charset=utf-8");
            let _ = resp.write(b"runner panicked\n");
        });
    }
    ok
}

/// Pushes a finished slot to its handler. The ring cannot be full: a handler has at most
/// `--ring-capacity` (at most the ring's size) jobs out at this runner; the loop is a guard.
fn push_back(ring: &mut Producer<'static, Done<'static>, RING_SLOTS>, slot: Done<'static>) {
    let mut slot = slot;
    while let Err(back) = ring.push(slot) {
        slot = back;
        std::thread::yield_now();
    }
}
