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
