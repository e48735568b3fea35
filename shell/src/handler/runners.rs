//! The hop to the runners: dispatch (or shed by expected wait), publish and wake, and take
//! the answers back.

use super::*;

impl State {
    /// With nothing else to do but jobs out at runners that usually answer within
    /// `AWAIT_RUNNERS_US` (see `sched::Awaiting`), waits for their answers here instead of sleeping in `poll`: the
    /// answers come back without an eventfd write by the runner and an `epoll_wait` wake-up
    /// here. Yields between checks, so a runner sharing this core gets it at once. Returns
    /// whether an answer arrived (sockets are looked at again either way). After a wait that
    /// ran out, the next one waits for an answer to arrive first, so a runner busy with a
    /// long job costs one wasted wait, not one per loop turn.
    pub(super) fn await_runners(
        &mut self,
        done: &[Consumer<'static, Done<'static>, RING_SLOTS>],
    ) -> bool {
        if !self
            .awaiting
            .should_wait(self.in_flight.iter().any(|&n| n > 0))
        {
            return false;
        }
        let start = micros_since(self.started);
        let until = Awaiting::wait_until(start);
        self.metrics.awaits.inc();
        loop {
            let answered = done.iter().any(|r| !r.is_empty());
            let now = micros_since(self.started);
            if answered || now >= until {
                self.metrics.await_us.add(now.saturating_sub(start));
                if !answered {
                    self.awaiting.ran_out();
                    self.metrics.awaits_ran_out.inc();
                }
                return answered;
            }
            std::thread::yield_now();
        }
    }

    /// Publishes the jobs staged for each runner (one store per ring that has any). The
    /// runners are woken, if asleep, once per loop turn by [`wake_runners`](Self::wake_runners).
    pub(super) fn publish_jobs(&mut self) {
        for ring in &mut self.jobs {
            ring.publish();
        }
    }

    /// Sends a `/run` request to a runner, or sheds it with 503 when that runner is full.
    #[inline]
    pub(super) fn dispatch(&mut self, slot: &'static mut Slot<'static>) {
        let r = pick_runner(
            slot.request.view().key(),
            &self.in_flight,
            &mut self.round_robin,
        );
        slot.ticket.runner = r as u16;
        if self.in_flight[r] >= self.ring_capacity {
            return self.shed(slot, Shed::RingFull);
        }
        if self.shed_after_us != 0 {
            let waited = self.conns[slot.ticket.conn as usize].waited_us;
            let service = self.shared.runner_service[r].get(self.now_us);
            if service != 0
                && admit::should_shed(waited, self.ahead_at(r), service, self.shed_after_us)
            {
                return self.shed(slot, Shed::QueueWait);
            }
        }
        slot.ticket.handler = self.index as u16;
        let t = &slot.ticket;
        let watch = (t.deadline_us != deadline::NONE).then_some((
            slot.id as usize,
            Watch {
                due_us: t.deadline_us,
                conn: t.conn,
                generation: t.generation,
                seq: t.seq,
                head_only: t.head_only,
                fired: false,
            },
        ));
        // Staged, not yet published: everything one read brought in crosses to the runner with
        // one index store at the end of `drive` (`publish_jobs`).
        match self.jobs[r].stage(slot) {
            Ok(()) => {
                if let Some((id, w)) = watch {
                    self.watch.arm(id, w);
                }
                self.in_flight[r] += 1;
                self.shared.metrics.depth[self.index * self.jobs.len() + r].inc();
                self.wake_runner[r] = true;
            }
            Err(slot) => self.shed(slot, Shed::RingFull),
        }
    }

    /// Jobs queued or running at runner `r` from every handler (this one's exactly, the
    /// others' as their gauges last said).
    pub(super) fn ahead_at(&self, r: usize) -> u64 {
        let runners = self.jobs.len();
        let others: u64 = (0..self.shared.metrics.handlers.len())
            .filter(|&h| h != self.index)
            .map(|h| self.shared.metrics.depth[h * runners + r].get())
            .sum();
        others + self.in_flight[r] as u64
    }

    /// Answers 503 with `Retry-After`, counted under `why`.
    pub(super) fn shed(&mut self, slot: &'static mut Slot<'static>, why: Shed) {
        // No runner saw it (no `X-Runner`, none in the access log).
        slot.ticket.runner = NO_RUNNER;
        self.metrics.shed[why.index()].inc();
        self.note_shed(why);
        self.local(slot, 503, None, |b| {
            b.extend_from_slice(b"Service Unavailable\n").is_ok()
        });
    }

    pub(super) fn wake_runners(&mut self) {
        // Publish before the wake check: a runner that finds its ring empty after we see it
        // asleep would sleep through the jobs (see `wake`).
        self.publish_jobs();
        for (r, w) in self.wake_runner.iter_mut().enumerate() {
            if std::mem::take(w) && self.shared.runner_bells[r].should_wake() {
                self.shared.shutdown.wake_runner(r);
            }
        }
    }

    /// Mid-turn, after [`HARVEST_BYTES`] of input: wakes the runners for the jobs staged so
    /// far and writes the answers that are already back, while their bodies are still in
    /// this core's cache (a turn over many connections with large bodies reads more than the
    /// cache holds before its first write).
    pub(super) fn harvest(
        &mut self,
        done: &mut [Consumer<'static, Done<'static>, RING_SLOTS>],
        registry: &mio::Registry,
    ) {
        self.read_since_harvest = 0;
        self.metrics.harvests.inc();
        self.wake_runners();
        self.take_answers(done);
        self.flush_dirty(registry);
    }

    /// Takes every slot the runners have handed back. Returns whether there was any.
    pub(super) fn take_answers(
        &mut self,
        done: &mut [Consumer<'static, Done<'static>, RING_SLOTS>],
    ) -> bool {
        let mut any = false;
        for ring in done {
            while let Some(slot) = ring.pop() {
                self.runner_done(slot);
                any = true;
            }
        }
        any
    }

    /// A slot came back from a runner.
    pub(super) fn runner_done(&mut self, slot: &'static mut Slot<'static>) {
        let r = slot.ticket.runner as usize;
        self.in_flight[r] -= 1;
        self.shared.metrics.depth[self.index * self.jobs.len() + r].sub(1);
        // The runner's own stamp, not our clock: had we slept, ours would add the time our
        // wake-up took, and an estimate inflated by sleeping would keep us sleeping (the
        // wait below is only tried while the estimate is low).
        let t = slot.ticket;
        self.awaiting.answered(
            (t.answered_us != Ticket::UNSTAMPED)
                .then(|| t.answered_us.saturating_sub(t.started_us)),
        );
        let fired =
            t.deadline_us != deadline::NONE && self.watch.disarm(slot.id as usize) == Some(true);
        // An answer that came back after its deadline: the runner says where it was, or it
        // answered in time but the deadline passed before it was taken here (running).
        let expired = match t.expired {
            Expiry::No if fired => Expiry::Running,
            e => e,
        };
        if let Some(i) = expired.index() {
            self.metrics.expired[i].inc();
            self.note_expired(expired);
            if !fired {
                self.answer_expired(t.conn, t.generation, t.seq, t.head_only);
            }
            self.slots.put(slot);
            return;
        }
        self.complete(slot);
    }

    /// Answers `504` for every request out at a runner whose deadline passed, without
    /// waiting for the runner (which may still hold its slot); its answer, when it comes
    /// back, is discarded.
    #[cold]
    pub(super) fn fire_deadlines(&mut self) {
        let mut watch = std::mem::replace(&mut self.watch, Watchlist::new(Vec::new()));
        watch.fire(self.now_us, |w| {
            self.answer_expired(w.conn, w.generation, w.seq, w.head_only);
        });
        self.watch = watch;
    }

    /// Queues the fixed `504` as the response to request `seq` of the connection, if that
    /// connection is still the one the request came on.
    #[cold]
    fn answer_expired(&mut self, conn: u32, generation: u32, seq: u32, head_only: bool) {
        let c = &mut self.conns[conn as usize];
        if c.stream.is_none() || c.generation != generation {
            return;
        }
        let keep_alive = !c.core.closes_after(seq);
        let bytes = response::deadline_response(keep_alive, head_only);
        if c.core
            .complete(self.now_ms, seq, Out::Static(bytes), false)
            .is_err()
        {
            return;
        }
        self.metrics.count_request(RouteLabel::Run, 504);
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(conn);
        }
    }
}
