//! Ends of connections: lingering close, a peer that is gone, deadlines, shutdown.

use super::*;

impl State {
    /// Discards whatever the peer sent. Returns `true` at EOF or on an error.
    pub(super) fn discard_input(&mut self, idx: u32) -> bool {
        let c = &mut self.conns[idx as usize];
        let Some(stream) = c.stream.as_mut() else {
            return true;
        };
        loop {
            match stream.read(&mut c.rbuf[..]) {
                Ok(0) => return true,
                Ok(n) => self.metrics.bytes_in.add(n as u64),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    /// Ends a connection whose responses are all written, as `conn::ending` says: at once,
    /// or by a lingering close (shut our side, discard input until EOF or the deadline), so
    /// unread input cannot turn into a reset that destroys our response.
    pub(super) fn close(&mut self, idx: u32, registry: &mio::Registry) {
        let c = &mut self.conns[idx as usize];
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        match c.core.end(self.now_ms, self.shutdown_deadline_ms) {
            Ending::Now => self.close_now(idx, registry),
            Ending::Linger { .. } => {
                let _ = stream.shutdown_write();
                if self.discard_input(idx) {
                    self.close_now(idx, registry);
                }
            }
        }
    }

    pub(super) fn close_now(&mut self, idx: u32, registry: &mio::Registry) {
        let c = &mut self.conns[idx as usize];
        let Some(mut stream) = c.stream.take() else {
            return;
        };
        let _ = registry.deregister(&mut stream);
        drop(stream);
        c.wait_since_us = None;
        if let Some(b) = c.body.take() {
            self.slots.put(b.slot);
        }
        if let Some(Placed { slot, .. }) = c.placed.take() {
            self.slots.put(slot);
        }
        if let Some(Spilled { slot, .. }) = c.spill.take() {
            self.slots.put(slot);
        }
        while let Some(out) = c.core.pop_any() {
            if let Out::Slot(slot) = out {
                self.slots.put(slot);
            }
        }
        c.generation = c.generation.wrapping_add(1);
        self.release_head_buffer(idx);
        self.free_conns.push(idx);
        self.shared.handler_open[self.index].fetch_sub(1, Ordering::Relaxed);
        self.metrics.closed.inc();
    }

    /// The peer reset the connection (or shut both directions): free it and everything it
    /// holds now. Slots still at a runner come back later and are dropped (`complete` sees
    /// the generation changed).
    pub(super) fn peer_gone(&mut self, idx: u32, registry: &mio::Registry) {
        let c = &mut self.conns[idx as usize];
        if c.stream.is_none() {
            return;
        }
        if c.core.lingering().is_none() {
            self.metrics.resets.inc();
        }
        c.core.peer_reset();
        self.close_now(idx, registry);
    }

    /// Checks every connection's deadlines.
    pub(super) fn tick(&mut self, registry: &mio::Registry) {
        self.flush_bursts();
        let now = self.now_ms;
        for idx in 0..self.conns.len() as u32 {
            let c = &mut self.conns[idx as usize];
            if c.stream.is_none() {
                continue;
            }
            if let Some(until) = c.core.lingering() {
                if now >= until {
                    self.close_now(idx, registry);
                }
                continue;
            }
            let Some(t) = c.core.tick(now) else { continue };
            self.metrics.timeouts[t.index()].inc();
            if t.answers_408() {
                self.fail(idx, 408, None);
                self.flush(idx, registry);
            } else {
                self.close(idx, registry);
            }
        }
    }

    /// Shutdown: close idle connections now, the rest once their in-flight responses are out
    /// or the shutdown timeout passes. Returns `true` when every connection is closed.
    pub(super) fn drain_for_shutdown(
        &mut self,
        registry: &mio::Registry,
        accepts: &mut Consumer<'static, Accepted, ACCEPT_RING_SLOTS>,
    ) -> bool {
        let now = self.now_ms;
        let timeout_ms = self.shared.cfg.shutdown_timeout_duration().as_millis() as u64;
        let deadline = *self.shutdown_deadline_ms.get_or_insert(now + timeout_ms);
        let started = deadline.saturating_sub(timeout_ms);
        // Accepted before the listener closed: served like the others.
        while let Some(accepted) = accepts.pop() {
            self.adopt(accepted, registry);
        }
        let force = now >= deadline;
        let mut open = 0;
        for idx in 0..self.conns.len() as u32 {
            let c = &mut self.conns[idx as usize];
            if c.stream.is_none() {
                continue;
            }
            if c.core.lingering().is_some() {
                if force {
                    self.close_now(idx, registry);
                } else {
                    open += 1;
                }
                continue;
            }
            let quiet = c.core.is_quiet(c.body.is_some());
            if quiet && !force && !c.core.closes_at_shutdown(started, now) {
                // Its first request may be on its way: read it, answer it, then close.
                open += 1;
                continue;
            }
            if !c.core.is_closing() {
                c.core.shutdown();
            }
            if quiet {
                // Idle: nothing was asked, so nothing is owed; no lingering close either.
                self.close_now(idx, registry);
                continue;
            }
            if force || c.core.should_close() {
                self.close(idx, registry);
                open += usize::from(self.conns[idx as usize].stream.is_some());
            } else {
                open += 1;
            }
        }
        open == 0
    }
}
