//! Handler threads: an event loop over many non-blocking connections.
//!
//! Per loop: take new connections from the listener's ring, take finished slots back from the
//! runners, read and parse what sockets have, dispatch `/run` requests to runners (one ring per
//! runner, woken at most once per batch), answer the other routes locally, write every ready
//! response of a connection with one `writev`, and tick the connections' deadlines. All
//! decisions are the core's (`parse`, `route`, `conn`); this file moves bytes.
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
            work |= st.retry_can_progress();
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

    /// With nothing else to do but jobs out at runners that usually answer within
    /// [`AWAIT_RUNNERS`], waits for their answers here instead of sleeping in `poll`: the
    /// answers come back without an eventfd write by the runner and an `epoll_wait` wake-up
    /// here. Yields between checks, so a runner sharing this core gets it at once. Returns
    /// whether an answer arrived (sockets are looked at again either way). After a wait that
    /// ran out, the next one waits for an answer to arrive first, so a runner busy with a
    /// long job costs one wasted wait, not one per loop turn.
    fn await_runners(&mut self, done: &[Consumer<'static, Done<'static>, RING_SLOTS>]) -> bool {
        let limit = AWAIT_RUNNERS.as_micros() as u64;
        if self.service_avg_us > limit
            || self.await_ran_out
            || self.in_flight.iter().all(|&n| n == 0)
        {
            return false;
        }
        let start = self.started.elapsed();
        let until = start + AWAIT_RUNNERS;
        self.metrics.awaits.inc();
        loop {
            let answered = done.iter().any(|r| !r.is_empty());
            let now = self.started.elapsed();
            if answered || now >= until {
                self.metrics
                    .await_us
                    .add(now.saturating_sub(start).as_micros() as u64);
                if !answered {
                    self.await_ran_out = true;
                    self.metrics.awaits_ran_out.inc();
                }
                return answered;
            }
            std::thread::yield_now();
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

    /// Publishes the jobs staged for each runner (one store per ring that has any). The
    /// runners are woken, if asleep, once per loop turn by [`wake_runners`](Self::wake_runners).
    fn publish_jobs(&mut self) {
        for ring in &mut self.jobs {
            ring.publish();
        }
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
                let slot = admit::may_take_slot(held, free, self.total_slots)
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
            Framing::TooLarge(_) => {
                // Refused now, without reading the body: a client waiting for `100 Continue`
                // gets its answer, and one that sends nothing more does not wait for the body
                // timeout. The lingering close discards whatever body does come.
                self.free_slots.push(slot);
                return self.refuse_too_large(idx, Some(head_request));
            }
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
                if expect_continue
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

    /// Sends a `/run` request to a runner, or sheds it with 503 when that runner is full.
    fn dispatch(&mut self, slot: &'static mut Slot<'static>) {
        let r = pick_runner(
            slot.request.view().key(),
            &self.in_flight,
            &mut self.round_robin,
        );
        slot.ticket.runner = r as u16;
        if self.in_flight[r] >= self.ring_capacity {
            return self.shed(slot, &self.metrics.shed);
        }
        if self.shed_after_us != 0 {
            let waited = self.conns[slot.ticket.conn as usize].waited_us;
            let service = self.shared.runner_service[r].get(self.now_us);
            if service != 0
                && admit::should_shed(waited, self.ahead_at(r), service, self.shed_after_us)
            {
                return self.shed(slot, &self.metrics.shed_queue);
            }
        }
        // Staged, not yet published: everything one read brought in crosses to the runner with
        // one index store at the end of `drive` (`publish_jobs`).
        match self.jobs[r].stage(slot) {
            Ok(()) => {
                self.in_flight[r] += 1;
                self.shared.metrics.depth[self.index * self.jobs.len() + r].inc();
                self.wake_runner[r] = true;
            }
            Err(slot) => self.shed(slot, &self.metrics.shed),
        }
    }

    /// Jobs queued or running at runner `r` from every handler (this one's exactly, the
    /// others' as their gauges last said).
    fn ahead_at(&self, r: usize) -> u64 {
        let runners = self.jobs.len();
        let others: u64 = (0..self.shared.metrics.handlers.len())
            .filter(|&h| h != self.index)
            .map(|h| self.shared.metrics.depth[h * runners + r].get())
            .sum();
        others + self.in_flight[r] as u64
    }

    /// Answers 503 with `Retry-After`, counted in `why`.
    fn shed(&mut self, slot: &'static mut Slot<'static>, why: &'static Counter) {
        why.inc();
        self.local(slot, 503, None, |b| {
            b.extend_from_slice(b"Service Unavailable\n").is_ok()
        });
    }

    fn wake_runners(&mut self) {
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
    fn harvest(
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
    fn take_answers(&mut self, done: &mut [Consumer<'static, Done<'static>, RING_SLOTS>]) -> bool {
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
    fn runner_done(&mut self, slot: &'static mut Slot<'static>) {
        let r = slot.ticket.runner as usize;
        self.in_flight[r] -= 1;
        self.await_ran_out = false;
        self.shared.metrics.depth[self.index * self.jobs.len() + r].sub(1);
        // The runner's own stamp, not our clock: had we slept, ours would add the time our
        // wake-up took, and an estimate inflated by sleeping would keep us sleeping (the
        // wait below is only tried while the estimate is low).
        let t = slot.ticket;
        if t.answered_us != Ticket::UNSTAMPED {
            let service_us = t.answered_us.saturating_sub(t.started_us);
            self.service_avg_us = if self.service_avg_us == u64::MAX {
                service_us
            } else {
                (self.service_avg_us * 7 + service_us) / 8
            };
        }
        self.complete(slot);
    }

    /// Serializes the response head and queues the slot on its connection.
    fn complete(&mut self, slot: &'static mut Slot<'static>) {
        let t = slot.ticket;
        let c = &mut self.conns[t.conn as usize];
        if c.stream.is_none() || c.generation != t.generation {
            // The connection closed meanwhile.
            self.free_slots.push(slot);
            return;
        }
        let keep_alive = !c.core.closes_after(t.seq);
        let date = &self.date;
        let body_len = slot.response_body().len();
        let runner = (t.route == ROUTE_RUN && t.runner != NO_RUNNER).then_some(t.runner);
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
        self.metrics.requests[usize::from(t.route)][code_index(status)].inc();
        self.metrics
            .observe_service_us(self.now_us.saturating_sub(t.started_us));
        if let Err(Out::Slot(slot)) = c.core.complete(self.now_ms, t.seq, Out::Slot(slot), false) {
            self.free_slots.push(slot);
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
    fn fail(&mut self, idx: u32, status: u16, allow: Option<&'static str>) {
        self.fail_head(idx, status, allow, None);
    }

    /// [`fail`](Self::fail), told whether the request is a `HEAD` when neither its slot nor
    /// the read buffer can tell any more.
    fn fail_head(
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
            (None, None) => parse::is_head_request(&c.rbuf[c.rstart..c.rend]),
        };
        if let Some(b) = c.body.take() {
            self.free_slots.push(b.slot);
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
        c.inline_len = if write_simple(&mut out, &simple).is_ok() {
            out.len()
        } else {
            0
        };
        self.metrics.requests[usize::from(ROUTE_OTHER)][code_index(status)].inc();
        c.core.fail(now, Out::Inline);
        c.rstart = c.rend;
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(idx);
        }
    }

    /// Queues the connection for a slot, in arrival order; the wait is counted from the first
    /// time it is queued for one until it gets one.
    fn wait_for_slot(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        c.wait_since_us.get_or_insert(self.now_us);
        self.enqueue_retry(idx);
    }

    /// When the oldest wait for a slot runs out (ms), or `u64::MAX` (none, or shedding off).
    /// Connections wait in arrival order, so the front of `retry` holds the oldest wait, but
    /// the queue also holds connections whose turn was merely up: the first waiting one counts.
    fn next_wait_expiry_ms(&self) -> u64 {
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
    fn refuse_expired_waits(&mut self, registry: &mio::Registry) {
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
    fn wait_expired(&self, idx: u32) -> bool {
        let c = &self.conns[idx as usize];
        c.core.in_flight() == 0
            && c.wait_since_us.is_some_and(|since| {
                admit::slot_wait_expired(since, self.now_us, self.shed_after_us)
            })
    }

    /// Drives a connection just taken off `retry`, ahead of the queue.
    fn retry_now(&mut self, idx: u32, registry: &mio::Registry) {
        self.conns[idx as usize].queued = false;
        self.retrying = true;
        self.drive(idx, registry);
        self.retrying = false;
    }

    fn enqueue_retry(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        if !c.queued {
            c.queued = true;
            self.retry.push_back(idx);
        }
    }

    /// Gives connections that stopped (no slot, or their turn was up) another go.
    /// Connections waiting for a slot that their share does not allow yet keep their place.
    fn retry_waiting(&mut self, registry: &mio::Registry) {
        let mut n = self.retry.len();
        while n > 0 && !self.free_slots.is_empty() {
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
    fn may_progress(&self, idx: u32) -> bool {
        let c = &self.conns[idx as usize];
        c.wait_since_us.is_none()
            || admit::may_take_slot(c.core.in_flight(), self.free_slots.len(), self.total_slots)
    }

    /// Whether some queued connection can do anything now (else the loop may sleep).
    fn retry_can_progress(&self) -> bool {
        !self.free_slots.is_empty() && self.retry.iter().any(|&i| self.may_progress(i))
    }

    fn flush_dirty(&mut self, registry: &mio::Registry) {
        while let Some(idx) = self.dirty.pop() {
            self.conns[idx as usize].dirty = false;
            self.flush(idx, registry);
        }
    }

    /// Writes every ready response of the connection with as few `writev` calls as the socket
    /// allows, recycles finished slots, and closes the connection when it is done.
    fn flush(&mut self, idx: u32, registry: &mio::Registry) {
        if self.conns[idx as usize].linger_until.is_some() {
            return;
        }
        loop {
            let c = &mut self.conns[idx as usize];
            if c.stream.is_none() {
                return;
            }
            let gather = &mut self.gather[..];
            // Fewer than three responses (the usual case) fit in four parts; filling a whole
            // `MAX_IOV` array first would cost more than the rest of the bookkeeping.
            let written = if c.core.ready().nth(2).is_none() {
                write_ready::<4>(c, gather)
            } else {
                write_ready::<MAX_IOV>(c, gather)
            };
            let Some((written, gathered)) = written else {
                c.write_blocked = false;
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
                    c.write_blocked = true;
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
        } else if c.stream.is_some()
            && (c.readable || (c.rstart < c.rend && !c.awaiting_bytes) || c.spill.is_some())
            && c.core.accepts_requests()
            && !c.queued
            && !c.write_blocked
        {
            // Writing made room in the pipeline: parse what is buffered and read what waits
            // (buffered requests raise no new socket event).
            self.enqueue_retry(idx);
        }
    }

    /// Accounts `n` written bytes against the queued responses, in order.
    fn advance_written(&mut self, idx: u32, n: usize) {
        let now = self.now_ms;
        let c = &mut self.conns[idx as usize];
        c.core.write_progress(now);
        let mut total = c.written + n;
        loop {
            let len = match c.core.ready().next() {
                Some(Out::Slot(s)) => s.response.wire_head().len() + s.wire_body().len(),
                Some(Out::Inline) => c.inline_len,
                None => break,
            };
            if total < len {
                break;
            }
            total -= len;
            if let Some(Out::Slot(slot)) = c.core.pop_written(now) {
                self.free_slots.push(slot);
            }
        }
        c.written = total;
    }

    /// Discards whatever the peer sent. Returns `true` at EOF or on an error.
    fn discard_input(&mut self, idx: u32) -> bool {
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

    /// Ends a connection whose responses are all written: at once if the peer already closed
    /// its side, else by a lingering close (shut our side, discard input until EOF or
    /// [`LINGER_MS`]), so unread input cannot turn into a reset that destroys our response.
    fn close(&mut self, idx: u32, registry: &mio::Registry) {
        let now = self.now_ms;
        let c = &mut self.conns[idx as usize];
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        if c.peer_eof
            || c.linger_until.is_some()
            || self.shutdown_deadline_ms.is_some_and(|d| now >= d)
        {
            return self.close_now(idx, registry);
        }
        let _ = stream.shutdown(SockShutdown::Write);
        // Never past the shutdown deadline.
        let until = now + LINGER_MS;
        c.linger_until = Some(self.shutdown_deadline_ms.map_or(until, |d| until.min(d)));
        if self.discard_input(idx) {
            self.close_now(idx, registry);
        }
    }

    fn close_now(&mut self, idx: u32, registry: &mio::Registry) {
        let c = &mut self.conns[idx as usize];
        let Some(mut stream) = c.stream.take() else {
            return;
        };
        let _ = registry.deregister(&mut stream);
        drop(stream);
        c.linger_until = None;
        c.wait_since_us = None;
        c.write_blocked = false;
        if let Some(b) = c.body.take() {
            self.free_slots.push(b.slot);
        }
        if let Some(Placed { slot, .. }) = c.placed.take() {
            self.free_slots.push(slot);
        }
        if let Some(Spilled { slot, .. }) = c.spill.take() {
            self.free_slots.push(slot);
        }
        while let Some(out) = c.core.pop_any() {
            if let Out::Slot(slot) = out {
                self.free_slots.push(slot);
            }
        }
        c.generation = c.generation.wrapping_add(1);
        self.free_conns.push(idx);
        self.shared.handler_open[self.index].fetch_sub(1, Ordering::Relaxed);
        self.metrics.closed.inc();
    }

    /// The peer reset the connection (or shut both directions): free it and everything it
    /// holds now. Slots still at a runner come back later and are dropped (`complete` sees
    /// the generation changed).
    fn peer_gone(&mut self, idx: u32, registry: &mio::Registry) {
        let c = &mut self.conns[idx as usize];
        if c.stream.is_none() {
            return;
        }
        if c.linger_until.is_none() {
            self.metrics.resets.inc();
        }
        c.core.peer_reset();
        self.close_now(idx, registry);
    }

    /// Checks every connection's deadlines.
    fn tick(&mut self, registry: &mio::Registry) {
        let now = self.now_ms;
        for idx in 0..self.conns.len() as u32 {
            let c = &mut self.conns[idx as usize];
            if c.stream.is_none() {
                continue;
            }
            if let Some(until) = c.linger_until {
                if now >= until {
                    self.close_now(idx, registry);
                }
                continue;
            }
            let Some(t) = c.core.tick(now) else { continue };
            let kind = match t {
                Timeout::Head => 0,
                Timeout::Body => 1,
                Timeout::Idle => 2,
                Timeout::Write => 3,
            };
            self.metrics.timeouts[kind].inc();
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
    fn drain_for_shutdown(
        &mut self,
        registry: &mio::Registry,
        accepts: &mut Consumer<'static, TcpStream, ACCEPT_RING_SLOTS>,
    ) -> bool {
        let now = self.now_ms;
        let deadline = *self
            .shutdown_deadline_ms
            .get_or_insert(now + self.shared.cfg.shutdown_timeout.as_millis() as u64);
        while let Some(stream) = accepts.pop() {
            drop(stream);
            self.shared.handler_open[self.index].fetch_sub(1, Ordering::Relaxed);
            self.metrics.closed.inc();
        }
        let force = now >= deadline;
        let mut open = 0;
        for idx in 0..self.conns.len() as u32 {
            let c = &mut self.conns[idx as usize];
            if c.stream.is_none() {
                continue;
            }
            if c.linger_until.is_some() {
                if force {
                    self.close_now(idx, registry);
                } else {
                    open += 1;
                }
                continue;
            }
            if !c.core.is_closing() {
                c.core.shutdown();
            }
            if c.core.in_flight() == 0 && c.body.is_none() && c.rstart == c.rend {
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

/// Writes the connection's ready responses, as many as `N` parts hold (head and body each),
/// minus the bytes of them already written, with one `writev`, or with one `write` of their
/// copy in `gather` when they are small (see [`GATHER_BYTES`]). `None` when nothing is
/// ready; otherwise the result and whether the parts were gathered.
fn write_ready<const N: usize>(
    c: &mut Connection,
    gather: &mut [u8],
) -> Option<(io::Result<usize>, bool)> {
    let stream = c.stream.as_mut()?;
    let mut parts: [IoSlice<'_>; N] = [IoSlice::new(&[]); N];
    let mut count = 0;
    let mut skip = c.written;
    let inline = &c.inline[..c.inline_len];
    for out in c.core.ready() {
        let (head, body): (&[u8], &[u8]) = match out {
            Out::Slot(s) => (s.response.wire_head(), s.wire_body()),
            Out::Inline => (inline, &[][..]),
        };
        for part in [head, body] {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            if count < N {
                parts[count] = IoSlice::new(&part[skip..]);
                count += 1;
            }
            skip = 0;
        }
        if count + 2 > N {
            break;
        }
    }
    if count == 0 {
        return None;
    }
    let parts = &parts[..count];
    if count > 2 {
        let total: usize = parts.iter().map(|p| p.len()).sum();
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
