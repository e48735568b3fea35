//! A runner that transforms the body: uppercases it, and adds its own headers (a checksum of
//! the input and how many requests this runner instance has served). Send `X-Panic: 1` to see
//! panic isolation: that request gets 500, the runner is rebuilt (its count starts over) and
//! the next request is served normally. The uppercase copy is built in the runner's scratch
//! memory (reserved at startup, reset after every call), and a request whose deadline has
//! already passed is not worked on. A `GET` is refused with an error status.
//!
//! ```sh
//! cargo run --release --example transform
//! curl -d hello http://127.0.0.1:8080/run       # HELLO, X-Checksum: fnv1a-32 of "hello"
//! curl -H 'X-Panic: 1' http://127.0.0.1:8080/run  # 500
//! ```

use std::fmt::Write as _;
use std::process::ExitCode;

use httpd_runner::alloc::CountingAlloc;
use httpd_runner::core::Method;
use httpd_runner::{Context, Error, Request, Response, Runner};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Uppercases bodies and counts what it served.
struct Upper {
    served: u64,
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

impl Runner for Upper {
    fn run(
        &mut self,
        cx: &mut Context<'_>,
        req: &Request<'_>,
        resp: &mut Response<'_, '_>,
    ) -> Result<(), Error> {
        if req.method() != Method::Post {
            return Err(Error::with_message(405, "POST a body to transform"));
        }
        if cx.time_left().is_some_and(|left| left.is_zero()) {
            // The client has its 504 already; any work now is wasted.
            return Err(Error::status(504));
        }
        assert!(
            req.header("x-panic").is_none(),
            "X-Panic asked this runner to panic"
        );
        self.served += 1;
        let mut text = heapless::String::<32>::new();
        let _ = write!(text, "{:08x}", fnv1a32(req.body()));
        let _ = resp.header("X-Checksum", text.as_bytes());
        text.clear();
        let _ = write!(text, "{}", self.served);
        let _ = resp.header("X-Served", text.as_bytes());
        let _ = resp.header("Content-Type", b"text/plain; charset=utf-8");
        // Scratch memory: a whole-body working copy without a heap allocation. A body larger
        // than `--scratch` is refused rather than cut.
        let upper = cx
            .scratch()
            .try_alloc_slice_copy(req.body())
            .map_err(|_| Error::with_message(413, "body larger than the runner's scratch"))?;
        upper.make_ascii_uppercase();
        resp.write(upper)
            .map_err(|_| Error::with_message(500, "response over the body limit"))
    }
}

fn main() -> ExitCode {
    httpd_runner::cli::run(|builder| builder.runner(|_| Upper { served: 0 }))
}
