//! What the server observes of itself, decided without a clock: latency buckets, status
//! classes, what counts as a stall, how often a burst of like events is logged, and the
//! access log's fixed-size record and its line.
//!
//! The shell reads the clock and passes microseconds in; everything here is a pure function
//! of its arguments, so each rule is tested with explicit times.

use core::fmt::{self, Write};

use crate::limits::{ACCESS_TARGET_BYTES, LATENCY_BOUNDS};
use crate::text::FixedBuf;

/// The latency histogram bucket of `us` microseconds: the least `k` with `us <= 2^k`, or
/// [`LATENCY_BOUNDS`] (the `+Inf` bucket) past the last bound. Buckets double from 1 µs, so
/// the index is one count of leading zeros, with no search.
#[inline]
#[must_use]
pub const fn bucket_of(us: u64) -> usize {
    if us <= 1 {
        return 0;
    }
    let k = (u64::BITS - (us - 1).leading_zeros()) as usize;
    if k < LATENCY_BOUNDS {
        k
    } else {
        LATENCY_BOUNDS
    }
}

/// The upper bound of bucket `k` (below [`LATENCY_BOUNDS`]), in microseconds.
#[must_use]
pub const fn bound_us(k: usize) -> u64 {
    1 << k
}

/// Status classes, as labelled in metrics (`1xx` .. `5xx`).
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index in [`STATUS_CLASSES`] of `status`; anything outside 100-599 counts as `5xx`.
#[inline]
#[must_use]
pub const fn status_class(status: u16) -> usize {
    match status / 100 {
        1..=4 => (status / 100 - 1) as usize,
        _ => 4,
    }
}

/// Whether a runner call that took `us` microseconds is a stall under `threshold_us`
/// (0: the detector is off).
#[inline]
#[must_use]
pub const fn is_stall(us: u64, threshold_us: u64) -> bool {
    threshold_us != 0 && us > threshold_us
}

/// Rate limit for a log line about a kind of event that can come in bursts (shedding,
/// expiry): the first event after a quiet window is reported at once; the ones after it
/// within the window are held and reported together when the window ends, so a burst of
/// any size costs one line per window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Burst {
    /// Until when (ms) events are held rather than reported.
    quiet_until_ms: u64,
    /// Events held since the last report.
    held: u64,
}

impl Burst {
    /// Notes one event at `now_ms`. Returns how many events to report now (this one and any
    /// held), or `None` while the window since the last report is open.
    pub fn note(&mut self, now_ms: u64, window_ms: u64) -> Option<u64> {
        self.held += 1;
        self.report(now_ms, window_ms)
    }

    /// Whether events are held (cheap: checked every loop turn).
    #[inline]
    #[must_use]
    pub const fn holds(&self) -> bool {
        self.held != 0
    }

    /// Reports the held events once their window ended at `now_ms`.
    pub fn flush(&mut self, now_ms: u64, window_ms: u64) -> Option<u64> {
        if self.held == 0 {
            return None;
        }
        self.report(now_ms, window_ms)
    }

    fn report(&mut self, now_ms: u64, window_ms: u64) -> Option<u64> {
        if now_ms < self.quiet_until_ms {
            return None;
        }
        self.quiet_until_ms = now_ms.saturating_add(window_ms);
        Some(core::mem::take(&mut self.held))
    }
}

/// Bytes of a UTC timestamp with microseconds: `2026-12-03T05:51:00.123456Z`.
pub const TIMESTAMP_LEN: usize = 27;

/// Formats microseconds since the Unix epoch as an RFC 3339 UTC timestamp.
#[must_use]
pub fn timestamp(unix_us: u64) -> [u8; TIMESTAMP_LEN] {
    let secs = unix_us / 1_000_000;
    let (year, month, day) = crate::response::civil(secs / 86_400);
    let in_day = secs % 86_400;
    let mut out = *b"1970-01-01T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut n: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, in_day / 3600);
    put(14, 2, in_day / 60 % 60);
    put(17, 2, in_day % 60);
    put(20, 6, unix_us % 1_000_000);
    out
}

/// A client's address as the access log shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Peer {
    /// Not known (shown as `-`).
    #[default]
    Unknown,
    /// An IPv4 address and port.
    V4([u8; 4], u16),
    /// An IPv6 address and port.
    V6([u8; 16], u16),
    /// A Unix-socket client (shown as `unix`).
    Unix,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Unknown => f.write_str("-"),
            Self::Unix => f.write_str("unix"),
            Self::V4(ip, port) => write!(f, "{}.{}.{}.{}:{port}", ip[0], ip[1], ip[2], ip[3]),
            Self::V6(ip, port) => {
                f.write_str("[")?;
                for (i, pair) in ip.chunks_exact(2).enumerate() {
                    if i > 0 {
                        f.write_str(":")?;
                    }
                    write!(f, "{:x}", u16::from_be_bytes([pair[0], pair[1]]))?;
                }
                write!(f, "]:{port}")
            }
        }
    }
}

/// `Record::runner` of a request no runner answered.
pub const NO_RUNNER: u16 = u16::MAX;

/// One access-log line as a fixed-size record: what a handler copies into its ring when a
/// response's last byte is written, and the access-log thread formats.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// When the last byte was written, µs since the server started.
    pub at_us: u64,
    /// The client.
    pub peer: Peer,
    /// Status sent.
    pub status: u16,
    /// The runner that answered, or [`NO_RUNNER`].
    pub runner: u16,
    /// Response bytes written (head and body).
    pub bytes: u64,
    /// From the request's arrival to the last byte written, µs.
    pub micros: u64,
    /// Bytes of the method at the start of `text`.
    pub method_len: u8,
    /// Bytes of the target after the method in `text` (cut at [`ACCESS_TARGET_BYTES`]).
    pub target_len: u16,
    /// Whether the target was longer than the record holds.
    pub target_cut: bool,
    /// Method then target.
    pub text: [u8; 16 + ACCESS_TARGET_BYTES],
}

impl Default for Record {
    fn default() -> Self {
        Self {
            at_us: 0,
            peer: Peer::Unknown,
            status: 0,
            runner: NO_RUNNER,
            bytes: 0,
            micros: 0,
            method_len: 0,
            target_len: 0,
            target_cut: false,
            text: [0; 16 + ACCESS_TARGET_BYTES],
        }
    }
}

impl Record {
    /// Sets the method and target (either may be empty: a request refused before its head
    /// was parsed). A longer method than the record holds is cut too.
    pub fn set_request(&mut self, method: &[u8], target: &[u8]) {
        let m = method.len().min(16);
        self.text[..m].copy_from_slice(&method[..m]);
        let t = target.len().min(ACCESS_TARGET_BYTES);
        self.text[m..m + t].copy_from_slice(&target[..t]);
        self.method_len = m as u8;
        self.target_len = t as u16;
        self.target_cut = target.len() > t;
    }

    /// Sets the method and target from a request head (its request line first).
    pub fn set_request_line(&mut self, head: &[u8]) {
        let line = head
            .split(|&b| b == b'\r' || b == b'\n')
            .next()
            .unwrap_or(&[]);
        let mut words = line.splitn(3, |&b| b == b' ');
        let method = words.next().unwrap_or(&[]);
        let target = words.next().unwrap_or(&[]);
        self.set_request(method, target);
    }

    /// The method as recorded.
    #[must_use]
    pub fn method(&self) -> &[u8] {
        &self.text[..self.method_len as usize]
    }

    /// The target as recorded.
    #[must_use]
    pub fn target(&self) -> &[u8] {
        let m = self.method_len as usize;
        &self.text[m..m + self.target_len as usize]
    }

    /// Writes the line: `TIME PEER METHOD TARGET STATUS BYTES MICROS RUNNER\n`, with `-` for
    /// what is not known and `...` after a cut target; `epoch_us` is the server's start in
    /// µs since the Unix epoch. Bytes outside printable ASCII are written as `?` (a target
    /// passed the parser, but the log must not carry control bytes whatever happens).
    ///
    /// # Errors
    /// When `out` is full.
    pub fn write_line(&self, epoch_us: u64, out: &mut FixedBuf<'_>) -> fmt::Result {
        self.write_line_stamped(epoch_us, &mut Stamp::default(), out)
    }

    /// [`write_line`](Self::write_line) with the timestamp's date and time of day taken
    /// from `stamp` while the second is the same (a writer formats many lines a second).
    ///
    /// # Errors
    /// When `out` is full.
    pub fn write_line_stamped(
        &self,
        epoch_us: u64,
        stamp: &mut Stamp,
        out: &mut FixedBuf<'_>,
    ) -> fmt::Result {
        let full = |_| fmt::Error;
        out.extend_from_slice(stamp.at(epoch_us.saturating_add(self.at_us)))
            .map_err(full)?;
        out.extend_from_slice(b" ").map_err(full)?;
        match self.peer {
            Peer::V4(ip, port) => {
                for (i, octet) in ip.iter().enumerate() {
                    out.push_decimal(u64::from(*octet)).map_err(full)?;
                    out.extend_from_slice(if i < 3 { b"." } else { b":" })
                        .map_err(full)?;
                }
                out.push_decimal(u64::from(port)).map_err(full)?;
            }
            other => write!(out, "{other}")?,
        }
        out.extend_from_slice(b" ").map_err(full)?;
        for (part, cut) in [(self.method(), false), (self.target(), self.target_cut)] {
            if part.is_empty() {
                out.extend_from_slice(b"-").map_err(full)?;
            } else if part.iter().all(u8::is_ascii_graphic) {
                out.extend_from_slice(part).map_err(full)?;
            } else {
                for &b in part {
                    let b = if b.is_ascii_graphic() { b } else { b'?' };
                    out.extend_from_slice(&[b]).map_err(full)?;
                }
            }
            if cut {
                out.extend_from_slice(b"...").map_err(full)?;
            }
            out.extend_from_slice(b" ").map_err(full)?;
        }
        for n in [u64::from(self.status), self.bytes, self.micros] {
            out.push_decimal(n).map_err(full)?;
            out.extend_from_slice(b" ").map_err(full)?;
        }
        if self.runner != NO_RUNNER {
            out.push_decimal(u64::from(self.runner)).map_err(full)?;
        } else {
            out.extend_from_slice(b"-").map_err(full)?;
        }
        out.extend_from_slice(b"\n").map_err(full)
    }
}

/// The last timestamp formatted: its second, and its text.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    second: u64,
    text: [u8; TIMESTAMP_LEN],
}

impl Default for Stamp {
    fn default() -> Self {
        Self {
            second: u64::MAX,
            text: [0; TIMESTAMP_LEN],
        }
    }
}

impl Stamp {
    /// The RFC 3339 text of `unix_us`: the date and time of day formatted again only when
    /// the second changes, the microseconds always.
    pub fn at(&mut self, unix_us: u64) -> &[u8; TIMESTAMP_LEN] {
        let second = unix_us / 1_000_000;
        if second != self.second {
            self.second = second;
            self.text = timestamp(unix_us);
        } else {
            let mut n = unix_us % 1_000_000;
            for d in self.text[20..26].iter_mut().rev() {
                *d = b'0' + (n % 10) as u8;
                n /= 10;
            }
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_double_from_one_microsecond_to_the_last_bound() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4), 2);
        assert_eq!(bucket_of(5), 3);
        for k in 0..LATENCY_BOUNDS {
            assert_eq!(bucket_of(bound_us(k)), k, "at the bound {k}");
            assert_eq!(bucket_of(bound_us(k) + 1), k + 1, "past the bound {k}");
        }
        assert_eq!(bucket_of(u64::MAX), LATENCY_BOUNDS);
        // A bucket at or below 5 µs exists, and the last bound is past 5 s.
        assert!(bound_us(2) <= 5);
        assert!(bound_us(LATENCY_BOUNDS - 1) >= 5_000_000);
    }

    #[test]
    fn statuses_fall_in_their_class_and_strange_ones_in_5xx() {
        let cases = [
            (100, "1xx"),
            (200, "2xx"),
            (204, "2xx"),
            (304, "3xx"),
            (404, "4xx"),
            (499, "4xx"),
            (503, "5xx"),
            (0, "5xx"),
            (99, "5xx"),
            (600, "5xx"),
        ];
        for (status, class) in cases {
            assert_eq!(STATUS_CLASSES[status_class(status)], class, "{status}");
        }
    }

    #[test]
    fn a_stall_is_strictly_past_the_threshold_and_never_when_off() {
        assert!(!is_stall(10_000, 10_000));
        assert!(is_stall(10_001, 10_000));
        assert!(!is_stall(u64::MAX, 0));
    }

    #[test]
    fn a_burst_costs_one_report_per_window() {
        let mut b = Burst::default();
        // The first event is reported at once.
        assert_eq!(b.note(5_000, 1_000), Some(1));
        // The rest of the window is held.
        for t in 5_001..5_100 {
            assert_eq!(b.note(t, 1_000), None);
        }
        assert!(b.holds());
        assert_eq!(b.flush(5_999, 1_000), None);
        // At the window's end, the held ones are reported together, and a new window opens.
        assert_eq!(b.flush(6_000, 1_000), Some(99));
        assert!(!b.holds());
        assert_eq!(b.flush(9_000, 1_000), None);
        assert_eq!(b.note(6_500, 1_000), None);
        assert_eq!(b.note(7_000, 1_000), Some(2));
        // After a quiet spell the next event is again reported at once.
        assert_eq!(b.note(60_000, 1_000), Some(1));
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        assert_eq!(&timestamp(0), b"1970-01-01T00:00:00.000000Z");
        // 2026-12-03T05:51:07.000042Z
        assert_eq!(
            &timestamp(1_796_277_067_000_042),
            b"2026-12-03T05:51:07.000042Z"
        );
        assert_eq!(
            &timestamp(951_782_400_999_999),
            b"2000-02-29T00:00:00.999999Z"
        );
    }

    #[test]
    fn a_stamp_matches_a_fresh_timestamp_across_seconds() {
        let mut stamp = Stamp::default();
        for us in [
            1_796_277_067_000_042,
            1_796_277_067_999_999,
            1_796_277_068_000_000,
            1_796_277_068_000_001,
            951_782_400_999_999,
        ] {
            assert_eq!(stamp.at(us), &timestamp(us), "{us}");
        }
    }

    fn line(r: &Record) -> heapless::String<512> {
        let mut buf = [0u8; 512];
        let mut out = FixedBuf::new(&mut buf);
        r.write_line(1_796_277_067_000_000, &mut out).unwrap();
        let mut s = heapless::String::new();
        s.push_str(core::str::from_utf8(out.as_slice()).unwrap())
            .unwrap();
        s
    }

    #[test]
    fn access_lines_carry_every_field_and_dashes_for_the_unknown() {
        let mut r = Record {
            at_us: 1_500,
            peer: Peer::V4([127, 0, 0, 1], 40_000),
            status: 200,
            runner: 1,
            bytes: 75,
            micros: 12,
            ..Record::default()
        };
        r.set_request(b"GET", b"/run/k?x=1");
        assert_eq!(
            line(&r).as_str(),
            "2026-12-03T05:51:07.001500Z 127.0.0.1:40000 GET /run/k?x=1 200 75 12 1\n"
        );
        let mut v6 = Record {
            peer: Peer::V6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 8),
            status: 400,
            ..Record::default()
        };
        v6.set_request(b"", b"");
        assert_eq!(
            line(&v6).as_str(),
            "2026-12-03T05:51:07.000000Z [0:0:0:0:0:0:0:1]:8 - - 400 0 0 -\n"
        );
    }

    #[test]
    fn the_request_line_gives_method_and_target() {
        let mut r = Record::default();
        r.set_request_line(b"POST /run/a?b=c HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((r.method(), r.target()), (&b"POST"[..], &b"/run/a?b=c"[..]));
        r.set_request_line(b"");
        assert_eq!((r.method(), r.target()), (&b""[..], &b""[..]));
        r.set_request_line(b"GET\r\n");
        assert_eq!((r.method(), r.target()), (&b"GET"[..], &b""[..]));
    }

    #[test]
    fn long_targets_are_cut_and_control_bytes_never_reach_the_log() {
        let mut r = Record::default();
        let mut long = [b'a'; ACCESS_TARGET_BYTES + 10];
        long[0] = b'/';
        long[1] = b'\n';
        r.set_request(b"POST", &long);
        assert_eq!(r.target().len(), ACCESS_TARGET_BYTES);
        let l = line(&r);
        assert!(l.contains(" POST /?aaa"), "{l}");
        assert!(l.contains("a... 0 0 0 -\n"), "{l}");
        assert_eq!(l.matches('\n').count(), 1);
    }
}
