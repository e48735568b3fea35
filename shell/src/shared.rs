//! What every thread of one server shares, made once at startup and never freed: the
//! configuration, the shutdown flag, the counters, the doorbells and the load hints.

use httpd_runner_core::sync::AtomicUsize;
use httpd_runner_core::wake::Doorbell;

use crate::clock::Origin;
use crate::config::Config;
use crate::hints::{LoadHint, ServiceHint};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// What all threads share, made once at startup and never freed.
pub(crate) struct Shared {
    /// The configuration.
    pub(crate) cfg: Config,
    /// The shutdown flag and wake-ups.
    pub(crate) shutdown: Shutdown,
    /// Counters.
    pub(crate) metrics: Metrics,
    /// Each handler's sleep flag.
    pub(crate) handler_bells: Vec<Doorbell>,
    /// Each runner's sleep flag.
    pub(crate) runner_bells: Vec<Doorbell>,
    /// Each handler's load hint for runners that consider polling.
    pub(crate) handler_light: Vec<LoadHint>,
    /// Open connections per handler (listener adds, handler subtracts).
    pub(crate) handler_open: Vec<AtomicUsize>,
    /// Each runner's recent time per job, for shedding (runner writes, handlers read).
    pub(crate) runner_service: Vec<ServiceHint>,
    /// When the server started (every thread's clock origin).
    pub(crate) started: Origin,
}

impl Shared {
    /// Whether every handler has been serving one connection per loop turn: requests come
    /// one at a time, so an idle runner that polls answers the next one sooner, and takes
    /// no time a busy handler needs.
    pub(crate) fn load_is_light(&self) -> bool {
        self.handler_light.iter().all(LoadHint::is_light)
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

pub(crate) use crate::clock::micros_since;
