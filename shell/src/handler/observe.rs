//! What a handler tells about its requests: time to last byte and the access-log record of
//! each response written whole, and rate-limited log lines for bursts of shedding and
//! expiry (`core::observe::Burst`).

use httpd_runner_core::limits::BURST_LOG_WINDOW_MS;
use httpd_runner_core::observe::{Burst, Peer, Record, NO_RUNNER};

use super::*;

/// The handler's log bursts.
#[derive(Debug, Default)]
pub(super) struct Bursts {
    shed: Burst,
    expired: Burst,
}

/// What a response written whole is recorded with: the connection's peer and its inline
/// refusal's status, copied out before the write accounting borrows the connection.
#[derive(Clone, Copy)]
pub(super) struct Written {
    pub(super) peer: Peer,
    pub(super) inline_status: u16,
    pub(super) inline_at_us: u64,
    pub(super) inline_len: usize,
}

impl State {
    /// Records a response whose last byte was just written, at `now_us`.
    #[inline]
    pub(super) fn observe_written(
        metrics: &HandlerMetrics,
        access: &mut Option<crate::access::AccessTx>,
        out: &Out,
        w: Written,
        now_us: u64,
    ) {
        match out {
            Out::Slot(slot) => {
                let t = &slot.ticket;
                let status = slot.response.status();
                let us = now_us.saturating_sub(t.started_us);
                metrics.observe_last_byte(t.route, status, us);
                if let Some(log) = access {
                    let mut r = Record {
                        at_us: now_us,
                        peer: w.peer,
                        status,
                        runner: if t.route == RouteLabel::Run {
                            t.runner
                        } else {
                            NO_RUNNER
                        },
                        bytes: (slot.response.wire_head().len() + slot.wire_body().len()) as u64,
                        micros: us,
                        ..Record::default()
                    };
                    r.set_request_line(slot.request.head());
                    log.push(r, &metrics.access_dropped);
                }
            }
            Out::Inline | Out::Static(_) => {
                // A refusal is timed from when it was decided; the fixed 504 of a passed
                // deadline has no start here (it is counted in `requests_total`).
                let (status, bytes, us) = match out {
                    Out::Static(bytes) => (504, bytes.len(), 0),
                    _ => {
                        let us = now_us.saturating_sub(w.inline_at_us);
                        metrics.observe_last_byte(RouteLabel::Other, w.inline_status, us);
                        (w.inline_status, w.inline_len, us)
                    }
                };
                if let Some(log) = access {
                    let r = Record {
                        at_us: now_us,
                        peer: w.peer,
                        status,
                        bytes: bytes as u64,
                        micros: us,
                        ..Record::default()
                    };
                    log.push(r, &metrics.access_dropped);
                }
            }
        }
    }

    /// Notes a request shed with 503 for the log (one line a second at most).
    #[cold]
    pub(super) fn note_shed(&mut self, why: Shed) {
        if let Some(n) = self.bursts.shed.note(self.now_ms, BURST_LOG_WINDOW_MS) {
            let h = self.index;
            log::warn!(
                "handler {h}: shedding load: {n} requests answered 503 since the last report (the latest for {})",
                why.label()
            );
        }
    }

    /// Notes a request answered 504 for the log (one line a second at most).
    #[cold]
    pub(super) fn note_expired(&mut self, e: Expiry) {
        if let Some(n) = self.bursts.expired.note(self.now_ms, BURST_LOG_WINDOW_MS) {
            let h = self.index;
            log::warn!(
                "handler {h}: deadlines passed: {n} requests answered 504 since the last report (the latest {})",
                e.label()
            );
        }
    }

    /// Logs the bursts held back once their second is over (called on the deadline tick).
    pub(super) fn flush_bursts(&mut self) {
        let h = self.index;
        if let Some(n) = self.bursts.shed.flush(self.now_ms, BURST_LOG_WINDOW_MS) {
            log::warn!("handler {h}: shedding load: {n} more requests answered 503");
        }
        if let Some(n) = self.bursts.expired.flush(self.now_ms, BURST_LOG_WINDOW_MS) {
            log::warn!("handler {h}: deadlines passed: {n} more requests answered 504");
        }
    }
}
