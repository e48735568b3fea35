//! The sleep/wake handshake between a ring's consumer and its producers.
//!
//! A consumer that found all its rings empty must not sleep through a push that raced with its
//! last check, and a producer must not pay a system call per push to wake a consumer that is
//! busy anyway. The handshake:
//!
//! ```text
//! consumer                                  producer
//! doorbell.prepare_sleep()                  ring.push(x)          (Release store of tail)
//!   swap(sleeping, true, AcqRel)            if doorbell.should_wake()
//! if rings still empty: sleep                 swap(sleeping, false, AcqRel) == true
//! doorbell.awake()                            -> wake the consumer (one system call)
//!   swap(sleeping, false, AcqRel)
//! ```
//!
//! Every write of `sleeping` is a read-modify-write, so they are totally ordered and each reads
//! the one before it. If the producer's swap comes after the consumer's `prepare_sleep`, it
//! reads `true` and wakes. If it comes before, the consumer's later swap reads from it (or from
//! an RMW that did), acquires the producer's push, and the re-check sees the value. Either way
//! no wake-up is lost. This uses only acquire/release on one location, which loom models
//! exactly (it does not model `SeqCst` fences, so a fence-based Dekker handshake could not be
//! checked); `core/tests/loom.rs` model-checks it. Under load the consumer never prepares to
//! sleep, so a producer pays one uncontended RMW per batch and no system call.

use crate::sync::{AtomicBool, Ordering};

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
        Self {
            sleeping: AtomicBool::new(false),
        }
    }

    /// A doorbell for a consumer that is awake.
    #[cfg(loom)]
    #[must_use]
    pub fn new() -> Self {
        Self {
            sleeping: AtomicBool::new(false),
        }
    }

    /// Consumer: announce the intent to sleep. Re-check every input ring afterwards and sleep
    /// only if they are all still empty; call [`awake`](Self::awake) after waking (or after
    /// deciding not to sleep).
    #[inline]
    pub fn prepare_sleep(&self) {
        // AcqRel RMW: acquires every push whose `should_wake` swap came earlier in the flag's
        // modification order, so the re-check that follows sees those pushes.
        self.sleeping.swap(true, Ordering::AcqRel);
    }

    /// Consumer: back at work; producers need not wake us.
    #[inline]
    pub fn awake(&self) {
        // An RMW, not a store: a plain store would break the chain of RMWs that carries a
        // producer's release to the next `prepare_sleep`.
        self.sleeping.swap(false, Ordering::AcqRel);
    }

    /// Producer, after pushing: whether the consumer may be asleep and must be woken. Returns
    /// `true` to at most one caller per sleep, so a burst of pushes costs one wake.
    #[inline]
    #[must_use]
    pub fn should_wake(&self) -> bool {
        // AcqRel RMW: releases the push before it to a later `prepare_sleep`, and reads `true`
        // if the consumer announced sleep earlier in the modification order.
        self.sleeping.swap(false, Ordering::AcqRel)
    }
}

#[cfg(not(loom))]
impl Default for Doorbell {
    fn default() -> Self {
        Self::new()
    }
}
