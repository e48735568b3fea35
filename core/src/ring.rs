//! A bounded, lock-free, single-producer single-consumer ring.
//!
//! Every edge of the pipeline (listener to handler, handler to runner, runner to handler) is
//! one of these. [`Ring::split`] hands out exactly one [`Producer`] and one [`Consumer`]; both
//! are `Send` but neither is `Sync` nor `Clone`, so the type system keeps it single-producer
//! single-consumer. A failed push hands the value back; nothing blocks and nothing allocates.
//!
//! # Indices and who owns them
//! `tail` is the position of the next write and is stored only by the producer; `head` is the
//! position of the next read and is stored only by the consumer. Positions run over `0..2N`
//! (as in rtrb), so `head == tail` means empty and a distance of `N` means full without a
//! wasted slot, for any `N`. Each side keeps its own index in a plain field (it is the only
//! writer) and a cached copy of the other side's index, refreshed only when the cache says the
//! ring looks full (producer) or empty (consumer). `head` and `tail` live on separate cache
//! lines so the two threads do not false-share.
//!
//! # Orderings
//! - Producer `tail.store(Release)` after writing a slot pairs with the consumer's
//!   `tail.load(Acquire)`: a consumer that sees the new tail sees the slot's contents.
//! - Consumer `head.store(Release)` after moving a value out pairs with the producer's
//!   `head.load(Acquire)`: a producer that sees the new head knows the read of that slot has
//!   finished, so overwriting it cannot race with the read.
//! - Loads of one's own index never happen: each side keeps it locally.

use core::marker::PhantomData;
use core::mem::MaybeUninit;

use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

/// Pads and aligns a value to 128 bytes (two 64-byte lines: x86 prefetches line pairs), so the
/// producer's and the consumer's index never share a cache line.
#[derive(Debug)]
#[repr(align(128))]
struct CachePadded<T>(T);

/// A bounded SPSC ring with room for `N` values of `T`.
///
/// Make one (in a `static` through a cell, or anywhere else), then [`split`](Ring::split) it.
pub struct Ring<T, const N: usize> {
    /// Next position to read. Stored only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// Next position to write. Stored only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// Slot `i` holds an initialised value exactly when `i` is in `[head, tail)` (mod N).
    buf: [UnsafeCell<MaybeUninit<T>>; N],
}

// SAFETY: a `Ring` is only reachable from other threads through one `Producer` and one
// `Consumer` (split takes `&mut self`, so no second pair can exist while they live). The index
// protocol gives each slot to exactly one side at a time, so moving `T`s across threads needs
// only `T: Send`.
unsafe impl<T: Send, const N: usize> Sync for Ring<T, N> {}

impl<T, const N: usize> core::fmt::Debug for Ring<T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &N)
            .finish_non_exhaustive()
    }
}

#[inline(always)]
const fn increment<const N: usize>(pos: usize) -> usize {
    if pos + 1 == 2 * N {
        0
    } else {
        pos + 1
    }
}

#[inline(always)]
const fn distance<const N: usize>(head: usize, tail: usize) -> usize {
    if tail >= head {
        tail - head
    } else {
        tail + 2 * N - head
    }
}

#[inline(always)]
const fn slot<const N: usize>(pos: usize) -> usize {
    if pos >= N {
        pos - N
    } else {
        pos
    }
}

impl<T, const N: usize> Ring<T, N> {
    const CHECK: () = assert!(N > 0 && N <= usize::MAX / 4, "ring capacity out of range");

    /// An empty ring. `const`, so a ring can be built in a `static`.
    #[cfg(not(loom))]
    #[must_use]
    pub const fn new() -> Self {
        let () = Self::CHECK;
        Self {
            head: CachePadded(AtomicUsize::new(0)),
            tail: CachePadded(AtomicUsize::new(0)),
            buf: [const { UnsafeCell::new(MaybeUninit::uninit()) }; N],
        }
    }

    /// An empty ring (loom's atomics have no `const` constructor).
    #[cfg(loom)]
    #[must_use]
    pub fn new() -> Self {
        let () = Self::CHECK;
        Self {
            head: CachePadded(AtomicUsize::new(0)),
            tail: CachePadded(AtomicUsize::new(0)),
            buf: core::array::from_fn(|_| UnsafeCell::new(MaybeUninit::uninit())),
        }
    }

    /// How many values the ring holds when full.
    #[must_use]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Splits the ring into its one producer and its one consumer.
    ///
    /// Taking `&mut self` is what makes the pair unique: while they live, nobody else can touch
    /// the ring. With a `&'static mut Ring` (from a static cell or a leaked box) both halves
    /// are `'static` and can move to their threads.
    pub fn split(&mut self) -> (Producer<'_, T, N>, Consumer<'_, T, N>) {
        // `&mut self` means no other party holds a view, so relaxed loads are exact.
        let head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Relaxed);
        let ring = &*self;
        (
            Producer {
                ring,
                tail,
                published: tail,
                cached_head: head,
                _not_sync: PhantomData,
            },
            Consumer {
                ring,
                head,
                cached_tail: tail,
                _not_sync: PhantomData,
            },
        )
    }
}

#[cfg(not(loom))]
impl<T, const N: usize> Default for Ring<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> Drop for Ring<T, N> {
    fn drop(&mut self) {
        // `&mut self`: both halves are gone, relaxed loads are exact.
        let mut head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Relaxed);
        while head != tail {
            self.buf[slot::<N>(head)].with_mut(|p| {
                // SAFETY: positions in [head, tail) hold initialised values (invariant on
                // `buf`), and each is dropped once as `head` moves past it.
                unsafe { (*p).assume_init_drop() }
            });
            head = increment::<N>(head);
        }
    }
}

/// The writing half of a [`Ring`]. `Send`, not `Sync`, not `Clone`: one thread owns it.
///
/// It moves to another thread:
/// ```
/// fn send<T: Send>() {}
/// send::<httpd_runner_core::ring::Producer<'static, u64, 4>>();
/// ```
/// It cannot be shared between threads:
/// ```compile_fail,E0277
/// fn sync<T: Sync>() {}
/// sync::<httpd_runner_core::ring::Producer<'static, u64, 4>>();
/// ```
/// It cannot be cloned into a second writer:
/// ```compile_fail,E0277
/// fn clone<T: Clone>() {}
/// clone::<httpd_runner_core::ring::Producer<'static, u64, 4>>();
/// ```
pub struct Producer<'r, T, const N: usize> {
    ring: &'r Ring<T, N>,
    /// The next position to write; runs ahead of `ring.tail` while values are staged.
    tail: usize,
    /// What `ring.tail` holds (we are its only writer): the consumer sees `[head, published)`.
    published: usize,
    /// The consumer's `head` as last seen; may lag behind, which only makes us think the ring
    /// is fuller than it is until we reload it.
    cached_head: usize,
    /// `Cell<()>` is `Send + !Sync`: a producer can move to its thread but not be shared.
    _not_sync: PhantomData<core::cell::Cell<()>>,
}

impl<T, const N: usize> core::fmt::Debug for Producer<'_, T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &N)
            .finish_non_exhaustive()
    }
}

impl<T, const N: usize> Producer<'_, T, N> {
    /// Appends `value` and publishes it (with anything [staged](Self::stage) before it), or
    /// hands it back in `Err` when the ring is full.
    ///
    /// # Errors
    /// `Err(value)` when the consumer has not yet made room.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        self.stage(value)?;
        // Straight to the store, without `publish`'s "anything staged?" test: that branch
        // slowed the two-thread round trip (see `docs/performance.md`).
        self.store_tail();
        Ok(())
    }

    /// Writes `value` into the ring without showing it to the consumer yet: it becomes
    /// visible, with every value staged before it, at the next [`publish`](Self::publish) or
    /// [`push`](Self::push), or when the producer is dropped. A batch then crosses with one
    /// index store, and the consumer's first look finds all of it.
    ///
    /// # Errors
    /// `Err(value)` when the ring is full (staged values count as written).
    #[inline]
    pub fn stage(&mut self, value: T) -> Result<(), T> {
        if distance::<N>(self.cached_head, self.tail) == N {
            // Acquire pairs with the consumer's Release store of `head` in `pop`: the reads of
            // the slots it freed are complete before we write them again.
            self.cached_head = self.ring.head.0.load(Ordering::Acquire);
            if distance::<N>(self.cached_head, self.tail) == N {
                return Err(value);
            }
        }
        self.ring.buf[slot::<N>(self.tail)].with_mut(|p| {
            // SAFETY: the slot at `tail` is outside [head, published), so the consumer will not
            // read it until `publish` stores a position past it, and the Acquire above ordered
            // any earlier read of it before this write. It holds no live value, so nothing is
            // leaked by overwriting.
            unsafe { (*p).write(value) };
        });
        self.tail = increment::<N>(self.tail);
        Ok(())
    }

    /// Shows every staged value to the consumer (one store; nothing when none is staged).
    #[inline]
    pub fn publish(&mut self) {
        if self.published != self.tail {
            self.store_tail();
        }
    }

    #[inline(always)]
    fn store_tail(&mut self) {
        self.published = self.tail;
        // Release pairs with the consumer's Acquire load of `tail` in `pop`/`is_empty`: the
        // values written before this store are visible to a consumer that sees it.
        self.ring.tail.0.store(self.tail, Ordering::Release);
    }

    /// How many values are staged and not yet published.
    #[must_use]
    pub fn staged(&self) -> usize {
        distance::<N>(self.published, self.tail)
    }

    /// How many values can be pushed right now (at least; the consumer may free more).
    #[must_use]
    pub fn free(&self) -> usize {
        // Acquire: same pairing as in `push`.
        let head = self.ring.head.0.load(Ordering::Acquire);
        N - distance::<N>(head, self.tail)
    }

    /// How many values wait in the ring, staged ones included (at most; the consumer may have
    /// taken some).
    #[must_use]
    pub fn len(&self) -> usize {
        N - self.free()
    }

    /// Whether the ring is empty as far as the producer can tell.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T, const N: usize> Drop for Producer<'_, T, N> {
    /// Publishes what is staged, so the consumer (or the ring's own drop) still gets it.
    fn drop(&mut self) {
        self.publish();
    }
}

/// The reading half of a [`Ring`]. `Send`, not `Sync`, not `Clone`: one thread owns it.
///
/// It moves to another thread:
/// ```
/// fn send<T: Send>() {}
/// send::<httpd_runner_core::ring::Consumer<'static, u64, 4>>();
/// ```
/// It cannot be shared between threads:
/// ```compile_fail,E0277
/// fn sync<T: Sync>() {}
/// sync::<httpd_runner_core::ring::Consumer<'static, u64, 4>>();
/// ```
/// It cannot be cloned into a second reader:
/// ```compile_fail,E0277
/// fn clone<T: Clone>() {}
/// clone::<httpd_runner_core::ring::Consumer<'static, u64, 4>>();
/// ```
pub struct Consumer<'r, T, const N: usize> {
    ring: &'r Ring<T, N>,
    /// Our own copy of `ring.head` (we are its only writer).
    head: usize,
    /// The producer's `tail` as last seen; may lag, which only makes the ring look emptier.
    cached_tail: usize,
    /// `Cell<()>` is `Send + !Sync`.
    _not_sync: PhantomData<core::cell::Cell<()>>,
}

impl<T, const N: usize> core::fmt::Debug for Consumer<'_, T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &N)
            .finish_non_exhaustive()
    }
}

impl<T, const N: usize> Consumer<'_, T, N> {
    /// Takes the oldest value, or `None` when the ring is empty.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.head == self.cached_tail {
            // Acquire pairs with the producer's Release store of `tail` in `push`: the slot
            // contents written before that store are visible now.
            self.cached_tail = self.ring.tail.0.load(Ordering::Acquire);
            if self.head == self.cached_tail {
                return None;
            }
        }
        let value = self.ring.buf[slot::<N>(self.head)].with(|p| {
            // SAFETY: `head` is in [head, tail), so the slot holds an initialised value that the
            // producer published (Acquire above) and will not touch until we release it below.
            // We move it out exactly once: `head` advances past it right after.
            unsafe { (*p).assume_init_read() }
        });
        self.head = increment::<N>(self.head);
        // Release pairs with the producer's Acquire load of `head` in `push`/`free`: our read of
        // the slot is complete before the producer may overwrite it.
        self.ring.head.0.store(self.head, Ordering::Release);
        Some(value)
    }

    /// Whether nothing is waiting, as of a fresh load of the producer's index (the sleep
    /// re-check of [`crate::wake`] relies on that load).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many values wait (at least; the producer may add more).
    #[must_use]
    pub fn len(&self) -> usize {
        // Acquire: same pairing as in `pop`.
        let tail = self.ring.tail.0.load(Ordering::Acquire);
        distance::<N>(self.head, tail)
    }
}
