//! Handler threads: an event loop over many non-blocking connections.
//!
//! Per loop: take new connections from the listener's ring, take finished slots back from the
//! runners, read and parse what sockets have, dispatch `/run` requests to runners (one ring per
//! runner, woken at most once per batch), answer the other routes locally, write every ready
//! response of a connection with one `writev`, and tick the connections' deadlines. All
//! decisions are the core's (`parse`, `route`, `conn`, `admit`); this file moves bytes.
//!
//! This file holds the loop, reading and parsing; the rest of the connection's path is in
//! `slots` (waiting for a request slot, fair share, 503 after `--shed-after`), `runners`
//! (dispatch, shedding by expected wait, answers back), `write` (response heads, refusals,
//! writes) and `close` (lingering close, peers gone, deadlines, shutdown).
//!
//! Memory: the connection table (each with its read buffer) and the slot pool are made at
//! startup; a request takes a slot from the free list, the slot travels to a runner and back
//! by reference, and returns to the free list once its response is written.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown as SockShutdown;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use httpd_runner_core::admit;
use httpd_runner_core::conn::{Conn, ConnConfig, Timeout};
use httpd_runner_core::limits::Limits;
use httpd_runner_core::limits::DEFAULT_RETRY_AFTER_SECS;
use httpd_runner_core::msg::{Done, Job, Slot, Ticket};
use httpd_runner_core::parse::{self, header_slots, ChunkedDecoder, Framing, Method, Status};
use httpd_runner_core::place::{Guess, Plan, Spill, Spot};
use httpd_runner_core::response::{
    self, imf_fixdate, write_head, write_simple, ResponseHead, Simple, DATE_LEN,
};
use httpd_runner_core::ring::{Consumer, Producer};
use httpd_runner_core::route::{self, pick_runner, route, Route};
use httpd_runner_core::sync::Ordering;
use httpd_runner_core::text::FixedBuf;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::config::{ACCEPT_RING_SLOTS, RING_SLOTS};
use crate::hints::Streak;
use crate::metrics::{code_index, Counter, HandlerMetrics};
use crate::pin::Placement;
use crate::server::Shared;
use crate::shutdown::Reason;

mod close;
mod runners;
mod slots;
mod write;

/// The waker's token; connection tokens are their table index.
pub(crate) const WAKE: Token = Token(usize::MAX - 1);

/// How often deadlines are checked (the granularity of every timeout).
const TICK: Duration = Duration::from_millis(100);

/// How long a handler with nothing else to do waits for runners' answers before it sleeps
/// (only while their recent service time is below this).
const AWAIT_RUNNERS: Duration = Duration::from_micros(50);

/// Most `writev` parts per call (two per response: head and body).
const MAX_IOV: usize = 64;

/// Ready responses this small in total, in three parts or more, are copied into one buffer
/// and written with a plain `write`: the kernel's per-part cost of a `writev` is then gone
/// (pipelined GETs, 16 deep: `_copy_from_iter` fell from 0.041 µs per request to nothing,
/// the copy now inside `tcp_sendmsg` at 0.019). Larger runs go out by `writev` from their
/// slots, where one more copy would cost more than the parts it saves.
const GATHER_BYTES: usize = 4 * 1024;

/// Input read in one loop turn after which the runners' answers are taken and written
/// before more connections are read (see `harvest`).
const HARVEST_BYTES: usize = 128 * 1024;

/// Reads per connection per event before others get a turn.
const READS_PER_TURN: usize = 8;

/// Route label indexes (see `metrics::ROUTES`).
const ROUTE_RUN: u8 = 0;
const ROUTE_SHUTDOWN: u8 = 1;
const ROUTE_METRICS: u8 = 2;
const ROUTE_HEALTH: u8 = 3;
const ROUTE_OTHER: u8 = 4;

/// Longest lingering close: how long input is discarded after we shut our side, so that a
/// client still sending (a refused body) reads our response instead of a reset.
const LINGER_MS: u64 = 2_000;

/// `Ticket::runner` before a runner is chosen.
const NO_RUNNER: u16 = u16::MAX;

/// Size of a connection's buffer for its final error response.
const INLINE_BYTES: usize = 512;

/// After a request whose body did not fit in the read buffer, the next read of a head asks for
/// this much only: a request like it leaves the head plus a few KiB in the read buffer (copied
/// into the slot) and its body goes straight into the slot. Asking for the whole read buffer
/// would read (then copy) as much body as fits, for the same number of system calls.
const HEAD_READ_AFTER_LARGE_BODY: usize = 4096;

/// A read made on a [`Guess`]: its slot, and where the bytes went.
#[derive(Debug)]
struct Placed {
    slot: &'static mut Slot<'static>,
    spot: Spot,
}

/// Input a wrong guess left in a slot beyond what the read buffer could take back (see
/// [`Spill`]): handed out by [`State::read_some`] as if read from the socket before
/// the socket is read again; the slot is freed when it is all out.
#[derive(Debug)]
struct Spilled {
    slot: &'static mut Slot<'static>,
    spill: Spill,
}

/// A response waiting in a connection's queue.
#[derive(Debug)]
enum Out {
    /// In a slot (runner or local response).
    Slot(&'static mut Slot<'static>),
    /// In the connection's inline buffer (the final error or timeout response).
    Inline,
}

/// What to do with a request once its body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Run,
    Shutdown,
    Metrics,
    Health,
    Status(u16, Option<&'static str>),
}

/// A request whose body is still arriving.
#[derive(Debug)]
struct BodyRead {
    slot: &'static mut Slot<'static>,
    action: Action,
    framing: BodyFraming,
}

#[derive(Debug)]
enum BodyFraming {
    Length(usize),
    Chunked(ChunkedDecoder),
    /// Declared too large: answer 413 once the client starts sending it.
    Refuse,
}

/// One connection's state, reused across connections (its buffers live for the server).
///
/// `repr(C)` keeps the fields every request touches together at the front (the first four
/// cache lines), then the core's state, then the error buffer that only a final error
/// response uses. With a thousand connections each first touch of a connection in a turn is
/// a cache miss per line; Rust's own order spread these fields over eight lines.
#[repr(C)]
pub(crate) struct Connection {
    stream: Option<TcpStream>,
    generation: u32,
    /// The socket may have unread bytes (edge-triggered readiness not yet consumed).
    readable: bool,
    peer_eof: bool,
    /// In the handler's `retry` list.
    queued: bool,
    /// In the handler's `dirty` list.
    dirty: bool,
    /// The buffered input is the start of a head and nothing more can be parsed until more
    /// bytes arrive (so a partial head never puts the connection back in `retry`).
    awaiting_bytes: bool,
    /// The socket took only part of the ready responses: the client is not reading them, so
    /// no new request is read (and no slot taken) until they are written.
    write_blocked: bool,
    /// An event said the peer shut its sending side: the read that finds its EOF must be
    /// made even after a short read (no further edge announces a FIN that came with data).
    fin_seen: bool,
    rbuf: &'static mut [u8],
    rstart: usize,
    rend: usize,
    /// Bytes of the front response already written.
    written: usize,
    /// Bytes to ask for when reading into an empty buffer: the whole buffer, or
    /// [`HEAD_READ_AFTER_LARGE_BODY`] after a large length-framed body.
    head_read: usize,
    /// The last request's head length (0 before the first).
    last_head: usize,
    /// How the next request will probably look, for reading in place: set when the last
    /// request had a length-framed body and a head as long as the one before it (a client
    /// whose heads keep their length tends to keep doing so). Guessing only after two alike
    /// bounds what wrong guesses cost a client whose heads vary (each costs one extra copy
    /// of the bytes read into the slot).
    guess: Option<Guess>,
    /// A read made on `guess`, until the parser settles it (within the same turn).
    placed: Option<Placed>,
    body: Option<BodyRead>,
    /// Lingering close: our side is shut, input is discarded until EOF or this time (ms).
    linger_until: Option<u64>,
    inline_len: usize,
    core: Conn<Out>,
    inline: [u8; INLINE_BYTES],
    /// Input a wrong guess left in a slot beyond what the read buffer could take back (see
    /// [`Spilled`]); handed out before the socket is read again.
    spill: Option<Spilled>,
    /// Since when (µs) the connection has waited for a slot, while it does.
    wait_since_us: Option<u64>,
    /// How long its current request waited for its slot (µs), counted against the shed bound.
    waited_us: u64,
}

// The per-request fields stay within four cache lines (in release builds: with debug
// assertions mio's socket also carries a selector id, 12 bytes more).
#[cfg(not(debug_assertions))]
const _: () = assert!(core::mem::offset_of!(Connection, core) <= 256);

/// Bytes of one connection table entry (its read buffer is counted apart).
pub(crate) const CONNECTION_BYTES: usize = std::mem::size_of::<Connection>();

/// A handler's connection table over its read buffers (one entry per buffer), reserved
/// fallibly: options too large for memory are a startup error, not an abort.
pub(crate) fn connection_table(
    read_bufs: Vec<&'static mut [u8]>,
    cfg: &crate::Config,
) -> Result<Vec<Connection>, std::collections::TryReserveError> {
    let mut conns = Vec::new();
    conns.try_reserve_exact(read_bufs.len())?;
    for rbuf in read_bufs {
        conns.push(Connection {
            awaiting_bytes: false,
            write_blocked: false,
            fin_seen: false,
            wait_since_us: None,
            waited_us: 0,
            stream: None,
            generation: 0,
            core: Conn::new(cfg.conn(), 0),
            rbuf,
            rstart: 0,
            rend: 0,
            body: None,
            written: 0,
            inline: [0; INLINE_BYTES],
            inline_len: 0,
            readable: false,
            peer_eof: false,
            queued: false,
            dirty: false,
            linger_until: None,
            head_read: 0,
            guess: None,
            last_head: 0,
            placed: None,
            spill: None,
        });
    }
    Ok(conns)
}

/// Everything one handler thread owns.
pub(crate) struct HandlerThread {
    pub(crate) index: usize,
    pub(crate) poll: Poll,
    pub(crate) accepts: Consumer<'static, TcpStream, ACCEPT_RING_SLOTS>,
    pub(crate) jobs: Vec<Producer<'static, Job<'static>, RING_SLOTS>>,
    pub(crate) done: Vec<Consumer<'static, Done<'static>, RING_SLOTS>>,
    pub(crate) slots: Vec<&'static mut Slot<'static>>,
    /// The connection table, each entry with its read buffer ([`connection_table`]).
    pub(crate) conns: Vec<Connection>,
    /// The cores runners are pinned to (empty when none is).
    pub(crate) runner_cores: Vec<usize>,
    pub(crate) shared: &'static Shared,
}

/// The loop's state, separate from the rings so borrows stay simple.
struct State {
    index: usize,
    shared: &'static Shared,
    metrics: &'static HandlerMetrics,
    conns: Vec<Connection>,
    free_conns: Vec<u32>,
    free_slots: Vec<&'static mut Slot<'static>>,
    /// Connections that stopped for want of a slot or of pipeline room, oldest first.
    retry: VecDeque<u32>,
    /// A connection from `retry` is being served (it may take a slot ahead of newer ones).
    retrying: bool,
    /// Connections with responses to write.
    dirty: Vec<u32>,
    /// Where small ready responses are gathered into one run of bytes before a write.
    gather: Box<[u8]>,
    /// Jobs out at each runner.
    in_flight: Vec<usize>,
    /// Moving average of runner service time (dispatch to completion), µs.
    service_avg_us: u64,
    /// The last wait for runners ran out; no more waiting until an answer arrives.
    await_ran_out: bool,
    wake_runner: Vec<bool>,
    jobs: Vec<Producer<'static, Job<'static>, RING_SLOTS>>,
    started: Instant,
    /// The parser's limits and the connections' configuration (fixed at startup).
    limits: Limits,
    /// Jobs this handler may have out at one runner before it sheds (`--ring-capacity`).
    ring_capacity: usize,
    conn_cfg: ConnConfig,
    now_ms: u64,
    date: [u8; DATE_LEN],
    /// Monotonic ms at which the wall clock is read again for `Date`.
    date_refresh_ms: u64,
    /// Microseconds since start at the last clock reading.
    now_us: u64,
    /// Where the keyless choice of runner looks first next time (see [`pick_runner`]).
    round_robin: usize,
    /// Bytes read since answers were last taken from the runners (see [`HARVEST_BYTES`]).
    read_since_harvest: usize,
    shutdown_deadline_ms: Option<u64>,
    /// The handler's request slots in all (free or not), for the fair share.
    total_slots: usize,
    /// A connection that holds no slot is starving for one (as of the last scan of
    /// `retry`): holders then leave the reserve to it.
    newcomer_waiting: bool,
    /// `--shed-after` in µs (0: off).
    shed_after_us: u64,
}

impl HandlerThread {
    /// The thread body: serves until shutdown has drained every connection.
    pub(crate) fn run(self, ready: impl FnOnce()) -> io::Result<()> {
        let HandlerThread {
            index,
            mut poll,
            mut accepts,
            jobs,
            mut done,
            slots,
            conns,
            runner_cores,
            shared,
        } = self;
        let mut placement = Placement::for_current_thread(&runner_cores);
        let cfg = &shared.cfg;
        let per_handler = conns.len();
        let runners = jobs.len();
        let mut st = State {
            index,
            shared,
            metrics: &shared.metrics.handlers[index],
            conns,
            free_conns: (0..per_handler as u32).rev().collect(),
            free_slots: slots,
            retry: VecDeque::with_capacity(per_handler),
            retrying: false,
            dirty: Vec::with_capacity(per_handler),
            gather: vec![0; GATHER_BYTES].into_boxed_slice(),
            in_flight: vec![0; runners],
            service_avg_us: u64::MAX,
            await_ran_out: false,
            wake_runner: vec![false; runners],
            jobs,
            started: shared.started,
            limits: cfg.limits(),
            ring_capacity: cfg.ring_capacity() as usize,
            conn_cfg: cfg.conn(),
            now_ms: 0,
            date: [0; DATE_LEN],
            date_refresh_ms: 0,
            now_us: 0,
            round_robin: index,
            read_since_harvest: 0,
            shutdown_deadline_ms: None,
            total_slots: cfg.slots as usize,
            newcomer_waiting: false,
            shed_after_us: cfg.shed_after_us(),
        };
        let mut events = Events::with_capacity(1024);
        let bell = &shared.handler_bells[index];
        let mut next_tick = 0;
        // Turns in a row that served at most one connection; our `LoadHint` mirrors whether
        // it is a whole streak.
        let mut light_turns = Streak::default();
        st.clock();
        ready();
        loop {
            st.clock();
            let mut work = false;
            while let Some(stream) = accepts.pop() {
                st.adopt(stream, poll.registry());
                work = true;
            }
            work |= st.take_answers(&mut done);
            // Flush first: slots it frees go to the connections queued for one.
            st.flush_dirty(poll.registry());
            st.retry_waiting(poll.registry());
            st.wake_runners();
            // Connections waiting for their next turn must not wait for a poll timeout; those
            // waiting for a slot are retried when a runner hands one back (which wakes us).
            work |= st.scan_retry();
            if st.now_ms >= next_tick {
                next_tick = st.now_ms + TICK.as_millis() as u64;
                st.tick(poll.registry());
            }
            if st.now_ms >= st.next_wait_expiry_ms() {
                st.refuse_expired_waits(poll.registry());
            }
            if shared.shutdown.is_requested()
                && st.drain_for_shutdown(poll.registry(), &mut accepts)
            {
                shared.shutdown.handler_done();
                return Ok(());
            }
            let timeout = if work || st.await_runners(&done) {
                Duration::ZERO
            } else {
                bell.prepare_sleep();
                let pending = !accepts.is_empty() || done.iter().any(|r| !r.is_empty());
                if pending {
                    Duration::ZERO
                } else {
                    let until = next_tick.min(st.next_wait_expiry_ms());
                    Duration::from_millis(until.saturating_sub(st.now_ms).max(1))
                }
            };
            let polled = poll.poll(&mut events, Some(timeout));
            bell.awake();
            match polled {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            st.clock();
            let mut driven = 0u32;
            for ev in &events {
                if ev.token() == WAKE {
                    continue;
                }
                driven += 1;
                let idx = ev.token().0 as u32;
                if ev.is_error() || ev.is_write_closed() {
                    // Reset, or both directions shut: nothing can be written any more, so
                    // the connection and everything it holds are freed now, whatever it was
                    // doing (reading, waiting for a slot or a runner, writing).
                    st.peer_gone(idx, poll.registry());
                    continue;
                }
                if ev.is_readable() || ev.is_read_closed() {
                    let c = &mut st.conns[idx as usize];
                    c.readable = true;
                    c.fin_seen |= ev.is_read_closed();
                }
                st.drive(idx, poll.registry());
                if st.read_since_harvest >= HARVEST_BYTES {
                    st.harvest(&mut done, poll.registry());
                }
            }
            st.read_since_harvest = 0;
            let was_light = light_turns.is_light();
            let light = light_turns.observe(driven <= 1);
            if light != was_light {
                shared.handler_light[index].set(light);
            }
            if placement.observe(driven <= 1) {
                st.metrics.moves.inc();
            }
        }
    }
}

impl State {
    /// Reads the monotonic clock (once per loop turn: every request of a batch shares the
    /// reading) and the wall clock only when the `Date` second may have changed.
    fn clock(&mut self) {
        self.now_us = self.started.elapsed().as_micros() as u64;
        self.now_ms = self.now_us / 1000;
        if self.now_ms >= self.date_refresh_ms {
            let wall = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.date = imf_fixdate(wall.as_secs());
            self.date_refresh_ms = self.now_ms + 1000 - u64::from(wall.subsec_millis());
        }
    }

    /// Takes a new connection from the listener.
    fn adopt(&mut self, mut stream: TcpStream, registry: &mio::Registry) {
        let Some(idx) = self
            .free_conns
            .pop()
            .filter(|_| self.shutdown_deadline_ms.is_none())
        else {
            // At capacity (the listener checks first, so only during shutdown): close it.
            self.shared.handler_open[self.index].fetch_sub(1, Ordering::Relaxed);
            self.metrics.closed.inc();
            return;
        };
        if registry
            .register(
                &mut stream,
                Token(idx as usize),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            self.free_conns.push(idx);
            self.shared.handler_open[self.index].fetch_sub(1, Ordering::Relaxed);
            self.metrics.closed.inc();
            return;
        }
        let c = &mut self.conns[idx as usize];
        c.stream = Some(stream);
        c.generation = c.generation.wrapping_add(1);
        c.core = Conn::new(self.conn_cfg, self.now_ms);
        c.rstart = 0;
        c.rend = 0;
        c.body = None;
        c.written = 0;
        c.inline_len = 0;
        c.readable = true;
        c.peer_eof = false;
        c.linger_until = None;
        c.head_read = c.rbuf.len();
        c.guess = None;
        c.last_head = 0;
        c.awaiting_bytes = false;
        c.write_blocked = false;
        c.fin_seen = false;
        c.wait_since_us = None;
        c.waited_us = 0;
        self.drive(idx, registry);
    }

    /// Reads, parses and writes for one connection until it would block or must wait.
    fn drive(&mut self, idx: u32, registry: &mio::Registry) {
        if self.conns[idx as usize].stream.is_none() {
            return;
        }
        if self.conns[idx as usize].linger_until.is_some() {
            if self.discard_input(idx) {
                self.close_now(idx, registry);
            }
            return;
        }
        // First come, first served: while connections wait for slots, a newly readable one
        // joins the end of the queue instead of taking a slot the queue is owed. Its bytes
        // wait in the kernel until its turn (no read, no parse twice).
        let c = &self.conns[idx as usize];
        if !self.retrying
            && !c.queued
            && c.body.is_none()
            && self.retry.len() >= self.free_slots.len()
            && !self.retry.is_empty()
        {
            self.wait_for_slot(idx);
            self.flush(idx, registry);
            return;
        }
        let mut reads = 0;
        loop {
            self.parse_input(idx);
            let c = &mut self.conns[idx as usize];
            let wants =
                c.body.is_some() || (c.core.accepts_requests() && !c.queued && !c.write_blocked);
            let input = c.readable || c.spill.is_some();
            if !input || c.peer_eof || !wants || c.core.should_close() {
                break;
            }
            if reads == READS_PER_TURN {
                self.enqueue_retry(idx);
                break;
            }
            reads += 1;
            if !self.read_some(idx) {
                break;
            }
        }
        self.publish_jobs();
        self.flush(idx, registry);
    }

    /// One `read` into the connection's buffer, straight into the body slot when a
    /// length-framed body has nothing buffered, or split between the two on a [`Guess`].
    /// Returns whether bytes arrived.
    fn read_some(&mut self, idx: u32) -> bool {
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
            (
                Some(BodyRead {
                    slot,
                    framing: BodyFraming::Length(left),
                    ..
                }),
                None,
            ) if empty => {
                // The rest of the body goes straight into the slot; whatever follows it (a
                // pipelined request) lands in the empty read buffer in the same call, so a
                // short count still proves the socket drained.
                let spare = slot.request.body.spare_mut();
                let n = (*left).min(spare.len());
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
            if let Some(BodyRead {
                slot,
                framing: BodyFraming::Length(left),
                ..
            }) = &mut c.body
            {
                slot.request.body.advance(to_body);
                *left -= to_body;
            }
            c.rend = n - to_body;
            c.core.on_data(self.now_ms);
        } else {
            c.rend += n;
        }
        true
    }

    /// Consumes buffered bytes: body progress, then as many complete requests as allowed.
    fn parse_input(&mut self, idx: u32) {
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
    fn parse_one(&mut self, idx: u32) -> bool {
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
                        self.metrics.shed_waiting.inc();
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
        let (action, label, key) = match route(head.method, head.path) {
            Route::Run { key } => {
                let key = key
                    .map(str::as_bytes)
                    .or_else(|| head.header("x-runner-key"));
                (Action::Run, ROUTE_RUN, key)
            }
            Route::Shutdown => (Action::Shutdown, ROUTE_SHUTDOWN, None),
            Route::Metrics => (Action::Metrics, ROUTE_METRICS, None),
            Route::Health => (Action::Health, ROUTE_HEALTH, None),
            Route::NotFound => (Action::Status(404, None), ROUTE_OTHER, None),
            Route::MethodNotAllowed { allow } => {
                (Action::Status(405, Some(allow)), label_of(head.path), None)
            }
            Route::NotImplemented => (Action::Status(501, None), ROUTE_OTHER, None),
            Route::Options { allow } => {
                (Action::Status(200, Some(allow)), label_of(head.path), None)
            }
            Route::KeyTooLong => (Action::Status(414, None), ROUTE_RUN, None),
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
        c.head_read = match head.framing {
            Framing::Length(n) if n >= c.rbuf.len() => HEAD_READ_AFTER_LARGE_BODY,
            _ => c.rbuf.len(),
        };
        c.guess = Guess::after(c.last_head, head.head_len, head.framing, c.rbuf.len());
        c.last_head = head.head_len;
        let framing = match head.framing {
            Framing::None => None,
            Framing::Length(n) => Some(BodyFraming::Length(n - body_in_place)),
            Framing::Chunked => Some(BodyFraming::Chunked(ChunkedDecoder::new(
                limits.max_body_bytes,
            ))),
            Framing::TooLarge(_) if expect_continue => {
                // The client waits for our word: refuse now, without reading the body.
                self.free_slots.push(slot);
                return self.refuse_too_large(idx, Some(head_request));
            }
            // Refused once its first bytes arrive. A client that declares a huge body and
            // sends nothing gets no answer before the body timeout (or its own close): the
            // conformance suite (MAL-POST-CL-HUGE-NO-BODY) takes an early 413 for a failure.
            Framing::TooLarge(_) => Some(BodyFraming::Refuse),
        };
        match framing {
            None => {
                self.finish(idx, slot, action);
                true
            }
            Some(framing) => {
                // 100-continue only when the client is waiting (no body bytes yet) and nothing
                // else is queued ahead on this connection, so the interim response cannot
                // land inside another response.
                let refusing = matches!(framing, BodyFraming::Refuse);
                if !refusing
                    && expect_continue
                    && body_in_place == 0
                    && c.rstart == c.rend
                    && c.core.in_flight() == 1
                    && c.written == 0
                {
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
        }
    }

    /// Moves buffered body bytes into the slot. Returns whether the body completed.
    fn advance_body(&mut self, idx: u32) -> bool {
        let now = self.now_ms;
        let c = &mut self.conns[idx as usize];
        let Some(body) = c.body.as_mut() else {
            return false;
        };
        let input = &c.rbuf[c.rstart..c.rend];
        let done = match &mut body.framing {
            BodyFraming::Length(left) => {
                let n = (*left).min(input.len());
                if body
                    .slot
                    .request
                    .body
                    .extend_from_slice(&input[..n])
                    .is_err()
                {
                    // Cannot happen: the parser bounded the length by the slot's capacity.
                    return self.refuse_too_large(idx, None);
                }
                c.rstart += n;
                *left -= n;
                if n > 0 {
                    c.core.on_data(now);
                }
                *left == 0
            }
            BodyFraming::Chunked(decoder) => {
                match decoder.decode(input, body.slot.request.body.spare_mut()) {
                    Ok(p) => {
                        body.slot.request.body.advance(p.produced);
                        c.rstart += p.consumed;
                        if p.consumed > 0 {
                            c.core.on_data(now);
                        }
                        p.done
                    }
                    Err(e) => {
                        self.metrics.parse_errors[e.index()].inc();
                        self.fail(idx, e.status(), None);
                        return false;
                    }
                }
            }
            BodyFraming::Refuse if input.is_empty() => return false,
            BodyFraming::Refuse => return self.refuse_too_large(idx, None),
        };
        if !done {
            return false;
        }
        let Some(BodyRead { slot, action, .. }) = c.body.take() else {
            return false;
        };
        c.core.body_complete(now);
        self.finish(idx, slot, action);
        true
    }

    /// Answers 413 for a body larger than the limit, without reading it.
    fn refuse_too_large(&mut self, idx: u32, head_request: Option<bool>) -> bool {
        self.metrics.parse_errors[parse::Error::PayloadTooLarge.index()].inc();
        self.fail_head(
            idx,
            parse::Error::PayloadTooLarge.status(),
            None,
            head_request,
        );
        false
    }

    /// A request is complete: send it to a runner or answer it here.
    fn finish(&mut self, idx: u32, slot: &'static mut Slot<'static>, action: Action) {
        slot.ticket.started_us = self.now_us;
        slot.ticket.answered_us = Ticket::UNSTAMPED;
        match action {
            Action::Run => self.dispatch(slot),
            Action::Health => self.local(slot, 200, None, |body| {
                body.extend_from_slice(b"ok\n").is_ok()
            }),
            Action::Metrics => {
                let metrics = &self.shared.metrics;
                slot.serve(|_, resp| {
                    let _ =
                        resp.header("Content-Type", b"text/plain; version=0.0.4; charset=utf-8");
                    if metrics.render(resp.body_mut()).is_err() {
                        resp.reset();
                        resp.set_status(500);
                    }
                });
                self.complete(slot);
            }
            Action::Shutdown => {
                if self.shutdown_allowed(idx, slot) {
                    self.conns[idx as usize].core.shutdown();
                    self.local(slot, 200, None, |b| {
                        b.extend_from_slice(b"shutting down\n").is_ok()
                    });
                    self.shared.shutdown.trigger(Reason::Request);
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

    /// `/shutdown` is allowed from loopback peers, or with the configured bearer token.
    fn shutdown_allowed(&self, idx: u32, slot: &Slot<'_>) -> bool {
        let loopback = self.conns[idx as usize]
            .stream
            .as_ref()
            .and_then(|s| s.peer_addr().ok())
            .is_some_and(|a| a.ip().is_loopback());
        let token = self.shared.cfg.shutdown_token.as_deref().map(str::as_bytes);
        route::shutdown_permitted(loopback, token, slot.request.view().header("authorization"))
    }

    /// Answers with a short text body written by `body`.
    fn local(
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
                let _ = resp.header("Retry-After", b"1");
            }
            let _ = body(resp.body_mut());
        });
        self.complete(slot);
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

/// The route label of a path, for the metrics of 405s and `OPTIONS` answers.
fn label_of(path: &str) -> u8 {
    match path {
        "/shutdown" => ROUTE_SHUTDOWN,
        "/metrics" => ROUTE_METRICS,
        "/health" => ROUTE_HEALTH,
        _ if path.starts_with("/run") => ROUTE_RUN,
        _ => ROUTE_OTHER,
    }
}
