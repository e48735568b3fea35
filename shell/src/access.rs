//! The access log (`--access-log`): handlers copy a fixed-size [`Record`] per response into
//! a ring of their own when its last byte is written; one thread drains the rings, formats
//! the lines into a buffer reserved at startup and writes them in large writes. A handler
//! never waits for it: with its ring full, the line is dropped and counted.
//!
//! The writer sleeps while the rings are empty, waking every [`IDLE_SLEEP`] at most, and at
//! once when a handler has pushed a quarter ring since it last woke it, so a burst after a
//! quiet spell is not lost to the sleep.

use std::fs::File;
use std::io::{self, Write};
use std::thread::Thread;
use std::time::Duration;

use httpd_runner_core::limits::{ACCESS_RING_RECORDS, ACCESS_WRITE_BYTES};
use httpd_runner_core::observe::{Record, Stamp};
use httpd_runner_core::ring::{Consumer, Producer, Ring};
use httpd_runner_core::text::FixedBuf;

use crate::config::AccessLog;
use crate::metrics::Counter;
use crate::shared::Shared;

/// The ring from one handler to the writer.
pub(crate) type AccessRing = Ring<Record, ACCESS_RING_RECORDS>;

/// Longest the writer sleeps with nothing to write.
const IDLE_SLEEP: Duration = Duration::from_millis(20);

/// A handler's end: where its records go.
pub(crate) struct AccessTx {
    ring: Producer<'static, Record, ACCESS_RING_RECORDS>,
    writer: Thread,
    /// Records pushed since the writer was last woken.
    since_wake: usize,
}

impl AccessTx {
    /// Queues `record` for the writer, or counts it in `dropped` when the ring is full.
    /// Every quarter ring of records pushed wakes the writer (a futex wake if it sleeps;
    /// checking the ring's fill instead would load the writer's cache line per record).
    #[inline]
    pub(crate) fn push(&mut self, record: Record, dropped: &Counter) {
        if self.ring.push(record).is_err() {
            dropped.inc();
            return;
        }
        self.since_wake += 1;
        if self.since_wake == ACCESS_RING_RECORDS / 4 {
            self.since_wake = 0;
            self.writer.unpark();
        }
    }
}

/// Where lines go.
pub(crate) enum Output {
    Stdout(io::Stdout),
    File(File),
}

impl Output {
    /// Opens the access log's destination (a file is appended to, created if missing).
    ///
    /// # Errors
    /// When the file cannot be opened; the message names the option and the path.
    pub(crate) fn open(to: &AccessLog) -> io::Result<Self> {
        match to {
            AccessLog::Stdout => Ok(Self::Stdout(io::stdout())),
            AccessLog::File(path) => File::options()
                .append(true)
                .create(true)
                .open(path)
                .map(Self::File)
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("--access-log {}: {e}", path.display()),
                    )
                }),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Stdout(s) => s.lock().write_all(bytes),
            Self::File(f) => f.write_all(bytes),
        }
    }
}

/// The writer thread's state.
pub(crate) struct AccessWriter {
    rings: Vec<Consumer<'static, Record, ACCESS_RING_RECORDS>>,
    out: Output,
    buf: Box<[u8]>,
    shared: &'static Shared,
    /// A write failed (logged once until one succeeds).
    failing: bool,
    /// The last line's timestamp.
    stamp: Stamp,
}

/// Makes one ring per handler: the writer's state with their consumer ends, and the
/// producer ends (each becomes a handler's [`AccessTx`] once the writer's thread exists).
pub(crate) fn rings(
    handlers: usize,
    out: Output,
    shared: &'static Shared,
) -> (
    AccessWriter,
    Vec<Producer<'static, Record, ACCESS_RING_RECORDS>>,
) {
    let (tx, rx): (Vec<_>, Vec<_>) = (0..handlers)
        .map(|_| Box::leak(Box::<AccessRing>::default()).split())
        .unzip();
    let writer = AccessWriter {
        rings: rx,
        out,
        buf: vec![0; ACCESS_WRITE_BYTES].into_boxed_slice(),
        shared,
        failing: false,
        stamp: Stamp::default(),
    };
    (writer, tx)
}

/// A handler's end of its ring, waking `writer` when it fills.
pub(crate) fn tx(ring: Producer<'static, Record, ACCESS_RING_RECORDS>, writer: Thread) -> AccessTx {
    AccessTx {
        ring,
        writer,
        since_wake: 0,
    }
}

impl AccessWriter {
    /// Bytes reserved for the access log with `handlers` handlers.
    pub(crate) const fn bytes(handlers: usize) -> usize {
        handlers * std::mem::size_of::<AccessRing>() + ACCESS_WRITE_BYTES
    }

    /// The thread body: drains the rings until the handlers have stopped (`stopped`) and
    /// the rings are empty.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut sleep = Duration::from_millis(1);
        loop {
            // Read before draining: what was pushed before the handlers stopped is drained by
            // this pass or was by an earlier one.
            let stopped = self.shared.shutdown.handlers_stopped();
            if self.drain() > 0 {
                sleep = Duration::from_millis(1);
                continue;
            }
            if stopped {
                return Ok(());
            }
            std::thread::park_timeout(sleep);
            sleep = (sleep * 2).min(IDLE_SLEEP);
        }
    }

    /// Formats and writes what the rings hold now, at most a ring's worth from each (so a
    /// busy handler does not hold back the others); returns how many records it took.
    fn drain(&mut self) -> usize {
        let epoch_us = self.shared.metrics.started_unix_us;
        let (mut taken, mut len, mut lines) = (0, 0, 0);
        for r in 0..self.rings.len() {
            for _ in 0..ACCESS_RING_RECORDS {
                let Some(record) = self.rings[r].pop() else {
                    break;
                };
                taken += 1;
                let mut out = FixedBuf::new(&mut self.buf[len..]);
                if record
                    .write_line_stamped(epoch_us, &mut self.stamp, &mut out)
                    .is_ok()
                {
                    len += out.len();
                } else {
                    // The buffer is full (a line is far shorter than it): write what is
                    // there, then format the line again at its start.
                    self.write(len, lines);
                    lines = 0;
                    let mut out = FixedBuf::new(&mut self.buf[..]);
                    let _ = record.write_line_stamped(epoch_us, &mut self.stamp, &mut out);
                    len = out.len();
                }
                lines += 1;
            }
        }
        self.write(len, lines);
        taken
    }

    /// Writes the first `len` bytes of the buffer, `lines` lines: counted when written; a
    /// failure is logged (once until a write succeeds) and its lines are lost.
    fn write(&mut self, len: usize, lines: u64) {
        if len == 0 {
            return;
        }
        match self.out.write_all(&self.buf[..len]) {
            Ok(()) => {
                self.failing = false;
                self.shared.metrics.access_lines.add(lines);
            }
            Err(e) if !self.failing => {
                self.failing = true;
                // The error's kind and number: its text would be formatted into a `String`.
                log::error!(
                    "access log: a write failed ({:?}, os error {}); {lines} lines lost",
                    e.kind(),
                    e.raw_os_error().unwrap_or(0)
                );
            }
            Err(_) => {}
        }
    }
}
