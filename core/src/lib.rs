//! # httpd-runner-core
//!
//! Every decision httpd-runner makes, as pure state machines with no I/O, no clock, no
//! threads, no heap (`#![no_std]`, no `alloc`) and no panics on any input:
//!
//! - [`ring`]: the bounded lock-free SPSC ring every pipeline edge uses (loom-checked), and
//!   [`wake`]: the sleep/wake handshake that makes idle threads sleep without lost wake-ups;
//! - [`parse`]: the incremental HTTP/1.1 request parser (on httparse) and chunked decoder;
//! - [`route`]: `(method, path)` to a route;
//! - [`response`]: response heads and short bodies into fixed buffers;
//! - [`conn`]: the per-connection state machine (timeouts, keep-alive, pipelining order);
//! - [`msg`]: the slot that carries a request to a runner and its response back, and the
//!   [`Runner`](msg::Runner) trait user code implements;
//! - [`limits`], [`text`], [`sync`]: capacities, fixed buffers, the atomics facade.
//!
//! The shell crate (`httpd-runner`) adds sockets, threads and the clock.
#![no_std]
#![deny(unsafe_code)]

pub mod conn;
pub mod limits;
pub mod msg;
pub mod parse;
pub mod response;
#[allow(unsafe_code)]
pub mod ring;
pub mod route;
pub mod sync;
pub mod text;
pub mod wake;
