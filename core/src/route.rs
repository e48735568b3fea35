//! Which handler answers a `(method, path)`, and which runner a `/run` request goes to. The
//! query string never takes part.

use crate::limits::MAX_RUNNER_KEY_BYTES;
use crate::parse::Method;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'p> {
    /// `/run` or `/run/KEY`: a runner answers. `key` is the path's key, if any.
    Run {
        /// The affinity key from `/run/KEY`.
        key: Option<&'p str>,
    },
    /// `POST /shutdown`: stop the server.
    Shutdown,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `GET /health`: liveness.
    Health,
    /// No such resource (404).
    NotFound,
    /// The resource exists but not with this method (405); `allow` lists the methods it has.
    MethodNotAllowed {
        /// Value for the `Allow` header.
        allow: &'static str,
    },
    /// `OPTIONS`: answer 200 with `Allow` (for `*`, every method the server implements).
    Options {
        /// Value for the `Allow` header.
        allow: &'static str,
    },
    /// A method the server does not implement at all (501).
    NotImplemented,
    /// The `/run/KEY` key is longer than [`MAX_RUNNER_KEY_BYTES`] (414).
    KeyTooLong,
}

/// A request's route as a metric label (`route="..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum RouteLabel {
    /// `/run` and `/run/KEY`.
    #[default]
    Run,
    /// `/shutdown`.
    Shutdown,
    /// `/metrics`.
    Metrics,
    /// `/health`.
    Health,
    /// Anything else.
    Other,
}

impl RouteLabel {
    /// Every label, in index order.
    pub const ALL: [Self; 5] = [
        Self::Run,
        Self::Shutdown,
        Self::Metrics,
        Self::Health,
        Self::Other,
    ];

    /// The label's text.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Shutdown => "shutdown",
            Self::Metrics => "metrics",
            Self::Health => "health",
            Self::Other => "other",
        }
    }

    /// Its place in [`Self::ALL`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The label of the resource at `path`, whatever the method.
    #[must_use]
    pub fn of_path(path: &str) -> Self {
        match path {
            "/shutdown" => Self::Shutdown,
            "/metrics" => Self::Metrics,
            "/health" => Self::Health,
            _ if path == "/run" || path.starts_with("/run/") => Self::Run,
            _ => Self::Other,
        }
    }
}

/// What the server does with a complete request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Hand it to a runner.
    Run,
    /// Start a clean shutdown (if the peer may).
    Shutdown,
    /// Answer with the metrics.
    Metrics,
    /// Answer `ok`.
    Health,
    /// Answer this status with its reason phrase, and `Allow` when given.
    Status(u16, Option<&'static str>),
}

impl Route<'_> {
    /// The action for this route and the label it is counted under; `path` (the request's
    /// path) labels a 405 or an `OPTIONS` answer by the resource it was for.
    #[must_use]
    pub fn action(&self, path: &str) -> (Action, RouteLabel) {
        match *self {
            Route::Run { .. } => (Action::Run, RouteLabel::Run),
            Route::Shutdown => (Action::Shutdown, RouteLabel::Shutdown),
            Route::Metrics => (Action::Metrics, RouteLabel::Metrics),
            Route::Health => (Action::Health, RouteLabel::Health),
            Route::NotFound => (Action::Status(404, None), RouteLabel::Other),
            Route::MethodNotAllowed { allow } => {
                (Action::Status(405, Some(allow)), RouteLabel::of_path(path))
            }
            Route::NotImplemented => (Action::Status(501, None), RouteLabel::Other),
            Route::Options { allow } => {
                (Action::Status(200, Some(allow)), RouteLabel::of_path(path))
            }
            Route::KeyTooLong => (Action::Status(414, None), RouteLabel::Run),
        }
    }
}

/// Which listener a connection came through, and so which resources it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Plane {
    /// The only listener: `/run` and the admin resources (`/metrics`, `/shutdown`).
    #[default]
    All,
    /// The data listener beside an admin listener: `/run` and `/health`, not the admin
    /// resources (404), so nothing that reaches the data port can read metrics or stop it.
    Data,
    /// The admin listener: `/metrics`, `/health` and `/shutdown`, not `/run` (404).
    Admin,
}

impl Plane {
    /// Whether this plane serves the resource labelled `label`.
    #[must_use]
    pub const fn serves(self, label: RouteLabel) -> bool {
        match self {
            Self::All => true,
            Self::Data => !matches!(label, RouteLabel::Metrics | RouteLabel::Shutdown),
            Self::Admin => !matches!(label, RouteLabel::Run),
        }
    }
}

/// Routes a request that came through `plane`: as [`route`], except that a resource the
/// plane does not serve is not found (404), whatever the method.
#[must_use]
pub fn route_on(plane: Plane, method: Method, path: &str) -> Route<'_> {
    if plane == Plane::All || plane.serves(RouteLabel::of_path(path)) {
        route(method, path)
    } else {
        Route::NotFound
    }
}

/// Methods `/run` accepts.
pub const RUN_ALLOW: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS";
const SHUTDOWN_ALLOW: &str = "POST, OPTIONS";
const READ_ALLOW: &str = "GET, HEAD, OPTIONS";
/// Every method the server implements somewhere (`OPTIONS *`).
pub const SERVER_ALLOW: &str = RUN_ALLOW;

/// Routes a request. `path` is the path without the query.
#[must_use]
pub fn route(method: Method, path: &str) -> Route<'_> {
    if matches!(method, Method::Other | Method::Connect) {
        return Route::NotImplemented;
    }
    if method == Method::Options && path == "*" {
        return Route::Options {
            allow: SERVER_ALLOW,
        };
    }
    let (resource, allow) = match path {
        "/run" | "/run/" => (Route::Run { key: None }, RUN_ALLOW),
        "/shutdown" => (Route::Shutdown, SHUTDOWN_ALLOW),
        "/metrics" => (Route::Metrics, READ_ALLOW),
        "/health" => (Route::Health, READ_ALLOW),
        _ => match path.strip_prefix("/run/") {
            Some(key) if key.len() > MAX_RUNNER_KEY_BYTES => return Route::KeyTooLong,
            Some(key) => (Route::Run { key: Some(key) }, RUN_ALLOW),
            None => return Route::NotFound,
        },
    };
    let allowed = match resource {
        Route::Run { .. } => {
            matches!(
                method,
                Method::Get | Method::Head | Method::Post | Method::Put | Method::Delete
            )
        }
        Route::Shutdown => method == Method::Post,
        _ => matches!(method, Method::Get | Method::Head),
    };
    if method == Method::Options {
        Route::Options { allow }
    } else if allowed {
        resource
    } else {
        Route::MethodNotAllowed { allow }
    }
}

/// Header fields a reverse proxy adds: a request carrying one came through a proxy, so its
/// loopback peer address says nothing about who sent it.
pub const PROXY_FIELDS: [&str; 4] = ["forwarded", "x-forwarded-for", "x-real-ip", "via"];

/// Whether a request with these header field names came through a proxy (any of
/// [`PROXY_FIELDS`], in any case).
pub fn proxied<'a>(names: impl IntoIterator<Item = &'a str>) -> bool {
    names.into_iter().any(|n| {
        PROXY_FIELDS
            .iter()
            .any(|p| n.as_bytes().eq_ignore_ascii_case(p.as_bytes()))
    })
}

/// Whether `POST /shutdown` is allowed. With a token configured, only with
/// `Authorization: Bearer TOKEN` (compared in constant time), whoever the peer is, loopback
/// included. Without one, only from a `local` peer: loopback, and not through a proxy
/// (see [`proxied`]), since behind a proxy on the same host every client is loopback.
#[must_use]
pub fn shutdown_permitted(local: bool, token: Option<&[u8]>, authorization: Option<&[u8]>) -> bool {
    let Some(token) = token else {
        return local;
    };
    let Some(auth) = authorization else {
        return false;
    };
    if token.is_empty()
        || auth.len() != 7 + token.len()
        || !auth[..7].eq_ignore_ascii_case(b"Bearer ")
    {
        return false;
    }
    auth[7..]
        .iter()
        .zip(token)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Which runner answers a `/run` request, given each runner's jobs in flight from the
/// asking handler (`in_flight`, one entry per runner, at least one):
/// - with a key (`/run/KEY`), the runner the key hashes to (FNV-1a, modulo the runner
///   count), whichever handler asks: requests with one key always meet the same runner and
///   whatever state it keeps for them;
/// - without, the runner with the fewest jobs in flight, looking from the entry after
///   `*turn` and wrapping, so ties rotate and idle runners share the work; `*turn` moves on
///   by one.
///
/// A key never divides unless there is more than one runner, and the keyless choice never
/// divides at all: an integer division costs tens of cycles, and this runs for every request.
#[must_use]
pub fn pick_runner(key: Option<&[u8]>, in_flight: &[usize], turn: &mut usize) -> usize {
    let n = in_flight.len();
    if n <= 1 {
        return 0;
    }
    if let Some(key) = key {
        return (fnv1a(key) % n as u64) as usize;
    }
    let next = *turn + 1;
    *turn = if next >= n { 0 } else { next };
    let mut best = *turn;
    let mut r = best;
    for _ in 1..n {
        r = if r + 1 == n { 0 } else { r + 1 };
        if in_flight[r] < in_flight[best] {
            best = r;
        }
    }
    best
}

/// FNV-1a (64-bit): a small, stable hash for runner affinity keys.
#[must_use]
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
