//! Startup: check the plan against memory, bind, build the rings, spawn the threads and wait
//! until every one of them is ready.
//!
//! H handlers and R runners use H accept rings and 2·H·R job/done rings. Everything (rings,
//! slots, connection tables, buffers) is made here, before the startup mark. Their number is
//! known only at run time, so each is leaked once (`Box::leak`) to live as long as the
//! process: a `static` cell per item cannot hold a count chosen on the command line.

use std::io;
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use httpd_runner_core::limits::{ACCEPT_RING_SLOTS, READ_SLACK_BYTES, RUNNER_RING_SLOTS};
use httpd_runner_core::msg::{Done, Job, Slot};
use httpd_runner_core::ring::{Consumer, Producer, Ring};
use httpd_runner_core::sync::AtomicUsize;
use httpd_runner_core::wake::Doorbell;
use mio::{Poll, Waker};

use super::Server;
use crate::config::Config;
use crate::handler::{self, HandlerThread};
use crate::hints::{LoadHint, ServiceHint};
use crate::listener::{self, ListenerThread};
use crate::memory::{carve, memory_available, out_of_memory, prefaulted, MemoryPlan};
use crate::metrics::Metrics;
use crate::net::{self, Accepted, Endpoint};
use crate::pin::{self, Pinning};
use crate::runner::{Factory, RunnerThread};
use crate::shared::Shared;
use crate::shutdown::Shutdown;

fn leak<T>(value: T) -> &'static mut T {
    Box::leak(Box::new(value))
}

/// Sizes of what startup reserves.
struct Sizes {
    handlers: usize,
    runners: usize,
    slots_per_handler: usize,
    conns_per_handler: usize,
    read_buf_bytes: usize,
    head_bytes: usize,
    body_bytes: usize,
    response_body_bytes: usize,
    /// Per runner: run arena, two frame halves, kept-request table.
    runner_scratch_bytes: usize,
}

impl Sizes {
    fn of(cfg: &Config) -> Self {
        let limits = cfg.limits();
        Self {
            handlers: cfg.handler_count(),
            runners: cfg.runner_count(),
            slots_per_handler: cfg.slots_per_handler() as usize,
            conns_per_handler: cfg.connections_per_handler() + cfg.admin_connections_per_handler(),
            read_buf_bytes: limits.max_head_bytes + READ_SLACK_BYTES,
            head_bytes: limits.max_head_bytes,
            body_bytes: limits.max_body_bytes,
            response_body_bytes: limits.max_body_bytes.max(64 * 1024),
            runner_scratch_bytes: cfg.scratch_bytes()
                + 2 * cfg.frame_scratch_bytes()
                + crate::runner::kept_table_bytes(cfg),
        }
    }

    fn slot_buf_bytes(&self) -> usize {
        self.head_bytes + self.body_bytes + self.response_body_bytes
    }

    fn plan(&self) -> MemoryPlan {
        let (h, r) = (self.handlers, self.runners);
        let ring_bytes = std::mem::size_of::<Ring<Job<'static>, RUNNER_RING_SLOTS>>() * 2 * h * r
            + std::mem::size_of::<Ring<Accepted, ACCEPT_RING_SLOTS>>() * h;
        MemoryPlan {
            connections: (self.conns_per_handler * h) as u64,
            per_connection: (self.read_buf_bytes + handler::CONNECTION_BYTES) as u64,
            slots: (self.slots_per_handler * h) as u64,
            per_slot: (self.slot_buf_bytes() + std::mem::size_of::<Slot<'static>>()) as u64,
            rings: ring_bytes as u64,
            runner_scratch: (self.runner_scratch_bytes * r) as u64,
        }
    }
}

/// A server thread, joined at the end.
type ThreadHandle = JoinHandle<io::Result<()>>;

type JobTx = Producer<'static, Job<'static>, RUNNER_RING_SLOTS>;
type JobRx = Consumer<'static, Job<'static>, RUNNER_RING_SLOTS>;
type DoneTx = Producer<'static, Done<'static>, RUNNER_RING_SLOTS>;
type DoneRx = Consumer<'static, Done<'static>, RUNNER_RING_SLOTS>;

/// The handler-runner rings, grouped by the thread that holds each end.
struct Rings {
    /// `job_tx[h][r]`, `done_rx[h][r]`: a handler's ends.
    job_tx: Vec<Vec<JobTx>>,
    done_rx: Vec<Vec<DoneRx>>,
    /// `job_rx[r][h]`, `done_tx[r][h]`: a runner's ends.
    job_rx: Vec<Vec<JobRx>>,
    done_tx: Vec<Vec<DoneTx>>,
}

impl Rings {
    fn new(handlers: usize, runners: usize) -> Self {
        let mut rings = Self {
            job_tx: (0..handlers).map(|_| Vec::with_capacity(runners)).collect(),
            done_rx: (0..handlers).map(|_| Vec::with_capacity(runners)).collect(),
            job_rx: (0..runners).map(|_| Vec::with_capacity(handlers)).collect(),
            done_tx: (0..runners).map(|_| Vec::with_capacity(handlers)).collect(),
        };
        for h in 0..handlers {
            for r in 0..runners {
                let (tx, rx) = leak(Ring::new()).split();
                rings.job_tx[h].push(tx);
                rings.job_rx[r].push(rx);
                let (tx, rx) = leak(Ring::new()).split();
                rings.done_tx[r].push(tx);
                rings.done_rx[h].push(rx);
            }
        }
        rings
    }
}

/// Raises the soft open-file limit to what the connections and threads need (up to the hard
/// limit), or refuses to start naming both numbers.
fn raise_open_file_limit(cfg: &Config) -> io::Result<()> {
    let admin = cfg.admin_connections_per_handler() * cfg.handler_count();
    let needs = httpd_runner_core::limits::open_files_needed(
        cfg.max_connections_open(),
        cfg.handler_count(),
    ) + admin as u64;
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    // `None` is "unlimited".
    let (soft, hard) = (
        lim.current.unwrap_or(u64::MAX),
        lim.maximum.unwrap_or(u64::MAX),
    );
    match httpd_runner_core::limits::open_file_limit(soft, hard, needs) {
        Some(raised) if raised == soft => Ok(()),
        Some(raised) => setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(raised),
                maximum: lim.maximum,
            },
        )
        .map_err(io::Error::from),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "--max-connections {} needs {needs} open files, but the hard open-file limit \
                 (ulimit -Hn) is {hard}: raise it (LimitNOFILE= in a systemd unit) or lower \
                 --max-connections",
                cfg.max_connections_open()
            ),
        )),
    }
}

/// The kernel's cap on listen queues, if it can be read.
pub(super) fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Starts a server: the body of [`crate::Builder::start`].
pub(super) fn start(cfg: Config, factory: Factory) -> io::Result<Server> {
    cfg.check()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let sizes = Sizes::of(&cfg);
    let plan = sizes.plan();
    plan.check(memory_available(1 + sizes.handlers + sizes.runners))?;
    let reserved_bytes = plan.total();
    raise_open_file_limit(&cfg)?;
    let listener = bind(cfg.endpoint(), &cfg, "--listen")?;
    let endpoint = listener.endpoint(cfg.endpoint())?;
    let admin = cfg
        .admin_addr()
        .map(|a| bind(&Endpoint::Tcp(a), &cfg, "--admin-listen"))
        .transpose()?;
    let admin_addr = match &admin {
        Some(l) => match l.endpoint(cfg.endpoint())? {
            Endpoint::Tcp(a) => Some(a),
            Endpoint::Unix(_) => None,
        },
        None => None,
    };
    let (signals, hangups) = signal_pipes()?;

    let listener_poll = Poll::new()?;
    let listener_waker = Waker::new(listener_poll.registry(), listener::WAKE)?;
    let (handler_polls, handler_wakers) = handler_polls(sizes.handlers)?;
    let shared = shared(cfg, &sizes, reserved_bytes);
    shared.shutdown.set_wakers(listener_waker, handler_wakers);

    let (accept_tx, accept_rx): (Vec<_>, Vec<_>) = (0..sizes.handlers)
        .map(|_| leak(Ring::<Accepted, ACCEPT_RING_SLOTS>::new()).split())
        .unzip();
    let rings = Rings::new(sizes.handlers, sizes.runners);
    let barrier = Arc::new(Barrier::new(1 + sizes.handlers + sizes.runners + 1));
    let (pinning, runners) =
        spawn_runners(shared, rings.job_rx, rings.done_tx, &factory, &barrier)?;
    // Where runners really are: handlers keep off these cores while their load is light.
    let runner_cores: Vec<usize> = pinning
        .iter()
        .filter_map(|p| match p {
            Pinning::Pinned(core) => Some(*core),
            _ => None,
        })
        .collect();
    let mut threads = Vec::with_capacity(1 + sizes.handlers);
    let listener = ListenerThread {
        poll: listener_poll,
        listener,
        admin,
        signals,
        hangups,
        handlers: accept_tx,
        shared,
    };
    let lbarrier = barrier.clone();
    threads.push(
        thread::Builder::new()
            .name("listener".into())
            .spawn(move || {
                listener.run(|| {
                    lbarrier.wait();
                })
            })?,
    );
    let ends = handler_polls
        .into_iter()
        .zip(accept_rx)
        .zip(rings.job_tx.into_iter().zip(rings.done_rx));
    for (h, ((poll, accepts), (jobs, done))) in ends.enumerate() {
        let (slots, conns) = handler_memory(&sizes, shared)?;
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
        threads.push(spawn_handler(ctx, barrier.clone())?);
    }
    barrier.wait();
    let local_addr = match &endpoint {
        Endpoint::Tcp(a) => *a,
        Endpoint::Unix(_) => std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    Ok(Server {
        local_addr,
        endpoint,
        admin_addr,
        pinning,
        reserved_bytes,
        shared,
        threads,
        runners,
    })
}

fn spawn_handler(ctx: HandlerThread, barrier: Arc<Barrier>) -> io::Result<ThreadHandle> {
    thread::Builder::new()
        .name(format!("handler-{}", ctx.index))
        .spawn(move || {
            ctx.run(|| {
                barrier.wait();
            })
        })
}

/// A poll for each handler and a waker into it.
fn handler_polls(handlers: usize) -> io::Result<(Vec<Poll>, Vec<Waker>)> {
    let mut polls = Vec::with_capacity(handlers);
    let mut wakers = Vec::with_capacity(handlers);
    for _ in 0..handlers {
        let poll = Poll::new()?;
        wakers.push(Waker::new(poll.registry(), handler::WAKE)?);
        polls.push(poll);
    }
    Ok((polls, wakers))
}

/// Binds one listener; an error names the option and the address.
fn bind(at: &Endpoint, cfg: &Config, option: &str) -> io::Result<net::Listening> {
    net::bind(at, cfg.backlog_len(), cfg.reuses_port())
        .map_err(|e| io::Error::new(e.kind(), format!("{option} {at}: cannot listen: {e}")))
}

/// The signals: SIGINT and SIGTERM arrive on one self-pipe and SIGHUP on another, both
/// polled by the listener; SIGQUIT ends the process at once (exit status 131, as a shell
/// reports a process SIGQUIT killed), with no drain and no shutdown.
fn signal_pipes() -> io::Result<(mio::net::UnixStream, mio::net::UnixStream)> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let pipe = |signals: &[i32]| -> io::Result<mio::net::UnixStream> {
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        for &signal in signals {
            signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
        }
        Ok(mio::net::UnixStream::from_std(read))
    };
    let always = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    signal_hook::flag::register_conditional_shutdown(SIGQUIT, 128 + SIGQUIT, always)?;
    Ok((pipe(&[SIGINT, SIGTERM])?, pipe(&[SIGHUP])?))
}

fn shared(cfg: Config, sizes: &Sizes, reserved_bytes: u64) -> &'static Shared {
    let (handlers, runners) = (sizes.handlers, sizes.runners);
    leak(Shared {
        shutdown: Shutdown::new(handlers, !cfg.drain_duration().is_zero()),
        metrics: Metrics::new(handlers, runners, reserved_bytes),
        handler_bells: (0..handlers).map(|_| Doorbell::new()).collect(),
        runner_bells: (0..runners).map(|_| Doorbell::new()).collect(),
        handler_light: (0..handlers).map(|_| LoadHint::default()).collect(),
        handler_open: (0..handlers).map(|_| AtomicUsize::new(0)).collect(),
        runner_service: (0..runners).map(|_| ServiceHint::default()).collect(),
        started: Instant::now(),
        cfg,
    })
}

/// Spawns the runners, each pinned first thing; returns where each one is pinned.
fn spawn_runners(
    shared: &'static Shared,
    job_rx: Vec<Vec<JobRx>>,
    done_tx: Vec<Vec<DoneTx>>,
    factory: &Factory,
    barrier: &Arc<Barrier>,
) -> io::Result<(Vec<Pinning>, Vec<ThreadHandle>)> {
    let runners = job_rx.len();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (pin_tx, pin_rx) = std::sync::mpsc::channel();
    let mut threads = Vec::with_capacity(runners);
    let mut handles = Vec::with_capacity(runners);
    for (r, (jobs, done)) in job_rx.into_iter().zip(done_tx).enumerate() {
        let ctx = RunnerThread {
            index: r,
            jobs,
            done,
            shared,
            factory: factory.clone(),
        };
        let barrier = barrier.clone();
        let core = shared
            .cfg
            .pinning()
            .then(|| pin::core_for(r, &cores))
            .flatten();
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
        threads.push(handle.thread().clone());
        handles.push(handle);
    }
    shared.shutdown.set_runner_threads(threads);
    // Each runner reports its pinning first thing, before it waits at the barrier.
    drop(pin_tx);
    let mut pinning = vec![Pinning::Off; runners];
    for (r, p) in pin_rx.iter().take(runners) {
        pinning[r] = p;
    }
    Ok((pinning, handles))
}

/// One handler's request slots and connection table, each from one prefaulted allocation
/// carved into pieces.
fn handler_memory(
    sizes: &Sizes,
    shared: &'static Shared,
) -> io::Result<(Vec<&'static mut Slot<'static>>, Vec<handler::Connection>)> {
    let slot_buf_bytes = sizes.slot_buf_bytes();
    let mut pool: &'static mut [u8] =
        Box::leak(prefaulted(slot_buf_bytes * sizes.slots_per_handler)?);
    let mut slots = Vec::with_capacity(sizes.slots_per_handler);
    for id in 0..sizes.slots_per_handler {
        let mut bufs = carve(&mut pool, 1, slot_buf_bytes)
            .pop()
            .unwrap_or_default();
        let head = carve(&mut bufs, 1, sizes.head_bytes)
            .pop()
            .unwrap_or_default();
        let body = carve(&mut bufs, 1, sizes.body_bytes)
            .pop()
            .unwrap_or_default();
        let slot = leak(Slot::new(head, body, bufs));
        slot.id = id as u32;
        slots.push(slot);
    }
    let per_handler = sizes.conns_per_handler;
    let mut read_pool: &'static mut [u8] =
        Box::leak(prefaulted(sizes.read_buf_bytes * per_handler)?);
    let read_bufs = carve(&mut read_pool, per_handler, sizes.read_buf_bytes);
    let conns = handler::connection_table(read_bufs, &shared.cfg)
        .map_err(|_| out_of_memory(per_handler * handler::CONNECTION_BYTES))?;
    Ok((slots, conns))
}
