//! Command-line options (each also read from `HTTPD_RUNNER_<NAME>`), checked before anything
//! starts. A bad value makes clap print what is wrong and exit with status 2.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use httpd_runner_core::conn::ConnConfig;
use httpd_runner_core::limits::{self, Limits, MAX_PIPELINE};

/// Most jobs one handler may have at one runner at a time: the compile-time size of each
/// handler-to-runner ring (`--ring-capacity` chooses how much of it is used).
pub const RING_SLOTS: usize = 1024;

/// Most connections the listener can queue for one handler before it answers 503.
pub const ACCEPT_RING_SLOTS: usize = 4096;

/// A connection's read buffer holds the head limit plus this much, so pipelined requests and
/// the start of a body can arrive with a head in one read.
pub const READ_SLACK_BYTES: usize = 8192;

/// Largest body limit accepted by `--max-body-bytes` (64 MiB).
const MAX_BODY_LIMIT: u64 = 64 << 20;

/// Which built-in runner answers `/run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerKind {
    /// Echo the request body with its Content-Type.
    Echo,
    /// Echo after this many milliseconds of (simulated) work.
    Delay(u64),
}

fn parse_runner(s: &str) -> Result<RunnerKind, String> {
    match s {
        "echo" => Ok(RunnerKind::Echo),
        _ => match s.strip_prefix("delay=") {
            Some(ms) => ms
                .parse::<u64>()
                .ok()
                .filter(|&ms| ms <= 60_000)
                .map(RunnerKind::Delay)
                .ok_or_else(|| {
                    format!("`{s}`: delay must be 0..=60000 milliseconds, as in delay=5")
                }),
            None => Err(format!("`{s}`: expected `echo` or `delay=MS`")),
        },
    }
}

/// A duration: `250ms`, `10s`, `2m`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a duration like 250ms, 10s or 2m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s or m)")),
    };
    if d.is_zero() || d > Duration::from_secs(24 * 3600) {
        return Err(format!("`{s}`: must be between 1ms and 24h"));
    }
    Ok(d)
}

/// `--shed-after`: a duration, or `off` (zero).
fn parse_shed_after(s: &str) -> Result<Duration, String> {
    if s == "off" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// httpd-runner: a fixed-memory HTTP/1.1 server that runs your code on pinned cores.
///
/// Routes: POST/GET /run (the runner; the default echoes the body), POST /shutdown (stop
/// cleanly), GET /metrics (Prometheus text), GET /health. Every option can also be set through
/// the environment variable named in brackets.
#[derive(Debug, Clone, Parser)]
#[command(name = "httpd-runner", version, about, long_about = None, allow_negative_numbers = true)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (the banner shows the real one).
    #[arg(long, env = "HTTPD_RUNNER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Handler threads (HTTP parsing and socket I/O). They are not pinned, but while a
    /// handler serves one connection at a time (1024 loop turns in a row) it keeps off the
    /// pinned runners' cores, if it has others, and goes back to all cores at once when load
    /// returns. [default: 1]
    #[arg(long, env = "HTTPD_RUNNER_HANDLERS", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub handlers: Option<u16>,

    /// Runner threads, pinned to cores 0, 1, ... [default: available cores minus handler
    /// threads, at least 1, so that handlers keep a core of their own]
    #[arg(long, env = "HTTPD_RUNNER_RUNNERS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub runners: Option<u16>,

    /// Pin runner N to core N (modulo the core count). On by default.
    #[arg(long, env = "HTTPD_RUNNER_PIN", overrides_with = "no_pin", default_value_t = true, action = clap::ArgAction::SetTrue)]
    pub pin: bool,

    /// Do not pin runners to cores.
    #[arg(long = "no-pin", env = "HTTPD_RUNNER_NO_PIN", action = clap::ArgAction::SetTrue)]
    pub no_pin: bool,

    /// Most open connections; beyond it new connections get 503 and are closed.
    #[arg(long, env = "HTTPD_RUNNER_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Largest request (and response) body in bytes; larger requests get 413.
    #[arg(long, env = "HTTPD_RUNNER_MAX_BODY_BYTES", default_value_t = 102_400, value_parser = clap::value_parser!(u64).range(0..=MAX_BODY_LIMIT))]
    pub max_body_bytes: u64,

    /// Largest request head (request line and header fields) in bytes; larger gets 431.
    #[arg(long, env = "HTTPD_RUNNER_MAX_HEAD_BYTES", default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(256..=65_536))]
    pub max_head_bytes: u64,

    /// Request slots per handler: requests in flight (parsed, not yet answered) per handler.
    /// Each reserves one head and two body buffers. While a connection holding none has
    /// waited 5 ms for one, connections holding one leave it the last eighth. A connection
    /// that finds none waits in arrival order, up to `--shed-after`, then gets 503.
    #[arg(long, env = "HTTPD_RUNNER_SLOTS", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub slots: u32,

    /// Jobs one handler may queue at one runner; beyond it requests are shed with 503 and
    /// `Retry-After`. Below `--slots` a pipelining client can get 503s while runners keep up
    /// (the banner notes it). [default: `--slots`, at most 1024]
    #[arg(long, env = "HTTPD_RUNNER_RING_CAPACITY", value_parser = clap::value_parser!(u32).range(1..=RING_SLOTS as i64))]
    pub ring_capacity: Option<u32>,

    /// Microseconds an idle runner keeps polling its rings (yielding the core between checks)
    /// before it sleeps, while requests arrive one at a time (each handler serving one
    /// connection per turn). A request that arrives within the window skips the runner's
    /// wake-up (on a 2-core test machine, p50 with one connection went from 26-30 to 11 us).
    /// Under load runners sleep at once, and a poll stops early when another thread wants the
    /// core. 0: never poll.
    #[arg(long, env = "HTTPD_RUNNER_SPIN_US", default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub spin_us: u32,

    /// Requests one connection may have in flight (HTTP/1.1 pipelining depth).
    #[arg(long, env = "HTTPD_RUNNER_MAX_PIPELINE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..MAX_PIPELINE as i64))]
    pub max_pipeline: u32,

    /// Time for a whole request head to arrive (a deadline from its first byte); then 408.
    #[arg(long, env = "HTTPD_RUNNER_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub header_timeout: Duration,

    /// Longest pause while a request body arrives; then 408.
    #[arg(long, env = "HTTPD_RUNNER_BODY_TIMEOUT", default_value = "10s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub body_timeout: Duration,

    /// Idle keep-alive connections close after this (also the limit for unread responses).
    #[arg(long, env = "HTTPD_RUNNER_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub idle_timeout: Duration,

    /// Time in-flight requests get to finish once shutdown starts; then connections close.
    #[arg(long, env = "HTTPD_RUNNER_SHUTDOWN_TIMEOUT", default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub shutdown_timeout: Duration,

    /// Also allow POST /shutdown from non-loopback peers that send `Authorization: Bearer TOKEN`.
    #[arg(long, env = "HTTPD_RUNNER_SHUTDOWN_TOKEN", hide_env_values = true)]
    pub shutdown_token: Option<String>,

    /// Longest a `/run` request may expect to wait before it is answered 503 with
    /// `Retry-After`: the time it waited for a request slot plus the jobs ahead of it at its
    /// runner times that runner's recent time per job. A connection holding no slot that
    /// waits this long for one gets the 503 too (and is closed). `off` never sheds on time
    /// (the runner queue's `--ring-capacity` still does).
    #[arg(long, env = "HTTPD_RUNNER_SHED_AFTER", default_value = "50ms", value_parser = parse_shed_after, allow_hyphen_values = true)]
    pub shed_after: Duration,

    /// The runner behind /run: `echo`, or `delay=MS` (echo after MS ms of work).
    #[arg(long, env = "HTTPD_RUNNER_RUNNER", default_value = "echo", value_parser = parse_runner)]
    pub runner: RunnerKind,
}

impl Config {
    /// Handler threads to start.
    #[must_use]
    pub fn handler_count(&self) -> usize {
        usize::from(self.handlers.unwrap_or(1))
    }

    /// Runner threads to start.
    #[must_use]
    pub fn runner_count(&self) -> usize {
        self.runners.map_or_else(
            || {
                available_cores()
                    .saturating_sub(self.handler_count())
                    .max(1)
            },
            usize::from,
        )
    }

    /// Jobs one handler may queue at one runner: `--ring-capacity`, else as many as the
    /// handler has slots (so a runner's queue sheds only when asked to), at most the ring.
    #[must_use]
    pub fn ring_capacity(&self) -> u32 {
        self.ring_capacity
            .unwrap_or_else(|| self.slots.min(RING_SLOTS as u32))
    }

    /// `--shed-after` in microseconds, 0 when off.
    #[must_use]
    pub fn shed_after_us(&self) -> u64 {
        self.shed_after.as_micros() as u64
    }

    /// Whether runners are pinned.
    #[must_use]
    pub fn pinning(&self) -> bool {
        self.pin && !self.no_pin
    }

    /// The parser's limits.
    #[must_use]
    pub fn limits(&self) -> Limits {
        let max_head_bytes = self.max_head_bytes as usize;
        Limits {
            max_head_bytes,
            max_target_bytes: max_head_bytes
                .min(limits::DEFAULT_MAX_TARGET_BYTES)
                .max(max_head_bytes / 2),
            max_body_bytes: self.max_body_bytes as usize,
        }
    }

    /// Per-connection timeouts and pipelining.
    #[must_use]
    pub fn conn(&self) -> ConnConfig {
        ConnConfig {
            header_timeout_ms: self.header_timeout.as_millis() as u64,
            body_timeout_ms: self.body_timeout.as_millis() as u64,
            idle_timeout_ms: self.idle_timeout.as_millis() as u64,
            max_pipeline: self.max_pipeline as usize,
        }
    }

    /// Connections one handler may hold.
    #[must_use]
    pub fn connections_per_handler(&self) -> usize {
        (self.max_connections as usize).div_ceil(self.handler_count())
    }

    /// Defaults, listening on `listen` (for tests and embedding).
    #[must_use]
    pub fn with_listen(listen: SocketAddr) -> Self {
        let mut c = Self::parse_from(["httpd-runner"]);
        c.listen = listen;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn runners() {
        assert_eq!(parse_runner("echo"), Ok(RunnerKind::Echo));
        assert_eq!(parse_runner("delay=5"), Ok(RunnerKind::Delay(5)));
        assert!(parse_runner("delay=x").is_err());
        assert!(parse_runner("nope").is_err());
    }

    #[test]
    fn bad_values_name_the_option() {
        for args in [
            &["x", "--handlers", "0"][..],
            &["x", "--max-body-bytes", "lots"],
            &["x", "--listen", "nowhere"],
            &["x", "--ring-capacity", "5000"],
            &["x", "--header-timeout", "soon"],
            &["x", "--runners", "-2"],
            &["x", "--max-connections", "-1"],
            &["x", "--slots", "-5"],
            &["x", "--shed-after", "-3ms"],
            &["x", "--shed-after", "never"],
        ] {
            let err = Config::try_parse_from(args).unwrap_err();
            assert!(err.to_string().contains(args[1]), "{err}");
            assert_eq!(err.exit_code(), 2);
        }
        let c = Config::try_parse_from(["x", "--no-pin", "--runners", "3"]).unwrap();
        assert!(!c.pinning());
        assert_eq!(c.runner_count(), 3);
        let cores = available_cores();
        let c = Config::try_parse_from(["x", "--handlers", "1"]).unwrap();
        assert_eq!(c.runner_count(), cores.saturating_sub(1).max(1));
        let c = Config::try_parse_from(["x", "--handlers", "64"]).unwrap();
        assert_eq!(c.runner_count(), 1);
        let c = Config::try_parse_from(["x"]).unwrap();
        assert_eq!(c.shed_after_us(), 50_000, "shedding is on by default");
        let c = Config::try_parse_from(["x", "--shed-after", "off"]).unwrap();
        assert_eq!(c.shed_after_us(), 0);
    }
}
