//! One flag that stops the server, and the wake-ups: every thread's way to be woken lives
//! here, used both for the hot path's doorbell wake-ups and to make every thread see a
//! shutdown.

use std::sync::OnceLock;
use std::thread::Thread;
use std::time::Instant;

use httpd_runner_core::sync::{AtomicBool, AtomicUsize, Ordering};

/// Why the server is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `POST /shutdown`.
    Request,
    /// SIGINT or SIGTERM.
    Signal,
}

impl Reason {
    /// How the log names it.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Request => "POST /shutdown",
            Self::Signal => "signal",
        }
    }
}

/// Shared shutdown state.
#[derive(Debug)]
pub(crate) struct Shutdown {
    requested: AtomicBool,
    /// A drain (`--drain-delay`) has started: the listener starts the shutdown when it ends.
    draining: AtomicBool,
    /// Whether there is a drain before the shutdown.
    drains: bool,
    by_signal: AtomicBool,
    handlers_left: AtomicUsize,
    /// Every handler thread has been joined (however it ended).
    handlers_joined: AtomicBool,
    /// The access-log writer, if there is one.
    access_thread: OnceLock<Thread>,
    listener_waker: OnceLock<mio::Waker>,
    handler_wakers: OnceLock<Vec<mio::Waker>>,
    runner_threads: OnceLock<Vec<Thread>>,
    /// When the shutdown started.
    started: OnceLock<Instant>,
}

impl Shutdown {
    /// Not stopping; `handlers` handler threads will report when they are done; `drains`:
    /// whether a [`Self::request`] drains first.
    #[must_use]
    pub(crate) fn new(handlers: usize, drains: bool) -> Self {
        Self {
            requested: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            drains,
            by_signal: AtomicBool::new(false),
            handlers_left: AtomicUsize::new(handlers),
            handlers_joined: AtomicBool::new(false),
            access_thread: OnceLock::new(),
            listener_waker: OnceLock::new(),
            handler_wakers: OnceLock::new(),
            runner_threads: OnceLock::new(),
            started: OnceLock::new(),
        }
    }

    /// Registers who must be woken (once, at startup).
    pub(crate) fn set_wakers(&self, listener: mio::Waker, handlers: Vec<mio::Waker>) {
        let _ = self.listener_waker.set(listener);
        let _ = self.handler_wakers.set(handlers);
    }

    /// Registers the access-log writer (once, at startup).
    pub(crate) fn set_access_thread(&self, thread: Thread) {
        let _ = self.access_thread.set(thread);
    }

    /// Every handler thread has been joined, whether it finished or failed: the access-log
    /// writer drains what they left and stops.
    pub(crate) fn handlers_joined(&self) {
        // Release, paired with the Acquire in `handlers_stopped`: the writer that sees the
        // flag sees every record the joined handlers pushed (joining synchronized with them).
        self.handlers_joined.store(true, Ordering::Release);
        if let Some(t) = self.access_thread.get() {
            t.unpark();
        }
    }

    /// Whether no handler will push another access-log record: all finished, or all joined
    /// (one that failed never reports itself finished).
    #[must_use]
    pub(crate) fn handlers_stopped(&self) -> bool {
        self.handlers_finished() || self.handlers_joined.load(Ordering::Acquire)
    }

    /// Registers the runner threads (once, at startup).
    pub(crate) fn set_runner_threads(&self, threads: Vec<Thread>) {
        let _ = self.runner_threads.set(threads);
    }

    /// Asks for a shutdown (SIGTERM, `POST /shutdown`): with a drain delay the drain starts
    /// (`/health` answers 503, everything else is served) and the listener starts the
    /// shutdown when it ends; without one, the shutdown starts now.
    pub(crate) fn request(&self, reason: Reason) {
        if !self.drains {
            return self.trigger(reason);
        }
        if reason == Reason::Signal {
            self.by_signal.store(true, Ordering::Relaxed);
        }
        if !self.draining.swap(true, Ordering::AcqRel) {
            log::info!(
                "drain started ({}): /health answers 503 until the shutdown",
                reason.label()
            );
            if let Some(w) = self.listener_waker.get() {
                let _ = w.wake();
            }
        }
    }

    /// Whether the server is draining: asked to stop, with its shutdown still to come.
    #[must_use]
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire) && !self.is_requested()
    }

    /// Starts a shutdown (idempotent) and wakes every thread so it notices.
    pub(crate) fn trigger(&self, reason: Reason) {
        if reason == Reason::Signal {
            self.by_signal.store(true, Ordering::Relaxed);
        }
        // Release pairs with the Acquire in `is_requested`: whatever the triggering thread did
        // before is visible to threads that see the flag.
        if self.requested.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.started.set(Instant::now());
        log::info!(
            "shutdown started ({}): finishing in-flight requests",
            reason.label()
        );
        if let Some(w) = self.listener_waker.get() {
            let _ = w.wake();
        }
        for w in self.handler_wakers.get().into_iter().flatten() {
            let _ = w.wake();
        }
        self.wake_runners();
    }

    fn wake_runners(&self) {
        for t in self.runner_threads.get().into_iter().flatten() {
            t.unpark();
        }
    }

    /// Wakes handler `h` (an eventfd write: call only when its doorbell says it sleeps).
    pub(crate) fn wake_handler(&self, h: usize) {
        if let Some(w) = self.handler_wakers.get().and_then(|w| w.get(h)) {
            let _ = w.wake();
        }
    }

    /// Wakes runner `r` (a futex wake: call only when its doorbell says it sleeps).
    pub(crate) fn wake_runner(&self, r: usize) {
        if let Some(t) = self.runner_threads.get().and_then(|t| t.get(r)) {
            t.unpark();
        }
    }

    /// Whether a shutdown has started.
    #[must_use]
    pub(crate) fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// When the shutdown started (`None` before).
    #[must_use]
    pub(crate) fn started(&self) -> Option<Instant> {
        self.started.get().copied()
    }

    /// Why, once started.
    #[must_use]
    pub(crate) fn reason(&self) -> Reason {
        if self.by_signal.load(Ordering::Relaxed) {
            Reason::Signal
        } else {
            Reason::Request
        }
    }

    /// A handler finished: all its connections are closed and it will push no more jobs.
    pub(crate) fn handler_done(&self) {
        // AcqRel: a runner that sees 0 also sees every job the handlers pushed before.
        if self.handlers_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            log::info!("shutdown: every connection is closed; runners finish their queues");
        }
        self.wake_runners();
    }

    /// Whether every handler has finished (runners may exit once their rings are empty).
    #[must_use]
    pub(crate) fn handlers_finished(&self) -> bool {
        self.handlers_left.load(Ordering::Acquire) == 0
    }
}
