//! Bytes in: one read per call (plain, straight into a body slot, or split on a guess),
//! heads parsed into requests that take a slot, and bodies moved into their slot.

use super::*;

impl State {
    /// One `read` into the connection's buffer, straight into the body slot when a
    /// length-framed body has nothing buffered, or split between the two on a [`Guess`].
    /// Returns whether bytes arrived.
    pub(super) fn read_some(&mut self, idx: u32) -> bool {
        let c = &mut self.conns[idx as usize];
        let Some(stream) = c.stream.as_mut() else {
            return false;
        };
        if c.rstart == c.rend {
            c.rstart = 0;
            c.rend = 0;
        } else if c.rend == c.rbuf.len() && c.rstart > 0 {
            c.rbuf.copy_within(c.rstart..c.rend, 0);
            c.rend -= c.rstart;
            c.rstart = 0;
        }
        if let Some(Spilled { slot, spill }) = c.spill.as_mut() {
            let n = spill.hand_out(slot.request.body.spare_mut(), &mut c.rbuf[c.rend..]);
            if n == 0 {
                return false;
            }
            c.rend += n;
            c.awaiting_bytes = false;
            if spill.is_empty() {
                if let Some(Spilled { slot, .. }) = c.spill.take() {
                    self.free_slots.push(slot);
                }
            }
            return true;
        }
        let empty = c.rend == 0;
        // A guess needs an empty buffer, no body under way, and a slot nobody waits for.
        // The plan is made for the slot that would be taken (the last free one).
        let plan = match c.guess {
            Some(g) if empty && c.body.is_none() && self.retry.is_empty() => {
                self.free_slots.last_mut().and_then(|slot| {
                    slot.request.body.clear();
                    Plan::new(g, c.rbuf.len(), slot.request.body.spare_mut().len())
                })
            }
            _ => None,
        };
        let guessed = plan.and_then(|plan| Some((self.free_slots.pop()?, plan)));
        let mut body_room = None;
        let mut placing = None;
        let (result, asked) = match (&mut c.body, guessed) {
            (_, Some((slot, plan))) => {
                // Head, body, and what follows, in one call (see `place::Plan`).
                let [front, body, tail] = plan.parts(c.rbuf, slot.request.body.spare_mut());
                let mut bufs = [
                    IoSliceMut::new(front),
                    IoSliceMut::new(body),
                    IoSliceMut::new(tail),
                ];
                let result = stream.read_vectored(&mut bufs);
                placing = Some((slot, plan));
                (result, plan.asked())
            }
            (Some(BodyRead { slot, framing, .. }), None)
                if empty && framing.direct_read(0).is_some() =>
            {
                // The rest of the body goes straight into the slot; whatever follows it (a
                // pipelined request) lands in the empty read buffer in the same call, so a
                // short count still proves the socket drained.
                let spare = slot.request.body.spare_mut();
                let n = framing.direct_read(spare.len()).unwrap_or(0);
                let mut bufs = [
                    IoSliceMut::new(&mut spare[..n]),
                    IoSliceMut::new(&mut c.rbuf[..]),
                ];
                body_room = Some(n);
                (stream.read_vectored(&mut bufs), n + c.rbuf.len())
            }
            _ => {
                if c.rend == c.rbuf.len() {
                    return false;
                }
                let end = if empty {
                    c.head_read.clamp(1, c.rbuf.len())
                } else {
                    c.rbuf.len()
                };
                (stream.read(&mut c.rbuf[c.rend..end]), end - c.rend)
            }
        };
        let n = match result {
            Ok(0) => {
                c.peer_eof = true;
                c.readable = false;
                if c.core.peer_closed() {
                    // The body being read will never arrive: its slot is free now.
                    if let Some(b) = c.body.take() {
                        self.free_slots.push(b.slot);
                    }
                }
                0
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                c.readable = false;
                0
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if let Some((slot, ..)) = placing {
                    self.free_slots.push(slot);
                }
                return true;
            }
            Err(_) => {
                // A reset: nothing can be written either; `flush` closes the connection.
                self.metrics.resets.inc();
                c.peer_eof = true;
                c.readable = false;
                c.core.peer_reset();
                0
            }
        };
        if n == 0 {
            if let Some((slot, ..)) = placing {
                self.free_slots.push(slot);
            }
            return false;
        }
        self.metrics.bytes_in.add(n as u64);
        self.read_since_harvest += n;
        c.awaiting_bytes = false;
        if n < asked && !c.fin_seen {
            // A short read drained the socket; with edge-triggered readiness any later data
            // raises a new event, so the EAGAIN read that would confirm it is skipped (one
            // system call less per request). Not after a FIN was announced: its EOF is read
            // next, or the connection would wait for a timeout with its peer gone.
            c.readable = false;
        }
        if let Some((slot, plan)) = placing {
            if let Some(spot) = plan.spot(n) {
                c.placed = Some(Placed { slot, spot });
                c.rend = spot.head;
            } else {
                self.free_slots.push(slot);
                c.rend = n;
            }
        } else if let Some(room) = body_room {
            let to_body = n.min(room);
            if let Some(BodyRead { slot, framing, .. }) = &mut c.body {
                slot.request.body.advance(to_body);
                framing.took_direct(to_body);
            }
            c.rend = n - to_body;
            c.core.on_data(self.now_ms);
        } else {
            c.rend += n;
        }
        true
    }

    /// Consumes buffered bytes: body progress, then as many complete requests as allowed.
    pub(super) fn parse_input(&mut self, idx: u32) {
        loop {
            if self.conns[idx as usize].body.is_some() {
                if !self.advance_body(idx) {
                    return;
                }
                continue;
            }
            let c = &mut self.conns[idx as usize];
            if !c.core.accepts_requests() || c.rstart == c.rend || c.stream.is_none() {
                if let Some(Placed { slot, spot }) = c.placed.take() {
                    unplace(c, slot, spot, &mut self.free_slots, self.metrics);
                }
                return;
            }
            if !self.parse_one(idx) {
                return;
            }
        }
    }

    /// Parses one request head. Returns whether to keep going.
    pub(super) fn parse_one(&mut self, idx: u32) -> bool {
        let now = self.now_ms;
        let limits = self.limits;
        let c = &mut self.conns[idx as usize];
        let raw = &c.rbuf[c.rstart..c.rend];
        let mut headers = header_slots();
        let parsed = parse::parse_head(raw, &mut headers, &limits);
        let placed = match c.placed.take() {
            Some(p)
                if matches!(&parsed, Ok(Status::Complete(h))
                    if h.head_len == p.spot.head
                        && matches!(h.framing, Framing::Length(n) if n >= p.spot.body)) =>
            {
                Some(p)
            }
            Some(Placed { slot, spot }) => {
                // A wrong guess: make the input contiguous and parse it again.
                self.metrics.in_place_misses.inc();
                unplace(c, slot, spot, &mut self.free_slots, self.metrics);
                return true;
            }
            None => None,
        };
        let head = match parsed {
            Ok(Status::Complete(head)) => head,
            Ok(Status::Partial) => {
                c.core.on_data(now);
                c.awaiting_bytes = true;
                return false;
            }
            Err(e) => {
                self.metrics.parse_errors[e.index()].inc();
                self.fail(idx, e.status(), None);
                return false;
            }
        };
        let (slot, in_place) = match placed {
            Some(Placed { slot, spot }) => (slot, Some(spot)),
            None => {
                let held = c.core.in_flight();
                let free = self.free_slots.len();
                let slot =
                    admit::may_take_slot(held, free, self.total_slots, self.newcomer_waiting)
                        .then(|| self.free_slots.pop())
                        .flatten();
                let Some(slot) = slot else {
                    c.core.on_data(now);
                    if self.wait_expired(idx) {
                        // Waited its bound for a slot and holds none: refused at once.
                        self.metrics.shed[Shed::SlotWait.index()].inc();
                        self.fail(idx, 503, None);
                        return false;
                    }
                    // Back-pressure: leave the bytes where they are until a slot frees up.
                    self.wait_for_slot(idx);
                    return false;
                };
                (slot, None)
            }
        };
        c.waited_us = c
            .wait_since_us
            .take()
            .map_or(0, |since| self.now_us.saturating_sub(since));
        let routed = route(head.method, head.path);
        let (action, label) = routed.action(head.path);
        let key = match routed {
            Route::Run { key } => key
                .map(str::as_bytes)
                .or_else(|| head.header("x-runner-key")),
            _ => None,
        };
        slot.reset();
        if slot.request.load(&head, raw, key).is_err() {
            self.free_slots.push(slot);
            self.fail(idx, 431, None);
            return false;
        }
        let has_body = head.framing != Framing::None;
        let Ok(seq) = c.core.begin_request(now, head.keep_alive, has_body) else {
            match in_place {
                Some(spot) => unplace(c, slot, spot, &mut self.free_slots, self.metrics),
                None => self.free_slots.push(slot),
            }
            return false;
        };
        slot.ticket.conn = idx;
        slot.ticket.generation = c.generation;
        slot.ticket.seq = seq;
        slot.ticket.head_only = head.method == Method::Head;
        slot.ticket.route = label;
        slot.ticket.runner = NO_RUNNER;
        let expect_continue = head.expect_continue;
        let head_request = head.method == Method::Head;
        c.rstart += head.head_len;
        let mut body_in_place = 0;
        if let Some(spot) = in_place {
            // The slot already holds `body` bytes of the body; what came after them (more body,
            // or the next request) is in the read buffer's tail range.
            self.metrics.bodies_in_place.inc();
            slot.request.body.advance(spot.body);
            body_in_place = spot.body;
            let tail = spot.tail_range(c.rbuf.len());
            c.rstart = tail.start;
            c.rend = tail.end;
        }
        c.head_read = head_read_after(head.framing, c.rbuf.len());
        c.guess = Guess::after(c.last_head, head.head_len, head.framing, c.rbuf.len());
        c.last_head = head.head_len;
        let framing = match body_start(
            head.framing,
            expect_continue,
            body_in_place,
            limits.max_body_bytes,
        ) {
            BodyStart::None => {
                self.finish(idx, slot, action);
                return true;
            }
            BodyStart::RefuseNow => {
                // The client waits for our word: refuse now, without reading the body.
                self.free_slots.push(slot);
                return self.refuse_too_large(idx, Some(head_request));
            }
            BodyStart::Read(framing) => framing,
        };
        let arrived = body_in_place > 0 || c.rstart < c.rend;
        let refusing = matches!(framing, BodyFraming::Refuse);
        if continue_due(
            expect_continue,
            refusing,
            arrived,
            c.core.in_flight(),
            c.core.written(),
        ) {
            let sent = c.stream.as_mut().map(|s| s.write(response::CONTINUE));
            if !matches!(sent, Some(Ok(n)) if n == response::CONTINUE.len()) {
                c.core.shutdown();
            }
        }
        c.body = Some(BodyRead {
            slot,
            action,
            framing,
        });
        true
    }

    /// Moves buffered body bytes into the slot (`BodyFraming::advance`). Returns whether
    /// the body completed.
    pub(super) fn advance_body(&mut self, idx: u32) -> bool {
        let now = self.now_ms;
        let c = &mut self.conns[idx as usize];
        let Some(body) = c.body.as_mut() else {
            return false;
        };
        let input = &c.rbuf[c.rstart..c.rend];
        match body
            .framing
            .advance(input, body.slot.request.body.spare_mut())
        {
            Ok(p) => {
                body.slot.request.body.advance(p.produced);
                c.rstart += p.consumed;
                if p.consumed > 0 {
                    c.core.on_data(now);
                }
                if !p.done {
                    return false;
                }
            }
            Err(BodyError::TooLarge) => return self.refuse_too_large(idx, None),
            Err(BodyError::Malformed(e)) => {
                self.metrics.parse_errors[e.index()].inc();
                self.fail(idx, e.status(), None);
                return false;
            }
        }
        let Some(BodyRead { slot, action, .. }) = c.body.take() else {
            return false;
        };
        c.core.body_complete(now);
        self.finish(idx, slot, action);
        true
    }

    /// Answers 413 for a body larger than the limit, without reading it.
    pub(super) fn refuse_too_large(&mut self, idx: u32, head_request: Option<bool>) -> bool {
        self.metrics.parse_errors[parse::Error::PayloadTooLarge.index()].inc();
        self.fail_head(
            idx,
            parse::Error::PayloadTooLarge.status(),
            None,
            head_request,
        );
        false
    }
}

/// Undoes a read made on a wrong [`Guess`] ([`Spot::undo`]): the input is the read buffer's
/// `..rend` again, then the connection's [`Spilled`] bytes if the slot's did not all fit
/// back; otherwise the slot is freed.
fn unplace(
    c: &mut Connection,
    slot: &'static mut Slot<'static>,
    spot: Spot,
    free_slots: &mut Vec<&'static mut Slot<'static>>,
    metrics: &HandlerMetrics,
) {
    debug_assert!(c.spill.is_none());
    let (rend, spill) = spot.undo(c.rbuf, slot.request.body.spare_mut());
    c.rend = rend;
    c.awaiting_bytes = false;
    match spill {
        Some(spill) => {
            metrics.in_place_spills.inc();
            c.spill = Some(Spilled { slot, spill });
        }
        None => free_slots.push(slot),
    }
}
