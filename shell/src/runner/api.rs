//! What user code implements and sees: the [`Runner`] trait, the per-call [`Context`], the
//! [`Error`] a call may return, and [`FrameRef`], a value kept in frame memory.

use std::cell::Cell;
use std::time::{Duration, Instant};

use bumpalo::Bump;
use httpd_runner_core::deadline::NONE;
use httpd_runner_core::keep::Kept;
use httpd_runner_core::msg::{Request, Response};

use super::desk::Desk;
use super::scratch::Arenas;

/// User code that answers `/run` requests on a runner thread.
///
/// A runner reads the request and writes status, header fields and body into the response's
/// fixed buffers. One instance lives on each runner thread, so its state needs no locks. It
/// must not block for long: it holds its core, and a tick cannot run while it does.
///
/// Beside answering at once, a runner can:
/// - **keep** a request ([`Context::keep`]) and answer it later, from another `run` or a
///   tick ([`Context::answer`]): long-polls, batches, inputs applied at the next frame;
/// - **tick**: ask for [`tick_every`](Self::tick_every) and [`tick`](Self::tick) is called at
///   that rate, idle or loaded, with a frame number;
/// - **fail** with a status: `run` returns [`Error`] and the server answers it;
/// - **see the deadline** of a request ([`Context::time_left`]) and skip work that cannot
///   finish in time;
/// - use **scratch memory** reserved at startup ([`Context::scratch`], [`Context::frame_arena`]).
///
/// Guarantees around it:
/// - **Affinity.** Requests naming the same key (`/run/KEY` or `X-Runner-Key: KEY`) always
///   reach the same runner, so per-key state can live in one runner without sharing.
/// - **Isolation.** If `run` or `tick` panics, that request is answered 500, every request
///   the instance kept is answered 500, the instance is dropped and rebuilt by the factory,
///   and the runner thread goes on; other runners are unaffected.
/// - **Framing is the server's.** `Content-Length`, `Transfer-Encoding`, `Connection` and
///   `Date` are refused by [`Response::header`]; the server writes them.
/// - **Order.** Responses go back to each connection in request order, whatever runner
///   finishes first and however long a kept request waits.
/// - **Deadlines.** A request whose deadline passes is answered `504` by the server within
///   milliseconds, whatever the runner is doing; a runner's late answer is discarded.
///
/// A closure `FnMut(&Request, &mut Response)` is a runner too (no context, no ticks).
pub trait Runner {
    /// Answers one request: write the response, or return an [`Error`] (the server then
    /// answers that status with a short text body, whatever was written), or keep the
    /// request with [`Context::keep`] and answer it later.
    ///
    /// # Errors
    /// The status to answer instead.
    fn run(
        &mut self,
        cx: &mut Context<'_>,
        req: &Request<'_>,
        resp: &mut Response<'_, '_>,
    ) -> Result<(), Error>;

    /// Called every [`tick_every`](Self::tick_every), on time whether the runner is idle
    /// or busy (between two jobs). [`Context::frame`] is the frame this tick closes; the
    /// frame arena flips after it.
    fn tick(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// Called once when the alarm set with [`Context::alarm_in`] goes off (between two
    /// jobs, like a tick). For work due a while after an event: a batch that must leave
    /// some microseconds after its first request, however few joined it.
    fn alarm(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// The tick period this runner asks for, read once when the instance is built; `None`
    /// (the default) for no ticks. Periods are clamped to 100 µs ..= 1 hour.
    fn tick_every(&self) -> Option<Duration> {
        None
    }
}

impl<F: FnMut(&Request<'_>, &mut Response<'_, '_>)> Runner for F {
    fn run(
        &mut self,
        _cx: &mut Context<'_>,
        req: &Request<'_>,
        resp: &mut Response<'_, '_>,
    ) -> Result<(), Error> {
        self(req, resp);
        Ok(())
    }
}

/// A status a runner answers instead of a response: the server sends it with a short text
/// body (the message, or the reason phrase), whatever the runner had written, and counts it
/// in `httpd_runner_runner_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    status: u16,
    message: Option<&'static str>,
}

impl Error {
    /// Answers `status` (400..=599; anything else becomes 500) with its reason phrase.
    #[must_use]
    pub const fn status(status: u16) -> Self {
        Self {
            status: if status >= 400 && status <= 599 {
                status
            } else {
                500
            },
            message: None,
        }
    }

    /// Answers `status` with `message` as the body.
    #[must_use]
    pub const fn with_message(status: u16, message: &'static str) -> Self {
        Self {
            message: Some(message),
            ..Self::status(status)
        }
    }

    /// The status code sent.
    #[must_use]
    pub const fn code(&self) -> u16 {
        self.status
    }

    /// The body sent (without its final newline).
    #[must_use]
    pub fn message(&self) -> &'static str {
        self.message
            .unwrap_or_else(|| httpd_runner_core::response::reason(self.status))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message())
    }
}

impl std::error::Error for Error {}

/// `Context::now_us` before the clock was read (a call given no time).
pub(super) const UNREAD: u64 = u64::MAX;

/// What a runner's call knows besides the request: which runner it is, the time, the
/// request's deadline, the frame, scratch memory, and the desk where kept requests wait.
pub struct Context<'r> {
    pub(super) runner: usize,
    pub(super) started: crate::clock::Origin,
    /// The clock at the start of the call: the runner's reading when it took the job (or
    /// began the tick or alarm), which also times the call; [`UNREAD`] is read on first use.
    pub(super) now_us: Cell<u64>,
    pub(super) frame: u64,
    /// The current request's deadline ([`NONE`] in a tick or without one).
    pub(super) deadline_us: u64,
    pub(super) arenas: &'r Arenas,
    pub(super) desk: &'r mut Desk,
    /// The entry reserved by [`keep`](Self::keep) for the request being run.
    pub(super) keeping: Option<Kept>,
    /// Whether a request is being run (`keep` is allowed).
    pub(super) in_run: bool,
    /// The runner's alarm (µs since start, or [`NONE`]); [`alarm_in`](Self::alarm_in) sets it.
    pub(super) alarm_us: &'r mut u64,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("runner", &self.runner)
            .field("now_us", &self.now_us.get())
            .field("frame", &self.frame)
            .field("deadline_us", &self.deadline_us)
            .finish_non_exhaustive()
    }
}

impl Context<'_> {
    /// This runner's index (0-based; the one `X-Runner` names).
    #[must_use]
    pub fn runner(&self) -> usize {
        self.runner
    }

    /// The time this call began.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.at(self.now_us())
    }

    /// Microseconds since the server started, at the beginning of this call.
    #[must_use]
    pub fn now_us(&self) -> u64 {
        if self.now_us.get() == UNREAD {
            self.now_us.set(crate::shared::micros_since(self.started));
        }
        self.now_us.get()
    }

    /// The frame being built: the number of the tick that will close it (in a tick, the
    /// frame that tick closes). 0 without ticks.
    #[must_use]
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// When the current request's deadline passes (`X-Deadline-Ms` or
    /// `--request-timeout`); `None` without one, and in a tick.
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        (self.deadline_us != NONE).then(|| self.at(self.deadline_us))
    }

    /// Time left now (the clock is read) before the current request's deadline, zero once
    /// it passed; `None` without a deadline. Work that cannot finish in it is wasted: the
    /// client gets `504` at the deadline and a later answer is discarded.
    #[must_use]
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Scratch memory for this call, reserved at startup (`--scratch`) and reset when the
    /// call returns. Allocation past its size fails (`try_alloc`) or panics (`alloc`, which
    /// the server answers 500); it never reaches the heap.
    #[must_use]
    pub fn scratch(&self) -> &Bump {
        &self.arenas.run
    }

    /// The current half of the frame arena (`--frame-scratch` each half): what is put here
    /// in frame F stays in place through frame F + 1, and the half is reset when the tick
    /// closing frame F + 1 returns. Use [`frame_keep`](Self::frame_keep) for a value to
    /// read again in the next frame.
    #[must_use]
    pub fn frame_arena(&self) -> &Bump {
        self.arenas.current()
    }

    /// Copies `value` into the frame arena and returns a handle that reads it through the
    /// next frame ([`frame_get`](Self::frame_get)); `None` when the half is full.
    #[must_use]
    pub fn frame_keep<T: Copy>(&self, value: T) -> Option<FrameRef<T>> {
        self.arenas.keep(value)
    }

    /// Copies `values` into the frame arena, like [`frame_keep`](Self::frame_keep).
    #[must_use]
    pub fn frame_keep_slice<T: Copy>(&self, values: &[T]) -> Option<FrameRef<[T]>> {
        self.arenas.keep_slice(values)
    }

    /// The value behind `r`, while it is still valid (kept in this frame or the one
    /// before, by this runner's arenas); `None` after.
    #[must_use]
    pub fn frame_get<'a, T: ?Sized>(&'a self, r: &FrameRef<T>) -> Option<&'a T> {
        self.arenas.get(r)
    }

    /// Keeps the request being run, to answer it later with [`answer`](Self::answer) (from
    /// a later `run` or a tick). Whatever this call writes to the response is discarded once
    /// it returns `Ok`. The request holds its slot until answered or until its deadline
    /// passes (the server then answers `504`); how many requests can be kept is fixed at
    /// startup (every request that can be out at this runner).
    ///
    /// # Errors
    /// `503` when called outside `run`, twice for one request, or with no entry free.
    pub fn keep(&mut self) -> Result<Kept, Error> {
        if !self.in_run || self.keeping.is_some() {
            return Err(Error::with_message(503, "request cannot be kept"));
        }
        let k = self
            .desk
            .reserve()
            .ok_or(Error::with_message(503, "no room to keep the request"))?;
        self.keeping = Some(k);
        Ok(k)
    }

    /// Answers a kept request: `f` writes its response as `run` would. Returns `false` (and
    /// does not call `f`) when `k` no longer names a kept request: already answered, or its
    /// deadline passed (the client got `504`), and for the request being run itself (whose
    /// `run` has not returned yet; answer it through its `resp` and do not keep it).
    pub fn answer(
        &mut self,
        k: Kept,
        f: impl FnOnce(&Request<'_>, &mut Response<'_, '_>) -> Result<(), Error>,
    ) -> bool {
        let now = self.now_us();
        self.desk.answer(k, now, f)
    }

    /// Whether `k` still names a kept request (not answered, not expired by the clock at
    /// the start of this call).
    #[must_use]
    pub fn is_kept(&self, k: Kept) -> bool {
        self.desk
            .due_us(k)
            .is_some_and(|due| due == NONE || self.now_us() < due)
    }

    /// When kept request `k`'s deadline passes, if it has one and is still kept.
    #[must_use]
    pub fn kept_deadline(&self, k: Kept) -> Option<Instant> {
        let due = self.desk.due_us(k)?;
        (due != NONE).then(|| self.at(due))
    }

    /// Sets this runner's one alarm to go off `after` from the start of this call
    /// ([`Runner::alarm`] is called then), replacing any alarm set before. The runner sleeps
    /// until then if it has nothing else to do.
    pub fn alarm_in(&mut self, after: Duration) {
        let us = u64::try_from(after.as_micros()).unwrap_or(u64::MAX);
        *self.alarm_us = self.now_us().saturating_add(us).min(NONE - 1);
    }

    /// Clears the alarm.
    pub fn cancel_alarm(&mut self) {
        *self.alarm_us = NONE;
    }

    /// Requests kept by this runner now.
    #[must_use]
    pub fn kept_count(&self) -> usize {
        self.desk.held()
    }

    fn at(&self, us: u64) -> Instant {
        self.started.at(us)
    }
}

pub use super::scratch::FrameRef;
