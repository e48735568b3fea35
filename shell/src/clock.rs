//! The server's clock: microseconds of `CLOCK_MONOTONIC` since startup, read with one
//! `clock_gettime` and integer arithmetic. `Instant::elapsed` reads the same clock but
//! normalizes a `Duration` on the way (checked subtraction, nanosecond carry), several times
//! the instructions of the reading itself; runners read the clock once per job and handlers
//! once per write, so the difference is a measurable share of a small request.
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

/// When the server started, on both clocks: as an `Instant` for the APIs that take one, and
/// as monotonic µs for [`micros_since`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    instant: Instant,
    mono_us: u64,
}

impl Origin {
    /// Now.
    pub(crate) fn now() -> Self {
        Self {
            instant: Instant::now(),
            mono_us: monotonic_us(),
        }
    }

    /// The `Instant` `us` microseconds after the origin.
    pub(crate) fn at(self, us: u64) -> Instant {
        self.instant + Duration::from_micros(us)
    }

    /// Time since the origin, as a `Duration`.
    pub(crate) fn elapsed(self) -> Duration {
        self.instant.elapsed()
    }
}

/// Whole microseconds since `origin`.
#[inline]
pub(crate) fn micros_since(origin: Origin) -> u64 {
    monotonic_us().saturating_sub(origin.mono_us)
}

/// `CLOCK_MONOTONIC` in microseconds (the clock `Instant` reads on Linux).
#[inline]
fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through the pointer, which points to `ts`,
    // owned here and alive for the call; it keeps no reference. CLOCK_MONOTONIC is always
    // supported on Linux, so it cannot fail (and on failure `ts` stays zero, a valid value).
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts);
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_agrees_with_instant_and_never_goes_back() {
        let origin = Origin::now();
        let mut last = 0;
        for _ in 0..1000 {
            let us = micros_since(origin);
            assert!(us >= last);
            last = us;
        }
        std::thread::sleep(Duration::from_millis(20));
        let ours = micros_since(origin);
        let std = u64::try_from(origin.elapsed().as_micros()).unwrap();
        assert!(ours >= 20_000, "{ours}");
        assert!(ours.abs_diff(std) < 5_000, "ours {ours}, Instant {std}");
    }
}
