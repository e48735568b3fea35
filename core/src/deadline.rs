//! Request deadlines: the budget a request carries (`X-Deadline-Ms`) or the server's default
//! (`--request-timeout`), where a request was when its deadline passed, and the handler's
//! watch over the requests it has out at runners.
//!
//! The protocol, in short: the handler stamps the deadline in the slot's ticket and watches
//! it. When it passes, the handler answers `504` on its own (the runner may still hold the
//! slot, so the answer does not use it) and the runner's answer, whenever it comes back, is
//! discarded; a runner that finds the deadline passed does not run the job (queue), drops
//! its late answer (running) or hands back a kept request (kept), marking the slot with
//! where. The handler counts each expiry once, when the slot comes back
//! ([`Watchlist::disarm`] says whether it had already answered).
//!
//! Times are microseconds since server start; [`NONE`] is "no deadline".

/// No deadline.
pub const NONE: u64 = u64::MAX;

/// Where a request was when its deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiry {
    /// It did not expire (or has not yet).
    #[default]
    No,
    /// Still queued for its runner: it was not run.
    Queue,
    /// Its runner was running it: the late answer was discarded.
    Running,
    /// Kept by its runner for a later answer.
    Kept,
}

impl Expiry {
    /// The places a request can expire, in index order.
    pub const ALL: [Self; 3] = [Self::Queue, Self::Running, Self::Kept];

    /// The metric label (`where="..."`).
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::Queue => "queue",
            Self::Running => "running",
            Self::Kept => "kept",
        }
    }

    /// Its place in [`Self::ALL`] (`No` has none).
    #[must_use]
    pub const fn index(self) -> Option<usize> {
        match self {
            Self::No => None,
            Self::Queue => Some(0),
            Self::Running => Some(1),
            Self::Kept => Some(2),
        }
    }
}

/// `X-Deadline-Ms` is not a number of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadBudget;

/// The budget an `X-Deadline-Ms` value gives, in ms: ASCII digits, optional surrounding
/// whitespace, cut to [`MAX_DEADLINE_MS`](crate::limits::MAX_DEADLINE_MS).
///
/// # Errors
/// [`BadBudget`] for anything else (empty, a sign, a fraction, other characters).
pub fn parse_budget_ms(value: &[u8]) -> Result<u64, BadBudget> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 20 {
        return Err(BadBudget);
    }
    let mut ms: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return Err(BadBudget);
        }
        ms = ms.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    Ok(ms.min(crate::limits::MAX_DEADLINE_MS))
}

/// The deadline of a request complete at `now_us`: its own budget if it carries one, else
/// the server's default (`default_ms`, 0 for none), as µs since start, or [`NONE`].
#[must_use]
pub fn deadline_us(now_us: u64, budget_ms: Option<u64>, default_ms: u64) -> u64 {
    match budget_ms.or((default_ms != 0).then_some(default_ms)) {
        Some(ms) => now_us.saturating_add(ms.saturating_mul(1000)).min(NONE - 1),
        None => NONE,
    }
}

/// Whether `deadline_us` has passed at `now_us`.
#[must_use]
pub const fn passed(now_us: u64, deadline_us: u64) -> bool {
    now_us >= deadline_us
}

/// What the handler remembers of one request out at a runner with a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    /// The deadline (µs since start); [`NONE`] when the entry is free.
    pub due_us: u64,
    /// The connection's index and generation, and the request's sequence number on it.
    pub conn: u32,
    /// See `conn`.
    pub generation: u32,
    /// See `conn`.
    pub seq: u32,
    /// A `HEAD` request (its 504 has no body).
    pub head_only: bool,
    /// The handler already answered `504` for it.
    pub fired: bool,
}

impl Watch {
    /// A free entry.
    pub const FREE: Self = Self {
        due_us: NONE,
        conn: 0,
        generation: 0,
        seq: 0,
        head_only: false,
        fired: false,
    };
}

/// The handler's watch over its requests at runners: one entry per request slot (indexed by
/// the slot's id), so it never grows; the earliest deadline is kept so the handler knows how
/// long it may sleep. Scans are linear over the entries but only run when a deadline is due.
#[derive(Debug)]
pub struct Watchlist<S> {
    entries: S,
    /// Entries armed and not yet fired.
    armed: usize,
    /// The earliest `due_us` among armed entries (or [`NONE`]); may be early after a
    /// disarm, never late.
    next_due_us: u64,
}

impl<S: AsRef<[Watch]> + AsMut<[Watch]>> Watchlist<S> {
    /// A watch over `entries` (all set to [`Watch::FREE`]).
    pub fn new(mut entries: S) -> Self {
        entries.as_mut().fill(Watch::FREE);
        Self {
            entries,
            armed: 0,
            next_due_us: NONE,
        }
    }

    /// The earliest deadline to check at, or [`NONE`].
    #[must_use]
    pub const fn next_due_us(&self) -> u64 {
        self.next_due_us
    }

    /// Requests watched and not yet answered `504`.
    #[must_use]
    pub const fn armed(&self) -> usize {
        self.armed
    }

    /// Watches the request in slot `id`. Ignored for [`NONE`] or an `id` out of range.
    pub fn arm(&mut self, id: usize, watch: Watch) {
        if watch.due_us == NONE {
            return;
        }
        let Some(e) = self.entries.as_mut().get_mut(id) else {
            return;
        };
        if e.due_us == NONE || e.fired {
            self.armed += 1;
        }
        *e = Watch {
            fired: false,
            ..watch
        };
        self.next_due_us = self.next_due_us.min(watch.due_us);
    }

    /// Slot `id` came back from its runner: forgets it. Returns whether it was watched and
    /// whether the handler had already answered `504` for it (`Some(true)`).
    pub fn disarm(&mut self, id: usize) -> Option<bool> {
        let e = self.entries.as_mut().get_mut(id)?;
        if e.due_us == NONE {
            return None;
        }
        let fired = e.fired;
        if !fired {
            self.armed -= 1;
        }
        *e = Watch::FREE;
        if self.armed == 0 {
            self.next_due_us = NONE;
        }
        Some(fired)
    }

    /// Every armed entry whose deadline passed at `now_us` goes to `expired` (once: it is
    /// marked fired and stays until [`disarm`](Self::disarm)); the earliest remaining
    /// deadline is recomputed.
    pub fn fire(&mut self, now_us: u64, mut expired: impl FnMut(&Watch)) {
        if now_us < self.next_due_us {
            return;
        }
        let mut next = NONE;
        for e in self.entries.as_mut() {
            if e.due_us == NONE || e.fired {
                continue;
            }
            if passed(now_us, e.due_us) {
                e.fired = true;
                self.armed -= 1;
                expired(e);
            } else {
                next = next.min(e.due_us);
            }
        }
        self.next_due_us = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_digits_cut_to_the_maximum() {
        assert_eq!(parse_budget_ms(b"20"), Ok(20));
        assert_eq!(parse_budget_ms(b" 0 "), Ok(0));
        assert_eq!(
            parse_budget_ms(b"99999999999999999999"),
            Ok(crate::limits::MAX_DEADLINE_MS)
        );
        for bad in [
            &b""[..],
            b"-1",
            b"1.5",
            b"+3",
            b"1e3",
            b"  ",
            b"123456789012345678901",
        ] {
            assert_eq!(parse_budget_ms(bad), Err(BadBudget), "{bad:?}");
        }
    }

    #[test]
    fn a_request_budget_wins_over_the_default() {
        assert_eq!(deadline_us(1_000, Some(20), 5_000), 21_000);
        assert_eq!(deadline_us(1_000, None, 5), 6_000);
        assert_eq!(deadline_us(1_000, None, 0), NONE);
        assert_eq!(deadline_us(1_000, Some(0), 0), 1_000);
        assert!(deadline_us(u64::MAX - 5, Some(1), 0) < NONE);
    }

    fn watch(due_us: u64, seq: u32) -> Watch {
        Watch {
            due_us,
            conn: 1,
            generation: 2,
            seq,
            head_only: false,
            fired: false,
        }
    }

    #[test]
    fn a_watch_fires_once_at_its_deadline_and_is_disarmed_by_the_slot() {
        let mut w = Watchlist::new([Watch::FREE; 4]);
        w.arm(0, watch(100, 7));
        w.arm(2, watch(50, 8));
        assert_eq!(w.next_due_us(), 50);
        let mut fired = [0u32; 4];
        let mut n = 0;
        w.fire(49, |e| {
            fired[n] = e.seq;
            n += 1;
        });
        assert_eq!(n, 0);
        w.fire(50, |e| {
            fired[n] = e.seq;
            n += 1;
        });
        assert_eq!(&fired[..n], &[8]);
        assert_eq!(w.next_due_us(), 100);
        assert_eq!(w.armed(), 1);
        w.fire(60, |_| n += 1);
        assert_eq!(n, 1, "fired once only");
        assert_eq!(
            w.disarm(2),
            Some(true),
            "answered 504 before the slot came back"
        );
        assert_eq!(w.disarm(0), Some(false), "came back in time");
        assert_eq!(w.next_due_us(), NONE);
        assert_eq!(w.disarm(0), None);
        assert_eq!(w.disarm(9), None);
    }

    #[test]
    fn no_deadline_is_not_watched() {
        let mut w = Watchlist::new([Watch::FREE; 2]);
        w.arm(0, watch(NONE, 1));
        w.arm(5, watch(10, 1));
        assert_eq!((w.armed(), w.next_due_us()), (0, NONE));
    }

    #[test]
    fn rearming_a_fired_entry_counts_it_again() {
        let mut w = Watchlist::new([Watch::FREE; 1]);
        w.arm(0, watch(10, 1));
        w.fire(10, |_| {});
        assert_eq!(w.armed(), 0);
        w.arm(0, watch(30, 2));
        assert_eq!((w.armed(), w.next_due_us()), (1, 30));
    }

    #[test]
    fn labels_and_indexes_agree() {
        for (i, e) in Expiry::ALL.iter().enumerate() {
            assert_eq!(e.index(), Some(i));
        }
        assert_eq!(Expiry::No.index(), None);
        assert_eq!(Expiry::Kept.label(), "kept");
    }
}
