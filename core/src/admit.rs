//! Admission: which connection may take a request slot, and which `/run` request is shed
//! with `503` instead of waiting. Pure decisions over counts and times the shell passes in.
//!
//! - **Fair share of slots.** A handler's slots are shared by its connections. While a
//!   connection that holds no slot is [`starving`] (has waited [`STARVING_AFTER_US`] for
//!   one), a connection that already holds one (a
//!   request in flight) may take another only while more than [`reserve`] slots are free:
//!   the last eighth goes to those that hold none. Otherwise any free slot may be taken, so
//!   no slot sits idle and pipelined batches are not cut while clients merely take turns. (The shell also gives no
//!   new slot to a connection whose written responses go unread, and refuses with 503 one
//!   that holds none and waited past the shed bound.)
//! - **Bounded waiting.** A request that would wait longer than the shed bound is refused at
//!   once with `503` and `Retry-After`: the time it already waited for a slot plus the jobs
//!   ahead of it at its runner times that runner's recent service time per job. Like CoDel,
//!   this bounds the time a request spends queued (its sojourn), whatever the queue's length,
//!   so latency under overload stays bounded for the requests that are served.

use crate::limits::{SLOT_RESERVE_DIVISOR, STARVING_AFTER_US};

/// Slots a handler keeps for connections that hold none: `total / 8` (0 below 8 slots).
#[must_use]
pub const fn reserve(total: usize) -> usize {
    total / SLOT_RESERVE_DIVISOR
}

/// Whether a connection that holds `held` slots may take one more, with `free` of the
/// handler's `total` slots free, and `newcomer_waiting` when a connection that holds none
/// is [`starving`].
#[must_use]
pub const fn may_take_slot(held: usize, free: usize, total: usize, newcomer_waiting: bool) -> bool {
    free > 0 && (held == 0 || !newcomer_waiting || free > reserve(total))
}

/// Whether a connection holding no slot that has waited for one since `since_us` is starving
/// at `now_us`: then holders leave it the reserve ([`may_take_slot`]).
#[must_use]
pub const fn starving(since_us: u64, now_us: u64) -> bool {
    now_us.saturating_sub(since_us) >= STARVING_AFTER_US
}

/// Whether a connection holding no slot that has waited since `since_us` for one has waited
/// `bound_us` at `now_us` and gets `503` now. A bound of 0 turns this off.
#[must_use]
pub const fn slot_wait_expired(since_us: u64, now_us: u64, bound_us: u64) -> bool {
    bound_us != 0 && now_us.saturating_sub(since_us) >= bound_us
}

/// Whether a `/run` request is shed: it already waited `waited_us` (for a slot), `ahead` jobs
/// are queued or running at its runner (from every handler), and that runner takes
/// `service_us` per job lately. A bound of 0 turns shedding off.
#[must_use]
pub const fn should_shed(waited_us: u64, ahead: u64, service_us: u64, bound_us: u64) -> bool {
    bound_us != 0 && waited_us.saturating_add(ahead.saturating_mul(service_us)) > bound_us
}

/// Why a request was shed with 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// Its runner's queue from this handler was full (`--ring-capacity`).
    RingFull,
    /// It would have waited past the bound at its runner ([`should_shed`]).
    QueueWait,
    /// Its connection waited past the bound for a request slot ([`slot_wait_expired`]).
    SlotWait,
}

impl Shed {
    /// Every reason, in index order.
    pub const ALL: [Self; 3] = [Self::RingFull, Self::QueueWait, Self::SlotWait];

    /// The metric label (`reason="..."`).
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::RingFull => "ring_full",
            Self::QueueWait => "queue_wait",
            Self::SlotWait => "slot_wait",
        }
    }

    /// Its place in [`Self::ALL`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Observations in one window of [`ServiceTime`].
pub const SERVICE_WINDOW: u32 = 16;

/// A runner's recent time per job, in microseconds: the least average per job seen over the
/// current and the last window of [`SERVICE_WINDOW`] observations (each the jobs of one run,
/// or of a stretch of a long run). Like CoDel's minimum sojourn, the least is what the work
/// costs; a run that lasted longer because the thread lost its core for a while raises no
/// estimate, so a burst or a preemption sheds nothing while a standing cost does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceTime {
    /// Least per-job time this window, µs × 8 (fixed point, so short jobs keep a fraction).
    current_x8: u64,
    /// Least per-job time of the last whole window (`u64::MAX` before one).
    last_x8: u64,
    /// Observations this window.
    seen: u32,
}

impl Default for ServiceTime {
    fn default() -> Self {
        Self {
            current_x8: u64::MAX,
            last_x8: u64::MAX,
            seen: 0,
        }
    }
}

impl ServiceTime {
    /// Records `jobs` jobs that took `elapsed_us` in all.
    pub fn observe(&mut self, elapsed_us: u64, jobs: u64) {
        if jobs == 0 {
            return;
        }
        let sample_x8 = elapsed_us.saturating_mul(8) / jobs;
        self.current_x8 = self.current_x8.min(sample_x8);
        self.seen += 1;
        if self.seen == SERVICE_WINDOW {
            self.last_x8 = self.current_x8;
            self.current_x8 = u64::MAX;
            self.seen = 0;
        }
    }

    /// Whether anything has been observed.
    #[must_use]
    pub const fn is_measured(self) -> bool {
        self.current_x8 != u64::MAX || self.last_x8 != u64::MAX
    }

    /// The estimate, µs per job (rounded down; 0 before any observation).
    #[must_use]
    pub const fn per_job_us(self) -> u64 {
        let least = if self.current_x8 < self.last_x8 {
            self.current_x8
        } else {
            self.last_x8
        };
        if least == u64::MAX {
            0
        } else {
            least / 8
        }
    }

    /// What to publish to handlers, given `published` (what they last read; 0 before the
    /// first publication): the estimate, at least 1 µs once anything is measured (0 means
    /// "not yet" to readers, which then use the first job's running time so far), when it
    /// differs from `published` by more than an eighth, or by any amount at or below 8 µs.
    /// Publishing only then keeps the runner from writing a shared cache line after every
    /// observation.
    #[must_use]
    pub const fn to_publish(self, published: u64) -> Option<u64> {
        if !self.is_measured() {
            return None;
        }
        let now = if self.per_job_us() == 0 {
            1
        } else {
            self.per_job_us()
        };
        let diff = now.abs_diff(published);
        if diff > published / 8 || (diff > 0 && published <= 8) {
            Some(now)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_kept_for_connections_holding_no_slot_while_one_waits() {
        assert_eq!(reserve(128), 16);
        assert_eq!(reserve(7), 0);
        // While a newcomer waits: it takes the last slot; a holder stops at the reserve.
        assert!(may_take_slot(0, 1, 128, true));
        assert!(!may_take_slot(1, 16, 128, true));
        assert!(may_take_slot(1, 17, 128, true));
        assert!(may_take_slot(15, 17, 128, true));
        assert!(!may_take_slot(0, 0, 128, true));
        // With nobody waiting, a holder takes any free slot.
        assert!(may_take_slot(15, 1, 128, false));
        assert!(!may_take_slot(15, 0, 128, false));
        // With fewer than eight slots there is no reserve.
        assert!(may_take_slot(3, 1, 4, true));
    }

    #[test]
    fn a_newcomer_starves_after_a_few_milliseconds_not_while_taking_turns() {
        assert!(!starving(1_000, 1_000 + STARVING_AFTER_US - 1));
        assert!(starving(1_000, 1_000 + STARVING_AFTER_US));
        assert!(
            !starving(2_000, 1_000),
            "a clock behind the stamp is no wait"
        );
    }

    #[test]
    fn slot_waits_expire_at_the_bound_and_never_when_off() {
        assert!(!slot_wait_expired(100, 149, 50));
        assert!(slot_wait_expired(100, 150, 50));
        assert!(!slot_wait_expired(100, 1_000_000, 0));
        assert!(
            !slot_wait_expired(200, 100, 50),
            "a clock behind the stamp is no wait"
        );
    }

    #[test]
    fn shedding_weighs_the_queue_by_service_time() {
        // 10 jobs of 5 ms ahead: 50 ms, at the bound, still served; one more is shed.
        assert!(!should_shed(0, 10, 5_000, 50_000));
        assert!(should_shed(0, 11, 5_000, 50_000));
        // Time already spent waiting for a slot counts.
        assert!(should_shed(20_000, 7, 5_000, 50_000));
        assert!(!should_shed(20_000, 6, 5_000, 50_000));
        // Fast runners take deep queues; an unmeasured runner (0) sheds nothing.
        assert!(!should_shed(0, 1024, 2, 50_000));
        assert!(!should_shed(0, 1024, 0, 50_000));
        assert!(
            !should_shed(u64::MAX, u64::MAX, u64::MAX, 0),
            "0 turns it off"
        );
        assert!(should_shed(u64::MAX, u64::MAX, u64::MAX, 1), "no overflow");
    }

    #[test]
    fn service_time_is_the_least_over_two_windows() {
        let mut s = ServiceTime::default();
        assert!(!s.is_measured());
        assert_eq!(s.per_job_us(), 0);
        s.observe(50_000, 10);
        assert!(s.is_measured());
        assert_eq!(s.per_job_us(), 5_000, "the first observation sets it");
        s.observe(0, 0);
        assert_eq!(s.per_job_us(), 5_000, "no jobs, no change");
        // A run slowed by preemption does not raise it.
        s.observe(80_000, 2);
        assert_eq!(s.per_job_us(), 5_000);
        // A cheaper run lowers it at once.
        s.observe(4_000, 1);
        assert_eq!(s.per_job_us(), 4_000);
        // A lasting rise shows after the window holding the low value and the next have passed.
        for _ in 0..2 * SERVICE_WINDOW {
            s.observe(9_000, 1);
        }
        assert_eq!(s.per_job_us(), 9_000);
        assert_eq!(s.to_publish(4_000), Some(9_000));
        assert_eq!(s.to_publish(9_000), None);
        assert_eq!(s.to_publish(8_500), None, "within an eighth");
        let mut fast = ServiceTime::default();
        fast.observe(3, 2);
        assert_eq!(fast.per_job_us(), 1, "fractions are kept: 1.5 µs");
        assert_eq!(fast.to_publish(0), Some(1));
        assert_eq!(fast.to_publish(1), None);
    }

    #[test]
    fn nothing_is_published_before_a_measurement() {
        assert_eq!(ServiceTime::default().to_publish(0), None);
    }

    #[test]
    fn jobs_under_a_microsecond_publish_one() {
        // Published as 0, the estimate would read as "not measured yet", and handlers would
        // take the first job's running time so far for it: a figure that grows without end
        // and sheds every request with anything queued ahead.
        let mut s = ServiceTime::default();
        s.observe(5, 16);
        assert_eq!(s.per_job_us(), 0);
        assert_eq!(s.to_publish(0), Some(1));
        assert_eq!(s.to_publish(1), None);
    }
}
