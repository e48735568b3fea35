//! The access log (`--access-log`): handlers copy a fixed-size [`Record`] per response into
//! a ring of their own when its last byte is written; one thread drains the rings, formats
//! the lines into a buffer reserved at startup and writes them in large writes. A handler
//! never waits for it: with its ring full, the line is dropped and counted.
//!
//! The writer sleeps while the rings are empty, waking every [`IDLE_SLEEP`] at most, and at
//! once when a handler's ring passes half full, so a burst after a quiet spell is not lost
//! to the sleep.

use std::fs::File;
use std::io::{self, Write};
use std::thread::Thread;
use std::time::Duration;

use httpd_runner_core::limits::{ACCESS_RING_RECORDS, ACCESS_WRITE_BYTES};
use httpd_runner_core::observe::Record;
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
}

impl AccessTx {
    /// Queues `record` for the writer, or counts it in `dropped` when the ring is full.
    #[inline]
    pub(crate) fn push(&mut self, record: Record, dropped: &Counter) {
        if self.ring.push(record).is_err() {
            dropped.inc();
        } else if self.ring.len() == ACCESS_RING_RECORDS / 2 {
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
    };
    (writer, tx)
}

/// A handler's end of its ring, waking `writer` when it fills.
pub(crate) fn tx(ring: Producer<'static, Record, ACCESS_RING_RECORDS>, writer: Thread) -> AccessTx {
    AccessTx { ring, writer }
}

impl AccessWriter {
    /// Bytes reserved for the access log with `handlers` handlers.
    pub(crate) const fn bytes(handlers: usize) -> usize {
        handlers * std::mem::size_of::<AccessRing>() + ACCESS_WRITE_BYTES
    }

    /// The thread body: drains the rings until every handler has finished and they are
    /// empty. A failed write is logged (once), and its lines are not counted as written.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut failed = false;
        let mut sleep = Duration::from_millis(1);
        loop {
            // Read before draining: records pushed before the handlers finished are drained
            // by this pass or were by an earlier one.
            let finished = self.shared.shutdown.handlers_finished();
            let (lines, result) = self.drain();
            match result {
                Ok(()) => self.shared.metrics.access_lines.add(lines),
                Err(e) if !failed => {
                    log::error!(
                        "access log: write failed ({e}); lines are lost until writes succeed again"
                    );
                    failed = true;
                }
                Err(_) => {}
            }
            if lines > 0 {
                sleep = Duration::from_millis(1);
                continue;
            }
            if finished {
                return Ok(());
            }
            std::thread::park_timeout(sleep);
            sleep = (sleep * 2).min(IDLE_SLEEP);
        }
    }

    /// Formats and writes what the rings hold now; returns the lines written.
    fn drain(&mut self) -> (u64, io::Result<()>) {
        let epoch_us = self.shared.metrics.started_unix_us;
        let mut lines = 0;
        let mut len = 0;
        for ring in &mut self.rings {
            while let Some(record) = ring.pop() {
                let mut out = FixedBuf::new(&mut self.buf[len..]);
                if record.write_line(epoch_us, &mut out).is_err() {
                    // The buffer is full: write it, then format the line again at its start.
                    if let Err(e) = self.out.write_all(&self.buf[..len]) {
                        return (lines, Err(e));
                    }
                    let mut out = FixedBuf::new(&mut self.buf[..]);
                    // A line is far shorter than the buffer.
                    let _ = record.write_line(epoch_us, &mut out);
                    len = out.len();
                } else {
                    len += out.len();
                }
                lines += 1;
            }
        }
        if len > 0 {
            if let Err(e) = self.out.write_all(&self.buf[..len]) {
                return (lines, Err(e));
            }
        }
        (lines, Ok(()))
    }
}
