//! # httpd-runner-core
//!
//! Every decision httpd-runner makes, as pure state machines with no I/O, no clock, no
//! threads, no heap (`#![no_std]`, no `alloc`) and no panics on any input:
//!
//! - [`ring`]: the bounded lock-free SPSC ring every pipeline edge uses (loom-checked), and
//!   [`wake`]: the sleep/wake handshake that makes idle threads sleep without lost wake-ups;
//! - [`parse`]: the incremental HTTP/1.1 request parser (on httparse) and chunked decoder;
//! - [`place`]: when to guess the next request's shape, where a read made on the guess puts
//!   its bytes (body straight into a slot), and how a wrong guess is undone;
//! - [`admit`]: which connection may take a request slot (a fair share) and which request is
//!   shed with 503 rather than wait past a bound;
//! - [`route`]: `(method, path)` to a route, and a `/run` request to a runner (key affinity,
//!   else least loaded);
//! - [`sched`]: the threads' scheduling decisions (light load, polling, sleeping, measuring,
//!   waiting for runners, placing connections);
//! - [`response`]: response heads and short bodies into fixed buffers;
//! - [`conn`]: the per-connection state machine (timeouts, keep-alive, pipelining order);
//! - [`msg`]: the slot that carries a request to a runner and its response back, and the
//!   [`Runner`] trait user code implements;
//! - [`limits`], [`text`], [`sync`]: capacities, fixed buffers, the atomics facade.
//!
//! The shell crate (`httpd-runner`) adds sockets, threads and the clock.
//!
//! # Writing a runner
//!
//! A [`Runner`] answers `/run` requests on its own pinned thread. It reads the request
//! (method, path, query, affinity key, headers, body) and writes a status, header fields and a
//! body into fixed buffers; it cannot allocate through this API and needs no locks, because
//! each runner thread owns its instance.
//!
//! ```
//! use httpd_runner_core::{Method, Request, Response, Runner};
//!
//! /// Counts requests per key prefix and answers with the body reversed.
//! struct Reverse {
//!     served: u64,
//! }
//!
//! impl Runner for Reverse {
//!     fn run(&mut self, req: &Request<'_>, resp: &mut Response<'_, '_>) {
//!         if req.method() != Method::Post {
//!             resp.set_status(405);
//!             let _ = resp.header("Allow", b"POST");
//!             return;
//!         }
//!         self.served += 1;
//!         let _ = resp.header("Content-Type", b"application/octet-stream");
//!         let body = resp.body_mut();
//!         for &b in req.body().iter().rev() {
//!             if body.extend_from_slice(&[b]).is_err() {
//!                 break; // over the body limit: the server answers 500, never a cut body
//!             }
//!         }
//!     }
//! }
//! ```
//!
//! Plug it in with `httpd_runner::Builder::runner(|core_index| Reverse { served: 0 })`.
#![no_std]
#![deny(unsafe_code)]

pub mod admit;
pub mod conn;
pub mod limits;
pub mod msg;
pub mod parse;
pub mod place;
pub mod response;
#[allow(unsafe_code)]
pub mod ring;
pub mod route;
pub mod sched;
pub mod sync;
pub mod text;
pub mod wake;

pub use msg::{Request, Response, Runner};
pub use parse::Method;
