//! Startup: reserve all memory, build the rings, spawn the threads; then wait for them.
//!
//! ```text
//! listener ──accept ring──▶ handler-h ──job ring (h,r)──▶ runner-r
//!                              ▲                              │
//!                              └──────done ring (r,h)─────────┘
//! ```
//! H handlers and R runners use H accept rings and 2·H·R job/done rings. Everything (rings,
//! slots, connection tables, buffers) is allocated here, before the startup mark; afterwards
//! the threads only move `&'static mut Slot`s between preallocated places.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use httpd_runner_core::limits::SHUTDOWN_MARGIN_MS;

use crate::config::{Config, RunnerKind};
use crate::pin::Pinning;
use crate::runner::{Delay, Echo, Factory, Runner};
use crate::shared::Shared;
use crate::shutdown::Reason;

mod sizes;
mod start;

/// Sets up a server: configuration plus the runner factory.
pub struct Builder {
    cfg: Config,
    factory: Factory,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// A server with `cfg` and the runner `cfg.runner` names.
    #[must_use]
    pub fn new(cfg: Config) -> Self {
        let kind = cfg.runner_kind();
        let factory: Factory = match kind {
            RunnerKind::Echo => Arc::new(|_| Box::new(Echo)),
            RunnerKind::Delay(ms) => Arc::new(move |_| Box::new(Delay { ms })),
        };
        Self { cfg, factory }
    }

    /// Uses your runner: `factory(index)` is called once on each runner thread (and again
    /// after that runner panics), so each runner's state lives on its own core.
    #[must_use]
    pub fn runner<R, F>(mut self, factory: F) -> Self
    where
        R: Runner + 'static,
        F: Fn(usize) -> R + Send + Sync + 'static,
    {
        self.factory = Arc::new(move |i| Box::new(factory(i)));
        self
    }

    /// Reserves all memory, binds, spawns every thread and waits until they are ready.
    ///
    /// # Errors
    /// When binding, creating a poll instance or spawning a thread fails.
    pub fn start(self) -> io::Result<Server> {
        start::start(self.cfg, self.factory)
    }
}

/// A running server.
pub struct Server {
    /// The data listener's TCP address, with the real port when 0 was asked for
    /// (`0.0.0.0:0` when it listens on a Unix socket: see `endpoint`).
    pub local_addr: SocketAddr,
    /// Where the data listener listens (the real port when 0 was asked for).
    pub endpoint: crate::net::Endpoint,
    /// The admin listener's address, if there is one (the real port when 0 was asked for).
    pub admin_addr: Option<SocketAddr>,
    /// Where each runner is pinned.
    pub pinning: Vec<Pinning>,
    /// Bytes reserved at startup.
    pub reserved_bytes: u64,
    /// What startup planned to reserve, term by term.
    plan: crate::memory::MemoryPlan,
    shared: &'static Shared,
    /// The listener and the handlers.
    threads: Vec<JoinHandle<io::Result<()>>>,
    /// The runners, waited for only until the shutdown timeout (plus [`SHUTDOWN_MARGIN`]):
    /// a runner can be inside user code that does not return.
    runners: Vec<JoinHandle<io::Result<()>>>,
    /// The access-log writer, joined after the handlers.
    access: Option<JoinHandle<io::Result<()>>>,
}

/// How long past `--shutdown-timeout` the process waits for runners still inside `run`.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(SHUTDOWN_MARGIN_MS);

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// What a server did, reported when it stops.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered.
    pub requests: u64,
    /// Why it stopped.
    pub reason: Reason,
}

impl Server {
    /// The startup banner (several lines).
    #[must_use]
    pub fn banner(&self) -> String {
        let cfg = &self.shared.cfg;
        let mut s = format!(
            "httpd-runner {}\nlistening on {}\n",
            env!("CARGO_PKG_VERSION"),
            match &self.endpoint {
                crate::net::Endpoint::Tcp(a) => format!("http://{a}"),
                unix @ crate::net::Endpoint::Unix(_) => unix.to_string(),
            }
        );
        if let Some(admin) = self.admin_addr {
            s += &format!("admin (/metrics, /health, /shutdown) on http://{admin}\n");
        }
        s += &format!(
            "handlers: {}, runners: {}\n",
            cfg.handler_count(),
            cfg.runner_count()
        );
        for (i, p) in self.pinning.iter().enumerate() {
            s += &format!("runner-{i}: {p}\n");
        }
        s += &format!(
            "memory reserved at startup: {} bytes\nmax connections: {}, max body: {} bytes, request slots per handler: {}, queue per runner: {}",
            self.reserved_bytes,
            cfg.max_connections_open(),
            cfg.limits().max_body_bytes,
            cfg.slots_per_handler(),
            cfg.ring_capacity_jobs()
        );
        s += &format!(
            "\nmemory plan: {} in all{}\n{}",
            crate::memory::mib(self.plan.total()),
            cfg.memory_budget().map_or(String::new(), |m| format!(
                ", --memory {}",
                crate::memory::mib(m)
            )),
            self.plan.split().trim_end()
        );
        if let Some((conns, slots)) = cfg.lowered_for_memory() {
            s += &format!(
                "\nnote: to fit --memory, --max-connections {conns} became {} and --slots \
                 {slots} became {}",
                cfg.max_connections_open(),
                cfg.slots_per_handler()
            );
        }
        if cfg.slots_per_handler() > cfg.ring_capacity_jobs() {
            s += &format!(
                "\nnote: --slots {0} is above --ring-capacity {1}: when more than {1} of a handler's \
                 requests wait for one runner, the rest are shed with 503 (raise --ring-capacity \
                 to queue them instead)",
                cfg.slots_per_handler(),
                cfg.ring_capacity_jobs()
            );
        }
        let (backlog, capped) =
            httpd_runner_core::limits::effective_backlog(cfg.backlog_len(), start::somaxconn());
        if capped {
            s += &format!(
                "\nnote: --backlog {} is cut to {backlog} by the kernel (net.core.somaxconn)",
                cfg.backlog_len()
            );
        }
        s
    }

    /// Replaces the computed reservation with a measured one (the counting allocator's live
    /// heap bytes once startup is complete), for the banner and `/metrics`.
    pub fn set_reserved_bytes(&mut self, bytes: u64) {
        self.reserved_bytes = bytes;
        self.shared
            .metrics
            .reserved_bytes
            .store(bytes, httpd_runner_core::sync::Ordering::Relaxed);
    }

    /// Starts a clean shutdown, as `POST /shutdown` does (after the drain delay, if any).
    pub fn shutdown(&self) {
        self.shared.shutdown.request(Reason::Request);
    }

    /// Waits for every thread to finish (after a shutdown).
    ///
    /// # Errors
    /// The first error a thread returned.
    pub fn wait(self) -> io::Result<Summary> {
        let unix_socket = match self.endpoint {
            crate::net::Endpoint::Unix(path) => Some(path),
            crate::net::Endpoint::Tcp(_) => None,
        };
        let mut first_err = None;
        let mut record = |result: std::thread::Result<io::Result<()>>| {
            if let Err(e) =
                result.unwrap_or_else(|_| Err(io::Error::other("a server thread panicked")))
            {
                first_err.get_or_insert(e);
            }
        };
        // The listener returns once a shutdown starts, and the handlers once they have closed
        // every connection, by the shutdown deadline: joining them blocks without polling.
        for t in self.threads {
            record(t.join());
        }
        self.shared.shutdown.handlers_joined();
        if let Some(t) = self.access {
            record(t.join());
        }
        // Runners stop running queued jobs once the handlers are done, but one may be inside
        // a `run` that does not return: past the deadline and the margin it is left behind
        // (the process exit ends it).
        let started = self.shared.shutdown.started().unwrap_or_else(Instant::now);
        let limit = started + self.shared.cfg.shutdown_timeout_duration() + SHUTDOWN_MARGIN;
        for (r, t) in self.runners.into_iter().enumerate() {
            while !t.is_finished() && Instant::now() < limit {
                std::thread::sleep(Duration::from_millis(2));
            }
            if t.is_finished() {
                record(t.join());
            } else {
                log::error!(
                    "runner-{r} is still inside its run() past the shutdown timeout; exiting \
                     without it"
                );
            }
        }
        if let Some(path) = unix_socket {
            // The listener is closed: the socket file would only mislead.
            let _ = std::fs::remove_file(path);
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let m = &self.shared.metrics;
        Ok(Summary {
            connections: m.listener.accepted.get(),
            requests: m.requests(),
            reason: self.shared.shutdown.reason(),
        })
    }
}
