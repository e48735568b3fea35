//! The listener thread: accepts connections (data, and admin when it has its own listener)
//! and hands each to the least-loaded handler through that handler's SPSC ring, waking the
//! handler only if it sleeps. It also receives the signals (through self-pipes in its poll
//! set): SIGINT/SIGTERM start a drain then a clean shutdown, SIGHUP is noted and ignored.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use httpd_runner_core::limits::{
    ACCEPT_BACKOFF_MS, ACCEPT_ERROR_REPORT_MS, ACCEPT_RING_SLOTS, MAX_HANDLERS,
};
use httpd_runner_core::response::{imf_fixdate, write_simple, Simple};
use httpd_runner_core::ring::Producer;
use httpd_runner_core::route::Plane;
use httpd_runner_core::sched::{pick_handler, RateLimit};
use httpd_runner_core::sync::Ordering;
use httpd_runner_core::text::FixedBuf;
use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token};

use crate::net::{Accepted, Listening, Stream};
use crate::shared::Shared;
use crate::shutdown::Reason;

pub(crate) const LISTENER: Token = Token(0);
pub(crate) const SIGNALS: Token = Token(1);
pub(crate) const WAKE: Token = Token(2);
pub(crate) const ADMIN: Token = Token(3);
pub(crate) const HANGUP: Token = Token(4);

/// How long to wait before retrying `accept` after the process ran out of descriptors or
/// memory: the pending connection stays in the backlog meanwhile, and nothing spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(ACCEPT_BACKOFF_MS);

/// Why an `accept` failed, as counted in `accept_errors_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// The process is out of descriptors.
    Emfile,
    /// The system is out of descriptors.
    Enfile,
    /// Out of socket buffers.
    Enobufs,
    /// Out of memory.
    Enomem,
    /// The client left before it was accepted (harmless).
    Econnaborted,
    /// Anything else.
    Other,
}

impl AcceptError {
    /// Every kind, in index order.
    pub(crate) const ALL: [Self; 6] = [
        Self::Emfile,
        Self::Enfile,
        Self::Enobufs,
        Self::Enomem,
        Self::Econnaborted,
        Self::Other,
    ];

    /// The kind of a failed accept, `None` for "nothing to accept" and interruptions.
    pub(crate) fn of(e: &io::Error) -> Option<Self> {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ) {
            return None;
        }
        Some(match e.raw_os_error() {
            Some(libc::EMFILE) => Self::Emfile,
            Some(libc::ENFILE) => Self::Enfile,
            Some(libc::ENOBUFS) => Self::Enobufs,
            Some(libc::ENOMEM) => Self::Enomem,
            Some(libc::ECONNABORTED) => Self::Econnaborted,
            _ => Self::Other,
        })
    }

    /// Whether accepting pauses (a retry now would fail the same way, and spin).
    pub(crate) const fn pauses(self) -> bool {
        matches!(
            self,
            Self::Emfile | Self::Enfile | Self::Enobufs | Self::Enomem
        )
    }

    /// Its `kind` label.
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Self::Emfile => "emfile",
            Self::Enfile => "enfile",
            Self::Enobufs => "enobufs",
            Self::Enomem => "enomem",
            Self::Econnaborted => "econnaborted",
            Self::Other => "other",
        }
    }

    /// Its place in [`Self::ALL`].
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// Everything the listener thread owns.
pub(crate) struct ListenerThread {
    pub(crate) poll: Poll,
    pub(crate) listener: Listening,
    /// The admin listener, when `--admin-listen` is set.
    pub(crate) admin: Option<Listening>,
    /// SIGINT and SIGTERM.
    pub(crate) signals: UnixStream,
    /// SIGHUP.
    pub(crate) hangups: UnixStream,
    pub(crate) handlers: Vec<Producer<'static, Accepted, ACCEPT_RING_SLOTS>>,
    pub(crate) shared: &'static Shared,
}

impl ListenerThread {
    /// The thread body: accept until shutdown, then close the listening sockets.
    pub(crate) fn run(mut self, ready: impl FnOnce()) -> io::Result<()> {
        let registry = self.poll.registry();
        registry.register(&mut self.listener, LISTENER, Interest::READABLE)?;
        if let Some(admin) = self.admin.as_mut() {
            registry.register(admin, ADMIN, Interest::READABLE)?;
        }
        registry.register(&mut self.signals, SIGNALS, Interest::READABLE)?;
        registry.register(&mut self.hangups, HANGUP, Interest::READABLE)?;
        let mut events = Events::with_capacity(16);
        let mut paused = false;
        let mut drain_until: Option<Instant> = None;
        let mut reports = RateLimit::new(ACCEPT_ERROR_REPORT_MS);
        let shutdown = &self.shared.shutdown;
        ready();
        loop {
            if drain_until.is_none() && shutdown.is_draining() {
                drain_until = Some(Instant::now() + self.shared.cfg.drain_duration());
                self.shared.metrics.draining.set(1);
            }
            if drain_until.is_some_and(|until| Instant::now() >= until) {
                self.shared.metrics.draining.set(0);
                shutdown.trigger(shutdown.reason());
            }
            if shutdown.is_requested() {
                // Dropping the listeners closes the ports: new connections are refused.
                return Ok(());
            }
            let drain_left = drain_until.map(|u| u.saturating_duration_since(Instant::now()));
            let timeout = match (paused.then_some(ACCEPT_BACKOFF), drain_left) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in &events {
                match ev.token() {
                    SIGNALS => {
                        empty(&mut self.signals);
                        // A second signal while draining stops waiting.
                        if shutdown.is_draining() {
                            drain_until = Some(Instant::now());
                        }
                        shutdown.request(Reason::Signal);
                    }
                    HANGUP => {
                        empty(&mut self.hangups);
                        log::warn!(
                            "SIGHUP ignored: options are read once, at startup \
                             (restart to change them; --reuse-port lets a new process take over)"
                        );
                    }
                    _ => {}
                }
            }
            if shutdown.is_requested() {
                continue;
            }
            let now_ms = self.shared.started.elapsed().as_millis() as u64;
            let mut failed = None;
            paused = false;
            for plane in [self.data_plane(), Plane::Admin] {
                if let Some((e, n)) = self.accept_all(plane) {
                    paused |= e.pauses();
                    failed = Some((e, n + failed.map_or(0, |(_, m)| m)));
                }
            }
            if let Some((e, n)) = failed {
                if let Some(covered) = reports.event(now_ms, n) {
                    report(e, covered, self.shared.cfg.max_connections_open());
                }
            }
        }
    }

    /// The plane of the data listener's connections.
    fn data_plane(&self) -> Plane {
        if self.admin.is_some() {
            Plane::Data
        } else {
            Plane::All
        }
    }

    /// Accepts from one listener until its backlog is empty. Returns the last error and how
    /// many accepts failed, if any did (accepting stops at one that would repeat at once).
    fn accept_all(&mut self, plane: Plane) -> Option<(AcceptError, u64)> {
        let mut woke = [false; 64];
        let mut failed = None;
        loop {
            let listener = match plane {
                Plane::Admin => match self.admin.as_ref() {
                    Some(l) => l,
                    None => break,
                },
                _ => &self.listener,
            };
            match listener.accept() {
                Ok(stream) => self.hand_off(Accepted { stream, plane }, &mut woke),
                Err(e) => match AcceptError::of(&e) {
                    None if e.kind() == io::ErrorKind::Interrupted => {}
                    None => break,
                    Some(kind) => {
                        self.shared.metrics.listener.accept_errors[kind.index()].inc();
                        failed = Some((kind, 1 + failed.map_or(0, |(_, n)| n)));
                        if kind.pauses() {
                            break;
                        }
                    }
                },
            }
        }
        for (h, w) in woke.iter().enumerate().take(self.handlers.len()) {
            if *w && self.shared.handler_bells[h].should_wake() {
                self.shared.shutdown.wake_handler(h);
            }
        }
        failed
    }

    fn hand_off(&mut self, accepted: Accepted, woke: &mut [bool; 64]) {
        let shared = self.shared;
        let mut open = [0usize; MAX_HANDLERS as usize];
        let open = &mut open[..self.handlers.len()];
        for (n, h) in open.iter_mut().zip(&shared.handler_open) {
            *n = h.load(Ordering::Relaxed);
        }
        let mut cap = shared.cfg.connections_per_handler();
        let mut max = shared.cfg.max_connections_open() as usize;
        if accepted.plane == Plane::Admin {
            // Past --max-connections: the admin port answers while the data port is full.
            let reserve = shared.cfg.admin_connections_per_handler();
            cap += reserve;
            max += reserve * self.handlers.len();
        }
        let Some(h) = pick_handler(open, cap, max) else {
            return refuse(accepted.stream, shared);
        };
        // Counted before the push so the handler's decrement can never come first.
        shared.handler_open[h].fetch_add(1, Ordering::Relaxed);
        match self.handlers[h].push(accepted) {
            Ok(()) => {
                shared.metrics.listener.accepted.inc();
                woke[h % 64] = true;
            }
            Err(accepted) => {
                shared.handler_open[h].fetch_sub(1, Ordering::Relaxed);
                refuse(accepted.stream, shared);
            }
        }
    }
}

/// Empties a signal pipe.
fn empty(pipe: &mut UnixStream) {
    let mut sink = [0u8; 64];
    while matches!(pipe.read(&mut sink), Ok(n) if n > 0) {}
}

/// One line on stderr for `failed` accept errors, the last of kind `e` (at most one line a
/// second).
fn report(e: AcceptError, failed: u64, max_connections: u32) {
    let hint = match e {
        AcceptError::Emfile => {
            " (out of descriptors: the open-file limit is below what --max-connections and \
             the runners use; accepting pauses and resumes when one is free)"
        }
        AcceptError::Enfile => " (the system is out of descriptors; accepting pauses)",
        AcceptError::Enobufs | AcceptError::Enomem => " (out of memory; accepting pauses)",
        AcceptError::Econnaborted | AcceptError::Other => "",
    };
    log::warn!(
        "accept failed: {}{hint}; {failed} failed accepts since the last report; max \
         connections {max_connections}",
        e.label()
    );
}

/// Answers 503 and closes (best effort: the socket is new, its send buffer empty).
fn refuse(mut stream: Stream, shared: &Shared) {
    shared.metrics.listener.refused.inc();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let date = imf_fixdate(now);
    let mut store = [0u8; 256];
    let mut out = FixedBuf::new(&mut store);
    let simple = Simple {
        status: 503,
        keep_alive: false,
        head_only: false,
        date: &date,
        allow: None,
        retry_after_secs: Some(1),
    };
    if write_simple(&mut out, &simple).is_ok() {
        let _ = stream.write(out.as_slice());
    }
}
