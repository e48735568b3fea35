//! A runner's desk: where answered slots go back to their handlers, and where kept requests
//! wait for their answer or their deadline.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use httpd_runner_core::deadline::{passed, Expiry, NONE};
use httpd_runner_core::keep::{Entry, Kept, KeptTable};
use httpd_runner_core::limits::{RUNNER_RING_SLOTS as RING_SLOTS, SPARE_RING_SLOTS};
use httpd_runner_core::msg::{Done, Request, Response, Slot, Ticket};
use httpd_runner_core::ring::{Consumer, Producer};

use super::api::Error;
use crate::metrics::RunnerMetrics;

type SlotRef = &'static mut Slot<'static>;

/// Bytes of one kept-request entry.
pub(super) const ENTRY_BYTES: usize = std::mem::size_of::<Entry<SlotRef>>();

/// How a call on a slot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Called {
    /// The runner answered (or kept the request).
    Answered,
    /// It returned an error status, which the slot now holds.
    Failed,
    /// It panicked; the slot holds a 500.
    Panicked,
}

/// The way a runner's spare response buffers come back from a handler.
pub(crate) type SpareRx = Consumer<'static, &'static mut [u8], SPARE_RING_SLOTS>;

/// A runner's spare response buffers: one is offered to each call's response, to grow into
/// when it outgrows its slot's own buffer; a used one comes back from the handler once the
/// response is written.
pub(crate) struct Spares {
    /// The spare lent next (to each call's response, which takes it at its first write).
    ready: Option<&'static mut [u8]>,
    /// The others.
    free: Vec<&'static mut [u8]>,
    back: Vec<SpareRx>,
    /// Bytes of each.
    len: usize,
}

impl Spares {
    /// `free` buffers of equal length, coming back on `back` (one ring per handler).
    pub(crate) fn new(mut free: Vec<&'static mut [u8]>, back: Vec<SpareRx>) -> Self {
        let len = free.first().map_or(0, |b| b.len());
        Self {
            ready: free.pop(),
            free,
            back,
            len,
        }
    }

    /// The spare to lend to the next call (`Slot::serve_lending`).
    #[inline]
    pub(super) fn lend(&mut self) -> Option<&'static mut [u8]> {
        match self.ready.take() {
            Some(spare) => Some(spare),
            None if self.len > 0 => self.next(),
            None => None,
        }
    }

    /// After a call lent `lent` (what is left of it): the spare comes back unless the
    /// response grew into it. Calls nest (a `run` may answer a kept request), so what comes
    /// back joins the others rather than replacing the one readied meanwhile.
    #[inline]
    pub(super) fn settle(&mut self, slot: &mut Slot<'static>, lent: Option<&'static mut [u8]>) {
        let back = match lent {
            Some(spare) => Some(spare),
            None if self.len > 0 => slot.take_response_offer(),
            None => None,
        };
        if let Some(spare) = back {
            match self.ready {
                None => self.ready = Some(spare),
                Some(_) => self.free.push(spare),
            }
        }
    }

    /// Bytes of each spare (0: none).
    pub(super) const fn len(&self) -> usize {
        self.len
    }

    /// Another free spare, taking those the handlers sent back when none is left.
    #[cold]
    #[inline(never)]
    fn next(&mut self) -> Option<&'static mut [u8]> {
        if self.free.is_empty() {
            for ring in &mut self.back {
                while let Some(spare) = ring.pop() {
                    self.free.push(spare);
                }
            }
        }
        self.free.pop()
    }
}

pub(crate) struct Desk {
    /// Spare response buffers.
    pub(super) spares: Spares,
    kept: KeptTable<SlotRef, Vec<Entry<SlotRef>>>,
    /// The way back to each handler.
    pub(super) done: Vec<Producer<'static, Done<'static>, RING_SLOTS>>,
    /// Handlers sent an answer since they were last woken.
    pub(super) woke: Vec<bool>,
    metrics: &'static RunnerMetrics,
    /// No more requests may be kept (the server is stopping).
    pub(super) closed: bool,
}

impl Desk {
    /// A desk with room for `capacity` kept requests (every request that can be out at
    /// this runner), reserved now.
    pub(super) fn new(
        done: Vec<Producer<'static, Done<'static>, RING_SLOTS>>,
        capacity: usize,
        metrics: &'static RunnerMetrics,
        spares: Spares,
    ) -> Self {
        let woke = vec![false; done.len()];
        Self {
            spares,
            kept: KeptTable::new((0..capacity).map(|_| Entry::free()).collect()),
            done,
            woke,
            metrics,
            closed: false,
        }
    }

    pub(super) fn reserve(&mut self) -> Option<Kept> {
        if self.closed {
            return None;
        }
        self.kept.reserve()
    }

    pub(super) fn cancel(&mut self, k: Kept) {
        self.kept.cancel(k);
    }

    /// Puts the slot just run into the entry `run` reserved for it.
    #[cold]
    pub(super) fn fill(&mut self, k: Kept, slot: SlotRef) {
        let due = slot.ticket.deadline_us;
        if let Err(slot) = self.kept.fill(k, slot, due) {
            // Cannot happen (the entry was reserved in this very call); answer, not lose it.
            slot.answer_plain(500, b"request could not be kept\n");
            self.hand_back(slot);
            return;
        }
        self.metrics.kept.set(self.kept.held() as u64);
    }

    pub(super) fn due_us(&self, k: Kept) -> Option<u64> {
        self.kept.due_us(k)
    }

    pub(super) fn held(&self) -> usize {
        self.kept.held()
    }

    /// The earliest deadline among kept requests, or [`NONE`].
    pub(super) fn next_due_us(&self) -> u64 {
        self.kept.next_due_us()
    }

    /// Answers kept request `k` with `f` (see `Context::answer`).
    pub(super) fn answer(
        &mut self,
        k: Kept,
        now_us: u64,
        f: impl FnOnce(&Request<'_>, &mut Response<'_, '_>) -> Result<(), Error>,
    ) -> bool {
        let Some((slot, due)) = self.kept.take(k) else {
            return false;
        };
        self.metrics.kept.set(self.kept.held() as u64);
        if due != NONE && passed(now_us, due) {
            slot.ticket.expired = Expiry::Kept;
            self.hand_back(slot);
            return false;
        }
        let mut lent = self.spares.lend();
        let called = call(slot, self.metrics, self.spares.len(), &mut lent, f);
        self.spares.settle(slot, lent);
        slot.ticket.answered_us = Ticket::UNSTAMPED;
        self.hand_back(slot);
        if let Called::Panicked = called {
            // The slot is answered; let the runner's own guard rebuild the instance.
            resume_unwind(Box::new("runner panicked while answering a kept request"));
        }
        true
    }

    /// Hands back every kept request whose deadline passed at `now_us`, marked expired
    /// (the handler answers `504` and counts it).
    pub(super) fn expire(&mut self, now_us: u64) {
        if now_us < self.kept.next_due_us() {
            return;
        }
        let (done, woke) = (&mut self.done, &mut self.woke);
        self.kept.expire(now_us, |slot| {
            slot.ticket.expired = Expiry::Kept;
            send(done, woke, slot);
        });
        self.metrics.kept.set(self.kept.held() as u64);
    }

    /// Answers every kept request with `status` (the instance that kept them is gone, or
    /// the server stops).
    pub(super) fn drain(&mut self, status: u16, text: &[u8]) {
        let (done, woke) = (&mut self.done, &mut self.woke);
        self.kept.drain(|slot| {
            slot.answer_plain(status, text);
            slot.ticket.answered_us = Ticket::UNSTAMPED;
            send(done, woke, slot);
        });
        self.metrics.kept.set(0);
    }

    /// Sends a finished slot back to its handler.
    pub(super) fn hand_back(&mut self, slot: SlotRef) {
        send(&mut self.done, &mut self.woke, slot);
    }
}

/// Sends a finished slot back to the handler its ticket names, and notes that handler for a
/// wake-up.
fn send(
    done: &mut [Producer<'static, Done<'static>, RING_SLOTS>],
    woke: &mut [bool],
    slot: SlotRef,
) {
    let h = usize::from(slot.ticket.handler);
    woke[h] = true;
    push(&mut done[h], slot);
}

/// Runs `f` on `slot` as a runner call: an error becomes its status, a panic a 500, an
/// overflowed success a 500, or a 503 when it was short of a spare response buffer of
/// `spare_len` bytes (never a truncated body); each is counted.
pub(super) fn call(
    slot: &mut Slot<'static>,
    metrics: &RunnerMetrics,
    spare_len: usize,
    spare: &mut Option<&'static mut [u8]>,
    f: impl FnOnce(&Request<'_>, &mut Response<'_, '_>) -> Result<(), Error>,
) -> Called {
    match catch_unwind(AssertUnwindSafe(|| slot.serve_lending(spare, f))) {
        Ok(Ok(())) => {
            // Short: smaller than a spare, and none was there to grow into.
            let short = |s: &Slot<'_>| s.response_capacity() < spare_len && !s.response_can_grow();
            if slot.refuse_truncated_with(short) {
                metrics.overflows.inc();
            }
            Called::Answered
        }
        Ok(Err(e)) => {
            fail(slot, e);
            metrics.errors.inc();
            Called::Failed
        }
        Err(_) => {
            slot.answer_plain(500, b"runner panicked\n");
            metrics.panics.inc();
            Called::Panicked
        }
    }
}

/// Replaces the slot's response with error `e`.
fn fail(slot: &mut Slot<'_>, e: Error) {
    let mut text = [0u8; 256];
    let msg = e.message().as_bytes();
    let n = msg.len().min(text.len() - 1);
    text[..n].copy_from_slice(&msg[..n]);
    text[n] = b'\n';
    slot.answer_plain(e.code(), &text[..=n]);
}

/// Pushes a finished slot to its handler. The ring cannot be full: a handler has at most
/// `--ring-capacity` (at most the ring's size) jobs out at this runner; the loop is a guard.
fn push(ring: &mut Producer<'static, Done<'static>, RING_SLOTS>, slot: Done<'static>) {
    let mut slot = slot;
    while let Err(back) = ring.push(slot) {
        slot = back;
        std::thread::yield_now();
    }
}
