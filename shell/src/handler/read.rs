//! Bytes in: one read per call (plain, straight into a body slot, or split on a guess),
//! heads parsed into requests that take a slot, and bodies moved into their slot.

use super::*;

/// What of a parsed head outlives its borrow of the read buffer.
#[derive(Debug, Clone, Copy)]
struct HeadInfo {
    len: usize,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
    head_request: bool,
    deadline_ms: Option<u64>,
    action: Action,
    label: RouteLabel,
}

impl State {
    /// One read of the socket, of the kind `conn::input::next_read` chooses: split on a
    /// `place::Guess`, straight into a body's slot, or into the read buffer (after the input a
    /// wrong guess spilled, which comes first). Returns whether bytes arrived.
    pub(super) fn read_some(&mut self, idx: u32) -> bool {
        let c = &mut self.conns[idx as usize];
        if c.stream.is_none() {
            return false;
        }
        if let Some(moved) = c.core.make_room(c.rbuf.len()) {
            c.rbuf.copy_within(moved, 0);
        }
        if c.spill.is_some() {
            return self.hand_out_spill(idx);
        }
        // The plan is made for the slot a guessed read would take (the last free one of the
        // class the guessed request needs).
        let sizes = self.sizes;
        let plan = c
            .core
            .guess(c.body.is_some(), !self.retry.is_empty())
            .and_then(|g| {
                let class = sizes.for_request(g.head, Framing::Length(g.body));
                let slot = self.slots.next_mut(class)?;
                slot.request.body.clear();
                Plan::new(g, c.rbuf.len(), slot.request.body.spare_mut().len()).map(|p| (p, class))
            });
        let direct = c.body.as_ref().and_then(|b| {
            let body = &b.slot.request.body;
            b.framing.direct_read(body.capacity() - body.len())
        });
        match (c.core.next_read(c.rbuf.len(), plan.is_some(), direct), plan) {
            (ReadKind::Guess, Some((plan, class))) => self.read_guessed(idx, plan, class),
            (ReadKind::Direct { body }, _) => self.read_direct(idx, body),
            (ReadKind::Buffer { to }, _) => self.read_buffer(idx, to),
            (ReadKind::Guess | ReadKind::Full, _) => false,
        }
    }

    /// Hands out input a wrong guess left in a slot, as if read from the socket.
    fn hand_out_spill(&mut self, idx: u32) -> bool {
        let c = &mut self.conns[idx as usize];
        let Some(Spilled { slot, spill }) = c.spill.as_mut() else {
            return false;
        };
        let end = c.core.input().end;
        let n = spill.hand_out(slot.request.body.spare_mut(), &mut c.rbuf[end..]);
        if n == 0 {
            return false;
        }
        c.core.input_ends_at(end + n);
        if spill.is_empty() {
            if let Some(Spilled { slot, .. }) = c.spill.take() {
                self.slots.put(slot);
            }
        }
        true
    }

    /// Head, body and what follows in one call, on a guess (see `place::Plan`); the parser
    /// settles it ([`parse_one`](Self::parse_one)).
    fn read_guessed(&mut self, idx: u32, plan: Plan, class: SlotClass) -> bool {
        let Some(slot) = self.slots.take(class) else {
            return false;
        };
        let c = &mut self.conns[idx as usize];
        let Some(stream) = c.stream.as_mut() else {
            self.slots.put(slot);
            return false;
        };
        let [front, body, tail] = plan.parts(c.rbuf, slot.request.body.spare_mut());
        let mut bufs = [
            IoSliceMut::new(front),
            IoSliceMut::new(body),
            IoSliceMut::new(tail),
        ];
        let result = stream.read_vectored(&mut bufs);
        match self.took(idx, result, plan.asked()) {
            Ok(n) => {
                let c = &mut self.conns[idx as usize];
                if let Some(spot) = plan.spot(n) {
                    c.placed = Some(Placed { slot, spot });
                    c.core.input_ends_at(spot.head);
                } else {
                    self.slots.put(slot);
                    c.core.input_ends_at(n);
                }
                true
            }
            Err(again) => {
                self.slots.put(slot);
                again
            }
        }
    }

    /// The rest of a length-framed body (`body` bytes) straight into its slot; whatever
    /// follows it (a pipelined request) lands in the empty read buffer in the same call, so
    /// a short count still proves the socket drained.
    fn read_direct(&mut self, idx: u32, body: usize) -> bool {
        let c = &mut self.conns[idx as usize];
        let (Some(stream), Some(b)) = (c.stream.as_mut(), c.body.as_mut()) else {
            return false;
        };
        let spare = b.slot.request.body.spare_mut();
        let body = body.min(spare.len());
        let mut bufs = [
            IoSliceMut::new(&mut spare[..body]),
            IoSliceMut::new(&mut c.rbuf[..]),
        ];
        let result = stream.read_vectored(&mut bufs);
        let asked = body + c.rbuf.len();
        match self.took(idx, result, asked) {
            Ok(n) => {
                let c = &mut self.conns[idx as usize];
                let to_body = n.min(body);
                if let Some(b) = &mut c.body {
                    b.slot.request.body.advance(to_body);
                    b.framing.took_direct(to_body);
                }
                c.core.input_ends_at(n - to_body);
                c.core.on_data(self.now_ms);
                true
            }
            Err(again) => again,
        }
    }

    /// A plain read into the buffer, up to `to`.
    #[inline]
    fn read_buffer(&mut self, idx: u32, to: usize) -> bool {
        let c = &mut self.conns[idx as usize];
        let Some(stream) = c.stream.as_mut() else {
            return false;
        };
        let from = c.core.input().end;
        let result = stream.read(&mut c.rbuf[from..to]);
        match self.took(idx, result, to - from) {
            Ok(n) => {
                self.conns[idx as usize].core.input_ends_at(from + n);
                true
            }
            Err(again) => again,
        }
    }

    /// Settles a read's result through `Conn::on_read`: `Ok(n)` when `n` bytes arrived
    /// (of `asked`), else `Err(again)`: `again` after an interruption; not after EOF (a body
    /// still arriving is dropped with its slot), `WouldBlock` or a reset.
    #[inline(always)]
    fn took(&mut self, idx: u32, result: io::Result<usize>, asked: usize) -> Result<usize, bool> {
        let outcome = match result {
            Ok(n) => ReadOutcome::Bytes(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadOutcome::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => ReadOutcome::Interrupted,
            Err(_) => ReadOutcome::Reset,
        };
        let c = &mut self.conns[idx as usize];
        match c.core.on_read(outcome, asked) {
            AfterRead::Got(n) => {
                self.metrics.bytes_in.add(n as u64);
                self.read_since_harvest += n;
                Ok(n)
            }
            AfterRead::Again => Err(true),
            AfterRead::Stop { drop_body, reset } => {
                if drop_body {
                    // The body being read will never arrive: its slot is free now.
                    if let Some(b) = c.body.take() {
                        self.slots.put(b.slot);
                    }
                }
                if reset {
                    self.metrics.resets.inc();
                }
                Err(false)
            }
        }
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
            if !c.core.accepts_requests() || c.core.input().is_empty() || c.stream.is_none() {
                if let Some(Placed { slot, spot }) = c.placed.take() {
                    unplace(c, slot, spot, &mut self.slots, self.metrics);
                }
                return;
            }
            if !self.parse_one(idx) {
                return;
            }
        }
    }

    /// Parses one request head: settles a guessed read, takes a request slot (or waits for
    /// one), loads the request into it and begins it. Returns whether to keep going.
    pub(super) fn parse_one(&mut self, idx: u32) -> bool {
        let now = self.now_ms;
        let limits = self.limits;
        let c = &mut self.conns[idx as usize];
        let Input { start, end } = c.core.input();
        let raw = &c.rbuf[start..end];
        let mut headers = header_slots();
        let parsed = parse::parse_head(raw, &mut headers, &limits);
        let placed = match c.placed.take() {
            Some(p)
                if matches!(&parsed, Ok(Status::Complete(h))
                    if p.spot.confirmed_by(h.head_len, h.framing)
                        && matches!(h.framing, Framing::Length(n)
                            if n <= p.slot.request.body.capacity())) =>
            {
                Some(p)
            }
            Some(Placed { slot, spot }) => {
                // A wrong guess: make the input contiguous and parse it again.
                self.metrics.in_place_misses.inc();
                unplace(c, slot, spot, &mut self.slots, self.metrics);
                return true;
            }
            None => None,
        };
        let head = match parsed {
            Ok(Status::Complete(head)) => head,
            Ok(Status::Partial) => {
                c.core.head_partial(now);
                // A head longer than the connection's own buffer moves to a large one.
                return self.grow_head_buffer(idx);
            }
            Err(e) => {
                self.metrics.parse_errors[e.index()].inc();
                self.fail(idx, e.status(), None);
                return false;
            }
        };
        let routed = route_on(c.plane, head.method, head.path);
        let (action, label) = routed.action(head.path);
        let (slot, in_place) = match placed {
            Some(Placed { slot, spot }) => (slot, Some(spot)),
            None => {
                let held = c.core.in_flight();
                let class = self.sizes.for_request(head.head_len, head.framing);
                let free = self.slots.free_for(class);
                let total = self.slots.total_for(class);
                match admit::may_take_slot(held, free, total, self.newcomer_waiting)
                    .then(|| self.slots.take(class))
                    .flatten()
                {
                    Some(slot) => (slot, None),
                    None => {
                        c.core.on_data(now);
                        c.wants = class;
                        self.no_slot(idx);
                        return false;
                    }
                }
            }
        };
        // The wait for a slot (if any) ends here, whatever becomes of the request.
        c.waited_us = c
            .wait_since_us
            .take()
            .map_or(0, |since| self.now_us.saturating_sub(since));
        let key = runner_key(routed, &head);
        // `load` clears the request, `begin` and `finish` write every field of the ticket
        // (`dispatch` the handler's), and every answer starts from a cleared response
        // (`Slot::serve`, `Slot::answer_plain`): nothing to reset first.
        let loaded = slot.request.load(&head, raw, key).is_ok();
        let info = HeadInfo {
            len: head.head_len,
            framing: head.framing,
            keep_alive: head.keep_alive,
            expect_continue: head.expect_continue,
            head_request: head.method == Method::Head,
            deadline_ms: head.deadline_ms,
            action,
            label,
        };
        if !loaded {
            self.slots.put(slot);
            self.fail(idx, 431, None);
            return false;
        }
        self.begin(idx, slot, in_place, info)
    }

    /// No slot for a connection's next request: refused with 503 once it has waited its
    /// bound for one while holding none, else back-pressure (its bytes stay where they are
    /// until a slot frees up).
    fn no_slot(&mut self, idx: u32) {
        let c = &self.conns[idx as usize];
        if c.wait_since_us.is_none() {
            self.metrics.slot_waits[c.wants.index()].inc();
        }
        if self.wait_expired(idx) {
            self.metrics.shed[Shed::SlotWait.index()].inc();
            self.note_shed(Shed::SlotWait);
            self.fail(idx, 503, None);
        } else {
            self.wait_for_slot(idx);
        }
    }

    /// Begins a loaded request on its connection: its sequence number and ticket, the input
    /// after its head (after its body too when read in place), the next read's size and
    /// guess, then its body, or the request is complete.
    fn begin(
        &mut self,
        idx: u32,
        slot: &'static mut Slot<'static>,
        in_place: Option<Spot>,
        head: HeadInfo,
    ) -> bool {
        let now = self.now_ms;
        let c = &mut self.conns[idx as usize];
        let has_body = head.framing != Framing::None;
        let Ok(seq) = c.core.begin_request(now, head.keep_alive, has_body) else {
            match in_place {
                Some(spot) => unplace(c, slot, spot, &mut self.slots, self.metrics),
                None => self.slots.put(slot),
            }
            return false;
        };
        slot.ticket = Ticket {
            conn: idx,
            generation: c.generation,
            seq,
            runner: NO_RUNNER,
            head_only: head.head_request,
            route: head.label,
            // A request's deadline runs from when its head is read.
            deadline_us: deadline::deadline_us(
                self.now_us,
                head.deadline_ms,
                self.request_timeout_ms,
            ),
            expired: Expiry::No,
            ..slot.ticket
        };
        c.core.head_taken(head.len, head.framing, c.rbuf.len());
        let mut body_in_place = 0;
        if let Some(spot) = in_place {
            // The slot already holds `body` bytes of the body; what came after them (more body,
            // or the next request) is in the read buffer's tail range.
            self.metrics.bodies_in_place.inc();
            slot.request.body.advance(spot.body);
            body_in_place = spot.body;
            let tail = spot.tail_range(c.rbuf.len());
            c.core.input_is(Input {
                start: tail.start,
                end: tail.end,
            });
        }
        match body_start(head.framing, body_in_place, self.limits.max_body_bytes) {
            BodyStart::None => {
                self.finish(idx, slot, head.action);
                true
            }
            BodyStart::RefuseNow => {
                // Refused as soon as the head says so, without reading the body.
                self.slots.put(slot);
                self.refuse_too_large(idx, Some(head.head_request))
            }
            BodyStart::Read(framing) => {
                self.start_body(idx, slot, head, framing, body_in_place > 0);
                true
            }
        }
    }

    /// A body is on its way: `100 Continue` if it is due (`body::continue_due`), then the
    /// body is read into `slot` as it arrives.
    fn start_body(
        &mut self,
        idx: u32,
        slot: &'static mut Slot<'static>,
        head: HeadInfo,
        framing: BodyFraming,
        read_in_place: bool,
    ) {
        let c = &mut self.conns[idx as usize];
        let arrived = read_in_place || !c.core.input().is_empty();
        if continue_due(
            head.expect_continue,
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
            action: head.action,
            framing,
        });
    }

    /// Moves buffered body bytes into the slot (`BodyFraming::advance`). Returns whether
    /// the body completed.
    pub(super) fn advance_body(&mut self, idx: u32) -> bool {
        let now = self.now_ms;
        let c = &mut self.conns[idx as usize];
        let Some(body) = c.body.as_mut() else {
            return false;
        };
        let Input { start, end } = c.core.input();
        let input = &c.rbuf[start..end];
        match body
            .framing
            .advance(input, body.slot.request.body.spare_mut())
        {
            Ok(p) => {
                body.slot.request.body.advance(p.produced);
                c.core.consumed(p.consumed);
                if p.consumed > 0 {
                    c.core.on_data(now);
                }
                if !p.done {
                    let spare = body.slot.request.body.spare_mut().len();
                    let more = p.consumed < end - start;
                    let small = body.slot.request.body.capacity() < self.sizes.large_body;
                    let class = if small {
                        SlotClass::Small
                    } else {
                        SlotClass::Large
                    };
                    if self.sizes.outgrows_small(class, spare, more) {
                        return self.move_to_large_slot(idx);
                    }
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

    /// A chunked body filled its small slot: it moves, with its head, to a large one and goes
    /// on (returns whether it moved). With no large slot free, the connection waits for one
    /// in arrival order (reading nothing meanwhile; its body timeout still runs).
    fn move_to_large_slot(&mut self, idx: u32) -> bool {
        let Some(large) = self.slots.take(SlotClass::Large) else {
            let c = &mut self.conns[idx as usize];
            if c.wait_since_us.is_none() {
                self.metrics.slot_waits[SlotClass::Large.index()].inc();
            }
            c.wants = SlotClass::Large;
            c.wait_since_us.get_or_insert(self.now_us);
            self.enqueue_retry(idx);
            return false;
        };
        let c = &mut self.conns[idx as usize];
        let Some(body) = c.body.as_mut() else {
            self.slots.put(large);
            return false;
        };
        if body.slot.move_request_into(large).is_err() {
            // Cannot happen: a large slot holds any head and body a small one does.
            self.slots.put(large);
            return false;
        }
        let small = std::mem::replace(&mut body.slot, large);
        c.wait_since_us = None;
        self.slots.put(small);
        self.metrics.slot_moves.inc();
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

/// A `/run` request's affinity key: `/run/KEY`, else its `X-Runner-Key` field.
fn runner_key<'b>(routed: Route<'b>, head: &parse::Head<'_, 'b>) -> Option<&'b [u8]> {
    match routed {
        Route::Run { key } => key
            .map(str::as_bytes)
            .or_else(|| head.header("x-runner-key")),
        _ => None,
    }
}

/// Undoes a read made on a wrong `place::Guess` ([`Spot::undo`]): the input is the read buffer's
/// `..input.end` again, then the connection's [`Spilled`] bytes if the slot's did not all fit
/// back; otherwise the slot is freed.
fn unplace(
    c: &mut Connection,
    slot: &'static mut Slot<'static>,
    spot: Spot,
    free_slots: &mut SlotPool,
    metrics: &HandlerMetrics,
) {
    debug_assert!(c.spill.is_none());
    let (rend, spill) = spot.undo(c.rbuf, slot.request.body.spare_mut());
    c.core.input_ends_at(rend);
    match spill {
        Some(spill) => {
            metrics.in_place_spills.inc();
            c.spill = Some(Spilled { slot, spill });
        }
        None => free_slots.put(slot),
    }
}
