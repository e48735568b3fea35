//! Runner threads: pop jobs from every handler's ring, run the user's [`Runner`] on them,
//! tick it on time, push the slots back (at once, or later for requests it keeps), wake
//! handlers that sleep.
//!
//! A runner owns its [`Runner`] instance (built on its own thread by the factory, so its state
//! lives on its core), its scratch memory (`scratch`) and its desk of kept requests (`desk`).
//! It drains its input rings in bounded turns, runs a due tick between jobs, and sleeps
//! (park) until the next job, tick or kept deadline when all are empty. A panic in user
//! code is caught: that request is answered 500, the requests the instance kept are answered
//! 500, the instance is rebuilt by the factory, and the runner goes on.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use httpd_runner_core::admit::ServiceTime;
use httpd_runner_core::deadline::{passed, Expiry, NONE};
use httpd_runner_core::limits::{
    IDLE_SPINS, JOBS_PER_RING_TURN, RUNNER_RING_SLOTS as RING_SLOTS, TICK_CHECK_JOBS,
};
use httpd_runner_core::msg::{Done, Job, Request, Response, Slot};
use httpd_runner_core::ring::{Consumer, Producer};
use httpd_runner_core::sched::{keep_polling, Idle, IdleStep, JobClock, Ticker};

use httpd_runner_core::limits::STALL_LOG_WINDOW_MS;
use httpd_runner_core::observe::{is_stall, Burst};

use crate::logger::Millis;
use crate::shared::{micros_since, Shared};

mod api;
mod desk;
mod scratch;

pub use api::{Context, Error, FrameRef, Runner};
use desk::{call, Called, Desk};
pub(crate) use desk::{SpareRx, Spares};
use scratch::Arenas;

/// Builds the runner for runner thread `index`; called once per runner thread, on that thread
/// (and again after a panic).
pub(crate) type Factory = Arc<dyn Fn(usize) -> Box<dyn Runner> + Send + Sync>;

/// The default runner: the response body is the request body (no copy), with the request's
/// `Content-Type` or `application/octet-stream`. An empty body gets none: RFC 9110 §8.3 asks
/// for it with content only, and on a small response the field is a third of the bytes.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Echo;

impl Runner for Echo {
    fn run(
        &mut self,
        _cx: &mut Context<'_>,
        req: &Request<'_>,
        resp: &mut Response<'_, '_>,
    ) -> Result<(), Error> {
        echo(req, resp);
        Ok(())
    }
}

fn echo(req: &Request<'_>, resp: &mut Response<'_, '_>) {
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

/// Echo after `ms` milliseconds of simulated work (the thread sleeps), for capacity, load-
/// shedding and deadline tests. A request may ask for its own delay with `X-Delay-Ms` (at
/// most 60 s), which makes runners finish out of order on purpose. The work stops at the
/// request's deadline (the server has answered 504 by then).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delay {
    /// Milliseconds per request.
    pub ms: u64,
}

impl Runner for Delay {
    fn run(
        &mut self,
        cx: &mut Context<'_>,
        req: &Request<'_>,
        resp: &mut Response<'_, '_>,
    ) -> Result<(), Error> {
        let ms = req
            .header("x-delay-ms")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok())
            .map_or(self.ms, |ms| ms.min(60_000));
        let work = Duration::from_millis(ms);
        if let Some(left) = cx.time_left().filter(|&left| left < work) {
            // It cannot finish in time: stop at the deadline, whose 504 the server sends.
            std::thread::sleep(left);
            return Err(Error::status(504));
        }
        std::thread::sleep(work);
        echo(req, resp);
        Ok(())
    }
}

/// Everything one runner thread owns.
pub(crate) struct RunnerThread {
    pub(crate) index: usize,
    pub(crate) jobs: Vec<Consumer<'static, Job<'static>, RING_SLOTS>>,
    pub(crate) done: Vec<Producer<'static, Done<'static>, RING_SLOTS>>,
    pub(crate) shared: &'static Shared,
    pub(crate) factory: Factory,
    /// Spare response buffers, and the rings they come back on.
    pub(crate) spares: Option<Spares>,
}

/// What a runner keeps between its turns.
struct Turns {
    runner: Box<dyn Runner>,
    /// The instance's tick, if it asked for one.
    ticker: Option<Ticker>,
    arenas: Arenas,
    desk: Desk,
    idle: Idle,
    clock: JobClock,
    /// Time per job, for the handlers' shedding (`admit::should_shed`).
    service: ServiceTime,
    /// What handlers last read of `service`.
    published: u64,
    /// When the instance's alarm goes off ([`NONE`]: not set).
    alarm_us: u64,
    /// `--stall-threshold` in µs (0: off).
    stall_us: u64,
    /// Stalls held back from the log (one line a second).
    stalls: Burst,
}

impl Turns {
    /// The frame being built (0 without a tick).
    fn frame(&self) -> u64 {
        self.ticker.map_or(0, |k| k.frame())
    }

    /// The instance, and a context for one call on it (`now` may be `api::UNREAD`).
    fn call(
        &mut self,
        runner: usize,
        started: crate::clock::Origin,
        now: u64,
        frame: u64,
        deadline_us: u64,
    ) -> (&mut Box<dyn Runner>, Context<'_>) {
        let cx = Context {
            runner,
            started,
            now_us: Cell::new(now),
            frame,
            deadline_us,
            arenas: &self.arenas,
            desk: &mut self.desk,
            keeping: None,
            in_run: false,
            alarm_us: &mut self.alarm_us,
        };
        (&mut self.runner, cx)
    }
}

impl RunnerThread {
    /// The thread body: runs until every handler has finished and the rings are drained.
    /// Idle, it spins, polls or sleeps as `sched::Idle` says, never past its next tick.
    pub(crate) fn run(mut self, ready: impl FnOnce()) {
        let cfg = &self.shared.cfg;
        let capacity = kept_capacity(cfg);
        let metrics = &self.shared.metrics.runners[self.index];
        let runner = (self.factory)(self.index);
        let mut t = Turns {
            ticker: ticker_for(&*runner, micros_since(self.shared.started)),
            runner,
            arenas: Arenas::new(cfg.scratch_bytes(), cfg.frame_scratch_bytes()),
            desk: Desk::new(
                std::mem::take(&mut self.done),
                capacity,
                metrics,
                self.spares
                    .take()
                    .unwrap_or_else(|| Spares::new(Vec::new(), Vec::new())),
            ),
            idle: Idle::default(),
            clock: JobClock::default(),
            service: ServiceTime::default(),
            published: 0,
            alarm_us: NONE,
            stall_us: self.shared.cfg.stall_threshold_us(),
            stalls: Burst::default(),
        };
        // Sleeps end on time: the kernel's default timer slack (50 µs) would make every tick
        // and alarm that late. 1 µs (in ns).
        let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1_000));
        if t.ticker.is_some() {
            crate::pin::favour_current_thread();
        }
        let bell = &self.shared.runner_bells[self.index];
        let window_us = self.shared.cfg.spin_window_us();
        ready();
        loop {
            self.chores(&mut t);
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
                        self.sleep(bell, &t);
                    }
                }
                IdleStep::Sleep => self.sleep(bell, &t),
            }
        }
    }

    /// Between turns: the tick if it is due, kept requests whose deadline passed, and, once
    /// the server stops, every kept request answered 503.
    fn chores(&mut self, t: &mut Turns) {
        if t.ticker.is_some() || t.desk.next_due_us() != NONE || t.alarm_us != NONE {
            let now = micros_since(self.shared.started);
            let now = self.tick(t, now);
            let now = self.alarm(t, now);
            t.desk.expire(now);
        }
        if t.stalls.holds() {
            self.report_stalls(t);
        }
        if !t.desk.closed && self.shared.shutdown.is_requested() {
            t.desk.closed = true;
            t.desk.drain(503, b"server shutting down\n");
        }
        self.wake_handlers(t);
    }

    /// Runs the tick if one is due at `now`: counted, its lateness recorded, the frame arena
    /// flipped after it. Returns the clock after it (`now` when none was due).
    #[cold]
    fn tick(&mut self, t: &mut Turns, now: u64) -> u64 {
        let Some(tick) = t.ticker.as_mut().and_then(|k| k.due(now)) else {
            return now;
        };
        let metrics = &self.shared.metrics.runners[self.index];
        metrics.ticks.inc();
        metrics.ticks_skipped.add(tick.skipped);
        metrics.tick_lateness.observe(tick.late_us);
        metrics.tick_lateness_max_us.raise(tick.late_us);
        let (runner, mut cx) = t.call(self.index, self.shared.started, now, tick.frame, NONE);
        let ok = catch_unwind(AssertUnwindSafe(|| runner.tick(&mut cx))).is_ok();
        let end = self.timed(t, "tick", now);
        t.arenas.after_call();
        t.arenas.flip();
        if !ok {
            metrics.panics.inc();
            self.rebuild(t);
        }
        end
    }

    /// Calls the instance's alarm if it is due at `now`. Returns the clock after it (`now`
    /// when it was not due).
    #[cold]
    fn alarm(&mut self, t: &mut Turns, now: u64) -> u64 {
        if now < t.alarm_us {
            return now;
        }
        t.alarm_us = NONE;
        let frame = t.frame();
        let (runner, mut cx) = t.call(self.index, self.shared.started, now, frame, NONE);
        let ok = catch_unwind(AssertUnwindSafe(|| runner.alarm(&mut cx))).is_ok();
        let end = self.timed(t, "alarm", now);
        t.arenas.after_call();
        if !ok {
            self.shared.metrics.runners[self.index].panics.inc();
            self.rebuild(t);
        }
        end
    }

    /// After a panic: the kept requests are answered 500 (their instance is gone) and a new
    /// instance is built.
    #[cold]
    fn rebuild(&self, t: &mut Turns) {
        t.desk.drain(500, b"runner panicked\n");
        t.alarm_us = NONE;
        t.runner = (self.factory)(self.index);
        let now = micros_since(self.shared.started);
        t.ticker = match (t.ticker, ticker_for(&*t.runner, now)) {
            // The same period keeps its grid and frame numbers.
            (Some(old), Some(new)) if old.period_us() == new.period_us() => Some(old),
            (_, new) => new,
        };
    }

    /// Runs the jobs queued at this runner, at most [`JOBS_PER_RING_TURN`] per handler, and
    /// a due tick every [`TICK_CHECK_JOBS`] jobs; wakes the handlers it answered. Returns
    /// whether it ran any.
    fn turn(&mut self, t: &mut Turns) -> bool {
        let started = self.shared.started;
        let hint = &self.shared.runner_service[self.index];
        let metrics = &self.shared.metrics.runners[self.index];
        let mut did = false;
        let timed = t.ticker.is_some() || t.alarm_us != NONE;
        let mut since_check = 0;
        for h in 0..self.jobs.len() {
            let mut next = self.jobs[h].pop();
            if next.is_none() {
                continue;
            }
            // One clock reading per job: when it was taken is when the one before it ended.
            let mut taken_us = micros_since(started);
            if t.clock.wants_start(t.service.is_measured()) {
                // Until the first measurement, the first job is measured from its start.
                hint.first_job_started(taken_us);
                t.clock.started(taken_us);
            }
            // Once every handler has finished (its connections closed at the shutdown
            // deadline), queued jobs have no one to answer: they are not run.
            let orphaned = next.is_some() && self.shared.shutdown.handlers_finished();
            let mut taken = 0;
            while let Some(slot) = next {
                metrics
                    .queue_wait
                    .observe(taken_us.saturating_sub(slot.ticket.started_us));
                let (mut back, now) = self.job(t, slot, orphaned, taken_us);
                taken_us = now;
                metrics.jobs.inc();
                taken += 1;
                next = if taken < JOBS_PER_RING_TURN {
                    self.jobs[h].pop()
                } else {
                    None
                };
                let last = next.is_none();
                if t.clock.job_done(last, t.service.is_measured()) {
                    if let (true, Some(slot)) = (last, back.as_deref_mut()) {
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
                if let Some(slot) = back {
                    t.desk.hand_back(slot);
                }
                t.idle.ran_job();
                did = true;
                since_check += 1;
                if timed && since_check >= TICK_CHECK_JOBS {
                    since_check = 0;
                    // The next job is taken when these are done.
                    taken_us = self.tick(t, taken_us);
                    taken_us = self.alarm(t, taken_us);
                }
            }
        }
        self.wake_handlers(t);
        did
    }

    /// Runs one job taken at `now`, unless its deadline already passed (then it is marked
    /// expired in the queue) or no handler is left to answer. Returns the slot to hand back
    /// (`None` when the runner kept it) and the clock when the job was done; the call's time
    /// is recorded, and a stall reported.
    fn job(
        &mut self,
        t: &mut Turns,
        slot: &'static mut Slot<'static>,
        orphaned: bool,
        now: u64,
    ) -> (Option<&'static mut Slot<'static>>, u64) {
        if orphaned {
            return (Some(slot), now);
        }
        let deadline = slot.ticket.deadline_us;
        if deadline != NONE && passed(now, deadline) {
            slot.ticket.expired = Expiry::Queue;
            return (Some(slot), now);
        }
        let metrics = &self.shared.metrics.runners[self.index];
        let frame = t.frame();
        let mut lent = t.desk.spares.lend();
        let spare_len = t.desk.spares.len();
        let (runner, mut cx) = t.call(self.index, self.shared.started, now, frame, deadline);
        cx.in_run = true;
        let called = call(slot, metrics, spare_len, &mut lent, |req, resp| {
            runner.run(&mut cx, req, resp)
        });
        let keeping = cx.keeping;
        let end = self.timed(t, "run", now);
        metrics.service.observe(end - now);
        t.desk.spares.settle(slot, lent);
        t.arenas.after_call();
        if let Some(k) = keeping {
            if called == Called::Answered {
                t.desk.fill(k, slot);
                return (None, end);
            }
            t.desk.cancel(k);
        }
        if called == Called::Panicked {
            self.rebuild(t);
        } else if deadline != NONE && passed(end, deadline) {
            slot.ticket.expired = Expiry::Running;
        }
        (Some(slot), end)
    }

    /// The clock after a call that began at `start`; a call past `--stall-threshold` is
    /// counted and reported.
    #[inline]
    fn timed(&self, t: &mut Turns, what: &'static str, start: u64) -> u64 {
        let end = micros_since(self.shared.started).max(start);
        if is_stall(end - start, t.stall_us) {
            self.stalled(t, what, end - start, end);
        }
        end
    }

    /// Counts a stall of `us` (of a `run`, tick or alarm) and logs it, at most one line a
    /// second (the stalls in between are counted in the next line).
    #[cold]
    fn stalled(&self, t: &mut Turns, what: &'static str, us: u64, now: u64) {
        let metrics = &self.shared.metrics.runners[self.index];
        metrics.stalls.inc();
        metrics.stall_max_us.raise(us);
        if let Some(n) = t.stalls.note(now / 1000, STALL_LOG_WINDOW_MS) {
            let threshold = Millis(t.stall_us);
            let (index, took) = (self.index, Millis(us));
            if n == 1 {
                log::warn!(
                    "runner {index} stalled: {what} took {took} (--stall-threshold {threshold})"
                );
            } else {
                log::warn!("runner {index} stalled: {what} took {took} (--stall-threshold {threshold}); {n} stalls since the last report");
            }
        }
    }

    /// Logs the stalls held back once their second is over.
    #[cold]
    fn report_stalls(&self, t: &mut Turns) {
        let now = micros_since(self.shared.started) / 1000;
        if let Some(n) = t.stalls.flush(now, STALL_LOG_WINDOW_MS) {
            let index = self.index;
            log::warn!(
                "runner {index}: {n} more stalls past --stall-threshold {}",
                Millis(t.stall_us)
            );
        }
    }

    /// Wakes the handlers this runner sent answers to since the last call, if they sleep.
    fn wake_handlers(&self, t: &mut Turns) {
        for (h, w) in t.desk.woke.iter_mut().enumerate() {
            if std::mem::take(w) && self.shared.handler_bells[h].should_wake() {
                self.shared.shutdown.wake_handler(h);
            }
        }
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

    /// Announces sleep and parks unless a job arrived meanwhile, until the next tick or
    /// kept deadline at the latest.
    fn sleep(&self, bell: &httpd_runner_core::wake::Doorbell, t: &Turns) {
        bell.prepare_sleep();
        if self.jobs.iter().all(Consumer::is_empty) {
            self.shared.metrics.runners[self.index].sleeps.inc();
            // Without a tick or a kept deadline the timeout is a safety net only: pushes and
            // shutdown unpark us.
            let mut us: u64 = 500_000;
            let due = t
                .ticker
                .map_or(NONE, |k| k.next_us())
                .min(t.desk.next_due_us())
                .min(t.alarm_us);
            if due != NONE {
                us = us.min(due.saturating_sub(micros_since(self.shared.started)));
            }
            if us > 0 {
                std::thread::park_timeout(Duration::from_micros(us));
            }
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

/// Requests a runner can keep: every request that can be out at it (each handler's
/// `--ring-capacity`).
fn kept_capacity(cfg: &crate::Config) -> usize {
    cfg.handler_count() * cfg.ring_capacity_jobs() as usize
}

/// Bytes of one runner's kept-request table.
pub(crate) fn kept_table_bytes(cfg: &crate::Config) -> usize {
    kept_capacity(cfg) * desk::ENTRY_BYTES
}

/// The ticker a freshly built instance asks for.
fn ticker_for(runner: &dyn Runner, now_us: u64) -> Option<Ticker> {
    let every = runner.tick_every()?;
    let us = u64::try_from(every.as_micros()).unwrap_or(u64::MAX);
    Some(Ticker::new(us, now_us))
}
