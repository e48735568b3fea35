//! The standard process series (`process_*`) and `build_info`, read from the kernel when
//! `/metrics` is rendered: `/proc/self/stat`, `/proc/self/status`, `/proc/self/fd`,
//! `getrlimit`.
//! Each read uses a stack buffer and allocates nothing; a value the kernel does not give
//! is rendered as 0 rather than left out, so the series are always there.

use std::fmt::Write;
use std::io::Read;
use std::mem::MaybeUninit;

use rustix::fs::{Mode, OFlags, RawDir, CWD};

use super::{family, Metrics, Seconds, P};

impl Metrics {
    pub(super) fn render_process(&self, out: &mut impl Write) -> std::fmt::Result {
        let series: [(&str, &str, &str, Value); 5] = [
            (
                "process_cpu_seconds_total",
                "counter",
                "User and system CPU time the process used.",
                Value::Seconds(cpu_us()),
            ),
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory of the process.",
                Value::Count(resident_bytes()),
            ),
            (
                "process_open_fds",
                "gauge",
                "File descriptors the process has open.",
                Value::Count(open_fds()),
            ),
            (
                "process_max_fds",
                "gauge",
                "The process's limit of open file descriptors.",
                Value::Count(max_fds()),
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "When the process started, in seconds since the Unix epoch.",
                Value::Seconds(self.started_unix_us),
            ),
        ];
        for (name, kind, help, value) in series {
            writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}")?;
            match value {
                Value::Seconds(us) => writeln!(out, "{name} {}", Seconds(us))?,
                Value::Count(n) => writeln!(out, "{name} {n}")?,
            }
        }
        family(
            out,
            "build_info",
            "gauge",
            "Always 1; the version of the server binary is its label.",
        )?;
        writeln!(
            out,
            "{P}_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )
    }
}

enum Value {
    Seconds(u64),
    Count(u64),
}

/// Reads a small `/proc` file into `buf`; empty when it cannot be read.
fn read_proc<'b>(path: &str, buf: &'b mut [u8]) -> &'b [u8] {
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(buf))
        .unwrap_or(0);
    &buf[..n]
}

/// User plus system CPU time of every thread, µs: fields 14 and 15 of `/proc/self/stat`, in
/// clock ticks of 1/100 s (`USER_HZ`, fixed at 100 by the Linux ABI).
fn cpu_us() -> u64 {
    let mut buf = [0u8; 1024];
    let stat = read_proc("/proc/self/stat", &mut buf);
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let Some(end) = stat.iter().rposition(|&b| b == b')') else {
        return 0;
    };
    let mut fields = stat[end + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    // After the name: state is field 3, so utime (14) is the 12th, stime the 13th.
    let mut ticks = fields.by_ref().skip(11).take(2).map(number);
    let (user, system) = (ticks.next().unwrap_or(0), ticks.next().unwrap_or(0));
    (user + system) * 10_000
}

/// Resident memory: `VmRSS` of `/proc/self/status`, in kB.
fn resident_bytes() -> u64 {
    let mut buf = [0u8; 4096];
    let status = read_proc("/proc/self/status", &mut buf);
    status
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"VmRSS:"))
        .map_or(0, |v| {
            let digits = v.split(u8::is_ascii_whitespace).find(|f| !f.is_empty());
            digits.map_or(0, number) * 1024
        })
}

/// A decimal field (0 when it is not one).
fn number(field: &[u8]) -> u64 {
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Entries of `/proc/self/fd`, less the one this count opens.
fn open_fds() -> u64 {
    let Ok(dir) = rustix::fs::openat(
        CWD,
        "/proc/self/fd",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return 0;
    };
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut entries = RawDir::new(&dir, &mut buf);
    let mut n = 0u64;
    while let Some(Ok(entry)) = entries.next() {
        if !matches!(entry.file_name().to_bytes(), b"." | b"..") {
            n += 1;
        }
    }
    n.saturating_sub(1)
}

/// The soft limit of open descriptors.
fn max_fds() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}
