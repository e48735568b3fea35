//! The project's load benchmark: builds and starts httpd-runner on 127.0.0.1:0, drives it with
//! wrk (one thread, pinned to CPU 1) through seven scenarios, and prints a markdown table:
//! median req/s of the rounds, p99 latency, server CPU µs per request (from /proc/PID/stat
//! around each wrk run), resident memory, and allocations after startup (from /metrics).
//! Exits non-zero if any response was wrong (non-2xx, socket errors, or a failed echo check).
//!
//! ```sh
//! cargo run --release -p httpd-runner-tests --bin loadbench
//! cargo run --release -p httpd-runner-tests --bin loadbench -- --rounds 1 --duration 2 --scenarios get,pipe16
//! cargo run --release -p httpd-runner-tests --bin loadbench -- --server-args "--handlers 2"
//! ```

use std::process::{Command, ExitCode};

use httpd_runner_tests::{body_of, build_release_server, metric_in, post, rss_bytes, Server};

/// One scenario: name, body bytes (0 = GET), connections, pipeline depth.
const SCENARIOS: [(&str, usize, usize, usize); 7] = [
    ("get", 0, 64, 1),
    ("post1k", 1024, 64, 1),
    ("post16k", 16 * 1024, 64, 1),
    ("post64k", 64 * 1024, 64, 1),
    ("pipe16", 0, 64, 16),
    ("post1k-c1000", 1024, 1000, 1),
    ("get-c1", 0, 1, 1),
];

const SCRIPT: &str = r#"
local n = tonumber(os.getenv("LOADBENCH_BODY_BYTES") or "0") or 0
local depth = tonumber(os.getenv("LOADBENCH_PIPELINE") or "1") or 1
if n > 0 then
  wrk.method = "POST"
  wrk.body = string.rep("0123456789abcdef", math.ceil(n / 16)):sub(1, n)
  wrk.headers["Content-Type"] = "application/octet-stream"
end
if depth > 1 then
  local batch
  function init(args)
    local r = {}
    for i = 1, depth do r[i] = wrk.format() end
    batch = table.concat(r)
  end
  function request() return batch end
end
"#;

struct Options {
    rounds: usize,
    duration: u64,
    scenarios: Vec<String>,
    server_args: Vec<String>,
    wrk_cpu: String,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        rounds: 3,
        duration: 5,
        scenarios: SCENARIOS.iter().map(|s| s.0.to_owned()).collect(),
        server_args: vec!["--max-connections".into(), "1100".into()],
        wrk_cpu: "1".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--rounds" => o.rounds = value()?.parse().map_err(|_| "--rounds: a number")?,
            "--duration" => o.duration = value()?.parse().map_err(|_| "--duration: seconds")?,
            "--scenarios" => o.scenarios = value()?.split(',').map(str::to_owned).collect(),
            "--server-args" => o.server_args.extend(value()?.split_whitespace().map(str::to_owned)),
            "--wrk-cpu" => o.wrk_cpu = value()?,
            "--help" | "-h" => {
                return Err("usage: loadbench [--rounds N (3)] [--duration S (5)] [--scenarios a,b] [--server-args \"...\"] [--wrk-cpu N (1)]\nscenarios: get post1k post16k post64k pipe16 post1k-c1000 get-c1".into())
            }
            _ => return Err(format!("unknown option {a} (see --help)")),
        }
    }
    for s in &o.scenarios {
        if !SCENARIOS.iter().any(|x| x.0 == s) {
            return Err(format!("unknown scenario {s}"));
        }
    }
    Ok(o)
}

fn ensure_tools() -> Result<(), String> {
    let has = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has("wrk") {
        eprintln!("loadbench: installing wrk with apt-get");
        let ok = Command::new("sh").args(["-c", "apt-get install -y wrk >/dev/null 2>&1 || (apt-get update >/dev/null && apt-get install -y wrk >/dev/null)"]).status();
        if !ok.is_ok_and(|s| s.success()) || !has("wrk") {
            return Err("wrk is missing and apt-get could not install it".into());
        }
    }
    build_release_server()
}

/// CPU ticks (user + system) of a process.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    rest.get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + rest
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
}

fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_req: f64,
    bad: u64,
}

fn parse_latency_us(s: &str) -> Option<f64> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))?;
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v,
        "ms" => v * 1e3,
        "s" => v * 1e6,
        _ => return None,
    })
}

/// One wrk run; `load` is (body bytes, connections, pipeline depth).
fn wrk(
    o: &Options,
    port: u16,
    pid: u32,
    script: &str,
    load: (usize, usize, usize),
    seconds: u64,
) -> Result<Run, String> {
    let (body, conns, depth) = load;
    let mut cmd = Command::new("taskset");
    cmd.args([
        "-c",
        &o.wrk_cpu,
        "wrk",
        "-t1",
        &format!("-c{conns}"),
        &format!("-d{seconds}s"),
        "--latency",
        "-s",
        script,
    ])
    .arg(format!("http://127.0.0.1:{port}/run"))
    .env("LOADBENCH_BODY_BYTES", body.to_string())
    .env("LOADBENCH_PIPELINE", depth.to_string());
    let before = cpu_ticks(pid);
    let out = cmd.output().map_err(|e| format!("wrk: {e}"))?;
    let after = cpu_ticks(pid);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()))
    };
    let requests: f64 = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.trim().parse().unwrap_or(0.0))
        })
        .ok_or("no request count")?;
    let rps: f64 = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or("no Requests/sec")?;
    let p50 = field("50%")
        .and_then(|v| parse_latency_us(&v))
        .unwrap_or(f64::NAN);
    let p99 = field("99%")
        .and_then(|v| parse_latency_us(&v))
        .unwrap_or(f64::NAN);
    let non2xx: u64 = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let socket_errors: u64 = field("Socket errors:")
        .map(|v| {
            v.split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let cpu_us = (after - before) as f64 * 1e6 / clock_ticks_per_sec() as f64;
    Ok(Run {
        rps,
        p50_us: p50,
        p99_us: p99,
        cpu_us_per_req: cpu_us / requests.max(1.0),
        bad: non2xx + socket_errors,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Checks a few responses byte for byte (wrk only counts them).
fn echo_check(server: &Server, body: usize) -> bool {
    let mut c = server.connect();
    (0..3).all(|_| {
        let b = body_of(body);
        c.send(&post("/run", &b));
        let r = c.read_response();
        r.status == 200 && r.body == b
    })
}

fn main() -> ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = ensure_tools() {
        eprintln!("loadbench: {e}");
        return ExitCode::from(1);
    }
    let script = std::env::temp_dir().join(format!("loadbench-{}.lua", std::process::id()));
    std::fs::write(&script, SCRIPT).expect("write wrk script");
    let script = script.to_string_lossy().into_owned();
    let args: Vec<&str> = o.server_args.iter().map(String::as_str).collect();
    let mut server = Server::start(&args);
    let pid = server.pid();
    let port = server.addr.port();
    eprintln!("loadbench: httpd-runner pid {pid} on port {port}, {} rounds of {} s per scenario, wrk on CPU {}", o.rounds, o.duration, o.wrk_cpu);
    let mut rows = Vec::new();
    let mut wrong = 0u64;
    for (name, body, conns, depth) in SCENARIOS
        .iter()
        .filter(|s| o.scenarios.iter().any(|n| n == s.0))
    {
        if !echo_check(&server, *body) {
            eprintln!("loadbench: {name}: echo check failed");
            wrong += 1;
        }
        let _ = wrk(&o, port, pid, &script, (*body, *conns, *depth), 1); // warm-up
        let mut runs = Vec::new();
        for round in 0..o.rounds {
            match wrk(&o, port, pid, &script, (*body, *conns, *depth), o.duration) {
                Ok(r) => {
                    eprintln!(
                        "  {name} round {}: {:.0} req/s, p99 {:.0} us, {:.2} us CPU/req, {} bad",
                        round + 1,
                        r.rps,
                        r.p99_us,
                        r.cpu_us_per_req,
                        r.bad
                    );
                    wrong += r.bad;
                    runs.push(r);
                }
                Err(e) => {
                    eprintln!("loadbench: {name}: {e}");
                    wrong += 1;
                }
            }
        }
        if runs.is_empty() {
            continue;
        }
        let rss = rss_bytes(pid);
        let allocs = metric_in(
            &server.metrics(),
            "httpd_runner_allocations_after_startup_total",
            "",
        );
        // wrk takes one latency sample per pipelined batch and its histogram "correction"
        // then leaves high percentiles at 0: report batch latency as not measured.
        let latency = if *depth > 1 {
            "n/a (pipelined)".to_owned()
        } else {
            format!(
                "{:.0} / {:.0} us",
                median(runs.iter().map(|r| r.p50_us).collect()),
                median(runs.iter().map(|r| r.p99_us).collect())
            )
        };
        rows.push(format!(
            "| {name} | {:.1}k | {latency} | {:.2} | {:.1} MiB | {allocs} |",
            median(runs.iter().map(|r| r.rps).collect()) / 1e3,
            median(runs.iter().map(|r| r.cpu_us_per_req).collect()),
            rss as f64 / (1 << 20) as f64,
        ));
    }
    let (status, _) = server.shutdown();
    let _ = std::fs::remove_file(&script);
    println!("| scenario | req/s (median of {}) | p50 / p99 | server CPU us/req | RSS | allocations after startup |", o.rounds);
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    if wrong > 0 || !status.success() {
        eprintln!("loadbench: {wrong} wrong responses or errors; server exit {status:?}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
