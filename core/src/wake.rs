//! The sleep/wake handshake between a ring's consumer and its producers.
//!
//! A consumer that found all its rings empty must not sleep through a push that raced with its
//! last check, and a producer must not pay a system call per push to wake a consumer that is
//! busy anyway. The handshake (a Dekker pair of `SeqCst` fences):
//!
//! ```text
//! consumer                                  producer
//! doorbell.prepare_sleep()                  ring.push(x)
//!   sleeping = true; fence(SeqCst)          if doorbell.should_wake()
//! if rings still empty: sleep                 fence(SeqCst); swap(sleeping, false)
//! doorbell.awake()                            -> true: wake the consumer (syscall)
//! ```
//!
//! Either the consumer's re-check sees the push, or the producer sees `sleeping == true`
//! (the two fences are totally ordered, so both cannot miss). Under load nobody sleeps, so
//! `should_wake` is one fence and one uncontended RMW. `core/tests/loom.rs` model-checks it.

use crate::sync::{fence, AtomicBool, Ordering};

/// A consumer's "I am about to sleep" flag. One per consumer thread, shared with its producers.
#[derive(Debug)]
pub struct Doorbell {
    sleeping: AtomicBool,
}

impl Doorbell {
    /// A doorbell for a consumer that is awake.
    #[cfg(not(loom))]
    #[must_use]
    pub const fn new() -> Self {
        Self { sleeping: AtomicBool::new(false) }
    }

    /// A doorbell for a consumer that is awake.
    #[cfg(loom)]
    #[must_use]
    pub fn new() -> Self {
        Self { sleeping: AtomicBool::new(false) }
    }

    /// Consumer: announce the intent to sleep. Re-check every input ring afterwards and sleep
    /// only if they are all still empty; call [`awake`](Self::awake) after waking (or after
    /// deciding not to sleep).
    #[inline]
    pub fn prepare_sleep(&self) {
        // Relaxed store: the SeqCst fence right after orders it before the ring re-check loads.
        self.sleeping.store(true, Ordering::Relaxed);
        // Pairs with the fence in `should_wake`: of the two (flag store, tail load) and
        // (tail store, flag load) pairs, at least one load sees the other side's store.
        fence(Ordering::SeqCst);
    }

    /// Consumer: back at work; producers need not wake us.
    #[inline]
    pub fn awake(&self) {
        // Relaxed: clearing early only costs a producer a missed-but-unneeded wake; the consumer
        // re-checks its rings after every wake anyway.
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Producer, after pushing: whether the consumer may be asleep and must be woken. Returns
    /// `true` to at most one caller per sleep, so a burst of pushes costs one wake.
    #[inline]
    #[must_use]
    pub fn should_wake(&self) -> bool {
        // Pairs with the fence in `prepare_sleep` (see there).
        fence(Ordering::SeqCst);
        // Cheap load first so the busy case does not dirty the cache line.
        self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::Relaxed)
    }
}

#[cfg(not(loom))]
impl Default for Doorbell {
    fn default() -> Self {
        Self::new()
    }
}
