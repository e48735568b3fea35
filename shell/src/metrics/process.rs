//! The standard process series (`process_*`) and `build_info`, read from the kernel when
//! `/metrics` is rendered: the process CPU clock, `/proc/self/statm`, `/proc/self/fd`, `getrlimit`.
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

/// User plus system CPU time of every thread, µs.
fn cpu_us() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0) / 1_000
}

/// Resident pages (the second field of `/proc/self/statm`) times the page size.
fn resident_bytes() -> u64 {
    let mut buf = [0u8; 128];
    let Ok(mut file) = std::fs::File::open("/proc/self/statm") else {
        return 0;
    };
    let Ok(n) = file.read(&mut buf) else {
        return 0;
    };
    let pages = buf[..n]
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|f| std::str::from_utf8(f).ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    pages * rustix::param::page_size() as u64
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
