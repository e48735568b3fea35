//! The handler's request slots: owned here while free, lent out one per request, and given
//! back once its response is written or its connection is gone.

use httpd_runner_core::msg::Slot;

/// A handler's request slots (made at startup; never more, never fewer).
pub(crate) struct SlotPool {
    free: Vec<&'static mut Slot<'static>>,
    total: usize,
}

impl SlotPool {
    /// All of `slots`, free.
    pub(super) fn new(slots: Vec<&'static mut Slot<'static>>) -> Self {
        Self {
            total: slots.len(),
            free: slots,
        }
    }

    /// A free slot for a request, if any.
    #[inline]
    pub(super) fn take(&mut self) -> Option<&'static mut Slot<'static>> {
        self.free.pop()
    }

    /// The slot [`take`](Self::take) would lend next, to plan a read into it.
    pub(super) fn next_mut(&mut self) -> Option<&mut Slot<'static>> {
        self.free.last_mut().map(|s| &mut **s)
    }

    /// A slot back. The free list was reserved for every slot, so this never allocates.
    #[inline]
    pub(super) fn put(&mut self, slot: &'static mut Slot<'static>) {
        debug_assert!(self.free.len() < self.total, "a slot given back twice");
        self.free.push(slot);
    }

    /// Slots free now.
    #[inline]
    pub(super) fn free(&self) -> usize {
        self.free.len()
    }

    /// Slots in all.
    pub(super) fn total(&self) -> usize {
        self.total
    }
}
