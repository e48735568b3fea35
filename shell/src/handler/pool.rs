//! The handler's request slots, in two size classes (`class::SlotClass`): owned here while
//! free, lent out one per request, and given back once its response is written or its
//! connection is gone. A response that grew into a runner's spare buffer sends that buffer
//! back to the runner when its slot comes home.

use httpd_runner_core::class::SlotClass;
use httpd_runner_core::limits::SPARE_RING_SLOTS;
use httpd_runner_core::msg::Slot;
use httpd_runner_core::ring::Producer;

/// The way a spare response buffer goes back to the runner that lent it.
pub(crate) type SpareTx = Producer<'static, &'static mut [u8], SPARE_RING_SLOTS>;

/// A handler's request slots (made at startup; never more, never fewer).
pub(crate) struct SlotPool {
    /// Free slots per class.
    free: [Vec<&'static mut Slot<'static>>; 2],
    /// Slots per class.
    total: [usize; 2],
    /// Slot ids below this are small.
    small: u32,
    /// To each runner, its spare response buffers.
    spares: Vec<SpareTx>,
    /// The handler's own spare response buffer, for the long answers it writes itself
    /// (`/metrics`).
    own: Vec<&'static mut [u8]>,
}

impl SlotPool {
    /// All of `slots`, free: the first `small` are small, the rest large.
    pub(super) fn new(
        slots: Vec<&'static mut Slot<'static>>,
        small: usize,
        spares: Vec<SpareTx>,
        own: Vec<&'static mut [u8]>,
    ) -> Self {
        let mut free = [
            Vec::with_capacity(small),
            Vec::with_capacity(slots.len() - small),
        ];
        for slot in slots {
            let class = usize::from(slot.id as usize >= small);
            free[class].push(slot);
        }
        Self {
            total: [free[0].len(), free[1].len()],
            free,
            small: small as u32,
            spares,
            own,
        }
    }

    fn class_of(&self, slot: &Slot<'_>) -> SlotClass {
        if slot.id < self.small {
            SlotClass::Small
        } else {
            SlotClass::Large
        }
    }

    /// The class of slot [`take`](Self::take) lends a request of `class`.
    fn pick(&self, class: SlotClass) -> SlotClass {
        match class {
            SlotClass::Small if self.free[0].is_empty() => SlotClass::Large,
            c => c,
        }
    }

    /// A free slot for a request of `class`, if any: its own class, or a large one when no
    /// small one is free (a large slot holds any request).
    #[inline]
    pub(super) fn take(&mut self, class: SlotClass) -> Option<&'static mut Slot<'static>> {
        match class {
            SlotClass::Small => match self.free[0].pop() {
                Some(slot) => Some(slot),
                None => self.free[1].pop(),
            },
            SlotClass::Large => self.free[1].pop(),
        }
    }

    /// The slot [`take`](Self::take) would lend next for `class`, to plan a read into it.
    pub(super) fn next_mut(&mut self, class: SlotClass) -> Option<&mut Slot<'static>> {
        let c = self.pick(class).index();
        self.free[c].last_mut().map(|s| &mut **s)
    }

    /// A slot back. The free lists were reserved for every slot, so this never allocates.
    #[inline]
    pub(super) fn put(&mut self, slot: &'static mut Slot<'static>) {
        if let Some(spare) = slot.take_grown_response() {
            match slot.ticket.runner {
                super::NO_RUNNER => self.own.push(spare),
                r => self.send_back(usize::from(r), spare),
            }
        }
        let c = self.class_of(slot).index();
        debug_assert!(
            self.free[c].len() < self.total[c],
            "a slot given back twice"
        );
        self.free[c].push(slot);
    }

    /// Offers the handler's own spare buffer to `slot`'s response, for an answer written
    /// here; [`reclaim_own`](Self::reclaim_own) takes it back if unused.
    pub(super) fn lend_own(&mut self, slot: &mut Slot<'static>) {
        if let Some(spare) = self.own.pop() {
            if let Some(unused) = slot.offer_response_reserve(spare) {
                self.own.push(unused);
            }
        }
    }

    /// Takes back the buffer [`lend_own`](Self::lend_own) offered if the answer fit without it.
    pub(super) fn reclaim_own(&mut self, slot: &mut Slot<'static>) {
        if let Some(spare) = slot.take_response_offer() {
            self.own.push(spare);
        }
    }

    /// Returns a spare response buffer to runner `r`. Its ring holds every buffer the runner
    /// has, so it is never full.
    #[cold]
    fn send_back(&mut self, r: usize, spare: &'static mut [u8]) {
        if let Some(ring) = self.spares.get_mut(r) {
            let pushed = ring.push(spare).is_ok();
            debug_assert!(pushed, "a spare ring holds every spare of its runner");
        }
    }

    /// Slots free now for a request of `class`.
    #[inline]
    pub(super) fn free_for(&self, class: SlotClass) -> usize {
        match class {
            SlotClass::Small => self.free[0].len() + self.free[1].len(),
            SlotClass::Large => self.free[1].len(),
        }
    }

    /// Slots free now, of any class.
    #[inline]
    pub(super) fn free(&self) -> usize {
        self.free[0].len() + self.free[1].len()
    }

    /// Slots a request of `class` may take, in all: any for a small one, the large ones for
    /// a large one (the fair share's reserve is taken of these).
    #[inline]
    pub(super) fn total_for(&self, class: SlotClass) -> usize {
        match class {
            SlotClass::Small => self.total[0] + self.total[1],
            SlotClass::Large => self.total[1],
        }
    }
}
