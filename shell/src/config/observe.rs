//! What the server tells about itself: the stall detector's threshold, the log level and
//! the access log.

use std::path::PathBuf;
use std::time::Duration;

use httpd_runner_core::limits::DEFAULT_STALL_THRESHOLD_MS;
use log::LevelFilter;

use super::Config;

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// Standard output.
    Stdout,
    /// A file, appended to (created if missing).
    File(PathBuf),
}

/// The observation options, part of [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Observe {
    stall_threshold: Duration,
    log_level: LevelFilter,
    access_log: Option<AccessLog>,
}

impl Observe {
    pub(super) const DEFAULT: Self = Self {
        stall_threshold: Duration::from_millis(DEFAULT_STALL_THRESHOLD_MS),
        log_level: LevelFilter::Info,
        access_log: None,
    };
}

impl Config {
    /// A runner call (`run`, tick, alarm) longer than this counts as a stall: counted per
    /// runner in `/metrics` and logged (zero: the detector is off).
    #[must_use]
    pub const fn stall_threshold(mut self, d: Duration) -> Self {
        self.observe.stall_threshold = d;
        self
    }
    /// The most verbose level of log lines written to stderr (`Off`: none).
    #[must_use]
    pub const fn log_level(mut self, level: LevelFilter) -> Self {
        self.observe.log_level = level;
        self
    }
    /// Writes one line per request to `to` (`None`: no access log).
    #[must_use]
    pub fn access_log(mut self, to: Option<AccessLog>) -> Self {
        self.observe.access_log = to;
        self
    }

    /// The stall threshold in microseconds, 0 when off.
    #[must_use]
    pub fn stall_threshold_us(&self) -> u64 {
        u64::try_from(self.observe.stall_threshold.as_micros()).unwrap_or(u64::MAX)
    }
    /// The log level.
    #[must_use]
    pub const fn log_level_filter(&self) -> LevelFilter {
        self.observe.log_level
    }
    /// Where the access log goes, if anywhere.
    #[must_use]
    pub const fn access_log_to(&self) -> Option<&AccessLog> {
        self.observe.access_log.as_ref()
    }
}
