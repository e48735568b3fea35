//! A complete request's answer: to a runner, or from the handler itself (`/health`,
//! `/metrics`, `/shutdown`, statuses).

use super::*;

impl State {
    /// A request is complete: send it to a runner or answer it here.
    pub(super) fn finish(&mut self, idx: u32, slot: &'static mut Slot<'static>, action: Action) {
        slot.ticket.started_us = self.now_us;
        slot.ticket.answered_us = Ticket::UNSTAMPED;
        match action {
            Action::Run => self.dispatch(slot),
            Action::Health if self.shared.shutdown.is_draining() => {
                // Load balancers take the instance out while it still serves.
                self.local(slot, 503, None, |body| {
                    body.extend_from_slice(b"draining\n").is_ok()
                });
            }
            Action::Health => self.local(slot, 200, None, |body| {
                body.extend_from_slice(b"ok\n").is_ok()
            }),
            Action::Metrics => {
                let metrics = &self.shared.metrics;
                // The text is longer than a slot's own response: it goes into the handler's
                // spare buffer (in use by another scrape: 503, try again).
                self.slots.lend_own(slot);
                let room = slot.response_can_grow()
                    || slot.response_capacity() >= self.sizes.large_response;
                slot.serve(|_, resp| {
                    let _ =
                        resp.header("Content-Type", b"text/plain; version=0.0.4; charset=utf-8");
                    if metrics.render(resp.body_mut()).is_err() {
                        resp.reset();
                        resp.set_status(if room { 500 } else { 503 });
                        if !room {
                            let _ = resp.header("Retry-After", b"1");
                        }
                    }
                });
                self.slots.reclaim_own(slot);
                self.complete(slot);
            }
            Action::Shutdown => {
                if self.shutdown_allowed(idx, slot) {
                    self.conns[idx as usize].core.shutdown();
                    self.local(slot, 200, None, |b| {
                        b.extend_from_slice(b"shutting down\n").is_ok()
                    });
                    self.shared.shutdown.request(Reason::Request);
                } else {
                    self.local(slot, 403, None, |b| {
                        b.extend_from_slice(b"Forbidden\n").is_ok()
                    });
                }
            }
            Action::Status(status, allow) => {
                self.local(slot, status, allow, |b| {
                    b.extend_from_slice(response::reason(status).as_bytes())
                        .is_ok()
                        && b.extend_from_slice(b"\n").is_ok()
                });
            }
        }
    }

    /// `/shutdown` is allowed with the configured bearer token, or without one from a local
    /// peer: loopback (an IPv4-mapped loopback address included) or a Unix socket, and not
    /// through a proxy.
    pub(super) fn shutdown_allowed(&self, idx: u32, slot: &Slot<'_>) -> bool {
        let req = slot.request.view();
        let on_host = self.conns[idx as usize]
            .stream
            .as_ref()
            .is_some_and(Stream::peer_is_local);
        let local = on_host && !route::proxied(req.headers().map(|(name, _)| name));
        let token = self.shared.cfg.shutdown_token_bytes();
        route::shutdown_permitted(local, token, req.header("authorization"))
    }

    /// Answers with a short text body written by `body`.
    pub(super) fn local(
        &mut self,
        slot: &'static mut Slot<'static>,
        status: u16,
        allow: Option<&'static str>,
        body: impl FnOnce(&mut FixedBuf<'_>) -> bool,
    ) {
        slot.serve(|_, resp| {
            resp.set_status(status);
            let _ = resp.header("Content-Type", b"text/plain; charset=utf-8");
            if let Some(allow) = allow {
                let _ = resp.header("Allow", allow.as_bytes());
            }
            if status == 503 {
                let mut digits = [0u8; 10];
                let mut secs = FixedBuf::new(&mut digits);
                let _ = secs.push_decimal(u64::from(DEFAULT_RETRY_AFTER_SECS));
                let _ = resp.header("Retry-After", secs.as_slice());
            }
            let _ = body(resp.body_mut());
        });
        self.complete(slot);
    }
}
