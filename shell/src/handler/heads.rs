//! Large head buffers: a connection whose head fills its own read buffer borrows one of the
//! handler's few large buffers, and gives it back once its input fits its own again (or it
//! closes). While none is free, it waits in arrival order; its head timeout still runs.

use super::*;

/// A handler's large head buffers, and the connections' own buffers parked while they hold
/// one (as many places as large buffers, so a swap never allocates).
pub(super) struct HeadPool {
    free: Vec<&'static mut [u8]>,
    parked: Vec<&'static mut [u8]>,
    /// Connections waiting for a large buffer, oldest first.
    waiting: VecDeque<u32>,
    own_len: usize,
}

impl HeadPool {
    /// `large` buffers for connections whose own buffers are `own_len` bytes; `conns`
    /// connections may wait for one.
    pub(super) fn new(large: Vec<&'static mut [u8]>, own_len: usize, conns: usize) -> Self {
        Self {
            parked: Vec::with_capacity(large.len()),
            waiting: VecDeque::with_capacity(if large.is_empty() { 0 } else { conns }),
            free: large,
            own_len,
        }
    }

    /// Bytes of a connection's own read buffer.
    pub(super) const fn own_len(&self) -> usize {
        self.own_len
    }

    /// Large buffers lent out now.
    pub(super) fn in_use(&self) -> usize {
        self.parked.len()
    }

    /// Whether large head buffers exist at all.
    fn exist(&self) -> bool {
        !self.free.is_empty() || !self.parked.is_empty()
    }
}

impl State {
    /// The parser needs more of a head than the connection's own buffer holds: move its
    /// input to a large buffer, or queue it for one (it reads nothing more meanwhile).
    /// Returns whether it moved.
    pub(super) fn grow_head_buffer(&mut self, idx: u32) -> bool {
        let c = &mut self.conns[idx as usize];
        let input = c.core.input();
        if c.rbuf.len() != self.heads.own_len()
            || !class::head_outgrows(input, c.rbuf.len())
            || !self.heads.exist()
        {
            return false;
        }
        let Some(large) = self.heads.free.pop() else {
            if !c.head_queued {
                self.metrics.large_head_waits.inc();
                c.head_queued = true;
                self.heads.waiting.push_back(idx);
            }
            return false;
        };
        self.lend_head_buffer(idx, large);
        true
    }

    /// Moves connection `idx`'s input (a full own buffer, from its front) into `large`.
    fn lend_head_buffer(&mut self, idx: u32, large: &'static mut [u8]) {
        let c = &mut self.conns[idx as usize];
        let end = c.core.input().end;
        large[..end].copy_from_slice(&c.rbuf[..end]);
        let own = std::mem::replace(&mut c.rbuf, large);
        self.heads.parked.push(own);
        self.metrics.large_heads.set(self.heads.in_use() as u64);
    }

    /// A connection holding a large head buffer goes back to its own once its input fits
    /// there (never while a guessed read or its spill is being settled).
    pub(super) fn shrink_head_buffer(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        let input = c.core.input();
        if c.placed.is_some()
            || c.spill.is_some()
            || !class::input_fits(input, self.heads.own_len())
        {
            return;
        }
        let Some(own) = self.heads.parked.pop() else {
            return;
        };
        let n = input.end - input.start;
        own[..n].copy_from_slice(&c.rbuf[input.start..input.end]);
        c.core.input_is(Input { start: 0, end: n });
        let large = std::mem::replace(&mut c.rbuf, own);
        self.heads.free.push(large);
        self.metrics.large_heads.set(self.heads.in_use() as u64);
        self.wake_head_waiter();
    }

    /// A closing connection gives back the large buffer it holds (its input is gone).
    pub(super) fn release_head_buffer(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        if c.rbuf.len() == self.heads.own_len() {
            return;
        }
        let Some(own) = self.heads.parked.pop() else {
            return;
        };
        let large = std::mem::replace(&mut c.rbuf, own);
        self.heads.free.push(large);
        self.metrics.large_heads.set(self.heads.in_use() as u64);
        self.wake_head_waiter();
    }

    /// A large buffer came free: the oldest connection still waiting for one gets it now
    /// (so no buffer sits free while one waits) and goes on reading from the retry queue.
    fn wake_head_waiter(&mut self) {
        while let Some(w) = self.heads.waiting.pop_front() {
            let c = &mut self.conns[w as usize];
            c.head_queued = false;
            let waits = c.stream.is_some()
                && c.rbuf.len() == self.heads.own_len()
                && class::head_outgrows(c.core.input(), c.rbuf.len());
            if !waits {
                continue;
            }
            if let Some(large) = self.heads.free.pop() {
                self.lend_head_buffer(w, large);
                self.enqueue_retry(w);
            }
            return;
        }
    }
}
