//! The listener thread: accepts connections and hands each to the least-loaded handler
//! through that handler's SPSC ring, waking the handler only if it sleeps. It also receives
//! SIGINT/SIGTERM (through a self-pipe in its poll set) and turns them into a clean shutdown.

use std::io::{self, Read, Write};
use std::time::Duration;

use httpd_runner_core::response::{imf_fixdate, write_simple, Simple};
use httpd_runner_core::ring::Producer;
use httpd_runner_core::sync::Ordering;
use httpd_runner_core::text::FixedBuf;
use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token};

use crate::shared::Shared;
use crate::shutdown::Reason;
use httpd_runner_core::limits::{ACCEPT_BACKOFF_MS, ACCEPT_RING_SLOTS, MAX_HANDLERS};
use httpd_runner_core::sched::pick_handler;

pub(crate) const LISTENER: Token = Token(0);
pub(crate) const SIGNALS: Token = Token(1);
pub(crate) const WAKE: Token = Token(2);

/// How long to wait before retrying `accept` after the process ran out of descriptors or
/// memory: the pending connection stays in the backlog meanwhile, and nothing spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(ACCEPT_BACKOFF_MS);

/// Everything the listener thread owns.
pub(crate) struct ListenerThread {
    pub(crate) poll: Poll,
    pub(crate) listener: TcpListener,
    pub(crate) signals: UnixStream,
    pub(crate) handlers: Vec<Producer<'static, TcpStream, ACCEPT_RING_SLOTS>>,
    pub(crate) shared: &'static Shared,
}

impl ListenerThread {
    /// The thread body: accept until shutdown, then close the listening socket.
    pub(crate) fn run(mut self, ready: impl FnOnce()) -> io::Result<()> {
        let registry = self.poll.registry();
        registry.register(&mut self.listener, LISTENER, Interest::READABLE)?;
        registry.register(&mut self.signals, SIGNALS, Interest::READABLE)?;
        let mut events = Events::with_capacity(16);
        let mut backoff = false;
        ready();
        loop {
            let timeout = backoff.then_some(ACCEPT_BACKOFF);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in &events {
                if ev.token() == SIGNALS {
                    let mut sink = [0u8; 64];
                    while matches!(self.signals.read(&mut sink), Ok(n) if n > 0) {}
                    self.shared.shutdown.trigger(Reason::Signal);
                }
            }
            if self.shared.shutdown.is_requested() {
                // Dropping the listener closes the port: new connections are refused.
                return Ok(());
            }
            backoff = self.accept_all();
        }
    }

    /// Accepts until the backlog is empty. Returns `true` if accepting must be retried later
    /// (out of descriptors or memory).
    fn accept_all(&mut self) -> bool {
        let mut woke = [false; 64];
        let result = loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.hand_off(stream, &mut woke),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors or memory: retry after a pause. Anything else means the
                    // peer gave up before we accepted (ECONNABORTED and the like): go on.
                    if let Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) =
                        e.raw_os_error()
                    {
                        break true;
                    }
                }
            }
        };
        for (h, w) in woke.iter().enumerate().take(self.handlers.len()) {
            if *w && self.shared.handler_bells[h].should_wake() {
                self.shared.shutdown.wake_handler(h);
            }
        }
        result
    }

    fn hand_off(&mut self, stream: TcpStream, woke: &mut [bool; 64]) {
        let shared = self.shared;
        let mut open = [0usize; MAX_HANDLERS as usize];
        let open = &mut open[..self.handlers.len()];
        for (n, h) in open.iter_mut().zip(&shared.handler_open) {
            *n = h.load(Ordering::Relaxed);
        }
        let cap = shared.cfg.connections_per_handler();
        let max = shared.cfg.max_connections_open() as usize;
        let Some(h) = pick_handler(open, cap, max) else {
            return refuse(stream, shared);
        };
        let _ = stream.set_nodelay(true);
        // Counted before the push so the handler's decrement can never come first.
        shared.handler_open[h].fetch_add(1, Ordering::Relaxed);
        match self.handlers[h].push(stream) {
            Ok(()) => {
                shared.metrics.listener.accepted.inc();
                woke[h % 64] = true;
            }
            Err(stream) => {
                shared.handler_open[h].fetch_sub(1, Ordering::Relaxed);
                refuse(stream, shared);
            }
        }
    }
}

/// Answers 503 and closes (best effort: the socket is new, its send buffer empty).
fn refuse(mut stream: TcpStream, shared: &Shared) {
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
