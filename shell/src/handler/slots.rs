//! Waiting for a request slot: the retry queue (arrival order), the fair share that
//! decides who may take a slot (`admit`), and the 503 for a wait past `--shed-after`.

use super::*;

impl State {
    /// Queues the connection for a slot, in arrival order; the wait is counted from the first
    /// time it is queued for one until it gets one.
    pub(super) fn wait_for_slot(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        c.wait_since_us.get_or_insert(self.now_us);
        self.enqueue_retry(idx);
    }

    /// When the oldest wait for a slot runs out (ms), or `u64::MAX` (none, or shedding off).
    /// Connections wait in arrival order, so the front of `retry` holds the oldest wait, but
    /// the queue also holds connections whose turn was merely up: the first waiting one counts.
    pub(super) fn next_wait_expiry_ms(&self) -> u64 {
        if self.shed_after_us == 0 {
            return u64::MAX;
        }
        self.retry
            .iter()
            .find_map(|&i| self.conns[i as usize].wait_since_us)
            .map_or(u64::MAX, |since| {
                (since + self.shed_after_us).div_ceil(1000)
            })
    }

    /// Connections that waited their bound for a slot and hold none are read now, slot or no
    /// slot: a complete head is refused with 503 and `Retry-After` (see `parse_one`).
    pub(super) fn refuse_expired_waits(&mut self, registry: &mio::Registry) {
        for _ in 0..self.retry.len() {
            let Some(idx) = self.retry.pop_front() else {
                break;
            };
            if self.wait_expired(idx) {
                // A head still arriving waits for its bytes outside the queue; its wait stays
                // counted, so once whole it is refused at the next check unless a slot is free.
                self.retry_now(idx, registry);
            } else {
                self.retry.push_back(idx);
            }
        }
    }

    /// Whether the connection holds no slot and has waited `--shed-after` for one.
    pub(super) fn wait_expired(&self, idx: u32) -> bool {
        let c = &self.conns[idx as usize];
        c.core.in_flight() == 0
            && c.wait_since_us.is_some_and(|since| {
                admit::slot_wait_expired(since, self.now_us, self.shed_after_us)
            })
    }

    /// Drives a connection just taken off `retry`, ahead of the queue.
    pub(super) fn retry_now(&mut self, idx: u32, registry: &mio::Registry) {
        self.conns[idx as usize].queued = false;
        self.retrying = true;
        self.drive(idx, registry);
        self.retrying = false;
    }

    pub(super) fn enqueue_retry(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        if !c.queued {
            c.queued = true;
            self.retry.push_back(idx);
        }
    }

    /// Gives connections that stopped (no slot, or their turn was up) another go.
    /// Connections waiting for a slot that their share does not allow yet keep their place.
    pub(super) fn retry_waiting(&mut self, registry: &mio::Registry) {
        let mut n = self.retry.len();
        while n > 0 && self.slots.free() > 0 {
            n -= 1;
            let Some(idx) = self.retry.pop_front() else {
                break;
            };
            if self.may_progress(idx) {
                self.retry_now(idx, registry);
            } else {
                self.retry.push_back(idx);
            }
        }
    }

    /// Whether a queued connection can do anything now: its turn was merely up, or it waits
    /// for a slot and its share allows one.
    pub(super) fn may_progress(&self, idx: u32) -> bool {
        let c = &self.conns[idx as usize];
        c.wait_since_us.is_none()
            || admit::may_take_slot(
                c.core.in_flight(),
                self.slots.free_for(c.wants),
                self.slots.total_for(c.wants),
                self.newcomer_waiting,
            )
    }

    /// Once per loop turn: whether a connection that holds no slot is starving for one, and
    /// whether some queued connection can do anything now (else the loop may sleep).
    pub(super) fn scan_retry(&mut self) -> bool {
        let now = self.now_us;
        self.newcomer_waiting = self.retry.iter().any(|&i| {
            let c = &self.conns[i as usize];
            c.core.in_flight() == 0
                && c.wait_since_us
                    .is_some_and(|since| admit::starving(since, now))
        });
        self.slots.free() > 0 && self.retry.iter().any(|&i| self.may_progress(i))
    }
}
