//! Scheduling decisions of the threads, as pure state with explicit time: when load counts
//! as light, when a handler moves off the runners' cores, what an idle runner does next
//! (spin, poll or sleep), when a polling runner gives up, when a busy runner reads the
//! clock to measure its time per job, whether a handler waits for runners' answers instead
//! of sleeping, which handler takes a new connection, and when a runner's tick is due.
//!
//! The shell owns the clock, the rings and the system calls; it reports what happened and
//! does what these say.

use crate::limits::{
    AWAIT_RUNNERS_US, CONTENDED_YIELD_US, LIGHT_STREAK_TURNS, MAX_TICK_US, MEASURE_EVERY_JOBS,
    MIN_TICK_US, NARROW_AFTER_TURNS,
};

/// Light observations in a row (a handler turn that served at most one connection, a runner
/// stretch of one job); load is light after [`LIGHT_STREAK_TURNS`] of them, so a moment's
/// lull under load is not taken for it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Streak(u32);

impl Streak {
    /// Records one observation; returns whether load is now light.
    pub fn observe(&mut self, light: bool) -> bool {
        self.0 = if light { self.0.saturating_add(1) } else { 0 };
        self.is_light()
    }

    /// Whether the last [`LIGHT_STREAK_TURNS`] observations were all light.
    #[must_use]
    pub const fn is_light(self) -> bool {
        self.0 >= LIGHT_STREAK_TURNS
    }

    /// Starts counting again.
    pub fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Whether a handler should keep off the runners' cores: after [`NARROW_AFTER_TURNS`] light
/// turns in a row (each serving at most one connection), and back at the first busy turn.
/// Much longer than [`Streak`]: moving costs a system call and maybe a migration, and a
/// handler under moderate load sees short light streaks all the time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Narrowing {
    streak: u32,
    narrowed: bool,
}

impl Narrowing {
    /// Records one turn. Returns `Some(narrow)` when the handler should move: `true` off the
    /// runners' cores, `false` back to all its cores. The move is assumed done; see
    /// [`refused`](Self::refused).
    pub fn observe(&mut self, light_turn: bool) -> Option<bool> {
        self.streak = if light_turn {
            self.streak.saturating_add(1)
        } else {
            0
        };
        let want = self.streak >= NARROW_AFTER_TURNS;
        if want == self.narrowed {
            return None;
        }
        self.narrowed = want;
        Some(want)
    }

    /// The move [`observe`](Self::observe) asked for could not be made: nothing changed.
    pub fn refused(&mut self) {
        self.narrowed = !self.narrowed;
    }
}

/// What an idle runner does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleStep {
    /// Its rings just turned empty: count an idle, and check them again up to
    /// [`IDLE_SPINS`](crate::limits::IDLE_SPINS) times (with a spin-loop hint between checks) before asking again.
    Spin,
    /// Poll the rings for the polling window, yielding between checks.
    Poll,
    /// Announce sleep and park.
    Sleep,
}

/// A runner's idle policy: spin [`IDLE_SPINS`](crate::limits::IDLE_SPINS) checks, then poll for its window when
/// requests come one at a time (one-job stretches here, and every handler's load light),
/// else sleep. Under load stretches are long and runners sleep at once. A poll that runs
/// out starts the streak again, so a client slower than the window costs one wasted window
/// per streak, not one per request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Idle {
    spun: bool,
    stretch: u32,
    singles: Streak,
}

impl Idle {
    /// A job ran.
    pub fn ran_job(&mut self) {
        self.stretch = self.stretch.saturating_add(1);
        self.spun = false;
    }

    /// The rings were found empty. `poll_window_us` is the configured window (0: never
    /// poll) and `load_is_light` tells whether every handler's load is light (asked only
    /// when the answer matters: it reads other threads' cache lines).
    pub fn empty(&mut self, poll_window_us: u32, load_is_light: impl FnOnce() -> bool) -> IdleStep {
        if !self.spun {
            self.spun = true;
            self.singles
                .observe(core::mem::take(&mut self.stretch) == 1);
            return IdleStep::Spin;
        }
        if poll_window_us != 0 && self.singles.is_light() && load_is_light() {
            IdleStep::Poll
        } else {
            IdleStep::Sleep
        }
    }

    /// A poll found a job: the next empty rings spin first again.
    pub fn poll_hit(&mut self) {
        self.spun = false;
    }

    /// A poll ran out: the streak starts again (then the runner sleeps).
    pub fn poll_ran_out(&mut self) {
        self.singles.reset();
    }
}

/// A runner's fixed tick: when the next one is due, which frame it closes, how late it
/// came. Ticks keep to the grid `start + n·period`: a tick that came late does not shift the
/// ones after it, and when a whole period or more was missed (a long job held the thread)
/// the missed ticks are skipped, not run in a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticker {
    period_us: u64,
    next_us: u64,
    frame: u64,
}

/// A tick that is due: the frame it closes and how late it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// The frame it closes: its place on the grid (0 for the first tick), so frames a
    /// missed tick skipped leave gaps.
    pub frame: u64,
    /// Microseconds past its time on the grid.
    pub late_us: u64,
    /// Ticks skipped before it because they were missed entirely.
    pub skipped: u64,
}

impl Ticker {
    /// Ticks every `period_us` (clamped to [`MIN_TICK_US`]..=[`MAX_TICK_US`]), the first one
    /// period after `now_us`.
    #[must_use]
    pub const fn new(period_us: u64, now_us: u64) -> Self {
        let period_us = if period_us < MIN_TICK_US {
            MIN_TICK_US
        } else if period_us > MAX_TICK_US {
            MAX_TICK_US
        } else {
            period_us
        };
        Self {
            period_us,
            next_us: now_us.saturating_add(period_us),
            frame: 0,
        }
    }

    /// The period.
    #[must_use]
    pub const fn period_us(&self) -> u64 {
        self.period_us
    }

    /// When the next tick is due.
    #[must_use]
    pub const fn next_us(&self) -> u64 {
        self.next_us
    }

    /// The frame being built now: the one the next tick closes.
    #[must_use]
    pub const fn frame(&self) -> u64 {
        self.frame
    }

    /// Microseconds from `now_us` until the next tick (0 if it is due).
    #[must_use]
    pub const fn until_next(&self, now_us: u64) -> u64 {
        self.next_us.saturating_sub(now_us)
    }

    /// The tick due at `now_us`, if one is; taking it moves the ticker to the next frame.
    pub fn due(&mut self, now_us: u64) -> Option<Tick> {
        if now_us < self.next_us {
            return None;
        }
        let late_us = now_us - self.next_us;
        let skipped = late_us / self.period_us;
        let tick = Tick {
            frame: self.frame + skipped,
            late_us: late_us - skipped * self.period_us,
            skipped,
        };
        self.next_us = self
            .next_us
            .saturating_add((skipped + 1).saturating_mul(self.period_us));
        self.frame += 1 + skipped;
        Some(tick)
    }
}

/// Whether a polling runner keeps polling at `now_us`, having started at `start_us` with a
/// window of `window_us` and last come back from a yield at `last_us`: not past the window,
/// and the last yield short (a long one means another thread wants the core).
#[must_use]
pub const fn keep_polling(start_us: u64, last_us: u64, now_us: u64, window_us: u64) -> bool {
    now_us.saturating_sub(start_us) < window_us
        && now_us.saturating_sub(last_us) < CONTENDED_YIELD_US
}

/// When a busy runner reads the clock to measure its time per job: once per run of jobs
/// (the reading at its end stamps the run's last job and starts the next measurement), plus
/// once per [`MEASURE_EVERY_JOBS`] of a long run, and at every job until the first
/// measurement. Idle time is never measured: after idling, the first reading only starts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JobClock {
    mark_us: Option<u64>,
    ran: u64,
}

impl JobClock {
    /// A job is about to run: whether to read the clock before it (the first job before any
    /// measurement exists, so that one is measured from its start).
    #[must_use]
    pub const fn wants_start(&self, measured: bool) -> bool {
        self.mark_us.is_none() && !measured
    }

    /// The reading taken before a job.
    pub fn started(&mut self, now_us: u64) {
        self.mark_us = Some(now_us);
        self.ran = 0;
    }

    /// A job finished; `last` when no job follows it now. Whether to read the clock.
    pub fn job_done(&mut self, last: bool, measured: bool) -> bool {
        self.ran += 1;
        self.mark_us.is_none() || last || self.ran == MEASURE_EVERY_JOBS || !measured
    }

    /// The reading after a job: returns the elapsed microseconds and jobs to observe, if a
    /// measurement was under way.
    pub fn read(&mut self, now_us: u64) -> Option<(u64, u64)> {
        let observed = self
            .mark_us
            .map(|from| (now_us.saturating_sub(from), self.ran));
        self.mark_us = Some(now_us);
        self.ran = 0;
        observed
    }

    /// The rings were found empty: the next job starts a new measurement.
    pub fn idle(&mut self) {
        self.mark_us = None;
    }
}

/// A handler's view of how quickly runners answer, and whether it waits for their answers
/// (yielding its core) instead of sleeping in `poll`: only while the recent service time is
/// at most [`AWAIT_RUNNERS_US`] and jobs are out; after a wait that ran out, not again until
/// an answer arrives, so a runner busy with a long job costs one wasted wait, not one per
/// loop turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Awaiting {
    /// Moving average of service time (dispatch to the runner's stamp), µs; `u64::MAX`
    /// before the first answer.
    avg_us: u64,
    ran_out: bool,
}

impl Default for Awaiting {
    fn default() -> Self {
        Self {
            avg_us: u64::MAX,
            ran_out: false,
        }
    }
}

impl Awaiting {
    /// An answer arrived; `service_us` when the runner stamped it (see `Ticket::answered_us`).
    pub fn answered(&mut self, service_us: Option<u64>) {
        self.ran_out = false;
        if let Some(us) = service_us {
            self.avg_us = if self.avg_us == u64::MAX {
                us
            } else {
                (self.avg_us * 7 + us) / 8
            };
        }
    }

    /// Whether to wait for answers now, with `jobs_out` jobs at runners.
    #[must_use]
    pub const fn should_wait(&self, jobs_out: bool) -> bool {
        jobs_out && !self.ran_out && self.avg_us <= AWAIT_RUNNERS_US
    }

    /// Until when a wait begun at `now_us` lasts.
    #[must_use]
    pub const fn wait_until(now_us: u64) -> u64 {
        now_us.saturating_add(AWAIT_RUNNERS_US)
    }

    /// A wait ran out with no answer.
    pub fn ran_out(&mut self) {
        self.ran_out = true;
    }
}

/// Which handler takes a new connection, given each handler's open connections: the least
/// loaded one below `per_handler_cap`, while the total is below `max_connections`; `None`
/// refuses the connection (503).
#[must_use]
pub fn pick_handler(
    open: &[usize],
    per_handler_cap: usize,
    max_connections: usize,
) -> Option<usize> {
    let total: usize = open.iter().sum();
    if total >= max_connections {
        return None;
    }
    open.iter()
        .enumerate()
        .filter(|&(_, &n)| n < per_handler_cap)
        .min_by_key(|&(_, &n)| n)
        .map(|(h, _)| h)
}

/// Reports a recurring event (an accept error, say) at most once per period: the first at
/// once, the next not before a period has passed since the last report, each with the count
/// of events it covers.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    period_ms: u64,
    last_ms: Option<u64>,
    held: u64,
}

impl RateLimit {
    /// Nothing reported yet.
    #[must_use]
    pub const fn new(period_ms: u64) -> Self {
        Self {
            period_ms,
            last_ms: None,
            held: 0,
        }
    }

    /// `n` events at `now_ms`: when they are to be reported, `Some` of the events the report
    /// covers (these and the ones held back since the last report); else `None`, and they
    /// are counted for the next report.
    pub fn event(&mut self, now_ms: u64, n: u64) -> Option<u64> {
        match self.last_ms {
            Some(last) if now_ms.saturating_sub(last) < self.period_ms => {
                self.held = self.held.saturating_add(n);
                None
            }
            _ => {
                self.last_ms = Some(now_ms);
                Some(core::mem::take(&mut self.held).saturating_add(n))
            }
        }
    }
}
