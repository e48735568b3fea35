//! The logger behind the `log` facade, for rare events only (startup, accept errors, panics,
//! stalls, bursts of shedding or expiry, shutdown progress): each line is formatted into a
//! fixed buffer on the stack and written to stderr with one `write`, so logging allocates
//! nothing and lines from different threads never interleave.
//!
//! A line is `TIME LEVEL MESSAGE`, the time in RFC 3339 UTC with microseconds; a message
//! longer than [`LOG_LINE_BYTES`] is cut and ends with `...`. `--log-level` sets the most
//! verbose level written; lines per level are counted for `/metrics`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use httpd_runner_core::limits::LOG_LINE_BYTES;
use httpd_runner_core::observe::timestamp;
use log::{LevelFilter, Log, Metadata, Record};

/// The process's logger.
static LOGGER: Logger = Logger {
    lines: [const { AtomicU64::new(0) }; 5],
};

struct Logger {
    /// Lines written, by level (error first).
    lines: [AtomicU64; 5],
}

/// Whether this logger is the process's (an embedding program may have set its own).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the logger and a panic hook that logs the thread, place and message of a panic
/// as an error, then sets the level. Once per process: a later call only sets the level; when
/// the program already has a logger of its own, it is left alone, level included.
pub(crate) fn init(level: LevelFilter) {
    if log::set_logger(&LOGGER).is_ok() {
        // Relaxed: only whether to set the level depends on it, and `set_logger` itself
        // publishes the logger to every thread.
        INSTALLED.store(true, Ordering::Relaxed);
        std::panic::set_hook(Box::new(|info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("unnamed");
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            match info.location() {
                Some(at) => log::error!("panic in thread {name} at {at}: {message}"),
                None => log::error!("panic in thread {name}: {message}"),
            }
        }));
    }
    if INSTALLED.load(Ordering::Relaxed) {
        log::set_max_level(level);
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = Line {
            buf: [0; LOG_LINE_BYTES],
            len: 0,
            cut: false,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let _ = line.write_str(std::str::from_utf8(&timestamp(now)).unwrap_or("-"));
        let _ = write!(line, " {:<5} {}", record.level(), record.args());
        let bytes = line.finish();
        self.lines[record.level() as usize - 1].fetch_add(1, Ordering::Relaxed);
        let _ = std::io::stderr().lock().write_all(bytes);
    }

    fn flush(&self) {}
}

/// A line being formatted: what does not fit is cut.
struct Line {
    buf: [u8; LOG_LINE_BYTES],
    len: usize,
    cut: bool,
}

impl Line {
    /// The line with its newline (and `...` where it was cut).
    fn finish(&mut self) -> &[u8] {
        const CUT: &[u8] = b"...\n";
        if self.cut || self.len + 1 > self.buf.len() {
            self.len = self.len.min(self.buf.len() - CUT.len());
            self.buf[self.len..self.len + CUT.len()].copy_from_slice(CUT);
            self.len += CUT.len();
        } else {
            self.buf[self.len] = b'\n';
            self.len += 1;
        }
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        // A newline inside a message would forge a line, and other control bytes could
        // drive a terminal (a panic message may carry request bytes): a newline is written as
        // a space, the others as `?`.
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.cut = true;
                return Ok(());
            }
            self.buf[self.len] = match b {
                b'\n' => b' ',
                b'\t' => b,
                _ if b < 0x20 || b == 0x7f => b'?',
                _ => b,
            };
            self.len += 1;
        }
        Ok(())
    }
}

/// Writes `log_lines_total{level}`.
pub(crate) fn render(out: &mut impl std::fmt::Write) -> std::fmt::Result {
    writeln!(
        out,
        "# HELP httpd_runner_log_lines_total Log lines written to stderr, by level.\n\
         # TYPE httpd_runner_log_lines_total counter"
    )?;
    for (n, label) in LOGGER
        .lines
        .iter()
        .zip(["error", "warn", "info", "debug", "trace"])
    {
        let n = n.load(Ordering::Relaxed);
        writeln!(out, "httpd_runner_log_lines_total{{level=\"{label}\"}} {n}")?;
    }
    Ok(())
}

/// Microseconds shown as milliseconds with one decimal (`50.2 ms`).
pub(crate) struct Millis(pub u64);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{} ms", self.0 / 1000, self.0 % 1000 / 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Vec<u8> {
        let mut l = Line {
            buf: [0; LOG_LINE_BYTES],
            len: 0,
            cut: false,
        };
        let _ = l.write_str(text);
        l.finish().to_vec()
    }

    #[test]
    fn lines_end_in_one_newline_and_long_ones_are_cut() {
        assert_eq!(line("runner 0 stalled"), b"runner 0 stalled\n");
        assert_eq!(line("a\nb"), b"a b\n");
        assert_eq!(line("a\r\x1b[2Jb\tc"), b"a??[2Jb\tc\n");
        let long = "x".repeat(LOG_LINE_BYTES * 2);
        let cut = line(&long);
        assert_eq!(cut.len(), LOG_LINE_BYTES);
        assert!(cut.ends_with(b"x...\n"));
        let exact = "y".repeat(LOG_LINE_BYTES);
        assert!(line(&exact).ends_with(b"y...\n"));
    }

    #[test]
    fn milliseconds_show_one_decimal() {
        assert_eq!(Millis(50_234).to_string(), "50.2 ms");
        assert_eq!(Millis(999).to_string(), "0.9 ms");
    }
}
