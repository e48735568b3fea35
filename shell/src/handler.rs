//! Handler threads: an event loop over many non-blocking connections, driving the core's
//! per-connection decisions with bytes, slots and the clock.
//!
//! Per turn (`turn`): take new connections from the listener's ring and finished slots back
//! from the runners, write what is ready, wake runners, check deadlines, poll, and drive the
//! connections the poll reported. A connection's path goes through `read` (reads, heads,
//! bodies), `answer` (to a runner or answered here), `slots` (waiting for a request slot,
//! fair share, 503 after `--shed-after`), `runners` (dispatch, shedding by expected wait,
//! answers back), `write` (response heads, refusals, writes) and `close` (lingering close,
//! peers gone, deadlines, shutdown). The decisions are the core's (`parse`, `route`,
//! `conn`, `conn::body`, `conn::input`, `place`, `admit`, `sched`); these files move bytes.
//!
//! Memory: the connection table (each with its read buffer) and the slot pool (`pool`) are
//! made at startup; a request takes a slot from the pool, the slot travels to a runner and
//! back by reference, and returns to the pool once its response is written.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use httpd_runner_core::admit::{self, Shed};
use httpd_runner_core::class::{self, SlotClass};
use httpd_runner_core::conn::body::{body_start, continue_due, BodyError, BodyFraming, BodyStart};
use httpd_runner_core::conn::input::{joins_slot_queue, Input, ReadKind};
use httpd_runner_core::conn::{should_gather, AfterRead, Conn, ConnConfig, Ending, ReadOutcome};
use httpd_runner_core::deadline::{self, Expiry, Watch, Watchlist};
use httpd_runner_core::limits::{
    Limits, DEADLINE_TICK_MS, DEFAULT_RETRY_AFTER_SECS, GATHER_BYTES, HARVEST_BYTES,
    INLINE_RESPONSE_BYTES, MAX_WRITE_PARTS, READS_PER_TURN,
};
use httpd_runner_core::msg::{Done, Job, Slot, Ticket};
use httpd_runner_core::parse::{self, header_slots, Framing, Method, Status};
use httpd_runner_core::place::{Plan, Spill, Spot};
use httpd_runner_core::response::{
    self, imf_fixdate, write_head, write_simple, ResponseHead, Simple, DATE_LEN,
};
use httpd_runner_core::ring::{Consumer, Producer};
use httpd_runner_core::route::{self, pick_runner, route_on, Action, Plane, Route, RouteLabel};
use httpd_runner_core::sched::{Awaiting, Streak};
use httpd_runner_core::sync::Ordering;
use httpd_runner_core::text::FixedBuf;
use mio::{Events, Interest, Poll, Token};

use crate::metrics::HandlerMetrics;
use crate::net::{Accepted, Stream};
use crate::pin::Placement;
use crate::shared::{micros_since, Shared};
use crate::shutdown::Reason;
use heads::HeadPool;
use httpd_runner_core::limits::{ACCEPT_RING_SLOTS, RUNNER_RING_SLOTS as RING_SLOTS};
use pool::SlotPool;
pub(crate) use pool::SpareTx;

mod answer;
mod close;
mod heads;
mod observe;
mod pool;
mod read;
mod runners;
mod slots;
mod turn;
mod write;

/// Readiness events a handler takes from one poll.
pub(crate) const EVENTS: usize = 1024;

/// The waker's token; connection tokens are their table index.
pub(crate) const WAKE: Token = Token(usize::MAX - 1);

/// `Ticket::runner` before a runner is chosen.
const NO_RUNNER: u16 = u16::MAX;

/// A read made on a `place::Guess`: its slot, and where the bytes went.
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
    /// Fixed bytes: the `504` for a request whose deadline passed while its runner may
    /// still hold its slot (`response::deadline_response`).
    Static(&'static &'static [u8]),
}

// A queue entry holds an `Option<Out>`: keep it two words (a fat `&[u8]` would make it three).
const _: () = assert!(std::mem::size_of::<Option<Out>>() == 16);

/// A request whose body is still arriving.
#[derive(Debug)]
struct BodyRead {
    slot: &'static mut Slot<'static>,
    action: Action,
    framing: BodyFraming,
}

/// One connection's state, reused across connections (its buffers live for the server).
///
/// `repr(C)` keeps the fields every request touches together at the front (the first four
/// cache lines), then the core's state, then the error buffer that only a final error
/// response uses. With a thousand connections each first touch of a connection in a turn is
/// a cache miss per line; Rust's own order spread these fields over eight lines.
#[repr(C)]
pub(crate) struct Connection {
    stream: Option<Stream>,
    generation: u32,
    /// In the handler's `retry` list.
    queued: bool,
    /// In the handler's `dirty` list.
    dirty: bool,
    /// The listener it came through, and so the resources it reaches.
    plane: Plane,
    rbuf: &'static mut [u8],
    /// A read made on `guess`, until the parser settles it (within the same turn).
    placed: Option<Placed>,
    body: Option<BodyRead>,
    inline_len: usize,
    core: Conn<Out>,
    inline: [u8; INLINE_RESPONSE_BYTES],
    /// Input a wrong guess left in a slot beyond what the read buffer could take back (see
    /// [`Spilled`]); handed out before the socket is read again.
    spill: Option<Spilled>,
    /// Since when (µs) the connection has waited for a slot, while it does.
    wait_since_us: Option<u64>,
    /// The class of slot it waits for, while it does.
    wants: SlotClass,
    /// In the handler's queue for a large head buffer.
    head_queued: bool,
    /// How long its current request waited for its slot (µs), counted against the shed bound.
    waited_us: u64,
    /// The client, for the access log (known only with one).
    peer: httpd_runner_core::observe::Peer,
    /// The status in `inline` (the final refusal), and when it was decided (µs), for time
    /// to last byte and the access log.
    inline_status: u16,
    inline_at_us: u64,
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
            wait_since_us: None,
            peer: httpd_runner_core::observe::Peer::Unknown,
            inline_status: 0,
            inline_at_us: 0,
            wants: SlotClass::Small,
            head_queued: false,
            waited_us: 0,
            stream: None,
            generation: 0,
            core: Conn::new(cfg.conn(), 0),
            rbuf,
            body: None,
            inline: [0; INLINE_RESPONSE_BYTES],
            inline_len: 0,
            queued: false,
            dirty: false,
            plane: Plane::All,
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
    pub(crate) accepts: Consumer<'static, Accepted, ACCEPT_RING_SLOTS>,
    pub(crate) jobs: Vec<Producer<'static, Job<'static>, RING_SLOTS>>,
    pub(crate) done: Vec<Consumer<'static, Done<'static>, RING_SLOTS>>,
    /// Request slots, large head buffers and the ways back to runners for their spares.
    pub(crate) memory: HandlerMemory,
    /// The connection table, each entry with its read buffer ([`connection_table`]).
    pub(crate) conns: Vec<Connection>,
    /// The cores runners are pinned to (empty when none is).
    pub(crate) runner_cores: Vec<usize>,
    pub(crate) shared: &'static Shared,
    /// Where access-log records go (`--access-log`).
    pub(crate) access: Option<crate::access::AccessTx>,
}

/// What startup reserved for one handler besides its connection table.
pub(crate) struct HandlerMemory {
    /// Request slots, ids `0..small_slots` small, the rest large.
    pub(crate) slots: Vec<&'static mut Slot<'static>>,
    pub(crate) small_slots: usize,
    /// Large head buffers.
    pub(crate) large_heads: Vec<&'static mut [u8]>,
    /// To each runner, the ring its spare response buffers come back on.
    pub(crate) spares: Vec<SpareTx>,
    /// The handler's own spare response buffer (`/metrics`).
    pub(crate) own_spare: &'static mut [u8],
}

/// The loop's state, separate from the rings so borrows stay simple.
struct State {
    index: usize,
    shared: &'static Shared,
    metrics: &'static HandlerMetrics,
    conns: Vec<Connection>,
    free_conns: Vec<u32>,
    /// The request slots (`pool::SlotPool`).
    slots: SlotPool,
    /// Large head buffers and the connections waiting for one (`heads::HeadPool`).
    heads: HeadPool,
    /// Buffer sizes of each class.
    sizes: class::Sizes,
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
    /// Whether to wait for runners' answers instead of sleeping (`sched::Awaiting`).
    awaiting: Awaiting,
    wake_runner: Vec<bool>,
    jobs: Vec<Producer<'static, Job<'static>, RING_SLOTS>>,
    started: crate::clock::Origin,
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
    /// A connection that holds no slot is starving for one (as of the last scan of
    /// `retry`): holders then leave the reserve to it.
    newcomer_waiting: bool,
    /// Where access-log records go (`--access-log`).
    access: Option<crate::access::AccessTx>,
    /// Shedding and expiry held back from the log.
    bursts: observe::Bursts,
    /// `--shed-after` in µs (0: off).
    shed_after_us: u64,
    /// Deadlines of the requests out at runners, by slot id (`deadline::Watchlist`).
    watch: Watchlist<Vec<Watch>>,
    /// `--request-timeout` in ms (0: none).
    request_timeout_ms: u64,
}

impl State {
    /// Reads the monotonic clock (once per loop turn: every request of a batch shares the
    /// reading) and the wall clock only when the `Date` second may have changed.
    fn clock(&mut self) {
        self.now_us = micros_since(self.started);
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
    fn adopt(&mut self, accepted: Accepted, registry: &mio::Registry) {
        let Accepted { mut stream, plane } = accepted;
        let Some(idx) = self.free_conns.pop() else {
            // At capacity (the listener checks first, so this does not happen): close it.
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
        if self.access.is_some() {
            c.peer = stream.peer();
        }
        c.stream = Some(stream);
        c.plane = plane;
        c.generation = c.generation.wrapping_add(1);
        c.core = Conn::new(self.conn_cfg, self.now_ms);
        c.body = None;
        c.inline_len = 0;
        c.wait_since_us = None;
        c.waited_us = 0;
        c.wants = SlotClass::Small;
        self.drive(idx, registry);
    }

    /// Reads, parses and writes for one connection until it would block or must wait.
    fn drive(&mut self, idx: u32, registry: &mio::Registry) {
        if self.conns[idx as usize].stream.is_none() {
            return;
        }
        if self.conns[idx as usize].core.lingering().is_some() {
            if self.discard_input(idx) {
                self.close_now(idx, registry);
            }
            return;
        }
        // First come, first served: while connections wait for slots, a newly readable one
        // joins the end of the queue instead of taking a slot the queue is owed. Its bytes
        // wait in the kernel until its turn (no read, no parse twice).
        let c = &self.conns[idx as usize];
        if joins_slot_queue(
            self.retrying,
            c.queued,
            c.body.is_some(),
            self.retry.len(),
            self.slots.free(),
        ) {
            // Its head is not read yet: it waits for any slot (a small one, or large).
            self.conns[idx as usize].wants = SlotClass::Small;
            self.wait_for_slot(idx);
            self.flush(idx, registry);
            return;
        }
        let mut reads = 0;
        loop {
            self.parse_input(idx);
            let c = &self.conns[idx as usize];
            if !c
                .core
                .should_read(c.spill.is_some(), c.body.is_some(), c.queued)
            {
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
        if self.conns[idx as usize].rbuf.len() > self.heads.own_len() {
            self.shrink_head_buffer(idx);
        }
        self.publish_jobs();
        self.flush(idx, registry);
    }
}
