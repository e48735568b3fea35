//! Hints threads leave each other on cache lines of their own: whether load is light (for
//! runners that consider polling) and a runner's time per job (for handlers that shed). Each
//! has one writer and orders nothing, so every access is relaxed.

use httpd_runner_core::sync::{AtomicBool, AtomicU64, Ordering};

/// A handler's "my last `LIGHT_STREAK_TURNS` loop turns each served at most one connection", on
/// its own cache line (the handler writes it only when it changes; idle runners read it while
/// they poll). A hint: it orders nothing, so it is relaxed.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct LoadHint(AtomicBool);

impl Default for LoadHint {
    fn default() -> Self {
        Self(AtomicBool::new(false))
    }
}

impl LoadHint {
    /// Handler: records whether its load is light (called only when that changes).
    pub(crate) fn set(&self, light: bool) {
        self.0.store(light, Ordering::Relaxed);
    }

    /// Runner: reads it.
    pub(crate) fn is_light(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A runner's recent time per job in µs (0 until measured), on its own cache line: the runner
/// stores it only when it changes by more than an eighth (`admit::ServiceTime`), handlers read
/// it for every `/run` request they dispatch. A hint: relaxed.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct ServiceHint(AtomicU64, AtomicU64);

impl ServiceHint {
    /// Runner: publishes its time per job.
    pub(crate) fn set(&self, us: u64) {
        self.0.store(us, Ordering::Relaxed);
    }

    /// Runner, once, before its time per job is known: when its first job started (µs since
    /// server start).
    pub(crate) fn first_job_started(&self, at_us: u64) {
        self.1.store(at_us.max(1), Ordering::Relaxed);
    }

    /// Handler: the runner's time per job at `now_us`. Before the first measurement, the
    /// first job's running time so far stands in for it, so a burst that arrives before any
    /// job finished is not all queued behind a slow runner; 0 while the runner has not
    /// started any job.
    pub(crate) fn get(&self, now_us: u64) -> u64 {
        match self.0.load(Ordering::Relaxed) {
            0 => match self.1.load(Ordering::Relaxed) {
                0 => 0,
                started => now_us.saturating_sub(started).max(1),
            },
            us => us,
        }
    }
}
