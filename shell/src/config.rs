//! The server's configuration: a plain value with [`Config::DEFAULT`] and setters. It never
//! reads the environment and never exits; the command line (`cli`) converts into it.
//! [`Config::check`] (called by `Builder::start`) refuses values out of range.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use crate::net::Endpoint;
use std::time::Duration;

mod observe;
pub use observe::AccessLog;
use observe::Observe;

use httpd_runner_core::conn::ConnConfig;
use httpd_runner_core::limits::{
    self, Limits, DEFAULT_BACKLOG, DEFAULT_BODY_TIMEOUT_MS, DEFAULT_FRAME_SCRATCH_BYTES,
    DEFAULT_HANDLERS, DEFAULT_HEADER_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_PIPELINE, DEFAULT_SCRATCH_BYTES,
    DEFAULT_SHED_AFTER_MS, DEFAULT_SHUTDOWN_TIMEOUT_MS, DEFAULT_SLOTS_PER_HANDLER, DEFAULT_SPIN_US,
    MAX_BACKLOG, MAX_BODY_BYTES_LIMIT, MAX_CONNECTIONS_LIMIT, MAX_DEADLINE_MS, MAX_HANDLERS,
    MAX_HEAD_BYTES_LIMIT, MAX_PIPELINE, MAX_RUNNERS, MAX_SCRATCH_BYTES, MAX_SLOTS_PER_HANDLER,
    MAX_SPIN_US, MIN_HEAD_BYTES_LIMIT, RUNNER_RING_SLOTS,
};

/// Which built-in runner answers `/run` (a [`crate::Builder::runner`] replaces it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerKind {
    /// Echo the request body with its Content-Type.
    Echo,
    /// Echo after this many milliseconds of (simulated) work.
    Delay(u64),
}

/// Everything a server is started with. Start from [`Config::DEFAULT`] and change what you
/// need with the setters; each getter's unit is in its name or its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    listen: Endpoint,
    admin_listen: Option<SocketAddr>,
    handlers: u16,
    runners: Option<u16>,
    pin: bool,
    max_connections: u32,
    max_body_bytes: usize,
    max_head_bytes: usize,
    slots: u32,
    large_slots: Option<u32>,
    ring_capacity: Option<u32>,
    spin_us: u32,
    max_pipeline: usize,
    header_timeout: Duration,
    body_timeout: Duration,
    idle_timeout: Duration,
    shutdown_timeout: Duration,
    shutdown_token: Option<String>,
    shed_after: Duration,
    request_timeout: Duration,
    backlog: u32,
    reuse_port: bool,
    drain_delay: Duration,
    scratch: usize,
    frame_scratch: usize,
    runner: RunnerKind,
    memory: Option<u64>,
    /// `--max-connections` and `--slots` as asked, when `--memory` lowered them.
    asked: Option<(u32, u32)>,
    observe: Observe,
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Config {
    /// The defaults: 127.0.0.1:8080, one handler, a runner per remaining core (pinned),
    /// and every limit at its `core::limits::DEFAULT_*` value.
    pub const DEFAULT: Self = Self {
        listen: Endpoint::Tcp(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080))),
        admin_listen: None,
        handlers: DEFAULT_HANDLERS,
        runners: None,
        pin: true,
        max_connections: DEFAULT_MAX_CONNECTIONS,
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
        slots: DEFAULT_SLOTS_PER_HANDLER,
        large_slots: None,
        ring_capacity: None,
        spin_us: DEFAULT_SPIN_US,
        max_pipeline: DEFAULT_MAX_PIPELINE,
        header_timeout: Duration::from_millis(DEFAULT_HEADER_TIMEOUT_MS),
        body_timeout: Duration::from_millis(DEFAULT_BODY_TIMEOUT_MS),
        idle_timeout: Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
        shutdown_timeout: Duration::from_millis(DEFAULT_SHUTDOWN_TIMEOUT_MS),
        shutdown_token: None,
        shed_after: Duration::from_millis(DEFAULT_SHED_AFTER_MS),
        request_timeout: Duration::ZERO,
        backlog: DEFAULT_BACKLOG,
        reuse_port: false,
        drain_delay: Duration::ZERO,
        scratch: DEFAULT_SCRATCH_BYTES,
        frame_scratch: DEFAULT_FRAME_SCRATCH_BYTES,
        runner: RunnerKind::Echo,
        memory: None,
        asked: None,
        observe: Observe::DEFAULT,
    };

    /// The defaults, listening on `listen`.
    #[must_use]
    pub fn with_listen(listen: SocketAddr) -> Self {
        Self::DEFAULT.listen(listen)
    }

    /// TCP address to listen on; port 0 picks a free port.
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Endpoint::Tcp(addr);
        self
    }
    /// Where to listen: a TCP address or a Unix socket's path.
    #[must_use]
    pub fn listen_on(mut self, at: Endpoint) -> Self {
        self.listen = at;
        self
    }
    /// A second listener for `/metrics`, `/health` and `/shutdown` only; with one, the data
    /// listener answers 404 for `/metrics` and `/shutdown`.
    #[must_use]
    pub const fn admin_listen(mut self, addr: Option<SocketAddr>) -> Self {
        self.admin_listen = addr;
        self
    }
    /// After SIGTERM or `POST /shutdown`, how long `/health` answers 503 while everything
    /// else is still served, before the graceful shutdown starts (zero: at once).
    #[must_use]
    pub const fn drain_delay(mut self, d: Duration) -> Self {
        self.drain_delay = d;
        self
    }
    /// Handler threads (HTTP parsing and socket I/O), `1..=MAX_HANDLERS`.
    #[must_use]
    pub const fn handlers(mut self, n: u16) -> Self {
        self.handlers = n;
        self
    }
    /// Runner threads, `1..=MAX_RUNNERS`; `None`: a core each that handlers leave free.
    #[must_use]
    pub const fn runners(mut self, n: Option<u16>) -> Self {
        self.runners = n;
        self
    }
    /// Whether runner N is pinned to core N (modulo the core count).
    #[must_use]
    pub const fn pin(mut self, pin: bool) -> Self {
        self.pin = pin;
        self
    }
    /// Most open connections.
    #[must_use]
    pub const fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }
    /// Largest request (and response) body in bytes.
    #[must_use]
    pub const fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }
    /// Largest request head in bytes.
    #[must_use]
    pub const fn max_head_bytes(mut self, n: usize) -> Self {
        self.max_head_bytes = n;
        self
    }
    /// Request slots per handler (requests in flight per handler).
    #[must_use]
    pub const fn slots(mut self, n: u32) -> Self {
        self.slots = n;
        self
    }
    /// Of the slots, how many are large (head and body up to the limits); `None`: one in
    /// eight, at least one. More than `slots` is cut to `slots`.
    #[must_use]
    pub const fn large_slots(mut self, n: Option<u32>) -> Self {
        self.large_slots = n;
        self
    }

    /// The large slots asked for, if any (`None`: the default share).
    #[must_use]
    pub const fn large_slots_asked(&self) -> Option<u32> {
        self.large_slots
    }

    /// Jobs one handler may queue at one runner; `None`: as many as it has slots.
    #[must_use]
    pub const fn ring_capacity(mut self, n: Option<u32>) -> Self {
        self.ring_capacity = n;
        self
    }
    /// Microseconds an idle runner polls before it sleeps under light load (0: never).
    #[must_use]
    pub const fn spin_us(mut self, us: u32) -> Self {
        self.spin_us = us;
        self
    }
    /// Requests one connection may have in flight.
    #[must_use]
    pub const fn max_pipeline(mut self, n: usize) -> Self {
        self.max_pipeline = n;
        self
    }
    /// Time for a whole request head to arrive.
    #[must_use]
    pub const fn header_timeout(mut self, d: Duration) -> Self {
        self.header_timeout = d;
        self
    }
    /// Longest pause while a request body arrives.
    #[must_use]
    pub const fn body_timeout(mut self, d: Duration) -> Self {
        self.body_timeout = d;
        self
    }
    /// How long an idle keep-alive connection (or an unread response) is kept.
    #[must_use]
    pub const fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }
    /// Time in-flight requests get once shutdown starts.
    #[must_use]
    pub const fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.shutdown_timeout = d;
        self
    }
    /// Bearer token that also allows `POST /shutdown` from non-loopback peers.
    #[must_use]
    pub fn shutdown_token(mut self, token: Option<String>) -> Self {
        self.shutdown_token = token;
        self
    }
    /// Longest expected wait of a `/run` request before it is shed with 503 (zero: never).
    #[must_use]
    pub const fn shed_after(mut self, d: Duration) -> Self {
        self.shed_after = d;
        self
    }
    /// Deadline of a `/run` request without `X-Deadline-Ms`, from when it is complete: past
    /// it the client gets 504 (zero: none).
    #[must_use]
    pub const fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }
    /// Length of the listen queue (cut by the kernel's `somaxconn`).
    #[must_use]
    pub const fn backlog(mut self, n: u32) -> Self {
        self.backlog = n;
        self
    }
    /// Bind with `SO_REUSEPORT`, so several processes can listen on one port.
    #[must_use]
    pub const fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }
    /// Bytes of each runner's run arena (scratch reset after every call).
    #[must_use]
    pub const fn scratch(mut self, bytes: usize) -> Self {
        self.scratch = bytes;
        self
    }
    /// Bytes of each half of each runner's frame arena.
    #[must_use]
    pub const fn frame_scratch(mut self, bytes: usize) -> Self {
        self.frame_scratch = bytes;
        self
    }
    /// Most bytes to reserve at startup (`--memory`): connections and slots are lowered in
    /// proportion until the reservation fits, and the server refuses to start when even one
    /// of each does not. `None`: reserve what the options ask.
    #[must_use]
    pub const fn memory(mut self, bytes: Option<u64>) -> Self {
        self.memory = bytes;
        self
    }

    /// The `--memory` budget, if any.
    #[must_use]
    pub const fn memory_budget(&self) -> Option<u64> {
        self.memory
    }

    /// Notes that `--memory` lowered `--max-connections` and `--slots` from these.
    #[must_use]
    pub(crate) const fn fitted_to_memory(mut self, connections: u32, slots: u32) -> Self {
        self.asked = Some((connections, slots));
        self
    }

    /// `--max-connections` and `--slots` as asked, when `--memory` lowered them.
    #[must_use]
    pub const fn lowered_for_memory(&self) -> Option<(u32, u32)> {
        self.asked
    }

    /// The built-in runner behind `/run`.
    #[must_use]
    pub const fn runner(mut self, kind: RunnerKind) -> Self {
        self.runner = kind;
        self
    }

    /// Refuses values out of range, naming the setting and its range.
    ///
    /// # Errors
    /// A message naming the first value out of range.
    pub fn check(&self) -> Result<(), String> {
        fn within<T: PartialOrd + std::fmt::Display>(
            name: &str,
            v: T,
            lo: T,
            hi: T,
        ) -> Result<(), String> {
            if v < lo || v > hi {
                return Err(format!("{name} = {v} is out of range {lo}..={hi}"));
            }
            Ok(())
        }
        within("handlers", self.handlers, 1, MAX_HANDLERS)?;
        within("runners", self.runners.unwrap_or(1), 1, MAX_RUNNERS)?;
        within(
            "max_connections",
            self.max_connections,
            1,
            MAX_CONNECTIONS_LIMIT,
        )?;
        within(
            "max_body_bytes",
            self.max_body_bytes,
            0,
            MAX_BODY_BYTES_LIMIT,
        )?;
        within(
            "max_head_bytes",
            self.max_head_bytes,
            MIN_HEAD_BYTES_LIMIT,
            MAX_HEAD_BYTES_LIMIT,
        )?;
        within("slots", self.slots, 1, MAX_SLOTS_PER_HANDLER)?;
        if let Some(n) = self.large_slots {
            within("large_slots", n, 1, self.slots)?;
        }
        within(
            "ring_capacity",
            self.ring_capacity.unwrap_or(1),
            1,
            RUNNER_RING_SLOTS as u32,
        )?;
        within("spin_us", self.spin_us, 0, MAX_SPIN_US)?;
        within("max_pipeline", self.max_pipeline, 1, MAX_PIPELINE - 1)?;
        within("scratch", self.scratch, 0, MAX_SCRATCH_BYTES)?;
        within("backlog", self.backlog, 1, MAX_BACKLOG)?;
        within(
            "drain_delay",
            self.drain_delay.as_millis() as u64,
            0,
            limits::MAX_DRAIN_DELAY_MS,
        )?;
        within("frame_scratch", self.frame_scratch, 0, MAX_SCRATCH_BYTES)?;
        within(
            "request_timeout",
            self.request_timeout.as_millis() as u64,
            0,
            MAX_DEADLINE_MS,
        )?;
        for (name, d) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("idle_timeout", self.idle_timeout),
            ("shutdown_timeout", self.shutdown_timeout),
        ] {
            let ms = d.as_millis() as u64;
            within(name, ms, limits::MIN_TIMEOUT_MS, limits::MAX_TIMEOUT_MS)?;
        }
        Ok(())
    }

    /// Where the data listener binds.
    #[must_use]
    pub const fn endpoint(&self) -> &Endpoint {
        &self.listen
    }

    /// Where the admin listener binds, if there is one.
    #[must_use]
    pub const fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listen
    }

    /// How long `/health` answers 503 before a graceful shutdown starts.
    #[must_use]
    pub const fn drain_duration(&self) -> Duration {
        self.drain_delay
    }

    /// The built-in runner.
    #[must_use]
    pub const fn runner_kind(&self) -> RunnerKind {
        self.runner
    }

    /// Handler threads to start.
    #[must_use]
    pub fn handler_count(&self) -> usize {
        usize::from(self.handlers)
    }

    /// Runner threads to start.
    #[must_use]
    pub fn runner_count(&self) -> usize {
        self.runners.map_or_else(
            || {
                available_cores()
                    .saturating_sub(self.handler_count())
                    .max(1)
            },
            usize::from,
        )
    }

    /// Jobs one handler may queue at one runner: the set capacity, else as many as the
    /// handler has slots (so a runner's queue sheds only when asked to), at most the ring.
    #[must_use]
    pub fn ring_capacity_jobs(&self) -> u32 {
        self.ring_capacity
            .unwrap_or(self.slots)
            .min(RUNNER_RING_SLOTS as u32)
    }

    /// Request slots per handler.
    #[must_use]
    pub const fn slots_per_handler(&self) -> u32 {
        self.slots
    }

    /// Most open connections.
    #[must_use]
    pub const fn max_connections_open(&self) -> u32 {
        self.max_connections
    }

    /// The shed bound in microseconds, 0 when off.
    #[must_use]
    pub fn shed_after_us(&self) -> u64 {
        self.shed_after.as_micros() as u64
    }

    /// The default request deadline in ms, 0 for none.
    #[must_use]
    pub fn request_timeout_ms(&self) -> u64 {
        self.request_timeout.as_millis() as u64
    }

    /// The listen queue asked for.
    #[must_use]
    pub const fn backlog_len(&self) -> u32 {
        self.backlog
    }

    /// Whether the listener binds with `SO_REUSEPORT`.
    #[must_use]
    pub const fn reuses_port(&self) -> bool {
        self.reuse_port
    }

    /// Bytes of each runner's run arena.
    #[must_use]
    pub const fn scratch_bytes(&self) -> usize {
        self.scratch
    }

    /// Bytes of each half of each runner's frame arena.
    #[must_use]
    pub const fn frame_scratch_bytes(&self) -> usize {
        self.frame_scratch
    }

    /// The idle runner's polling window in microseconds.
    #[must_use]
    pub const fn spin_window_us(&self) -> u32 {
        self.spin_us
    }

    /// The shutdown timeout.
    #[must_use]
    pub const fn shutdown_timeout_duration(&self) -> Duration {
        self.shutdown_timeout
    }

    /// The shutdown token, if any.
    #[must_use]
    pub fn shutdown_token_bytes(&self) -> Option<&[u8]> {
        self.shutdown_token.as_deref().map(str::as_bytes)
    }

    /// Whether runners are pinned.
    #[must_use]
    pub const fn pinning(&self) -> bool {
        self.pin
    }

    /// The parser's limits.
    #[must_use]
    pub fn limits(&self) -> Limits {
        let max_head_bytes = self.max_head_bytes;
        Limits {
            max_head_bytes,
            max_target_bytes: max_head_bytes
                .min(limits::DEFAULT_MAX_TARGET_BYTES)
                .max(max_head_bytes / 2),
            max_body_bytes: self.max_body_bytes,
        }
    }

    /// Per-connection timeouts and pipelining.
    #[must_use]
    pub fn conn(&self) -> ConnConfig {
        ConnConfig {
            header_timeout_ms: self.header_timeout.as_millis() as u64,
            body_timeout_ms: self.body_timeout.as_millis() as u64,
            idle_timeout_ms: self.idle_timeout.as_millis() as u64,
            max_pipeline: self.max_pipeline,
        }
    }

    /// Connections one handler may hold.
    #[must_use]
    pub fn connections_per_handler(&self) -> usize {
        (self.max_connections as usize).div_ceil(self.handler_count())
    }

    /// Connections each handler keeps for the admin listener beyond
    /// [`Self::connections_per_handler`] (none without one).
    #[must_use]
    pub fn admin_connections_per_handler(&self) -> usize {
        if self.admin_listen.is_some() {
            limits::ADMIN_CONNECTIONS_PER_HANDLER
        } else {
            0
        }
    }
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests;
