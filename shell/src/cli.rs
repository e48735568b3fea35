//! The command line: options (each also read from `HTTPD_RUNNER_<NAME>`) that convert into a
//! [`Config`], and [`run`], the entry point shared by the `httpd-runner` binary and the
//! examples. A bad value makes clap print what is wrong and exit with status 2 before
//! anything starts. Every default shown by `--help` comes from `core::limits`.
//!
//! The binary that calls [`run`] should install [`crate::alloc::CountingAlloc`] as its global
//! allocator, so the allocation figures it reports are real.

use std::fmt;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use httpd_runner_core::limits::{
    DEFAULT_BACKLOG, DEFAULT_BODY_TIMEOUT_MS, DEFAULT_FRAME_SCRATCH_BYTES, DEFAULT_HANDLERS,
    DEFAULT_HEADER_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_PIPELINE, DEFAULT_SCRATCH_BYTES,
    DEFAULT_SHED_AFTER_MS, DEFAULT_SHUTDOWN_TIMEOUT_MS, DEFAULT_SLOTS_PER_HANDLER, DEFAULT_SPIN_US,
    DEFAULT_STALL_THRESHOLD_MS, LIGHT_STREAK_TURNS, MAX_BACKLOG, MAX_BODY_BYTES_LIMIT,
    MAX_CONNECTIONS_LIMIT, MAX_DELAY_RUNNER_MS, MAX_HANDLERS, MAX_HEAD_BYTES_LIMIT, MAX_PIPELINE,
    MAX_RUNNERS, MAX_SCRATCH_BYTES, MAX_SLOTS_PER_HANDLER, MAX_SPIN_US, MAX_TIMEOUT_MS,
    MIN_HEAD_BYTES_LIMIT, MIN_TIMEOUT_MS, NARROW_AFTER_TURNS, RUNNER_RING_SLOTS,
};

use crate::alloc;
use crate::config::{AccessLog, RunnerKind};
use crate::net::Endpoint;
use crate::{Builder, Config};

/// A duration option: `250ms`, `10s`, `2m`, or a bare number of seconds; shown the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dur(Duration);

impl Dur {
    const fn ms(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            f.write_str("off")
        } else if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl FromStr for Dur {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
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
        let ms = d.as_millis();
        if ms < u128::from(MIN_TIMEOUT_MS) || ms > u128::from(MAX_TIMEOUT_MS) {
            return Err(format!("`{s}`: must be between 1ms and 24h"));
        }
        Ok(Self(d))
    }
}

/// `--shed-after`, `--request-timeout`: a duration, or `off` (zero).
/// A size in bytes: digits, then optionally K, M or G (powers of 1024, an optional `iB`
/// or `B` after it).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (bytes, or with K, M or G)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("{s:?}: the unit must be K, M or G")),
    };
    n.checked_mul(1 << shift)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{s:?} is not a size above 0 that fits in 64 bits"))
}

fn parse_shed_after(s: &str) -> Result<Dur, String> {
    if s == "off" {
        return Ok(Dur(Duration::ZERO));
    }
    s.parse()
}

fn parse_log_level(s: &str) -> Result<log::LevelFilter, String> {
    s.parse()
        .map_err(|_| format!("`{s}`: expected off, error, warn, info, debug or trace"))
}

fn parse_access_log(s: &str) -> Result<AccessLog, String> {
    match s {
        "" => Err("expected a file's path, or - for standard output".into()),
        "-" => Ok(AccessLog::Stdout),
        path => Ok(AccessLog::File(path.into())),
    }
}

fn parse_runner(s: &str) -> Result<RunnerKind, String> {
    match s {
        "echo" => Ok(RunnerKind::Echo),
        _ => match s.strip_prefix("delay=") {
            Some(ms) => ms
                .parse::<u64>()
                .ok()
                .filter(|&ms| ms <= MAX_DELAY_RUNNER_MS)
                .map(RunnerKind::Delay)
                .ok_or_else(|| {
                    format!("`{s}`: delay must be 0..={MAX_DELAY_RUNNER_MS} milliseconds, as in delay=5")
                }),
            None => Err(format!("`{s}`: expected `echo` or `delay=MS`")),
        },
    }
}

/// httpd-runner: a fixed-memory HTTP/1.1 server that runs your code on pinned cores.
///
/// Routes: POST/GET /run (the runner; the default echoes the body), POST /shutdown (stop
/// cleanly), GET /metrics (Prometheus text), GET /health. Every option can also be set through
/// the environment variable named in brackets.
#[derive(Debug, Clone, Parser)]
#[command(name = "httpd-runner", version, about, long_about = None, allow_negative_numbers = true)]
pub struct Args {
    /// Where to listen: ADDR:PORT (port 0 picks a free one, the banner shows it; `[::]:PORT`
    /// takes IPv4 clients too), or unix:PATH for a Unix socket, which a proxy on the same host
    /// reaches more cheaply than loopback TCP (a stale socket file is replaced; the file is
    /// removed at exit).
    #[arg(long, env = "HTTPD_RUNNER_LISTEN", default_value_t = Config::DEFAULT.endpoint().clone())]
    listen: Endpoint,

    /// A second listener, ADDR:PORT, for /metrics, /health and /shutdown only. With it, the
    /// --listen port answers 404 for /metrics and /shutdown, so nothing a proxy forwards
    /// there can read metrics or stop the server. Bind it where only operators reach.
    #[arg(long, env = "HTTPD_RUNNER_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,

    /// Handler threads (HTTP parsing and socket I/O). They are not pinned, but while a
    /// handler serves one connection at a time (a long streak of loop turns) it keeps off
    /// the pinned runners' cores, if it has others, and goes back to all cores at once when
    /// load returns.
    #[arg(long, env = "HTTPD_RUNNER_HANDLERS", default_value_t = DEFAULT_HANDLERS,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_HANDLERS)))]
    handlers: u16,

    /// Runner threads, pinned to cores 0, 1, ... [default: available cores minus handler
    /// threads, at least 1, so that handlers keep a core of their own]
    #[arg(long, env = "HTTPD_RUNNER_RUNNERS", value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_RUNNERS)))]
    runners: Option<u16>,

    /// Pin runner N to core N (modulo the core count). On by default.
    #[arg(long, env = "HTTPD_RUNNER_PIN", overrides_with = "no_pin", default_value_t = true, action = clap::ArgAction::SetTrue)]
    pin: bool,

    /// Do not pin runners to cores.
    #[arg(long = "no-pin", env = "HTTPD_RUNNER_NO_PIN", action = clap::ArgAction::SetTrue)]
    no_pin: bool,

    /// Most open connections; beyond it new connections get 503 and are closed.
    #[arg(long, env = "HTTPD_RUNNER_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONNECTIONS_LIMIT)))]
    max_connections: u32,

    /// Largest request (and response) body in bytes; larger requests get 413.
    #[arg(long, env = "HTTPD_RUNNER_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES as u64,
        value_parser = clap::value_parser!(u64).range(0..=MAX_BODY_BYTES_LIMIT as u64))]
    max_body_bytes: u64,

    /// Largest request head (request line and header fields) in bytes; larger gets 431.
    #[arg(long, env = "HTTPD_RUNNER_MAX_HEAD_BYTES", default_value_t = DEFAULT_MAX_HEAD_BYTES as u64,
        value_parser = clap::value_parser!(u64).range(MIN_HEAD_BYTES_LIMIT as u64..=MAX_HEAD_BYTES_LIMIT as u64))]
    max_head_bytes: u64,

    /// Request slots per handler: requests in flight (parsed, not yet answered) per handler.
    /// Most are small (a 4 KiB head and body, an 8 KiB response); `--large-slots` of them
    /// hold a head and body up to the limits. While a connection holding none is starving
    /// for one, connections holding one leave it the last eighth. A connection that finds
    /// none waits in arrival order, up to `--shed-after`, then gets 503.
    #[arg(long, env = "HTTPD_RUNNER_SLOTS", default_value_t = DEFAULT_SLOTS_PER_HANDLER,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SLOTS_PER_HANDLER)))]
    slots: u32,

    /// Of `--slots`, how many are large: requests with a head over 4 KiB or a declared body
    /// over 4 KiB take one (and chunked bodies that outgrow a small slot), so this many of
    /// them are in flight per handler at most. [default: one in eight, at least 1]
    #[arg(long, env = "HTTPD_RUNNER_LARGE_SLOTS",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SLOTS_PER_HANDLER)))]
    large_slots: Option<u32>,

    /// Jobs one handler may queue at one runner; beyond it requests are shed with 503 and
    /// `Retry-After`. Below `--slots` a pipelining client can get 503s while runners keep up
    /// (the banner notes it). [default: `--slots`, at most the ring's 1024]
    #[arg(long, env = "HTTPD_RUNNER_RING_CAPACITY", value_parser = clap::value_parser!(u32).range(1..=RUNNER_RING_SLOTS as i64))]
    ring_capacity: Option<u32>,

    /// Microseconds an idle runner keeps polling its rings (yielding the core between checks)
    /// before it sleeps, while requests arrive one at a time (each handler serving one
    /// connection per turn). A request that arrives within the window skips the runner's
    /// wake-up. Under load runners sleep at once, and a poll stops early when another
    /// thread wants the core. 0: never poll.
    #[arg(long, env = "HTTPD_RUNNER_SPIN_US", default_value_t = DEFAULT_SPIN_US,
        value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_SPIN_US)))]
    spin_us: u32,

    /// Requests one connection may have in flight (HTTP/1.1 pipelining depth).
    #[arg(long, env = "HTTPD_RUNNER_MAX_PIPELINE", default_value_t = DEFAULT_MAX_PIPELINE as u32,
        value_parser = clap::value_parser!(u32).range(1..MAX_PIPELINE as i64))]
    max_pipeline: u32,

    /// Time for a whole request head to arrive (a deadline from its first byte); then 408.
    #[arg(long, env = "HTTPD_RUNNER_HEADER_TIMEOUT", default_value_t = Dur::ms(DEFAULT_HEADER_TIMEOUT_MS), allow_hyphen_values = true)]
    header_timeout: Dur,

    /// Longest pause while a request body arrives; then 408.
    #[arg(long, env = "HTTPD_RUNNER_BODY_TIMEOUT", default_value_t = Dur::ms(DEFAULT_BODY_TIMEOUT_MS), allow_hyphen_values = true)]
    body_timeout: Dur,

    /// Idle keep-alive connections close after this (also the limit for unread responses).
    #[arg(long, env = "HTTPD_RUNNER_IDLE_TIMEOUT", default_value_t = Dur::ms(DEFAULT_IDLE_TIMEOUT_MS), allow_hyphen_values = true)]
    idle_timeout: Dur,

    /// Time in-flight requests get to finish once shutdown starts; then connections close.
    #[arg(long, env = "HTTPD_RUNNER_SHUTDOWN_TIMEOUT", default_value_t = Dur::ms(DEFAULT_SHUTDOWN_TIMEOUT_MS), allow_hyphen_values = true)]
    shutdown_timeout: Dur,

    /// Require `Authorization: Bearer TOKEN` for POST /shutdown from every peer, loopback
    /// included. Without it, only loopback peers that did not come through a proxy (no
    /// `Forwarded`, `X-Forwarded-For`, `X-Real-IP` or `Via`) may stop the server.
    #[arg(long, env = "HTTPD_RUNNER_SHUTDOWN_TOKEN", hide_env_values = true)]
    shutdown_token: Option<String>,

    /// Longest a `/run` request may expect to wait before it is answered 503 with
    /// `Retry-After`: the time it waited for a request slot plus the jobs ahead of it at its
    /// runner times that runner's recent time per job. A connection holding no slot that
    /// waits this long for one gets the 503 too (and is closed). `off` never sheds on time
    /// (the runner queue's `--ring-capacity` still does).
    #[arg(long, env = "HTTPD_RUNNER_SHED_AFTER", default_value_t = Dur::ms(DEFAULT_SHED_AFTER_MS), value_parser = parse_shed_after, allow_hyphen_values = true)]
    shed_after: Dur,

    /// Deadline of a `/run` request that carries no `X-Deadline-Ms: N` (its own budget in
    /// milliseconds, at most an hour), counted from when the request is complete. Past it
    /// the client gets 504 within milliseconds, whether the request is queued, running or
    /// kept by its runner, and the connection stays usable. `off`: no default deadline.
    #[arg(long, env = "HTTPD_RUNNER_REQUEST_TIMEOUT", default_value_t = Dur(Duration::ZERO), value_parser = parse_shed_after, allow_hyphen_values = true)]
    request_timeout: Dur,

    /// Length of the listen queue: connections the kernel completes and holds until they are
    /// accepted. The kernel cuts it to `net.core.somaxconn` (the banner says when).
    #[arg(long, env = "HTTPD_RUNNER_BACKLOG", default_value_t = DEFAULT_BACKLOG,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BACKLOG)))]
    backlog: u32,

    /// On SIGTERM, SIGINT or POST /shutdown, first drain for this long: /health answers 503
    /// (so load balancers take the instance out) while every request is still served; then
    /// the graceful shutdown (--shutdown-timeout) runs. A second SIGTERM or SIGINT ends the
    /// drain at once. SIGHUP is ignored (noted on stderr); SIGQUIT exits at once (status
    /// 131). `off`: no drain.
    #[arg(long, env = "HTTPD_RUNNER_DRAIN_DELAY", default_value_t = Dur(Duration::ZERO), value_parser = parse_shed_after, allow_hyphen_values = true)]
    drain_delay: Dur,

    /// Bind with SO_REUSEPORT: several processes may listen on the same port (the kernel
    /// spreads new connections over them), so an instance can be replaced without refusing a
    /// connection. Every process on the port must set it.
    #[arg(long, env = "HTTPD_RUNNER_REUSE_PORT", action = clap::ArgAction::SetTrue)]
    reuse_port: bool,

    /// Bytes of scratch memory per runner, reserved at startup and reset after every call
    /// (`Context::scratch`).
    #[arg(long, env = "HTTPD_RUNNER_SCRATCH", default_value_t = DEFAULT_SCRATCH_BYTES as u64,
        value_parser = clap::value_parser!(u64).range(0..=MAX_SCRATCH_BYTES as u64))]
    scratch: u64,

    /// Bytes of each half of each runner's frame arena, reserved at startup: what a frame
    /// puts there stays through the next frame (`Context::frame_keep`).
    #[arg(long, env = "HTTPD_RUNNER_FRAME_SCRATCH", default_value_t = DEFAULT_FRAME_SCRATCH_BYTES as u64,
        value_parser = clap::value_parser!(u64).range(0..=MAX_SCRATCH_BYTES as u64))]
    frame_scratch: u64,

    /// Most memory to reserve at startup, in bytes or with a suffix K, M or G (powers of
    /// 1024): for instance `16M`. When the options need more, --max-connections and --slots
    /// are lowered in proportion until they fit (the banner says so); when even one
    /// connection and one slot per handler do not fit, the server does not start and names
    /// what takes the memory. [default: what the options need]
    #[arg(long, env = "HTTPD_RUNNER_MEMORY", value_parser = parse_size)]
    memory: Option<u64>,

    /// A runner call (`run`, tick or alarm) that takes longer than this is a stall: counted
    /// per runner (`httpd_runner_runner_stalls_total`) and logged with the runner and the
    /// duration, at most one line a second per runner. `off` turns the detector off.
    #[arg(long, env = "HTTPD_RUNNER_STALL_THRESHOLD", default_value_t = Dur::ms(DEFAULT_STALL_THRESHOLD_MS), value_parser = parse_shed_after, allow_hyphen_values = true)]
    stall_threshold: Dur,

    /// The most verbose log lines written to stderr: off, error, warn, info, debug or trace.
    /// Logs are for rare events (startup, accept errors, panics, stalls, bursts of shedding
    /// or expiry, shutdown), formatted without allocating.
    #[arg(long, env = "HTTPD_RUNNER_LOG_LEVEL", default_value = "info", value_parser = parse_log_level)]
    log_level: log::LevelFilter,

    /// Write one line per request to this file (appended, created if missing), or to
    /// standard output for `-`: time, client, method, target, status, bytes, microseconds
    /// from arrival to last byte, runner. Lines go through per-handler rings to a thread of
    /// their own; when it falls behind, lines are dropped and counted
    /// (`httpd_runner_access_log_dropped_total`), never waited for. [default: off]
    #[arg(long, env = "HTTPD_RUNNER_ACCESS_LOG", value_parser = parse_access_log)]
    access_log: Option<AccessLog>,

    /// The runner behind /run: `echo`, or `delay=MS` (echo after MS ms of work).
    #[arg(long, env = "HTTPD_RUNNER_RUNNER", default_value = "echo", value_parser = parse_runner)]
    runner: RunnerKind,
}

// The help text speaks of streaks without numbers; keep the constants it describes in use.
const _: () = assert!(LIGHT_STREAK_TURNS > 0 && NARROW_AFTER_TURNS > LIGHT_STREAK_TURNS);

impl From<Args> for Config {
    fn from(a: Args) -> Self {
        Self::DEFAULT
            .listen_on(a.listen)
            .admin_listen(a.admin_listen)
            .drain_delay(a.drain_delay.0)
            .handlers(a.handlers)
            .runners(a.runners)
            .pin(a.pin && !a.no_pin)
            .max_connections(a.max_connections)
            .max_body_bytes(a.max_body_bytes as usize)
            .max_head_bytes(a.max_head_bytes as usize)
            .slots(a.slots)
            .large_slots(a.large_slots)
            .ring_capacity(a.ring_capacity)
            .spin_us(a.spin_us)
            .max_pipeline(a.max_pipeline as usize)
            .header_timeout(a.header_timeout.0)
            .body_timeout(a.body_timeout.0)
            .idle_timeout(a.idle_timeout.0)
            .shutdown_timeout(a.shutdown_timeout.0)
            .shutdown_token(a.shutdown_token)
            .shed_after(a.shed_after.0)
            .request_timeout(a.request_timeout.0)
            .backlog(a.backlog)
            .reuse_port(a.reuse_port)
            .scratch(a.scratch as usize)
            .frame_scratch(a.frame_scratch as usize)
            .runner(a.runner)
            .memory(a.memory)
            .stall_threshold(a.stall_threshold.0)
            .log_level(a.log_level)
            .access_log(a.access_log)
    }
}

/// Runs a server configured from the command line; `customize` can swap the runner.
/// Exit codes: 0 after a clean shutdown, 1 when startup or a thread fails, 2 for bad options
/// (including options whose memory cannot be reserved).
pub fn run(customize: impl FnOnce(Builder) -> Builder) -> ExitCode {
    let cfg = Config::from(Args::parse());
    let mut server = match customize(Builder::new(cfg)).start() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("httpd-runner: {e}");
            // Options that cannot fit in memory, or out of range, are bad options.
            let code = match e.kind() {
                std::io::ErrorKind::OutOfMemory | std::io::ErrorKind::InvalidInput => 2,
                _ => 1,
            };
            return ExitCode::from(code);
        }
    };
    if alloc::installed() {
        // Every thread has finished its setup (start waits for them): what is live now is
        // exactly what startup reserved on the heap.
        server.set_reserved_bytes(alloc::live());
    }
    eprintln!("{}", server.banner());
    alloc::mark_startup_complete();
    // The banner's last line, whatever the log level: scripts wait for it.
    eprintln!(
        "startup complete: {} heap bytes live, allocations counted from here",
        alloc::live_at_startup()
    );
    log::info!(
        "serving on {}: {} runners, {} bytes reserved",
        server.endpoint,
        server.pinning.len(),
        server.reserved_bytes
    );
    match server.wait() {
        Ok(s) => {
            let after = alloc::after_startup();
            // The summary, whatever the log level (as the banner).
            eprintln!(
                "stopped ({:?}): {} connections, {} requests, {} allocations after startup",
                s.reason, s.connections, s.requests, after.allocations
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("httpd-runner: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Args::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(Config::from)
    }

    macro_rules! refused {
        ($($name:ident: [$($arg:expr),*];)*) => {$(
            #[test]
            fn $name() {
                let args = [$($arg),*];
                let err = parse(&args).unwrap_err();
                assert!(err.to_string().contains(args[0]), "{err}");
                assert_eq!(err.exit_code(), 2);
            }
        )*};
    }

    refused! {
        zero_handlers: ["--handlers", "0"];
        body_limit_not_a_number: ["--max-body-bytes", "lots"];
        listen_not_an_address: ["--listen", "nowhere"];
        ring_capacity_over_the_ring: ["--ring-capacity", "5000"];
        timeout_not_a_duration: ["--header-timeout", "soon"];
        negative_runners: ["--runners", "-2"];
        negative_connections: ["--max-connections", "-1"];
        negative_slots: ["--slots", "-5"];
        negative_shed_after: ["--shed-after", "-3ms"];
        shed_after_never: ["--shed-after", "never"];
        zero_timeout: ["--body-timeout", "0s"];
        day_and_more: ["--idle-timeout", "25h"];
        delay_runner_not_a_number: ["--runner", "delay=x"];
        unknown_runner: ["--runner", "nope"];
    }

    #[test]
    fn no_arguments_give_the_default_config() {
        assert_eq!(parse(&[]).unwrap(), Config::DEFAULT);
    }

    #[test]
    fn durations_take_units_and_print_them_back() {
        for (text, ms, shown) in [
            ("250ms", 250, "250ms"),
            ("10", 10_000, "10s"),
            ("2m", 120_000, "120s"),
            ("1500ms", 1500, "1500ms"),
        ] {
            let d: Dur = text.parse().unwrap();
            assert_eq!(d, Dur::ms(ms), "{text}");
            assert_eq!(d.to_string(), shown);
        }
    }

    #[test]
    fn shed_after_off_is_zero() {
        assert_eq!(parse(&["--shed-after", "off"]).unwrap().shed_after_us(), 0);
    }

    #[test]
    fn no_pin_and_runners() {
        let c = parse(&["--no-pin", "--runners", "3"]).unwrap();
        assert!(!c.pinning());
        assert_eq!(c.runner_count(), 3);
    }

    #[test]
    fn delay_runner() {
        let c = parse(&["--runner", "delay=5"]).unwrap();
        assert_eq!(c.runner_kind(), RunnerKind::Delay(5));
    }
}
