//! A stateful per-core key-value shard: each runner owns a fixed-size map, and key affinity
//! (`/run/KEY`) sends every request for a key to the runner that holds it. No locks, no
//! allocation after startup (the maps are made by the factory, before the startup mark).
//! Errors are returned as statuses (`Err(Error::status(404))`); the server writes them.
//!
//! ```sh
//! cargo run --release --example kv
//! curl -X PUT -d alice http://127.0.0.1:8080/run/user-1    # 201, X-Runner: N
//! curl http://127.0.0.1:8080/run/user-1                    # alice, same X-Runner
//! curl -X DELETE http://127.0.0.1:8080/run/user-1          # 204
//! ```

use std::fmt::Write as _;
use std::process::ExitCode;

use httpd_runner::alloc::CountingAlloc;
use httpd_runner::core::Method;
use httpd_runner::{Context, Error, Request, Response, Runner};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Keys per shard (a power of two, as the map requires).
const KEYS: usize = 256;
/// Longest key.
const KEY_BYTES: usize = 64;
/// Longest value.
const VALUE_BYTES: usize = 1024;

type Key = heapless::String<KEY_BYTES>;
type Value = heapless::Vec<u8, VALUE_BYTES>;

/// One runner's shard.
struct Shard {
    index: usize,
    map: heapless::index_map::FnvIndexMap<Key, Value, KEYS>,
}

impl Runner for Shard {
    fn run(
        &mut self,
        cx: &mut Context<'_>,
        req: &Request<'_>,
        resp: &mut Response<'_, '_>,
    ) -> Result<(), Error> {
        debug_assert_eq!(cx.runner(), self.index);
        let mut shard = heapless::String::<8>::new();
        let _ = write!(shard, "{}", self.index);
        let _ = resp.header("X-Shard", shard.as_bytes());
        let key = req
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| Key::try_from(k).ok());
        let Some(key) = key else {
            return Err(Error::with_message(
                400,
                "name a key of at most 64 bytes: /run/KEY",
            ));
        };
        match req.method() {
            Method::Get | Method::Head => match self.map.get(&key) {
                Some(value) => {
                    let _ = resp.header("Content-Type", b"application/octet-stream");
                    let _ = resp.write(value);
                }
                None => return Err(Error::status(404)),
            },
            Method::Put | Method::Post => {
                let Ok(value) = Value::from_slice(req.body()) else {
                    return Err(Error::with_message(413, "values are at most 1024 bytes"));
                };
                match self.map.insert(key, value) {
                    Ok(None) => resp.set_status(201),
                    Ok(Some(_)) => resp.set_status(200),
                    Err(_) => return Err(Error::with_message(507, "this shard is full")),
                }
            }
            Method::Delete => {
                if self.map.swap_remove(&key).is_none() {
                    return Err(Error::status(404));
                }
                resp.set_status(204);
            }
            _ => {
                resp.set_status(405);
                let _ = resp.header("Allow", b"GET, HEAD, PUT, POST, DELETE");
            }
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    httpd_runner::cli::run(|builder| {
        builder.runner(|index| Shard {
            index,
            map: heapless::index_map::FnvIndexMap::new(),
        })
    })
}
