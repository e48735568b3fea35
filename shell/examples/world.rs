//! A world stepped at a fixed tick, sharded by room over the runners: every request for a
//! room (`/run/ROOM`) reaches the runner that owns it, and each runner steps its rooms once
//! per frame. Inputs are applied at the next frame and answered at its end; readers can
//! long-poll for the next frame. Nothing is allocated after startup: rooms, queued inputs
//! and waiting readers live in fixed tables, kept requests hold their own slots.
//!
//! ```sh
//! cargo run --release --example world -- --request-timeout 5s
//! curl -d 5 http://127.0.0.1:8080/run/lobby          # applied next frame: {"room":"lobby","frame":41,"value":5}
//! curl 'http://127.0.0.1:8080/run/lobby?after=41'    # waits for a frame after 41
//! curl -H 'X-Deadline-Ms: 1' 'http://127.0.0.1:8080/run/lobby?after=99999999'  # 504
//! ```
//!
//! `WORLD_TICK_HZ` sets the frame rate (default 60).

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use heapless::index_map::FnvIndexMap;
use httpd_runner::alloc::CountingAlloc;
use httpd_runner::core::Method;
use httpd_runner::{Context, Error, FrameRef, Kept, Request, Response, Runner};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Rooms per runner (a power of two, as the map requires).
const ROOMS: usize = 64;
/// Inputs and readers waiting per runner.
const WAITING: usize = 256;

type Name = heapless::String<32>;

/// One room's state.
#[derive(Debug, Default, Clone, Copy)]
struct Room {
    value: i64,
    /// Inputs applied in the last frame (what the frame arena also records).
    applied_last_frame: u32,
}

/// An input queued for the next frame.
struct Input {
    kept: Kept,
    room: usize,
    delta: i64,
}

/// A reader waiting for a frame after `after`.
struct Reader {
    kept: Kept,
    room: usize,
    after: u64,
}

/// One runner's shard of the world.
struct World {
    tick: Duration,
    rooms: FnvIndexMap<Name, Room, ROOMS>,
    inputs: heapless::Vec<Input, WAITING>,
    readers: heapless::Vec<Reader, WAITING>,
    /// The last frame stepped, if any.
    last_frame: Option<u64>,
    /// What the last frame applied, room by room, kept in frame memory (valid through the
    /// next frame).
    last_changes: Option<FrameRef<[(u8, i64)]>>,
}

impl World {
    fn new(tick: Duration) -> Self {
        Self {
            tick,
            rooms: FnvIndexMap::new(),
            inputs: heapless::Vec::new(),
            readers: heapless::Vec::new(),
            last_frame: None,
            last_changes: None,
        }
    }

    /// The room a request names, made on first use.
    fn room(&mut self, req: &Request<'_>) -> Result<usize, Error> {
        let name = req
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| Name::try_from(k).ok())
            .ok_or(Error::with_message(
                400,
                "name a room of at most 32 bytes: /run/ROOM",
            ))?;
        if let Some(i) = self.rooms.get_index_of(&name) {
            return Ok(i);
        }
        self.rooms
            .insert(name.clone(), Room::default())
            .map_err(|_| Error::with_message(507, "this shard has no room for another room"))?;
        self.rooms.get_index_of(&name).ok_or(Error::status(500))
    }

    /// Writes a room's state as JSON, without allocating.
    fn write_state(
        &self,
        room: usize,
        frame: u64,
        changes: usize,
        resp: &mut Response<'_, '_>,
    ) -> Result<(), Error> {
        let (name, state) = self.rooms.get_index(room).ok_or(Error::status(500))?;
        let _ = resp.header("Content-Type", b"application/json");
        writeln!(
            resp.body_mut(),
            r#"{{"room":"{name}","frame":{frame},"value":{},"changes_last_frame":{changes}}}"#,
            state.value
        )
        .map_err(|_| Error::status(500))
    }
}

/// `?after=F`.
fn after(req: &Request<'_>) -> Result<Option<u64>, Error> {
    let Some(q) = req.query() else {
        return Ok(None);
    };
    q.split('&')
        .find_map(|kv| kv.strip_prefix("after="))
        .map(|v| {
            v.parse()
                .map_err(|_| Error::with_message(400, "after=F needs a frame number"))
        })
        .transpose()
}

impl Runner for World {
    fn tick_every(&self) -> Option<Duration> {
        Some(self.tick)
    }

    fn run(
        &mut self,
        cx: &mut Context<'_>,
        req: &Request<'_>,
        resp: &mut Response<'_, '_>,
    ) -> Result<(), Error> {
        let room = self.room(req)?;
        match req.method() {
            Method::Post => {
                let delta: i64 = std::str::from_utf8(req.body())
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or(Error::with_message(400, "POST a whole number"))?;
                if self.inputs.is_full() {
                    return Err(Error::with_message(503, "input queue full"));
                }
                let kept = cx.keep()?;
                let _ = self.inputs.push(Input { kept, room, delta });
                Ok(())
            }
            Method::Get | Method::Head => {
                let changes = self.changes(cx, room);
                match (after(req)?, self.last_frame) {
                    // A frame after F has run already: answer now.
                    (Some(f), Some(last)) if last > f => {
                        self.write_state(room, last, changes, resp)
                    }
                    (None, last) => self.write_state(room, last.unwrap_or(0), changes, resp),
                    (Some(f), _) => {
                        if self.readers.is_full() {
                            return Err(Error::with_message(503, "too many readers waiting"));
                        }
                        let kept = cx.keep()?;
                        let _ = self.readers.push(Reader {
                            kept,
                            room,
                            after: f,
                        });
                        Ok(())
                    }
                }
            }
            _ => {
                resp.set_status(405);
                let _ = resp.header("Allow", b"GET, HEAD, POST");
                Ok(())
            }
        }
    }

    /// One frame: apply the queued inputs, answer them with this frame's number, then
    /// answer the readers waiting for a frame before this one.
    fn tick(&mut self, cx: &mut Context<'_>) {
        let frame = cx.frame();
        for room in self.rooms.values_mut() {
            room.applied_last_frame = 0;
        }
        // This frame's changes, listed in scratch memory (reset when the tick returns).
        let mut changes = httpd_runner::bumpalo::collections::Vec::with_capacity_in(
            self.inputs.len(),
            cx.scratch(),
        );
        for input in &self.inputs {
            if let Some((_, room)) = self.rooms.get_index_mut(input.room) {
                room.value = room.value.saturating_add(input.delta);
                room.applied_last_frame += 1;
                changes.push((input.room as u8, input.delta));
            }
        }
        // This frame's changes, readable through the next frame without a copy of our own.
        self.last_changes = cx.frame_keep_slice(&changes);
        drop(changes);
        self.last_frame = Some(frame);
        let inputs = std::mem::take(&mut self.inputs);
        for input in &inputs {
            // An input whose client gave up (deadline) is applied but not answered.
            let n = self.changes(cx, input.room);
            cx.answer(input.kept, |_, resp| {
                self.write_state(input.room, frame, n, resp)
            });
        }
        let mut still = heapless::Vec::<Reader, WAITING>::new();
        for r in std::mem::take(&mut self.readers) {
            if r.after < frame {
                let n = self.changes(cx, r.room);
                cx.answer(r.kept, |_, resp| self.write_state(r.room, frame, n, resp));
            } else if cx.is_kept(r.kept) {
                let _ = still.push(r);
            }
        }
        self.readers = still;
    }
}

impl World {
    /// How many inputs the last frame applied to `room`, read from frame memory.
    fn changes(&self, cx: &Context<'_>, room: usize) -> usize {
        self.last_changes
            .as_ref()
            .and_then(|r| cx.frame_get(r))
            .map_or(0, |c| {
                c.iter().filter(|(i, _)| usize::from(*i) == room).count()
            })
    }
}

fn main() -> ExitCode {
    let hz: u64 = std::env::var("WORLD_TICK_HZ")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&hz| (1..=10_000).contains(&hz))
        .unwrap_or(60);
    let tick = Duration::from_nanos(1_000_000_000 / hz);
    httpd_runner::cli::run(move |builder| builder.runner(move |_| World::new(tick)))
}
