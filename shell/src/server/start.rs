//! Startup: check the plan (`sizes`) against memory, bind, build the rings, spawn the
//! threads and wait until every one of them is ready.
//!
//! H handlers and R runners use H accept rings and 2·H·R job/done rings. Everything (rings,
//! slots, connection tables, buffers) is made here, before the startup mark. Their number is
//! known only at run time, so each is leaked once (`Box::leak`) to live as long as the
//! process: a `static` cell per item cannot hold a count chosen on the command line.

use std::io;
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};

use httpd_runner_core::limits::{ACCEPT_RING_SLOTS, RUNNER_RING_SLOTS};
use httpd_runner_core::msg::{Done, Job, Slot};
use httpd_runner_core::ring::{Consumer, Producer, Ring};
use httpd_runner_core::sync::AtomicUsize;
use httpd_runner_core::wake::Doorbell;
use mio::{Poll, Waker};

use super::sizes::{fit_memory, Sizes};
use super::Server;
use crate::access;
use crate::config::Config;
use crate::handler::{self, HandlerMemory, HandlerThread, SpareTx};
use crate::hints::{LoadHint, ServiceHint};
use crate::listener::{self, ListenerThread};
use crate::memory::{carve, memory_available, out_of_memory, prefaulted};
use crate::metrics::Metrics;
use crate::net::{self, Accepted, Endpoint};
use crate::pin::{self, Pinning};
use crate::runner::{Factory, RunnerThread, SpareRx, Spares};
use crate::shared::Shared;
use crate::shutdown::Shutdown;

fn leak<T>(value: T) -> &'static mut T {
    Box::leak(Box::new(value))
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
    crate::logger::init(cfg.log_level_filter());
    let cfg = fit_memory(cfg)?;
    let sizes = Sizes::of(&cfg);
    let plan = sizes.plan();
    plan.check(memory_available(1 + sizes.handlers + sizes.runners))?;
    let reserved_bytes = plan.total();
    raise_open_file_limit(&cfg)?;
    let access_out = cfg.access_log_to().map(access::Output::open).transpose()?;
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
    let (spare_tx, spares) = spares(&sizes)?;
    let barrier = Arc::new(Barrier::new(1 + sizes.handlers + sizes.runners + 1));
    let (pinning, runners) = spawn_runners(
        shared,
        rings.job_rx,
        rings.done_tx,
        spares,
        &factory,
        &barrier,
    )?;
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
    let (access_writer, mut access_tx) = match access_out {
        Some(out) => {
            let (writer, tx) = access::rings(sizes.handlers, out, shared);
            let writer = thread::Builder::new()
                .name("access-log".into())
                .spawn(move || writer.run())?;
            let thread = writer.thread().clone();
            shared.shutdown.set_access_thread(thread.clone());
            let tx = tx.into_iter().map(|r| Some(access::tx(r, thread.clone())));
            (Some(writer), tx.collect())
        }
        None => (None, Vec::new()),
    };
    let ends = handler_polls
        .into_iter()
        .zip(accept_rx)
        .zip(rings.job_tx.into_iter().zip(rings.done_rx));
    for (h, (((poll, accepts), (jobs, done)), spares)) in ends.zip(spare_tx).enumerate() {
        let (memory, conns) = handler_memory(&sizes, shared, spares)?;
        let ctx = HandlerThread {
            index: h,
            poll,
            accepts,
            jobs,
            done,
            memory,
            conns,
            runner_cores: runner_cores.clone(),
            shared,
            access: access_tx.get_mut(h).and_then(Option::take),
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
        plan,
        shared,
        threads,
        runners,
        access: access_writer,
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
    let started = crate::clock::Origin::now();
    let started_unix_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(0));
    leak(Shared {
        shutdown: Shutdown::new(handlers, !cfg.drain_duration().is_zero()),
        metrics: Metrics::new(handlers, runners, reserved_bytes, started_unix_us),
        handler_bells: (0..handlers).map(|_| Doorbell::new()).collect(),
        runner_bells: (0..runners).map(|_| Doorbell::new()).collect(),
        handler_light: (0..handlers).map(|_| LoadHint::default()).collect(),
        handler_open: (0..handlers).map(|_| AtomicUsize::new(0)).collect(),
        runner_service: (0..runners).map(|_| ServiceHint::default()).collect(),
        started,
        cfg,
    })
}

/// Spawns the runners, each pinned first thing; returns where each one is pinned.
fn spawn_runners(
    shared: &'static Shared,
    job_rx: Vec<Vec<JobRx>>,
    done_tx: Vec<Vec<DoneTx>>,
    spares: Vec<Spares>,
    factory: &Factory,
    barrier: &Arc<Barrier>,
) -> io::Result<(Vec<Pinning>, Vec<ThreadHandle>)> {
    let runners = job_rx.len();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (pin_tx, pin_rx) = std::sync::mpsc::channel();
    let mut threads = Vec::with_capacity(runners);
    let mut handles = Vec::with_capacity(runners);
    for (r, ((jobs, done), spares)) in job_rx.into_iter().zip(done_tx).zip(spares).enumerate() {
        let ctx = RunnerThread {
            index: r,
            jobs,
            done,
            shared,
            factory: factory.clone(),
            spares: Some(spares),
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

/// Each runner's spare response buffers (one prefaulted allocation per runner) and the
/// rings that bring them back from each handler: `(to runner r, per handler)`,
/// `(per runner)`.
fn spares(sizes: &Sizes) -> io::Result<(Vec<Vec<SpareTx>>, Vec<Spares>)> {
    let (h, r) = (sizes.handlers, sizes.runners);
    let per_runner = sizes.counts.spare_responses;
    let mut tx: Vec<Vec<SpareTx>> = (0..h).map(|_| Vec::with_capacity(r)).collect();
    let mut out = Vec::with_capacity(r);
    for _ in 0..r {
        let mut back: Vec<SpareRx> = Vec::with_capacity(h);
        if per_runner > 0 {
            for to in &mut tx {
                let (t, rx) = leak(Ring::new()).split();
                to.push(t);
                back.push(rx);
            }
        }
        let len = sizes.bytes.large_response;
        let mut pool: &'static mut [u8] = Box::leak(prefaulted(len * per_runner)?);
        out.push(Spares::new(carve(&mut pool, per_runner, len), back));
    }
    Ok((tx, out))
}

/// One handler's request slots (small ones first), large head buffers and connection table,
/// each from one prefaulted allocation carved into pieces.
fn handler_memory(
    sizes: &Sizes,
    shared: &'static Shared,
    spares: Vec<SpareTx>,
) -> io::Result<(HandlerMemory, Vec<handler::Connection>)> {
    let (b, c) = (&sizes.bytes, &sizes.counts);
    let mut pool: &'static mut [u8] = Box::leak(prefaulted(
        sizes.small_slot_bytes() * c.small_slots + sizes.large_slot_bytes() * c.large_slots,
    )?);
    let mut slots = Vec::with_capacity(sizes.slots_per_handler);
    let classes = [
        (c.small_slots, b.small_head, b.small_body, b.response),
        (c.large_slots, b.large_head, b.large_body, b.large_response),
    ];
    for (count, head, body, response) in classes {
        for _ in 0..count {
            let mut take = |len| carve(&mut pool, 1, len).pop().unwrap_or_default();
            let (head, body, response) = (take(head), take(body), take(response));
            let slot = leak(Slot::new(head, body, response));
            slot.id = slots.len() as u32;
            slots.push(slot);
        }
    }
    let own_spare: &'static mut [u8] = Box::leak(prefaulted(sizes.metrics_bytes)?);
    let mut heads: &'static mut [u8] = Box::leak(prefaulted(b.large_read * c.large_heads)?);
    let large_heads = carve(&mut heads, c.large_heads, b.large_read);
    let per_handler = sizes.conns_per_handler;
    let mut read_pool: &'static mut [u8] = Box::leak(prefaulted(b.read * per_handler)?);
    let read_bufs = carve(&mut read_pool, per_handler, b.read);
    let conns = handler::connection_table(read_bufs, &shared.cfg)
        .map_err(|_| out_of_memory(per_handler * handler::CONNECTION_BYTES))?;
    let memory = HandlerMemory {
        slots,
        small_slots: c.small_slots,
        large_heads,
        spares,
        own_spare,
    };
    Ok((memory, conns))
}
