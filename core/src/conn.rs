//! The per-connection state machine: what a connection is doing, when it times out, whether
//! it stays open, and which response may be written next.
//!
//! Driven by events the shell reports (bytes arrived, a request head or body completed, a
//! response became ready, a response was written, a tick carrying `now_ms`), it owns the
//! connection's decisions; the shell only moves bytes. Responses are queued in request order
//! as `P` values (whatever the shell uses to hold a response) and released strictly from the
//! front, so pipelined requests are answered in order however their runners finish.

use crate::limits::{
    DEFAULT_BODY_TIMEOUT_MS, DEFAULT_HEADER_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS,
    DEFAULT_MAX_PIPELINE, FIRST_REQUEST_GRACE_MS, GATHER_BYTES, LINGER_MS, MAX_PIPELINE,
};

/// Timeouts and pipelining depth for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnConfig {
    /// Time for a whole request head to arrive, from its first byte (or from accept).
    pub header_timeout_ms: u64,
    /// Longest pause between two pieces of a request body.
    pub body_timeout_ms: u64,
    /// Time an idle keep-alive connection stays open; also how long a client may leave
    /// written responses unread before the connection is dropped.
    pub idle_timeout_ms: u64,
    /// Most requests in flight (read but not yet answered) per connection, below
    /// [`MAX_PIPELINE`] (one place is kept for a final error response).
    pub max_pipeline: usize,
}

impl ConnConfig {
    /// 10 s header, 10 s body, 60 s idle, 16 requests in flight.
    pub const DEFAULT: Self = Self {
        header_timeout_ms: DEFAULT_HEADER_TIMEOUT_MS,
        body_timeout_ms: DEFAULT_BODY_TIMEOUT_MS,
        idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
        max_pipeline: DEFAULT_MAX_PIPELINE,
    };
}

impl Default for ConnConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What the read side of a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Between requests: nothing of the next request received yet.
    Idle,
    /// Receiving a request head (a deadline runs from its first byte).
    Head,
    /// Receiving a request body (a deadline runs from the last progress).
    Body,
    /// Done: close the socket now.
    Closed,
}

/// A deadline that passed, and what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// The head did not arrive in time: answer 408, then close.
    Head,
    /// The body stalled: answer 408, then close.
    Body,
    /// Idle keep-alive connection: close without a response.
    Idle,
    /// The client stopped reading responses: close.
    Write,
}

impl Timeout {
    /// Every kind, in index order.
    pub const ALL: [Self; 4] = [Self::Head, Self::Body, Self::Idle, Self::Write];

    /// The metric label (`kind="..."`).
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Head => "head",
            Self::Body => "body",
            Self::Idle => "idle",
            Self::Write => "write",
        }
    }

    /// Its place in [`Self::ALL`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether a 408 is owed before closing.
    #[must_use]
    pub const fn answers_408(self) -> bool {
        matches!(self, Self::Head | Self::Body)
    }
}

/// Whether ready responses in `parts` parts of `bytes` in all are copied into one buffer and
/// written with one `write`: three parts or more (two per response), within
/// [`GATHER_BYTES`]. The kernel's per-part cost of a `writev` is then gone; larger runs go
/// out by `writev` from where they are, where one more copy would cost more than it saves.
#[must_use]
pub const fn should_gather(parts: usize, bytes: usize) -> bool {
    parts > 2 && bytes <= GATHER_BYTES
}

/// How a connection whose responses are all written ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Close the socket now.
    Now,
    /// Lingering close: shut our sending side and discard input until the peer's EOF or
    /// `until_ms`, so a client still sending (a refused body) reads our response instead of
    /// a reset caused by unread input.
    Linger {
        /// When to close whatever happens.
        until_ms: u64,
    },
}

/// How a connection ends at `now_ms`: at once when the peer already closed its side, when
/// it is already lingering, or at or past the shutdown deadline; otherwise by a lingering
/// close of at most [`LINGER_MS`] that never runs past the shutdown deadline.
#[must_use]
pub fn ending(
    now_ms: u64,
    peer_eof: bool,
    lingering: bool,
    shutdown_deadline_ms: Option<u64>,
) -> Ending {
    if peer_eof || lingering || shutdown_deadline_ms.is_some_and(|d| now_ms >= d) {
        return Ending::Now;
    }
    let until = now_ms.saturating_add(LINGER_MS);
    Ending::Linger {
        until_ms: shutdown_deadline_ms.map_or(until, |d| until.min(d)),
    }
}

/// The queue is full (more than the configured requests in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

pub mod body;
pub mod input;
mod io;
mod queue;

use io::ReadSide;
pub use io::{AfterRead, ReadOutcome};

use queue::{Pending, Queue};

/// One connection's state. `P` holds a finished response (a slot, an error, ...).
///
/// `repr(C)`: the scalars come first and the queue's storage after them, so a connection
/// with one request at a time (whose queue restarts at its first entry, see
/// [`pop_written`](Self::pop_written)) touches few cache lines.
#[derive(Debug)]
#[repr(C)]
pub struct Conn<P> {
    phase: Phase,
    /// No further requests will be read; close once `pending` drains.
    closing: bool,
    next_seq: u32,
    /// When the head/body/idle phase times out.
    deadline_ms: u64,
    /// When unwritten ready responses time out (meaningful while one is at the front).
    write_deadline_ms: u64,
    cfg: ConnConfig,
    /// Bytes of the front response already written.
    written: usize,
    /// The read side (`io`): the buffered input, the next head read's size and guess, and
    /// what the socket last said.
    read: ReadSide,
    /// Lingering close: input is discarded until EOF or then (ms).
    linger_until_ms: Option<u64>,
    pending: Queue<P>,
}

impl<P> Conn<P> {
    /// A freshly accepted connection: its first head must arrive within the header timeout.
    #[must_use]
    pub fn new(cfg: ConnConfig, now_ms: u64) -> Self {
        let mut cfg = cfg;
        cfg.max_pipeline = cfg.max_pipeline.clamp(1, MAX_PIPELINE - 1);
        Self {
            cfg,
            phase: Phase::Head,
            deadline_ms: now_ms.saturating_add(cfg.header_timeout_ms),
            write_deadline_ms: u64::MAX,
            pending: Queue::new(),
            next_seq: 0,
            closing: false,
            written: 0,
            read: ReadSide::new(),
            linger_until_ms: None,
        }
    }

    /// The read-side phase.
    #[must_use]
    pub const fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether no request has begun on the connection yet.
    #[must_use]
    pub const fn is_fresh(&self) -> bool {
        self.next_seq == 0
    }

    /// Whether a quiet connection closes now at a shutdown that started at `started_ms`: at
    /// once, unless no request has begun on it yet and [`FIRST_REQUEST_GRACE_MS`] has not
    /// passed (its first request may be on its way; a client does not retry a fresh
    /// connection closed unanswered the way it retries an idle keep-alive one).
    #[must_use]
    pub const fn closes_at_shutdown(&self, started_ms: u64, now_ms: u64) -> bool {
        !self.is_fresh() || now_ms >= started_ms.saturating_add(FIRST_REQUEST_GRACE_MS)
    }

    /// Requests in flight (read, response not yet fully written).
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Whether another request may be read now: not closing and below the pipelining bound.
    #[must_use]
    pub fn accepts_requests(&self) -> bool {
        !self.closing && self.phase != Phase::Closed && self.pending.len() < self.cfg.max_pipeline
    }

    /// Whether no further request will be read from this connection.
    #[must_use]
    pub const fn is_closing(&self) -> bool {
        self.closing
    }

    /// Whether the socket should be closed now.
    #[must_use]
    pub fn should_close(&self) -> bool {
        self.phase == Phase::Closed || (self.closing && self.pending.is_empty())
    }

    /// Bytes of a request arrived but it is not complete yet.
    pub fn on_data(&mut self, now_ms: u64) {
        match self.phase {
            Phase::Idle => {
                self.phase = Phase::Head;
                self.deadline_ms = now_ms.saturating_add(self.cfg.header_timeout_ms);
            }
            Phase::Body => self.deadline_ms = now_ms.saturating_add(self.cfg.body_timeout_ms),
            Phase::Head | Phase::Closed => {}
        }
    }

    /// A request head was parsed. Returns its sequence number; its response must come back
    /// through [`complete`](Self::complete) with that number.
    ///
    /// # Errors
    /// [`Busy`] when [`accepts_requests`](Self::accepts_requests) is false.
    pub fn begin_request(
        &mut self,
        now_ms: u64,
        keep_alive: bool,
        has_body: bool,
    ) -> Result<u32, Busy> {
        if !self.accepts_requests() {
            return Err(Busy);
        }
        let seq = self.next_seq;
        self.pending
            .push_back(Pending {
                seq,
                out: None,
                close: !keep_alive,
            })
            .map_err(|_| Busy)?;
        self.next_seq = self.next_seq.wrapping_add(1);
        if !keep_alive {
            self.closing = true;
        }
        if has_body {
            self.phase = Phase::Body;
            self.deadline_ms = now_ms.saturating_add(self.cfg.body_timeout_ms);
        } else {
            self.enter_idle(now_ms);
        }
        Ok(seq)
    }

    /// The body of the current request is complete.
    pub fn body_complete(&mut self, now_ms: u64) {
        if self.phase == Phase::Body {
            self.enter_idle(now_ms);
        }
    }

    fn enter_idle(&mut self, now_ms: u64) {
        self.phase = Phase::Idle;
        self.deadline_ms = now_ms.saturating_add(self.cfg.idle_timeout_ms);
    }

    /// The response for `seq` is ready. `close` forces the connection to close after it.
    ///
    /// # Errors
    /// Hands `out` back when no request `seq` is in flight (a stale response).
    pub fn complete(&mut self, now_ms: u64, seq: u32, out: P, close: bool) -> Result<(), P> {
        let Some(p) = self.pending_mut(seq).filter(|p| p.out.is_none()) else {
            return Err(out);
        };
        p.out = Some(out);
        if close {
            p.close = true;
            self.closing = true;
        }
        self.arm_write_deadline(now_ms);
        Ok(())
    }

    /// The entry for `seq`. Entries take consecutive sequence numbers as they are queued, so
    /// it sits `seq - front.seq` places from the front: no search through up to
    /// [`MAX_PIPELINE`] entries per response (16 pipelined responses cost 120 comparisons
    /// through a wrapping iterator that way).
    fn pending_mut(&mut self, seq: u32) -> Option<&mut Pending<P>> {
        let at = self.position(seq)?;
        let p = self.pending.get_mut(at);
        debug_assert!(p.as_ref().is_some_and(|p| p.seq == seq));
        p
    }

    /// Where the entry for `seq` sits in `pending`, if it is there (entries are queued with
    /// consecutive sequence numbers and leave from the front only).
    fn position(&self, seq: u32) -> Option<usize> {
        let at = seq.wrapping_sub(self.pending.front()?.seq) as usize;
        (at < self.pending.len()).then_some(at)
    }

    /// The request being read is refused: queue `out` (an error response) after everything in
    /// flight, read nothing more, and close once it is written. If a request was begun for it
    /// (its body failed), that request's place is used.
    pub fn fail(&mut self, now_ms: u64, out: P) {
        self.closing = true;
        let reading_body = self.phase == Phase::Body;
        self.phase = Phase::Idle;
        self.deadline_ms = u64::MAX;
        if reading_body {
            if let Some(p) = self.pending.back_mut() {
                if p.out.is_none() {
                    p.out = Some(out);
                    p.close = true;
                    self.arm_write_deadline(now_ms);
                    return;
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        // `begin_request` keeps one place free below MAX_PIPELINE, so this fits; if it
        // somehow does not, closing without the error response is the safe outcome.
        if self
            .pending
            .push_back(Pending {
                seq,
                out: Some(out),
                close: true,
            })
            .is_err()
        {
            self.phase = Phase::Closed;
        }
        self.arm_write_deadline(now_ms);
    }

    fn arm_write_deadline(&mut self, now_ms: u64) {
        if self.front_ready() && self.write_deadline_ms == u64::MAX {
            self.write_deadline_ms = now_ms.saturating_add(self.cfg.idle_timeout_ms);
        }
    }

    fn front_ready(&self) -> bool {
        self.pending.front().is_some_and(|p| p.out.is_some())
    }

    /// The responses that may be written now, in order: the ready prefix of the queue.
    pub fn ready(&mut self) -> impl Iterator<Item = &mut P> {
        self.pending.iter_mut().map_while(|p| p.out.as_mut())
    }

    /// Whether the response at the front is the last one before the connection closes, so
    /// its head should say `Connection: close`.
    #[must_use]
    pub fn closes_after(&self, seq: u32) -> bool {
        let Some(at) = self.position(seq) else {
            return true;
        };
        let p = self.pending.get(at);
        debug_assert_eq!(p.map(|p| p.seq), Some(seq));
        p.is_none_or(|p| p.close) || (self.closing && at + 1 == self.pending.len())
    }

    /// The front response has been written completely; returns it (to recycle its storage).
    pub fn pop_written(&mut self, now_ms: u64) -> Option<P> {
        if !self.front_ready() {
            return None;
        }
        // An emptied queue starts over at its first entry: a connection with one request at
        // a time then reuses one cache line instead of walking the whole queue's (which, with
        // many connections, costs a cache miss per request).
        let p = self.pending.pop_front()?;
        if p.close {
            self.closing = true;
            self.phase = Phase::Closed;
        }
        self.write_deadline_ms = u64::MAX;
        self.arm_write_deadline(now_ms);
        if self.pending.is_empty() && self.phase == Phase::Idle {
            self.deadline_ms = now_ms.saturating_add(self.cfg.idle_timeout_ms);
        }
        p.out
    }

    /// Removes the oldest queued response whatever its state (for closing a connection and
    /// recycling the storage of its responses); entries still at a runner are skipped.
    pub fn pop_any(&mut self) -> Option<P> {
        while let Some(p) = self.pending.pop_front() {
            if p.out.is_some() {
                return p.out;
            }
        }
        None
    }

    /// Some bytes of the front response were written (the client is reading).
    pub fn write_progress(&mut self, now_ms: u64) {
        if self.front_ready() {
            self.write_deadline_ms = now_ms.saturating_add(self.cfg.idle_timeout_ms);
        }
    }

    /// Bytes of the front response already written.
    #[must_use]
    pub const fn written(&self) -> usize {
        self.written
    }

    /// Hands what is left to write of the ready responses to `push`, in order and without
    /// the bytes already written: each response is the parts `split` gives (head, body; an
    /// empty part is skipped). After each response, `push`'s last answer says whether there
    /// is room for another; `false` stops.
    pub fn unwritten<'a>(
        &'a self,
        split: impl Fn(&'a P) -> [&'a [u8]; 2],
        mut push: impl FnMut(&'a [u8]) -> bool,
    ) {
        let mut skip = self.written;
        for out in self.pending.iter().map_while(|p| p.out.as_ref()) {
            let mut room = true;
            for part in split(out) {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                room = push(&part[skip..]);
                skip = 0;
            }
            if !room {
                return;
            }
        }
    }

    /// `n` more bytes of the ready responses were written; `len` gives a response's length
    /// (all its parts). Every response now written whole leaves the queue through `done`
    /// (to recycle its storage), in order; the rest counts toward the next one.
    pub fn wrote(
        &mut self,
        now_ms: u64,
        n: usize,
        len: impl Fn(&P) -> usize,
        mut done: impl FnMut(P),
    ) {
        self.write_progress(now_ms);
        let mut total = self.written + n;
        while let Some(front) = self.pending.front().and_then(|p| p.out.as_ref()) {
            let front_len = len(front);
            if total < front_len {
                break;
            }
            total -= front_len;
            if let Some(out) = self.pop_written(now_ms) {
                done(out);
            }
        }
        self.written = total;
    }

    /// The peer closed its sending side (FIN): answer the requests already read, then close.
    /// A request whose body was still arriving can never complete: it is dropped, and the
    /// return value says so, so the shell frees what held its body at once. With nothing
    /// left to answer the connection closes now ([`should_close`](Self::should_close)).
    pub fn peer_closed(&mut self) -> bool {
        self.closing = true;
        let abandoned = self.phase == Phase::Body
            && self.pending.back_mut().is_some_and(|p| p.out.is_none())
            && self.pending.pop_back().is_some();
        if matches!(self.phase, Phase::Head | Phase::Body) || self.pending.is_empty() {
            // A half-received request cannot be answered meaningfully.
            if self.pending.is_empty() {
                self.phase = Phase::Closed;
            } else {
                self.phase = Phase::Idle;
            }
        }
        abandoned
    }

    /// The peer is gone (a reset, or both directions shut): nothing more can be read or
    /// written, so the connection closes now with whatever it had in flight.
    pub fn peer_reset(&mut self) {
        self.closing = true;
        self.phase = Phase::Closed;
    }

    /// Server shutdown: read nothing more; idle connections close now, others after their
    /// in-flight responses.
    pub fn shutdown(&mut self) {
        self.closing = true;
        if self.pending.is_empty() {
            self.phase = Phase::Closed;
        } else if self.phase != Phase::Closed {
            self.phase = Phase::Idle;
        }
    }

    /// Checks the deadlines at `now_ms`; a returned timeout has taken effect (the connection is
    /// closing) and the shell must act on it: queue a 408 through [`fail`](Self::fail) for
    /// [`Timeout::answers_408`], otherwise close the socket.
    pub fn tick(&mut self, now_ms: u64) -> Option<Timeout> {
        if self.phase == Phase::Closed {
            return None;
        }
        if self.front_ready() && now_ms >= self.write_deadline_ms {
            self.phase = Phase::Closed;
            return Some(Timeout::Write);
        }
        if now_ms < self.deadline_ms || self.closing && self.phase == Phase::Idle {
            return None;
        }
        let timeout = match self.phase {
            Phase::Head => Timeout::Head,
            Phase::Body => Timeout::Body,
            Phase::Idle if self.pending.is_empty() => Timeout::Idle,
            Phase::Idle | Phase::Closed => return None,
        };
        if timeout == Timeout::Idle {
            self.phase = Phase::Closed;
        } else {
            self.closing = true;
        }
        Some(timeout)
    }
}
