//! A runner's scratch memory, reserved at startup: the run arena (reset after every call)
//! and the frame arena in two halves (the blue-green frame memory: one half is written in
//! this frame while the other still holds the last frame's values).
//!
//! Each arena is a [`bumpalo::Bump`] with one chunk allocated and touched at startup and an
//! allocation limit that forbids a second chunk, so an allocation that does not fit fails
//! (or panics, for bumpalo's infallible calls) instead of reaching the heap, and a reset
//! frees nothing.

// One unsafe block: reading a value through a `FrameRef`, whose pointer the checks in
// `Arenas::get` prove still valid (see there).
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use bumpalo::Bump;

/// A value copied into a runner's frame arena ([`crate::Context::frame_keep`]): read it with
/// [`crate::Context::frame_get`] in the frame it was kept in and the next one. It cannot be
/// sent to another thread and reads nothing once its frame's half was reset.
pub struct FrameRef<T: ?Sized> {
    ptr: NonNull<T>,
    /// The flip count of the arenas when it was kept.
    epoch: u64,
    /// Which arenas it lives in.
    owner: u64,
    _not_send: PhantomData<*const T>,
}

impl<T: ?Sized> Clone for FrameRef<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for FrameRef<T> {}

impl<T: ?Sized> std::fmt::Debug for FrameRef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameRef")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Tells arenas apart (a `FrameRef` from one runner reads nothing in another).
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// One runner's scratch memory.
pub(crate) struct Arenas {
    pub(crate) run: Bump,
    /// The run arena's capacity when empty (a reset is skipped while it is).
    run_capacity: usize,
    frames: [Bump; 2],
    /// Flips so far; `frames[epoch % 2]` is the current half.
    epoch: u64,
    owner: u64,
}

impl Arenas {
    /// Reserves and touches `run_bytes` for the run arena and `frame_bytes` for each frame
    /// half (at startup, on the runner's thread).
    pub(crate) fn new(run_bytes: usize, frame_bytes: usize) -> Self {
        let run = fixed(run_bytes);
        Self {
            run_capacity: run.chunk_capacity(),
            run,
            frames: [fixed(frame_bytes), fixed(frame_bytes)],
            epoch: 0,
            owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Bytes these arenas reserved.
    #[cfg(test)]
    pub(crate) fn reserved_bytes(&self) -> usize {
        self.run.allocated_bytes() + self.frames.iter().map(Bump::allocated_bytes).sum::<usize>()
    }

    /// The current frame half.
    pub(crate) fn current(&self) -> &Bump {
        &self.frames[(self.epoch % 2) as usize]
    }

    /// After each call: the run arena starts empty again.
    pub(crate) fn after_call(&mut self) {
        if self.run.chunk_capacity() != self.run_capacity {
            self.run.reset();
        }
    }

    /// After a tick: the other half becomes current and is emptied. It held the frame
    /// before the one that just ended, whose `FrameRef`s [`get`](Self::get) no longer
    /// reads (their epoch is two behind).
    pub(crate) fn flip(&mut self) {
        self.epoch += 1;
        self.frames[(self.epoch % 2) as usize].reset();
    }

    pub(crate) fn keep<T: Copy>(&self, value: T) -> Option<FrameRef<T>> {
        let r = self.current().try_alloc(value).ok()?;
        Some(self.frame_ref(NonNull::from(r)))
    }

    pub(crate) fn keep_slice<T: Copy>(&self, values: &[T]) -> Option<FrameRef<[T]>> {
        let r = self.current().try_alloc_slice_copy(values).ok()?;
        Some(self.frame_ref(NonNull::from(r)))
    }

    fn frame_ref<T: ?Sized>(&self, ptr: NonNull<T>) -> FrameRef<T> {
        FrameRef {
            ptr,
            epoch: self.epoch,
            owner: self.owner,
            _not_send: PhantomData,
        }
    }

    /// The value behind `r` if it is still valid.
    pub(crate) fn get<'a, T: ?Sized>(&'a self, r: &FrameRef<T>) -> Option<&'a T> {
        if r.owner != self.owner || self.epoch.wrapping_sub(r.epoch) > 1 {
            return None;
        }
        // SAFETY: `r.ptr` came from `try_alloc*` on half `r.epoch % 2` of these arenas (the
        // owner check) at epoch `r.epoch`, as a fully initialized `T` (a `Copy` value, so
        // bumpalo never drops it). That half is reset only by `flip` when the epoch reaches
        // `r.epoch + 2`, and the epoch is at most `r.epoch + 1` here, so nothing has reused
        // those bytes; the chunk itself is never freed while the arenas live (one chunk, an
        // allocation limit forbidding more, and `reset` keeps the last chunk). No `&mut` to
        // it exists: `try_alloc`'s exclusive borrow ended when the `FrameRef` was made, and
        // `FrameRef` gives out shared references only. `flip` needs `&mut self`, so it
        // cannot run while the returned reference (borrowing `self`) lives.
        Some(unsafe { r.ptr.as_ref() })
    }
}

/// An arena of exactly one chunk of at least `bytes`, touched now, that never grows.
fn fixed(bytes: usize) -> Bump {
    let mut b = Bump::with_capacity(bytes);
    // No second chunk, ever: an allocation that does not fit fails. The limit is what is
    // allocated now, not 0: bumpalo ignores a limit already exceeded.
    b.set_allocation_limit(Some(b.allocated_bytes()));
    let cap = b.chunk_capacity();
    if cap > 0 {
        // Touch every page now, so serving never faults them in.
        let _ = b.try_alloc_slice_fill_copy(cap, 0u8);
    }
    b.reset();
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_value_lives_through_the_next_frame_only() {
        let mut a = Arenas::new(1024, 1024);
        let r = a.keep(41u32).unwrap();
        assert_eq!(a.get(&r), Some(&41));
        a.flip();
        assert_eq!(a.get(&r), Some(&41), "still there in the next frame");
        let r2 = a.keep_slice(&[1u8, 2, 3]).unwrap();
        a.flip();
        assert_eq!(a.get(&r), None, "two frames on, its half was reset");
        assert_eq!(a.get(&r2), Some(&[1u8, 2, 3][..]));
    }

    #[test]
    fn arenas_never_grow() {
        let mut a = Arenas::new(4096, 256);
        let reserved = a.reserved_bytes();
        let cap = a.run.chunk_capacity();
        assert!(a.run.try_alloc_slice_fill_copy(cap, 1u8).is_ok());
        assert!(a.run.try_alloc(1u8).is_err(), "full");
        a.after_call();
        assert!(a.run.try_alloc_slice_fill_copy(cap, 1u8).is_ok(), "reset");
        assert!(a.keep([0u8; 1 << 14]).is_none());
        assert_eq!(a.reserved_bytes(), reserved);
        let none = Arenas::new(0, 0);
        assert!(none.run.try_alloc(1u8).is_err());
        assert!(none.keep(1u8).is_none());
    }

    #[test]
    fn a_frame_ref_reads_nothing_in_other_arenas() {
        let a = Arenas::new(64, 64);
        let b = Arenas::new(64, 64);
        let r = a.keep(1u8).unwrap();
        assert_eq!(b.get(&r), None);
    }
}
