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
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use httpd_runner_core::msg::{Done, Job, Runner, Slot};
use httpd_runner_core::ring::Ring;
use httpd_runner_core::sync::AtomicUsize;
use httpd_runner_core::wake::Doorbell;
use mio::net::{TcpListener, TcpStream};
use mio::{Poll, Waker};

use crate::config::{Config, RunnerKind, ACCEPT_RING_SLOTS, READ_SLACK_BYTES, RING_SLOTS};
use crate::handler::{self, HandlerThread};
use crate::hints::{LoadHint, ServiceHint};
use crate::listener::{self, ListenerThread};
use crate::memory::{carve, memory_available, out_of_memory, prefaulted, MemoryPlan};
use crate::metrics::Metrics;
use crate::pin::{self, Pinning};
use crate::runner::{Delay, Echo, Factory, RunnerThread};
use crate::shutdown::{Reason, Shutdown};

/// What all threads share, made once at startup and never freed.
pub struct Shared {
    /// The configuration.
    pub cfg: Config,
    /// The shutdown flag and wake-ups.
    pub shutdown: Shutdown,
    /// Counters.
    pub metrics: Metrics,
    /// Each handler's sleep flag.
    pub handler_bells: Vec<Doorbell>,
    /// Each runner's sleep flag.
    pub runner_bells: Vec<Doorbell>,
    /// Each handler's load hint for runners that consider polling.
    pub handler_light: Vec<LoadHint>,
    /// Open connections per handler (listener adds, handler subtracts).
    pub handler_open: Vec<AtomicUsize>,
    /// Each runner's recent time per job, for shedding (runner writes, handlers read).
    pub runner_service: Vec<ServiceHint>,
    /// When the server started (the handlers' clock origin).
    pub started: Instant,
}

impl Shared {
    /// Whether every handler has been serving one connection per loop turn: requests come
    /// one at a time, so an idle runner that polls answers the next one sooner, and takes
    /// no time a busy handler needs.
    pub(crate) fn load_is_light(&self) -> bool {
        self.handler_light.iter().all(LoadHint::is_light)
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

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
        let kind = cfg.runner;
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
        start(self.cfg, self.factory)
    }
}

/// A running server.
pub struct Server {
    /// The bound address (with the real port when 0 was asked for).
    pub local_addr: SocketAddr,
    /// Where each runner is pinned.
    pub pinning: Vec<Pinning>,
    /// Bytes reserved at startup.
    pub reserved_bytes: u64,
    shared: &'static Shared,
    /// The listener and the handlers.
    threads: Vec<JoinHandle<io::Result<()>>>,
    /// The runners, waited for only until the shutdown timeout (plus [`SHUTDOWN_MARGIN`]):
    /// a runner can be inside user code that does not return.
    runners: Vec<JoinHandle<io::Result<()>>>,
}

/// How long past `--shutdown-timeout` the process waits for runners still inside `run`.
pub const SHUTDOWN_MARGIN: Duration = Duration::from_millis(500);

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
            "httpd-runner {}\nlistening on http://{}\n",
            env!("CARGO_PKG_VERSION"),
            self.local_addr
        );
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
            cfg.max_connections,
            cfg.max_body_bytes,
            cfg.slots,
            cfg.ring_capacity()
        );
        if cfg.slots > cfg.ring_capacity() {
            s += &format!(
                "\nnote: --slots {0} is above --ring-capacity {1}: when more than {1} of a handler's \
                 requests wait for one runner, the rest are shed with 503 (raise --ring-capacity \
                 to queue them instead)",
                cfg.slots,
                cfg.ring_capacity()
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

    /// Shared state (metrics, shutdown).
    #[must_use]
    pub fn shared(&self) -> &'static Shared {
        self.shared
    }

    /// Starts a clean shutdown, as `POST /shutdown` does.
    pub fn shutdown(&self) {
        self.shared.shutdown.trigger(Reason::Request);
    }

    /// Waits for every thread to finish (after a shutdown).
    ///
    /// # Errors
    /// The first error a thread returned.
    pub fn wait(self) -> io::Result<Summary> {
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
        // Runners stop running queued jobs once the handlers are done, but one may be inside
        // a `run` that does not return: past the deadline and the margin it is left behind
        // (the process exit ends it).
        let started = self.shared.shutdown.started().unwrap_or_else(Instant::now);
        let limit = started + self.shared.cfg.shutdown_timeout + SHUTDOWN_MARGIN;
        for (r, t) in self.runners.into_iter().enumerate() {
            while !t.is_finished() && Instant::now() < limit {
                std::thread::sleep(Duration::from_millis(2));
            }
            if t.is_finished() {
                record(t.join());
            } else {
                eprintln!(
                    "httpd-runner: runner-{r} is still inside its run() past the shutdown \
                     timeout; exiting without it"
                );
            }
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

fn leak<T>(value: T) -> &'static mut T {
    Box::leak(Box::new(value))
}

fn start(cfg: Config, factory: Factory) -> io::Result<Server> {
    let handlers = cfg.handler_count();
    let runners = cfg.runner_count();
    let limits = cfg.limits();
    let slots_per_handler = cfg.slots as usize;
    let response_body_bytes = limits.max_body_bytes.max(64 * 1024);

    // mio's bind: non-blocking, SO_REUSEADDR, and a backlog of 1024 (std's is 128, too
    // short for a burst of a thousand connections).
    let listener = TcpListener::bind(cfg.listen)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", cfg.listen)))?;
    let local_addr = listener.local_addr()?;

    // Signals arrive on a self-pipe the listener polls.
    let (sig_read, sig_write) = std::os::unix::net::UnixStream::pair()?;
    sig_read.set_nonblocking(true)?;
    sig_write.set_nonblocking(true)?;
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::low_level::pipe::register(signal, sig_write.try_clone()?)?;
    }
    let signals = mio::net::UnixStream::from_std(sig_read);

    // Memory reserved for the pools, counted as it is made.
    let slot_bytes = limits.max_head_bytes
        + limits.max_body_bytes
        + response_body_bytes
        + std::mem::size_of::<Slot<'static>>();
    let per_handler = cfg.connections_per_handler();
    let read_buf_bytes = limits.max_head_bytes + READ_SLACK_BYTES;
    let ring_bytes = std::mem::size_of::<Ring<Job<'static>, RING_SLOTS>>() * 2 * handlers * runners
        + std::mem::size_of::<Ring<TcpStream, ACCEPT_RING_SLOTS>>() * handlers;
    let plan = MemoryPlan {
        connections: (per_handler * handlers) as u64,
        per_connection: (read_buf_bytes + handler::CONNECTION_BYTES) as u64,
        slots: (slots_per_handler * handlers) as u64,
        per_slot: slot_bytes as u64,
        rings: ring_bytes as u64,
    };
    plan.check(memory_available(1 + handlers + runners))?;
    let reserved_bytes = plan.total();

    let listener_poll = Poll::new()?;
    let listener_waker = Waker::new(listener_poll.registry(), listener::WAKE)?;
    let mut handler_polls = Vec::with_capacity(handlers);
    let mut handler_wakers = Vec::with_capacity(handlers);
    for _ in 0..handlers {
        let poll = Poll::new()?;
        handler_wakers.push(Waker::new(poll.registry(), handler::WAKE)?);
        handler_polls.push(poll);
    }

    let shared: &'static Shared = leak(Shared {
        shutdown: Shutdown::new(handlers),
        metrics: Metrics::new(handlers, runners, reserved_bytes),
        handler_bells: (0..handlers).map(|_| Doorbell::new()).collect(),
        runner_bells: (0..runners).map(|_| Doorbell::new()).collect(),
        handler_light: (0..handlers).map(|_| LoadHint::default()).collect(),
        handler_open: (0..handlers).map(|_| AtomicUsize::new(0)).collect(),
        runner_service: (0..runners).map(|_| ServiceHint::default()).collect(),
        started: Instant::now(),
        cfg,
    });
    shared.shutdown.set_wakers(listener_waker, handler_wakers);

    // Rings: accept (one per handler), jobs (h -> r), done (r -> h).
    let mut accept_tx = Vec::with_capacity(handlers);
    let mut accept_rx = Vec::with_capacity(handlers);
    for _ in 0..handlers {
        let (tx, rx) = leak(Ring::<TcpStream, ACCEPT_RING_SLOTS>::new()).split();
        accept_tx.push(tx);
        accept_rx.push(Some(rx));
    }
    let mut job_tx: Vec<Vec<_>> = (0..handlers).map(|_| Vec::with_capacity(runners)).collect();
    let mut job_rx: Vec<Vec<_>> = (0..runners).map(|_| Vec::with_capacity(handlers)).collect();
    let mut done_tx: Vec<Vec<_>> = (0..runners).map(|_| Vec::with_capacity(handlers)).collect();
    let mut done_rx: Vec<Vec<_>> = (0..handlers).map(|_| Vec::with_capacity(runners)).collect();
    for h in 0..handlers {
        for r in 0..runners {
            let (tx, rx) = leak(Ring::<Job<'static>, RING_SLOTS>::new()).split();
            job_tx[h].push(tx);
            job_rx[r].push(rx);
            let (tx, rx) = leak(Ring::<Done<'static>, RING_SLOTS>::new()).split();
            done_tx[r].push(tx);
            done_rx[h].push(rx);
        }
    }

    let barrier = Arc::new(Barrier::new(1 + handlers + runners + 1));
    let mut threads: Vec<JoinHandle<io::Result<()>>> = Vec::with_capacity(1 + handlers + runners);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (pin_tx, pin_rx) = std::sync::mpsc::channel();
    let mut runner_threads = Vec::with_capacity(runners);
    let mut runner_handles = Vec::with_capacity(runners);
    for (r, (jobs, done)) in job_rx.into_iter().zip(done_tx).enumerate() {
        let ctx = RunnerThread {
            index: r,
            jobs,
            done,
            shared,
            factory: factory.clone(),
        };
        let barrier = barrier.clone();
        let core = if shared.cfg.pinning() {
            pin::core_for(r, &cores)
        } else {
            None
        };
        let pin_wanted = shared.cfg.pinning();
        let pin_tx = pin_tx.clone();
        let handle = thread::Builder::new()
            .name(format!("runner-{r}"))
            .spawn(move || {
                let pinning = if pin_wanted {
                    pin::pin_current(core)
                } else {
                    Pinning::Off
                };
                let _ = pin_tx.send((r, pinning));
                ctx.run(|| {
                    barrier.wait();
                });
                Ok(())
            })?;
        runner_threads.push(handle.thread().clone());
        runner_handles.push(handle);
    }
    shared.shutdown.set_runner_threads(runner_threads);
    // Each runner reports its pinning first thing, before it waits at the barrier.
    drop(pin_tx);
    let mut pinning = vec![Pinning::Off; runners];
    for (r, p) in pin_rx.iter().take(runners) {
        pinning[r] = p;
    }
    // Where runners really are: handlers keep off these cores while their load is light.
    let runner_cores: Vec<usize> = pinning
        .iter()
        .filter_map(|p| match p {
            Pinning::Pinned(core) => Some(*core),
            _ => None,
        })
        .collect();

    for (h, ((poll, jobs), done)) in handler_polls
        .into_iter()
        .zip(job_tx)
        .zip(done_rx)
        .enumerate()
    {
        // One allocation per pool: this handler's slot buffers, and its connections' read
        // buffers, each carved into pieces.
        let slot_buf_bytes = limits.max_head_bytes + limits.max_body_bytes + response_body_bytes;
        let mut pool: &'static mut [u8] =
            Box::leak(prefaulted(slot_buf_bytes * slots_per_handler)?);
        let mut slots = Vec::with_capacity(slots_per_handler);
        for _ in 0..slots_per_handler {
            let mut bufs = carve(&mut pool, 1, slot_buf_bytes)
                .pop()
                .unwrap_or_default();
            let head = carve(&mut bufs, 1, limits.max_head_bytes)
                .pop()
                .unwrap_or_default();
            let body = carve(&mut bufs, 1, limits.max_body_bytes)
                .pop()
                .unwrap_or_default();
            slots.push(leak(Slot::new(head, body, bufs)));
        }
        let mut read_pool: &'static mut [u8] = Box::leak(prefaulted(read_buf_bytes * per_handler)?);
        let read_bufs = carve(&mut read_pool, per_handler, read_buf_bytes);
        let conns = handler::connection_table(read_bufs, &shared.cfg)
            .map_err(|_| out_of_memory(per_handler * handler::CONNECTION_BYTES))?;
        let accepts = accept_rx[h]
            .take()
            .ok_or_else(|| io::Error::other("accept ring taken twice"))?;
        let ctx = HandlerThread {
            index: h,
            poll,
            accepts,
            jobs,
            done,
            slots,
            conns,
            runner_cores: runner_cores.clone(),
            shared,
        };
        let barrier = barrier.clone();
        threads.push(
            thread::Builder::new()
                .name(format!("handler-{h}"))
                .spawn(move || {
                    ctx.run(|| {
                        barrier.wait();
                    })
                })?,
        );
    }

    let lctx = ListenerThread {
        poll: listener_poll,
        listener,
        signals,
        handlers: accept_tx,
        shared,
    };
    let lbarrier = barrier.clone();
    threads.insert(
        0,
        thread::Builder::new()
            .name("listener".into())
            .spawn(move || {
                lctx.run(|| {
                    lbarrier.wait();
                })
            })?,
    );
    barrier.wait();
    Ok(Server {
        local_addr,
        pinning,
        reserved_bytes,
        shared,
        threads,
        runners: runner_handles,
    })
}
