//! Runner threads: pop jobs from every handler's ring, run the user's [`Runner`] on them,
//! push the slots back, wake handlers that sleep.
//!
//! A runner owns its [`Runner`] instance (built on its own thread by the factory, so its state
//! lives on its core), drains its input rings in turn, and sleeps (park) when all are empty.
//! A panic in user code is caught: that request is answered 500, the instance is rebuilt by
//! the factory, and the runner goes on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use httpd_runner_core::admit::ServiceTime;
use httpd_runner_core::limits::{IDLE_SPINS, RUNNER_RING_SLOTS as RING_SLOTS};
use httpd_runner_core::msg::{Done, Job, Request, Response, Runner, Slot};
use httpd_runner_core::ring::{Consumer, Producer};
use httpd_runner_core::sched::{keep_polling, Idle, IdleStep, JobClock};

use crate::shared::{micros_since, Shared};

/// Builds the runner for runner thread `index`; called once per runner thread, on that thread
/// (and again after a panic).
pub(crate) type Factory = Arc<dyn Fn(usize) -> Box<dyn Runner> + Send + Sync>;

/// The default runner: the response body is the request body (no copy), with the request's
/// `Content-Type` or `application/octet-stream`. An empty body gets none: RFC 9110 §8.3 asks
/// for it with content only, and on a small response the field is a third of the bytes.
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

/// Everything one runner thread owns.
pub(crate) struct RunnerThread {
    pub(crate) index: usize,
    pub(crate) jobs: Vec<Consumer<'static, Job<'static>, RING_SLOTS>>,
    pub(crate) done: Vec<Producer<'static, Done<'static>, RING_SLOTS>>,
    pub(crate) shared: &'static Shared,
    pub(crate) factory: Factory,
}

/// What a runner keeps between its turns.
struct Turns {
    runner: Box<dyn Runner>,
    woke: Vec<bool>,
    idle: Idle,
    clock: JobClock,
    /// Time per job, for the handlers' shedding (`admit::should_shed`).
    service: ServiceTime,
    /// What handlers last read of `service`.
    published: u64,
}

impl RunnerThread {
    /// The thread body: runs until every handler has finished and the rings are drained.
    /// Idle, it spins, polls or sleeps as `sched::Idle` says.
    pub(crate) fn run(mut self, ready: impl FnOnce()) {
        let mut t = Turns {
            runner: (self.factory)(self.index),
            woke: vec![false; self.jobs.len()],
            idle: Idle::default(),
            clock: JobClock::default(),
            service: ServiceTime::default(),
            published: 0,
        };
        let bell = &self.shared.runner_bells[self.index];
        let metrics = &self.shared.metrics.runners[self.index];
        let window_us = self.shared.cfg.spin_window_us();
        ready();
        loop {
            if self.turn(&mut t) {
                continue;
            }
            t.clock.idle();
            if self.shared.shutdown.handlers_finished() && self.jobs.iter().all(Consumer::is_empty)
            {
                return;
            }
            match t.idle.empty(window_us, || self.shared.load_is_light()) {
                IdleStep::Spin => {
                    metrics.idles.inc();
                    self.spin();
                }
                IdleStep::Poll => {
                    metrics.polls.inc();
                    if self.poll_for(u64::from(window_us)) {
                        metrics.poll_hits.inc();
                        t.idle.poll_hit();
                    } else {
                        t.idle.poll_ran_out();
                        self.sleep(bell);
                    }
                }
                IdleStep::Sleep => self.sleep(bell),
            }
        }
    }

    /// Runs every job queued at this runner, handler by handler, and wakes the handlers it
    /// answered. Returns whether it ran any.
    fn turn(&mut self, t: &mut Turns) -> bool {
        let started = self.shared.started;
        let hint = &self.shared.runner_service[self.index];
        let metrics = &self.shared.metrics.runners[self.index];
        let mut did = false;
        for ((jobs, done), woke) in self.jobs.iter_mut().zip(&mut self.done).zip(&mut t.woke) {
            let mut next = jobs.pop();
            if next.is_some() && t.clock.wants_start(t.service.is_measured()) {
                // Until the first measurement, the first job is measured from its start.
                let now = micros_since(started);
                hint.first_job_started(now);
                t.clock.started(now);
            }
            // Once every handler has finished (its connections closed at the shutdown
            // deadline), queued jobs have no one to answer: they are not run.
            let orphaned = next.is_some() && self.shared.shutdown.handlers_finished();
            while let Some(slot) = next {
                if !orphaned {
                    if !serve(slot, &mut t.runner) {
                        metrics.panics.inc();
                        t.runner = (self.factory)(self.index);
                    } else if slot.refuse_truncated() {
                        metrics.overflows.inc();
                    }
                }
                metrics.jobs.inc();
                next = jobs.pop();
                let last = next.is_none();
                if t.clock.job_done(last, t.service.is_measured()) {
                    let now = micros_since(started);
                    if last {
                        slot.ticket.answered_us = now;
                    }
                    if let Some((us, jobs)) = t.clock.read(now) {
                        t.service.observe(us, jobs);
                        if let Some(per_job) = t.service.to_publish(t.published) {
                            t.published = per_job;
                            hint.set(per_job);
                        }
                    }
                }
                push_back(done, slot);
                t.idle.ran_job();
                *woke = true;
                did = true;
            }
        }
        for (h, w) in t.woke.iter_mut().enumerate() {
            if std::mem::take(w) && self.shared.handler_bells[h].should_wake() {
                self.shared.shutdown.wake_handler(h);
            }
        }
        did
    }

    /// Checks the rings up to `IDLE_SPINS` times, with a spin-loop hint between checks,
    /// until a job arrives.
    fn spin(&self) {
        for _ in 0..IDLE_SPINS {
            if self.jobs.iter().any(|r| !r.is_empty()) {
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// Announces sleep and parks unless a job arrived meanwhile.
    fn sleep(&self, bell: &httpd_runner_core::wake::Doorbell) {
        bell.prepare_sleep();
        if self.jobs.iter().all(Consumer::is_empty) {
            self.shared.metrics.runners[self.index].sleeps.inc();
            // The timeout is a safety net only: pushes and shutdown unpark us.
            std::thread::park_timeout(Duration::from_millis(500));
        }
        bell.awake();
    }

    /// `--spin-us`: polls the input rings for up to `window_us`, yielding the core between
    /// checks (so a thread sharing it runs at once), while `sched::keep_polling` says so and
    /// load stays light. Returns whether a job arrived.
    fn poll_for(&self, window_us: u64) -> bool {
        let started = self.shared.started;
        let start = micros_since(started);
        let mut last = start;
        loop {
            if self.jobs.iter().any(|r| !r.is_empty()) {
                return true;
            }
            if self.shared.shutdown.is_requested() || !self.shared.load_is_light() {
                return false;
            }
            std::thread::yield_now();
            let now = micros_since(started);
            if !keep_polling(start, last, now, window_us) {
                return false;
            }
            last = now;
        }
    }
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
