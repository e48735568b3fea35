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
//! - [`msg`]: the slot that carries a request to a runner and its response back, with the
//!   [`Request`] and [`Response`] views user code reads and writes;
//! - [`deadline`]: request budgets, where a request expired, the handler's deadline watch;
//! - [`keep`]: the fixed table of requests a runner keeps to answer later;
//! - [`observe`]: latency buckets, status classes, stalls, log bursts, access-log records;
//! - [`limits`], [`text`], [`sync`]: capacities, fixed buffers, the atomics facade.
//!
//! The shell crate (`httpd-runner`) adds sockets, threads and the clock, and the `Runner`
//! trait user code implements (it needs the shell's clock and scratch memory); its
//! `docs/runners.md` is the guide to writing one.
#![no_std]
#![deny(unsafe_code)]

pub mod admit;
pub mod class;
pub mod conn;
pub mod deadline;
pub mod keep;
pub mod limits;
pub mod msg;
pub mod observe;
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

pub use msg::{Request, Response};
pub use parse::Method;
