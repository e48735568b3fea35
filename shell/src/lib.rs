//! # httpd-runner
//!
//! A fixed-memory HTTP/1.1 server that runs your code on pinned cores.
//!
//! - **No allocation after startup.** Connection tables, read buffers, request slots and
//!   rings are reserved when the server starts; afterwards requests move between threads as
//!   `&'static mut Slot`s through lock-free SPSC rings.
//! - **No locks, no busy idling.** Each pipeline edge is its own SPSC ring; a thread that finds
//!   nothing to do announces it on its doorbell and sleeps, and producers wake it only then.
//! - **Ordered, bounded, hardened HTTP/1.1.** Parsing, routing, framing, timeouts and
//!   pipelining order are decided by the pure `httpd-runner-core` crate.
//!
//! ```text
//! listener ──SPSC──▶ handler-h ──SPSC──▶ runner-r (pinned)
//!                       ▲                   │
//!                       └──────SPSC─────────┘
//! ```
//!
//! Start a server with your own runner:
//!
//! ```no_run
//! use httpd_runner::{Builder, Config, Context, Error, Request, Response, Runner};
//!
//! struct Upper;
//! impl Runner for Upper {
//!     fn run(
//!         &mut self,
//!         _cx: &mut Context<'_>,
//!         req: &Request<'_>,
//!         resp: &mut Response<'_, '_>,
//!     ) -> Result<(), Error> {
//!         let body = resp.body_mut();
//!         for &b in req.body() {
//!             body.extend_from_slice(&[b.to_ascii_uppercase()])
//!                 .map_err(|_| Error::status(500))?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let cfg = Config::with_listen("127.0.0.1:0".parse().unwrap());
//! let server = Builder::new(cfg).runner(|_core| Upper).start().unwrap();
//! eprintln!("{}", server.banner());
//! server.wait().unwrap();
//! ```
//!
//! Runners can also tick at a fixed rate, keep requests to answer later, see deadlines
//! and use scratch memory: see [`Runner`], [`Context`] and `docs/runners.md`.
#![deny(unsafe_code)]

mod access;
pub mod alloc;
pub mod cli;
mod clock;
mod config;
mod handler;
mod hints;
mod listener;
mod logger;
mod memory;
mod metrics;
mod net;
mod pin;
mod runner;
mod server;
mod shared;
mod shutdown;

/// The scratch arenas' allocator ([`Context::scratch`], [`Context::frame_arena`]), for its
/// collections (`bumpalo::collections::{String, Vec}`).
pub use bumpalo;
pub use config::{AccessLog, Config, RunnerKind};
pub use httpd_runner_core as core;
pub use httpd_runner_core::keep::Kept;
pub use httpd_runner_core::{Request, Response};
pub use net::Endpoint;
pub use pin::Pinning;
pub use runner::{Context, Error, FrameRef, Runner};
pub use server::{Builder, Server, Summary};
pub use shutdown::Reason;
