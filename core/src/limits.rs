//! Every capacity and limit in one place, each with its unit in its name.
//!
//! Compile-time capacities size fixed arrays; the runtime [`Limits`] are what the shell's
//! options set (within the compile-time bounds).

/// Most header fields a request may carry; more is 431.
pub const MAX_HEADERS: usize = 64;

/// Most requests one connection may have in flight (parsed, not yet answered); the handler
/// stops reading from a connection that reaches its configured share of this.
pub const MAX_PIPELINE: usize = 32;

/// Most bytes of a request method token; a request line with no space this far in is 400.
pub const MAX_METHOD_BYTES: usize = 32;

/// Most bytes of one chunk-size line (size, extensions, CRLF) in a chunked body.
pub const MAX_CHUNK_LINE_BYTES: usize = 1024;

/// Most bytes of trailer fields after the last chunk (they are read and ignored).
pub const MAX_TRAILER_BYTES: usize = 8192;

/// Capacity of the buffer a runner writes its own response header lines into.
pub const RUNNER_HEADER_BYTES: usize = 1024;

/// Capacity of a serialized response head (status line, framing headers, runner headers).
pub const RESPONSE_HEAD_BYTES: usize = RUNNER_HEADER_BYTES + 512;

/// Most bytes of a runner key (`/run/KEY` or `X-Runner-Key`).
pub const MAX_RUNNER_KEY_BYTES: usize = 128;

/// Default most bytes of a request head (request line and header fields); more is 431.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;

/// Default most bytes of a request target; more is 414.
pub const DEFAULT_MAX_TARGET_BYTES: usize = 8 * 1024;

/// Default most bytes of a request body (and of a response body); more is 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 100 * 1024;

/// Default time for a whole request head to arrive, from its first byte (a deadline).
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;

/// Default longest pause between two pieces of a request body.
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 10_000;

/// Default time an idle keep-alive connection stays open (also the write-stall limit).
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;

/// A handler keeps `1 / SLOT_RESERVE_DIVISOR` of its request slots for connections that hold
/// none (see `admit`).
pub const SLOT_RESERVE_DIVISOR: usize = 8;

/// A connection that holds no request slot and has waited this long for one is starving:
/// while one is, connections that hold slots leave the last eighth to it (see `admit`).
/// Waits in a busy but healthy server (pipelining clients taking turns) are far shorter.
pub const STARVING_AFTER_US: u64 = 5_000;

/// Default longest time a `/run` request may expect to wait (for a slot, then in its runner's
/// queue) before it is shed with 503 (`--shed-after`).
pub const DEFAULT_SHED_AFTER_MS: u64 = 50;

/// Default seconds a shed request is told to wait (`Retry-After`).
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 1;

/// Default most open connections (`--max-connections`).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;

/// Most connections `--max-connections` accepts.
pub const MAX_CONNECTIONS_LIMIT: u32 = 1_000_000;

/// Largest body limit `--max-body-bytes` accepts.
pub const MAX_BODY_BYTES_LIMIT: usize = 64 << 20;

/// Smallest and largest head limit `--max-head-bytes` accepts.
pub const MIN_HEAD_BYTES_LIMIT: usize = 256;
/// See [`MIN_HEAD_BYTES_LIMIT`].
pub const MAX_HEAD_BYTES_LIMIT: usize = 64 * 1024;

/// Default request slots per handler (`--slots`): requests in flight per handler.
pub const DEFAULT_SLOTS_PER_HANDLER: u32 = 128;

/// Most request slots per handler `--slots` accepts.
pub const MAX_SLOTS_PER_HANDLER: u32 = 65_536;

/// Default requests in flight per connection (`--max-pipeline`), below [`MAX_PIPELINE`].
pub const DEFAULT_MAX_PIPELINE: usize = 16;

/// Most handler threads (`--handlers`).
pub const MAX_HANDLERS: u16 = 64;

/// Most runner threads (`--runners`).
pub const MAX_RUNNERS: u16 = 256;

/// Default handler threads.
pub const DEFAULT_HANDLERS: u16 = 1;

/// Default microseconds an idle runner polls its rings before it sleeps, under light load
/// (`--spin-us`).
pub const DEFAULT_SPIN_US: u32 = 50;

/// Most `--spin-us`.
pub const MAX_SPIN_US: u32 = 100_000;

/// Latency histograms' finite bounds: 1 µs doubling to 2^23 µs (8.4 s), then `+Inf`
/// (`observe::bucket_of`).
pub const LATENCY_BOUNDS: usize = 24;

/// Default time a runner's `run`, tick or alarm may take before it counts as a stall and is
/// logged (`--stall-threshold`; 0 turns the detector off).
pub const DEFAULT_STALL_THRESHOLD_MS: u64 = 10;

/// Most stall log lines per runner per second; the stalls in between are only counted.
pub const STALL_LOG_WINDOW_MS: u64 = 1_000;

/// Bursts of shed or expired requests are logged at most once per this many milliseconds
/// per handler (`observe::Burst`); the counters in `/metrics` have every one.
pub const BURST_LOG_WINDOW_MS: u64 = 1_000;

/// Most bytes of one log line (longer messages are cut and end with `...`).
pub const LOG_LINE_BYTES: usize = 1024;

/// Most bytes of a request target an access-log record keeps (longer ones are cut).
pub const ACCESS_TARGET_BYTES: usize = 200;

/// Access-log records each handler's ring holds for the writer thread (`--access-log`);
/// past that, lines are dropped and counted.
pub const ACCESS_RING_RECORDS: usize = 4096;

/// Bytes the access-log thread formats lines into before one write.
pub const ACCESS_WRITE_BYTES: usize = 64 * 1024;

/// Default time in-flight requests get once shutdown starts (`--shutdown-timeout`).
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 5_000;

/// How long past the shutdown timeout the process waits for runners still inside `run`.
pub const SHUTDOWN_MARGIN_MS: u64 = 500;

/// Most milliseconds of work `--runner delay=MS` accepts.
pub const MAX_DELAY_RUNNER_MS: u64 = 60_000;

/// Shortest and longest duration any timeout option accepts.
pub const MIN_TIMEOUT_MS: u64 = 1;
/// See [`MIN_TIMEOUT_MS`].
pub const MAX_TIMEOUT_MS: u64 = 24 * 3600 * 1000;

/// Slots of each handler-to-runner ring and its way back: the most jobs one handler may have
/// at one runner (`--ring-capacity` chooses how much of it is used).
pub const RUNNER_RING_SLOTS: usize = 1024;

/// Slots of the listener-to-handler ring: the most accepted connections waiting for one
/// handler before the listener refuses more with 503.
pub const ACCEPT_RING_SLOTS: usize = 4096;

/// A large head buffer holds the head limit plus this much, so pipelined requests and the
/// start of a body can arrive with a large head in one read.
pub const READ_SLACK_BYTES: usize = 8192;

/// A connection's own read buffer: ordinary heads, pipelined requests and small bodies. A
/// head that does not fit moves to one of its handler's large head buffers (see `class`).
pub const READ_BUFFER_BYTES: usize = 4096;

/// Request body a small request slot holds; a longer declared body takes a large slot, and
/// a chunked body moves to one when it outgrows the small.
pub const SMALL_BODY_BYTES: usize = 4096;

/// Response body every request slot holds; a longer response grows into one of its
/// runner's spare response buffers.
pub const RESPONSE_BUFFER_BYTES: usize = 8192;

/// Smallest buffer for a large response: a response may be this long whatever the request
/// body limit.
pub const MIN_LARGE_RESPONSE_BYTES: usize = 64 * 1024;

/// One large request slot per this many slots of a handler (at least one).
pub const SLOTS_PER_LARGE_SLOT: usize = 8;

/// One large head buffer per this many connections of a handler (at least
/// [`MIN_LARGE_HEADS`]).
pub const CONNECTIONS_PER_LARGE_HEAD: usize = 64;

/// Fewest large head buffers a handler has (unless it has fewer connections).
pub const MIN_LARGE_HEADS: usize = 4;

/// Spare response buffers each runner holds for responses longer than a slot's own.
pub const SPARE_RESPONSES_PER_RUNNER: usize = 4;

/// Slots of each ring that carries spare response buffers back from a handler to the runner
/// that lent them: the most spare buffers one runner may have.
pub const SPARE_RING_SLOTS: usize = 64;

/// Size of a connection's buffer for its final error response.
pub const INLINE_RESPONSE_BYTES: usize = 512;

/// After a request whose body did not fit in the read buffer, the next read of a head asks
/// for this much only: the head and a few KiB land in the read buffer and the body goes
/// straight into its slot, instead of reading (then copying) as much body as fits.
pub const HEAD_READ_AFTER_LARGE_BODY_BYTES: usize = 4096;

/// Reads per connection per readiness event before other connections get a turn.
pub const READS_PER_TURN: usize = 8;

/// Input read in one handler loop turn after which the runners' answers are taken and
/// written before more connections are read.
pub const HARVEST_BYTES: usize = 128 * 1024;

/// Most `writev` parts per call (two per response: head and body).
pub const MAX_WRITE_PARTS: usize = 64;

/// Ready responses this small in total, in three parts or more, are copied into one buffer
/// and written with one plain `write` instead of a `writev` of their parts.
pub const GATHER_BYTES: usize = 4 * 1024;

/// Longest lingering close: how long input is discarded after the server shut its side, so
/// that a client still sending (a refused body) reads the response instead of a reset.
pub const LINGER_MS: u64 = 2_000;

/// How often a handler checks its connections' deadlines (the granularity of every timeout).
pub const DEADLINE_TICK_MS: u64 = 100;

/// How long a handler with nothing else to do waits for runners' answers before it sleeps
/// (only while their recent service time is below this).
pub const AWAIT_RUNNERS_US: u64 = 50;

/// Loop turns in a row serving at most one connection after which a handler's load counts as
/// light (runners may then poll instead of sleeping).
pub const LIGHT_STREAK_TURNS: u32 = 16;

/// Light turns in a row after which a handler moves off the runners' cores.
pub const NARROW_AFTER_TURNS: u32 = 1024;

/// A busy runner reads the clock once per this many jobs to measure its time per job.
pub const MEASURE_EVERY_JOBS: u64 = 16;

/// Empty checks of its rings an idle runner makes before it polls or sleeps.
pub const IDLE_SPINS: u32 = 64;

/// How long a polling runner yields when another thread wants its core.
pub const CONTENDED_YIELD_US: u64 = 20;

/// How long the listener pauses accepting after an accept error (out of descriptors).
pub const ACCEPT_BACKOFF_MS: u64 = 50;

/// Request size limits the parser enforces, set at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of the request head; more is 431.
    pub max_head_bytes: usize,
    /// Most bytes of the request target; more is 414.
    pub max_target_bytes: usize,
    /// Most bytes of a request body, whether framed by length or chunked; more is 413.
    pub max_body_bytes: usize,
}

impl Limits {
    /// The defaults: 16 KiB head, 8 KiB target (request lines of 8000 octets pass, as RFC 9112
    /// §3 recommends), 100 KiB body.
    pub const DEFAULT: Self = Self {
        max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
        max_target_bytes: DEFAULT_MAX_TARGET_BYTES,
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Largest request budget (`X-Deadline-Ms`, `--request-timeout`) the server accepts; a
/// larger `X-Deadline-Ms` is cut to it.
pub const MAX_DEADLINE_MS: u64 = 3_600_000;

/// Default scratch memory per runner, reset after every call (`--scratch`).
pub const DEFAULT_SCRATCH_BYTES: usize = 64 * 1024;

/// Default size of each half of a runner's frame arena (`--frame-scratch`).
pub const DEFAULT_FRAME_SCRATCH_BYTES: usize = 64 * 1024;

/// Largest `--scratch` and `--frame-scratch`.
pub const MAX_SCRATCH_BYTES: usize = 1 << 30;

/// Shortest and longest tick period a runner may ask for.
pub const MIN_TICK_US: u64 = 100;
/// See [`MIN_TICK_US`].
pub const MAX_TICK_US: u64 = 3_600_000_000;

/// A runner with a tick reads the clock after this many jobs in a row, so a stream of jobs
/// never holds a due tick back by more than that many jobs.
pub const TICK_CHECK_JOBS: u32 = 8;

/// Most jobs a runner takes from one handler's ring in one turn before it looks at the
/// others and at its tick (a handler refilling its ring cannot hold the runner).
pub const JOBS_PER_RING_TURN: usize = 64;

/// Default length of the listen queue (`--backlog`): connections the kernel completes and
/// holds before the listener accepts them.
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Longest `--backlog`.
pub const MAX_BACKLOG: u32 = 65_535;

/// The listen queue the kernel will give for `asked` under its `somaxconn` limit (when
/// known), and whether that limit cut it.
#[must_use]
pub fn effective_backlog(asked: u32, somaxconn: Option<u32>) -> (u32, bool) {
    match somaxconn {
        Some(max) if max < asked => (max, true),
        _ => (asked, false),
    }
}

/// At shutdown, a connection that has not begun its first request is kept this long (within
/// the shutdown timeout) for it: it was accepted to be served, and its request may be on its
/// way. Idle keep-alive connections close at once.
pub const FIRST_REQUEST_GRACE_MS: u64 = 250;

/// Connections each handler keeps for the admin listener (`--admin-listen`) beyond its share
/// of `--max-connections`, so `/metrics`, `/health` and `/shutdown` stay reachable while the
/// data port is full.
pub const ADMIN_CONNECTIONS_PER_HANDLER: usize = 4;

/// Longest `--drain-delay`.
pub const MAX_DRAIN_DELAY_MS: u64 = 600_000;

/// Accept errors (out of descriptors, buffers or memory) are reported at most once per this
/// many milliseconds; the ones in between are counted in the next report.
pub const ACCEPT_ERROR_REPORT_MS: u64 = 1000;

/// Descriptors the process needs beyond its connections and its threads' polls: standard
/// streams, the listeners, the signal pipes, and room for what runner code opens.
pub const SPARE_OPEN_FILES: u64 = 64;

/// Open files a server needs: one per connection, a poll and its waker per thread that
/// polls (the listener and each handler), and [`SPARE_OPEN_FILES`].
#[must_use]
pub const fn open_files_needed(max_connections: u32, handlers: usize) -> u64 {
    max_connections as u64 + 2 * (1 + handlers as u64) + SPARE_OPEN_FILES
}

/// The soft open-file limit to run with, given the current `soft` and `hard` limits and what
/// the server `needs`: unchanged when it is enough, else raised to `needs` when the hard
/// limit allows; `None` when even the hard limit is too low.
#[must_use]
pub const fn open_file_limit(soft: u64, hard: u64, needs: u64) -> Option<u64> {
    if soft >= needs {
        Some(soft)
    } else if hard >= needs {
        Some(needs)
    } else {
        None
    }
}
