//! Helpers for the end-to-end tests: start the real `httpd-runner` binary on 127.0.0.1:0,
//! talk raw HTTP/1.1 to it, stop it. Every server started here is killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// Generous safety net for any single read or wait; tests never rely on it for timing.
pub const TIMEOUT: Duration = Duration::from_secs(20);

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs CPU-loading tests one at a time (the machine has two cores).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Path of an example built by cargo, found next to the running executable (tests live in
/// `target/<profile>/deps`, examples in `target/<profile>/examples`). Examples belong to the
/// `httpd-runner` package, which `cargo test -p httpd-runner-tests` alone does not build, so
/// one older than its sources (the core's and the shell's, and its own file) is refused.
#[must_use]
pub fn built_example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("executable directory");
    let found = [dir, dir.parent().unwrap_or(dir)]
        .iter()
        .map(|d| d.join("examples").join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("example {name} not found next to {}: run the tests with `cargo test --workspace` (it builds the examples)", exe.display())
        });
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sources = [
        root.join("core").join("src"),
        root.join("shell").join("src"),
        root.join("shell")
            .join("examples")
            .join(format!("{name}.rs")),
    ];
    if let Some(newer) = newer_source(&found, &sources) {
        panic!(
            "{} is older than {}: run `cargo test --workspace --release` (or `cargo build --workspace --all-targets` for the profile in use) first",
            found.display(),
            newer.display()
        );
    }
    found
}

/// The first source file (`.rs` or `Cargo.toml` under `roots`, or a root that is a file)
/// modified after
/// `binary`, if any: a binary older than its sources would test code that is no longer there.
#[must_use]
pub fn newer_source(binary: &Path, roots: &[PathBuf]) -> Option<PathBuf> {
    fn walk(dir: &Path, built: SystemTime) -> Option<PathBuf> {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if path.file_name().is_some_and(|n| n == "target") {
                    continue;
                }
                if let Some(found) = walk(&path, built) {
                    return Some(found);
                }
            } else if (path.extension().is_some_and(|e| e == "rs")
                || path.file_name().is_some_and(|n| n == "Cargo.toml"))
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t > built)
            {
                return Some(path);
            }
        }
        None
    }
    let built = std::fs::metadata(binary).and_then(|m| m.modified()).ok()?;
    roots.iter().find_map(|root| {
        if root.is_file() {
            let modified = std::fs::metadata(root).and_then(|m| m.modified()).ok()?;
            (modified > built).then(|| root.clone())
        } else {
            walk(root, built)
        }
    })
}

/// Builds the release server binary (for the benchmark binaries: `cargo run --bin X` builds
/// X alone), with the `cargo` that runs them.
///
/// # Errors
/// A message when the build fails.
pub fn build_release_server() -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "httpd-runner-tests",
            "--bin",
            SERVER_BIN,
        ])
        .status();
    if ok.is_ok_and(|s| s.success()) {
        Ok(())
    } else {
        Err(format!("cargo build --release --bin {SERVER_BIN} failed"))
    }
}

/// This package's copy of the `httpd-runner` binary (see `Cargo.toml`).
const SERVER_BIN: &str = "httpd-runner-test";

/// The server binary: `HTTPD_RUNNER_BIN` when set (to test another build), else this
/// package's copy of `httpd-runner`, found next to the running executable. Cargo builds it
/// before this package's integration tests, so it is as new as the sources; the benchmark
/// binaries build it first ([`build_release_server`]).
#[must_use]
pub fn server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("HTTPD_RUNNER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("executable directory");
    [dir, dir.parent().unwrap_or(dir)]
        .iter()
        .map(|d| d.join(SERVER_BIN))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{SERVER_BIN} not found next to {}", exe.display()))
}

/// A running server process.
pub struct Server {
    child: Child,
    /// Its address (`0.0.0.0:0` when it listens on a Unix socket).
    pub addr: SocketAddr,
    /// Its admin listener's address (`--admin-listen`), if it has one.
    pub admin: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the server binary with `args` (plus `--listen 127.0.0.1:0`).
    #[must_use]
    pub fn start(args: &[&str]) -> Self {
        Self::start_program(&server_binary(), args)
    }

    /// Starts any binary that prints the `listening on http://ADDR` banner line.
    #[must_use]
    pub fn start_program(program: &Path, args: &[&str]) -> Self {
        Self::spawn(Command::new(program), args)
    }

    /// [`start_program`](Self::start_program) with environment variables set.
    #[must_use]
    pub fn start_program_env(program: &Path, env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut command = Command::new(program);
        command.envs(env.iter().copied());
        Self::spawn(command, args)
    }

    /// Starts the server binary under another program (`wrapper` is its command line, the
    /// server's path and `args` follow it), e.g. `valgrind --tool=callgrind`.
    #[must_use]
    pub fn start_under(wrapper: &[&str], args: &[&str]) -> Self {
        let (program, options) = wrapper.split_first().expect("a wrapper program");
        let mut command = Command::new(program);
        command.args(options).arg(server_binary());
        Self::spawn(command, args)
    }

    /// Starts the server binary listening on `listen` (not the default 127.0.0.1:0).
    #[must_use]
    pub fn start_at(listen: &str, args: &[&str]) -> Self {
        Self::spawn_at(Command::new(server_binary()), listen, args)
    }

    fn spawn(command: Command, args: &[&str]) -> Self {
        Self::spawn_at(command, "127.0.0.1:0", args)
    }

    fn spawn_at(mut command: Command, listen: &str, args: &[&str]) -> Self {
        let mut child = command
            .args(["--listen", listen])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(addr.parse::<SocketAddr>().expect("banner address"));
                } else if line.starts_with("listening on unix:") {
                    let _ = tx.send(SocketAddr::from(([0, 0, 0, 0], 0)));
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = rx.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "server did not print its address; log:\n{}",
                log.lock().unwrap()
            )
        });
        let mut server = Self {
            child,
            addr,
            admin: None,
            log,
        };
        // Wait until startup completed (the banner is printed before the mark).
        let deadline = Instant::now() + TIMEOUT;
        while !server.log().contains("startup complete") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        server.admin = server.log().lines().find_map(|l| {
            l.strip_prefix("admin (/metrics, /health, /shutdown) on http://")
                .and_then(|a| a.parse().ok())
        });
        server
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server printed on stderr so far.
    #[must_use]
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A new keep-alive client connection.
    #[must_use]
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// One request on a fresh connection.
    #[must_use]
    pub fn request(&self, raw: &[u8]) -> Response {
        let mut c = self.connect();
        c.send(raw);
        c.read_response()
    }

    /// `GET /metrics` as text (from the admin listener when there is one).
    #[must_use]
    pub fn metrics(&self) -> String {
        let mut c = Client::connect(self.admin.unwrap_or(self.addr));
        c.send(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 200);
        String::from_utf8(r.body).expect("metrics are text")
    }

    /// The sum of every sample of metric `name` whose labels contain `labels`.
    #[must_use]
    pub fn metric(&self, name: &str, labels: &str) -> u64 {
        metric_in(&self.metrics(), name, labels)
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `POST /shutdown` (to the admin listener when there is one), then waits for exit;
    /// returns the status and how long it took.
    pub fn shutdown(&mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let mut c = Client::connect(self.admin.unwrap_or(self.addr));
        c.send(b"POST /shutdown HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 200, "shutdown answered {}", r.status);
        let status = self
            .wait_exit(TIMEOUT)
            .unwrap_or_else(|| panic!("server did not exit; log:\n{}", self.log()));
        (status, started.elapsed())
    }

    /// Sends a signal with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(ok.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The sum of samples of `name` whose label set contains `labels`, in Prometheus text.
#[must_use]
pub fn metric_in(text: &str, name: &str, labels: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (n, rest) = key.split_once('{').unwrap_or((key, ""));
            (n == name && rest.contains(labels))
                .then(|| value.parse::<f64>().ok().map(|v| v as u64))?
        })
        .sum()
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields as received (names lowercased).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (lowercase).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A raw HTTP/1.1 client connection.
pub struct Client {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects to `addr`.
    #[must_use]
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Wraps a connected socket (read timeout [`TIMEOUT`]).
    #[must_use]
    pub fn from_stream(stream: TcpStream) -> Self {
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("send");
    }

    /// Sends raw bytes; `false` if the server had closed the connection.
    pub fn try_send(&mut self, raw: &[u8]) -> bool {
        self.stream.write_all(raw).is_ok()
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Reads one response (the body framed by Content-Length).
    #[must_use]
    pub fn read_response(&mut self) -> Response {
        self.read_response_to(false)
    }

    /// Reads one response to a HEAD request (no body whatever Content-Length says).
    #[must_use]
    pub fn read_head_response(&mut self) -> Response {
        self.read_response_to(true)
    }

    fn read_response_to(&mut self, head: bool) -> Response {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.fill() > 0,
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head_text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let mut lines = head_text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            })
            .collect();
        let len = if head || status == 100 || status == 204 || status == 304 {
            0
        } else {
            headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| v.parse::<usize>().expect("content-length"))
        };
        while self.buf.len() < end + len {
            assert!(self.fill() > 0, "connection closed inside a body");
        }
        let body = self.buf[end..end + len].to_vec();
        self.buf.drain(..end + len);
        Response {
            status,
            headers,
            body,
        }
    }

    /// Reads one response, or reports how the connection ended instead: `Err(n)` when the
    /// server closed it (EOF or reset) after `n` bytes of a response (0: none at all).
    pub fn try_read_response(&mut self) -> Result<Response, usize> {
        loop {
            if let Some(end) = self
                .buf
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| i + 4)
            {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let len = head
                    .split("\r\n")
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap_or(0));
                if self.buf.len() >= end + len {
                    return Ok(self.read_response());
                }
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(self.buf.len()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ) =>
                {
                    return Err(self.buf.len())
                }
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Whether the server closes the connection (EOF or reset) within `TIMEOUT`, with no
    /// further bytes.
    #[must_use]
    pub fn is_closed_by_server(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    /// Whether the connection is still open after `wait` (no EOF; nothing arrived).
    #[must_use]
    pub fn is_open_after(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut byte = [0u8; 1];
        let open = match self.stream.read(&mut byte) {
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        open
    }
}

/// Resident memory of process `pid` in bytes (`VmRSS`).
#[must_use]
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Resident memory of the binary itself beyond its reservation: a server started with
/// `args` plus the smallest reservations (one connection, one slot, no body, the smallest
/// head), its RSS less what its banner says it reserved.
#[must_use]
pub fn binary_baseline_rss(args: &[&str]) -> u64 {
    let mut all = args.to_vec();
    all.extend([
        "--max-connections",
        "1",
        "--slots",
        "1",
        "--max-body-bytes",
        "0",
        "--max-head-bytes",
        "256",
    ]);
    let tiny = Server::start(&all);
    rss_bytes(tiny.pid()).saturating_sub(reserved_from_banner(&tiny.log()))
}

/// The `memory reserved at startup` figure from a server's banner.
#[must_use]
pub fn reserved_from_banner(log: &str) -> u64 {
    log.lines()
        .find_map(|l| l.strip_prefix("memory reserved at startup: "))
        .and_then(|v| v.trim_end_matches(" bytes").parse().ok())
        .expect("banner has the reserved memory")
}

/// A `POST /run` request with `body`.
#[must_use]
pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// A deterministic body of `n` bytes (all byte values).
#[must_use]
pub fn body_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::newer_source;
    use std::fs::{self, File};
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_binary_older_than_a_source_is_found_stale() {
        let root = std::env::temp_dir().join(format!("httpd-runner-stale-{}", std::process::id()));
        let src = root.join("crate").join("src");
        fs::create_dir_all(src.join("deep")).unwrap();
        fs::create_dir_all(root.join("crate").join("target")).unwrap();
        let at = |path: &std::path::Path, secs: u64| {
            let file = File::create(path).unwrap();
            file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
                .unwrap();
        };
        let binary = root.join("binary");
        at(&binary, 2_000);
        at(&src.join("lib.rs"), 1_000);
        at(&src.join("deep").join("notes.txt"), 3_000);
        at(&root.join("crate").join("target").join("built.rs"), 3_000);
        let roots = [root.join("crate")];
        assert_eq!(newer_source(&binary, &roots), None);
        at(&src.join("deep").join("mod.rs"), 3_000);
        assert_eq!(
            newer_source(&binary, &roots),
            Some(src.join("deep").join("mod.rs"))
        );
        at(&binary, 4_000);
        assert_eq!(newer_source(&binary, &roots), None);
        fs::remove_dir_all(&root).unwrap();
    }
}
