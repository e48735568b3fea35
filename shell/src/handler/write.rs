//! Responses out: a finished slot's head, refusals from the inline buffer, and the
//! writes (gathered or `writev`) that account bytes against the queued responses.

use super::*;

impl State {
    /// Serializes the response head and queues the slot on its connection.
    pub(super) fn complete(&mut self, slot: &'static mut Slot<'static>) {
        let t = slot.ticket;
        let c = &mut self.conns[t.conn as usize];
        if c.stream.is_none() || c.generation != t.generation {
            // The connection closed meanwhile.
            self.slots.put(slot);
            return;
        }
        let keep_alive = !c.core.closes_after(t.seq);
        let date = &self.date;
        let body_len = slot.response_body().len();
        let runner = (t.route == RouteLabel::Run && t.runner != NO_RUNNER).then_some(t.runner);
        let wrote = slot.response.write_wire_head(|buf, status, lines| {
            write_head(
                buf,
                &ResponseHead {
                    status,
                    content_length: body_len,
                    keep_alive,
                    date,
                    content_type: None,
                    allow: None,
                    retry_after_secs: None,
                    runner,
                    extra: lines.as_bytes(),
                },
            )
        });
        let status = if wrote.is_ok() {
            slot.response.status()
        } else {
            500
        };
        if wrote.is_err() {
            // The head cannot outgrow its buffer (runner headers are bounded); be safe anyway.
            slot.serve(|_, resp| resp.set_status(500));
            let _ = slot.response.write_wire_head(|buf, _, _| {
                write_simple(
                    buf,
                    &Simple {
                        status: 500,
                        keep_alive: false,
                        head_only: true,
                        date,
                        allow: None,
                        retry_after_secs: None,
                    },
                )
            });
        }
        self.metrics.count_request(t.route, status);
        if let Err(Out::Slot(slot)) = c.core.complete(self.now_ms, t.seq, Out::Slot(slot), false) {
            self.slots.put(slot);
            return;
        }
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(t.conn);
        }
    }

    /// Refuses the request being read: answer `status` from the inline buffer, then close.
    /// A `HEAD` request's refusal has no body: whether the request is one is known from its
    /// slot once its head was parsed, else from its first bytes (a malformed or partial head).
    pub(super) fn fail(&mut self, idx: u32, status: u16, allow: Option<&'static str>) {
        self.fail_head(idx, status, allow, None);
    }

    /// [`fail`](Self::fail), told whether the request is a `HEAD` when neither its slot nor
    /// the read buffer can tell any more.
    pub(super) fn fail_head(
        &mut self,
        idx: u32,
        status: u16,
        allow: Option<&'static str>,
        head_request: Option<bool>,
    ) {
        let now = self.now_ms;
        let c = &mut self.conns[idx as usize];
        let head_only = match (&c.body, head_request) {
            (_, Some(head)) => head,
            (Some(b), None) => b.slot.ticket.head_only,
            (None, None) => {
                let Input { start, end } = c.core.input();
                parse::is_head_request(&c.rbuf[start..end])
            }
        };
        if let Some(b) = c.body.take() {
            self.slots.put(b.slot);
        }
        let mut out = FixedBuf::new(&mut c.inline);
        let simple = Simple {
            status,
            keep_alive: false,
            head_only,
            date: &self.date,
            allow,
            retry_after_secs: (status == 503).then_some(DEFAULT_RETRY_AFTER_SECS),
        };
        c.inline_status = status;
        c.inline_at_us = self.now_us;
        c.inline_len = if write_simple(&mut out, &simple).is_ok() {
            out.len()
        } else {
            0
        };
        self.metrics.count_request(RouteLabel::Other, status);
        c.core.fail(now, Out::Inline);
        c.core.discard_input();
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(idx);
        }
    }

    pub(super) fn flush_dirty(&mut self, registry: &mio::Registry) {
        while let Some(idx) = self.dirty.pop() {
            self.conns[idx as usize].dirty = false;
            self.flush(idx, registry);
        }
    }

    /// Writes every ready response of the connection with as few `writev` calls as the socket
    /// allows, recycles finished slots, and closes the connection when it is done.
    pub(super) fn flush(&mut self, idx: u32, registry: &mio::Registry) {
        if self.conns[idx as usize].core.lingering().is_some() {
            return;
        }
        loop {
            let c = &mut self.conns[idx as usize];
            if c.stream.is_none() {
                return;
            }
            let gather = &mut self.gather[..];
            // Fewer than three responses (the usual case) fit in four parts; filling a whole
            // `MAX_WRITE_PARTS` array first would cost more than the rest of the bookkeeping.
            let written = if c.core.ready().nth(2).is_none() {
                write_ready::<4>(c, gather)
            } else {
                write_ready::<MAX_WRITE_PARTS>(c, gather)
            };
            let Some((written, gathered)) = written else {
                c.core.write_drained(true);
                break;
            };
            if gathered {
                self.metrics.gathered_writes.inc();
            }
            match written {
                Ok(n) if n > 0 => {
                    self.metrics.bytes_out.add(n as u64);
                    self.advance_written(idx, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The client is not reading: no new request from it until it does (the
                    // socket's writable event brings it back here).
                    c.core.write_drained(false);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(_) | Err(_) => {
                    // The peer is gone: nothing more can be written.
                    self.metrics.resets.inc();
                    c.core.peer_reset();
                    return self.close_now(idx, registry);
                }
            }
        }
        let c = &self.conns[idx as usize];
        if c.stream.is_some() && c.core.should_close() {
            self.close(idx, registry);
        } else if c.stream.is_some() && c.core.retry_after_write(c.spill.is_some(), c.queued) {
            // Writing made room in the pipeline: parse what is buffered and read what waits
            // (buffered requests raise no new socket event).
            self.enqueue_retry(idx);
        }
    }

    /// Accounts `n` written bytes against the queued responses, in order (`Conn::wrote`);
    /// the slots of responses written whole go back to the pool.
    pub(super) fn advance_written(&mut self, idx: u32, n: usize) {
        let c = &mut self.conns[idx as usize];
        let inline_len = c.inline_len;
        let written = observe::Written {
            peer: c.peer,
            inline_status: c.inline_status,
            inline_at_us: c.inline_at_us,
            inline_len,
        };
        let free_slots = &mut self.slots;
        let (metrics, access, started) = (self.metrics, &mut self.access, self.started);
        // Read once per write, and only when a response was written whole.
        let mut now_us = None;
        c.core.wrote(
            self.now_ms,
            n,
            |out| match out {
                Out::Slot(s) => s.response.wire_head().len() + s.wire_body().len(),
                Out::Inline => inline_len,
                Out::Static(bytes) => bytes.len(),
            },
            |out| {
                let now = *now_us.get_or_insert_with(|| micros_since(started));
                Self::observe_written(metrics, access, &out, written, now);
                if let Out::Slot(slot) = out {
                    free_slots.put(slot);
                }
            },
        );
    }
}

/// Writes the connection's ready responses, as many as `N` parts hold (head and body each),
/// minus the bytes of them already written, with one `writev`, or with one `write` of their
/// copy in `gather` when they are small (`conn::should_gather`). `None` when nothing is
/// ready; otherwise the result and whether the parts were gathered.
fn write_ready<const N: usize>(
    c: &mut Connection,
    gather: &mut [u8],
) -> Option<(io::Result<usize>, bool)> {
    let stream = c.stream.as_mut()?;
    let mut parts: [IoSlice<'_>; N] = [IoSlice::new(&[]); N];
    let mut count = 0;
    let inline = &c.inline[..c.inline_len];
    c.core.unwritten(
        |out| match out {
            Out::Slot(s) => [s.response.wire_head(), s.wire_body()],
            Out::Inline => [inline, &[][..]],
            Out::Static(bytes) => [bytes, &[][..]],
        },
        |part| {
            if count < N {
                parts[count] = IoSlice::new(part);
                count += 1;
            }
            count + 2 <= N
        },
    );
    if count == 0 {
        return None;
    }
    let parts = &parts[..count];
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if should_gather(count, total) {
        if let Some(run) = gather.get_mut(..total) {
            let mut at = 0;
            for p in parts {
                run[at..at + p.len()].copy_from_slice(p);
                at += p.len();
            }
            // Bytes the socket does not take are counted as written by `advance_written`
            // only as far as it took them; the next call gathers the rest again.
            return Some((stream.write(run), true));
        }
    }
    Some((stream.write_vectored(parts), false))
}
