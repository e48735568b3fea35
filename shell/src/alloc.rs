//! A counting global allocator: proves "no heap allocation after startup" by counting.
//!
//! The binary installs it with `#[global_allocator]`; every allocation, reallocation and the
//! bytes they ask for are counted with relaxed atomic adds (one uncontended `lock add` each,
//! nothing measurable beside the allocation itself). [`mark_startup_complete`] snapshots the
//! counters; [`after_startup`] reports what happened since.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

use httpd_runner_core::sync::{AtomicBool, AtomicU64, Ordering};

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);
static MARK_ALLOCS: AtomicU64 = AtomicU64::new(0);
static MARK_REALLOCS: AtomicU64 = AtomicU64::new(0);
static MARK_BYTES: AtomicU64 = AtomicU64::new(0);
static MARK_LIVE: AtomicU64 = AtomicU64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The system allocator, with counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees carry over; the counters are plain atomics with no effect on memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(&ALLOCS, layout.size());
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(&ALLOCS, layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(&REALLOCS, new_size);
        LIVE_BYTES.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[inline]
fn count(counter: &AtomicU64, bytes: usize) {
    // Relaxed: these are statistics; nothing is ordered by them.
    INSTALLED.store(true, Ordering::Relaxed);
    counter.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    LIVE_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// Allocation counts over some period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Calls to `alloc`/`alloc_zeroed`.
    pub allocations: u64,
    /// Calls to `realloc`.
    pub reallocations: u64,
    /// Bytes asked for by both.
    pub bytes: u64,
}

/// Whether the counting allocator is the global allocator of this process (it has counted
/// at least one allocation).
#[must_use]
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Everything counted since the process started.
#[must_use]
pub fn total() -> AllocStats {
    AllocStats {
        allocations: ALLOCS.load(Ordering::Relaxed),
        reallocations: REALLOCS.load(Ordering::Relaxed),
        bytes: BYTES.load(Ordering::Relaxed),
    }
}

/// Sets the startup mark: later calls to [`after_startup`] count from here.
pub fn mark_startup_complete() {
    MARK_LIVE.store(LIVE_BYTES.load(Ordering::Relaxed), Ordering::Relaxed);
    let t = total();
    MARK_ALLOCS.store(t.allocations, Ordering::Relaxed);
    MARK_REALLOCS.store(t.reallocations, Ordering::Relaxed);
    MARK_BYTES.store(t.bytes, Ordering::Relaxed);
}

/// Heap bytes live right now (0 if the allocator is not installed).
#[must_use]
pub fn live() -> u64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Heap bytes live at the startup mark (what startup reserved), if the allocator is installed.
#[must_use]
pub fn live_at_startup() -> u64 {
    MARK_LIVE.load(Ordering::Relaxed)
}

/// What was counted since [`mark_startup_complete`].
#[must_use]
pub fn after_startup() -> AllocStats {
    let t = total();
    AllocStats {
        allocations: t.allocations - MARK_ALLOCS.load(Ordering::Relaxed),
        reallocations: t.reallocations - MARK_REALLOCS.load(Ordering::Relaxed),
        bytes: t.bytes - MARK_BYTES.load(Ordering::Relaxed),
    }
}
