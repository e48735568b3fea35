//! What crosses the rings, in one place.
//!
//! ```text
//! listener --(accepted socket)--> handler --(Job)--> runner --(Done)--> handler
//! ```
//! The listener's ring carries sockets (a shell type). Between handlers and runners only
//! [`Slot`]s travel, as exclusive references: a [`Job`] and a [`Done`] are the same
//! `&mut Slot`, so pushing one through a ring moves ownership of the slot's buffers to the
//! other thread without copying a byte. Each handler owns a fixed pool of slots made at
//! startup; a slot leaves the pool for one request and returns once its response is written.

use core::ops::Range;

use crate::deadline::Expiry;
use crate::limits::{MAX_HEADERS, RESPONSE_HEAD_BYTES};
use crate::parse::{Head, Method};
use crate::route::RouteLabel;
use crate::text::{FixedBuf, Full, HeaderLines};

/// A request going to a runner.
pub type Job<'a> = &'a mut Slot<'a>;
/// A response coming back from a runner.
pub type Done<'a> = &'a mut Slot<'a>;

/// Routing data the handler writes and reads back; a runner writes only `answered_us` and
/// `expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// Connection index in the handler's table.
    pub conn: u32,
    /// Generation of that table entry, so a response for a closed connection is dropped.
    pub generation: u32,
    /// Sequence number of the request on its connection.
    pub seq: u32,
    /// Runner the job went to.
    pub runner: u16,
    /// Handler that sent it (where it goes back).
    pub handler: u16,
    /// `HEAD` request: send no body.
    pub head_only: bool,
    /// The route it is counted under in metrics.
    pub route: RouteLabel,
    /// When the request was dispatched (µs since server start), for service-time metrics.
    pub started_us: u64,
    /// When a runner finished it (µs since server start), stamped by the runner on the last
    /// job of each run of jobs it takes in one go; [`Ticket::UNSTAMPED`] on the others.
    /// The handler's estimate of how quickly runners answer uses it: its own clock at
    /// pickup would add the time it took to wake up when it slept.
    pub answered_us: u64,
    /// When the request's deadline passes (µs since server start), or
    /// [`deadline::NONE`](crate::deadline::NONE).
    pub deadline_us: u64,
    /// Set by the runner when it found the deadline passed, and where the request was.
    pub expired: Expiry,
}

impl Ticket {
    /// `answered_us` of a job the runner did not stamp.
    pub const UNSTAMPED: u64 = u64::MAX;
}

impl Default for Ticket {
    fn default() -> Self {
        Self {
            conn: 0,
            generation: 0,
            seq: 0,
            runner: 0,
            handler: 0,
            head_only: false,
            route: RouteLabel::default(),
            started_us: 0,
            answered_us: 0,
            deadline_us: crate::deadline::NONE,
            expired: Expiry::No,
        }
    }
}

/// One request and its response, with preallocated buffers.
#[derive(Debug)]
pub struct Slot<'a> {
    /// The slot's number in its handler's pool (fixed at startup).
    pub id: u32,
    /// The handler's routing data.
    pub ticket: Ticket,
    /// The request.
    pub request: RequestData<'a>,
    /// The response.
    pub response: ResponseData<'a>,
}

impl<'a> Slot<'a> {
    /// A slot over caller-provided buffers: `head` for a copy of the request head (at least
    /// the head limit), `body` for the request body and `response_body` for the response body
    /// (at least the body limit each).
    pub fn new(head: &'a mut [u8], body: &'a mut [u8], response_body: &'a mut [u8]) -> Self {
        Self {
            id: 0,
            ticket: Ticket::default(),
            request: RequestData {
                head: FixedBuf::new(head),
                method: Method::Get,
                path: 0..0,
                query: None,
                key: None,
                headers: heapless::Vec::new(),
                body: FixedBuf::new(body),
            },
            response: ResponseData {
                status: 200,
                headers: HeaderLines::new(),
                body: FixedBuf::new(response_body),
                echo: false,
                wire_head: [0; RESPONSE_HEAD_BYTES],
                wire_head_len: 0,
            },
        }
    }

    /// Clears request and response for reuse.
    pub fn reset(&mut self) {
        self.ticket = Ticket::default();
        self.request.clear();
        self.response.clear();
    }
}

/// Byte ranges into the copied head.
type Span = Range<u32>;

/// The request side of a slot: a copy of the head with indexes into it, and the body.
#[derive(Debug)]
pub struct RequestData<'a> {
    head: FixedBuf<'a>,
    method: Method,
    path: Span,
    query: Option<Span>,
    key: Option<Span>,
    headers: heapless::Vec<(Span, Span), MAX_HEADERS>,
    /// The body (decoded, if it was chunked). The handler fills it.
    pub body: FixedBuf<'a>,
}

fn span_of(outer: &[u8], inner: &[u8]) -> Span {
    // Both come from the same buffer: `inner` is a sub-slice of `outer`.
    let start = (inner.as_ptr() as usize).wrapping_sub(outer.as_ptr() as usize);
    debug_assert!(start + inner.len() <= outer.len());
    start as u32..(start + inner.len()) as u32
}

impl RequestData<'_> {
    /// Copies a parsed head (`raw` is the buffer it was parsed from) and the runner key, which
    /// must borrow from `raw` too, into the slot. The body is left empty.
    ///
    /// # Errors
    /// [`Full`] when the head buffer is smaller than the head.
    pub fn load(
        &mut self,
        head: &Head<'_, '_>,
        raw: &[u8],
        key: Option<&[u8]>,
    ) -> Result<(), Full> {
        self.clear();
        self.head.extend_from_slice(&raw[..head.head_len])?;
        let raw = &raw[..head.head_len];
        self.method = head.method;
        self.path = span_of(raw, head.path.as_bytes());
        self.query = head.query.map(|q| span_of(raw, q.as_bytes()));
        self.key = key.map(|k| span_of(raw, k));
        for h in head.headers {
            let pair = (span_of(raw, h.name.as_bytes()), span_of(raw, h.value));
            self.headers.push(pair).map_err(|_| Full)?;
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.head.clear();
        self.headers.clear();
        self.path = 0..0;
        self.query = None;
        self.key = None;
        self.body.clear();
    }

    fn text(&self, s: &Span) -> &str {
        // The head was validated as ASCII for targets and tokens; fall back to "" otherwise.
        core::str::from_utf8(self.bytes(s)).unwrap_or("")
    }

    fn bytes(&self, s: &Span) -> &[u8] {
        self.head
            .as_slice()
            .get(s.start as usize..s.end as usize)
            .unwrap_or(&[])
    }

    /// The head as copied into the slot (request line first).
    #[must_use]
    pub fn head(&self) -> &[u8] {
        self.head.as_slice()
    }

    /// A read-only view for a runner.
    #[must_use]
    pub fn view(&self) -> Request<'_> {
        Request { data: self }
    }
}

/// What a runner sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'s> {
    data: &'s RequestData<'s>,
}

impl<'s> Request<'s> {
    /// The method.
    #[must_use]
    pub fn method(&self) -> Method {
        self.data.method
    }

    /// The path, without the query.
    #[must_use]
    pub fn path(&self) -> &'s str {
        self.data.text(&self.data.path)
    }

    /// The query (after `?`), if any.
    #[must_use]
    pub fn query(&self) -> Option<&'s str> {
        self.data.query.as_ref().map(|q| self.data.text(q))
    }

    /// The affinity key (`/run/KEY` or `X-Runner-Key`), if any.
    #[must_use]
    pub fn key(&self) -> Option<&'s [u8]> {
        self.data.key.as_ref().map(|k| self.data.bytes(k))
    }

    /// The header fields in the order received, as `(name, value)`.
    pub fn headers(&self) -> impl Iterator<Item = (&'s str, &'s [u8])> + 's {
        let data = self.data;
        data.headers
            .iter()
            .map(move |(n, v)| (data.text(n), data.bytes(v)))
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&'s [u8]> {
        let data = self.data;
        data.headers
            .iter()
            .find(|(n, _)| data.bytes(n).eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| data.bytes(v))
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &'s [u8] {
        self.data.body.as_slice()
    }
}

/// The response side of a slot.
#[derive(Debug)]
pub struct ResponseData<'a> {
    status: u16,
    headers: HeaderLines,
    body: FixedBuf<'a>,
    /// The response body is the request body (no copy).
    echo: bool,
    wire_head: [u8; RESPONSE_HEAD_BYTES],
    wire_head_len: usize,
}

impl ResponseData<'_> {
    fn clear(&mut self) {
        self.status = 200;
        self.headers.clear();
        self.body.clear();
        self.echo = false;
        self.wire_head_len = 0;
    }

    /// The status code the runner set.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The runner's header lines.
    #[must_use]
    pub fn header_lines(&self) -> &HeaderLines {
        &self.headers
    }

    /// Serializes the head with `f` straight into the slot's head buffer (handler side);
    /// `f` gets the buffer, the status and the runner's header lines.
    ///
    /// # Errors
    /// [`Full`] from `f`.
    pub fn write_wire_head(
        &mut self,
        f: impl FnOnce(&mut FixedBuf<'_>, u16, &HeaderLines) -> Result<(), Full>,
    ) -> Result<(), Full> {
        let mut buf = FixedBuf::new(&mut self.wire_head);
        let result = f(&mut buf, self.status, &self.headers);
        self.wire_head_len = if result.is_ok() { buf.len() } else { 0 };
        result
    }

    /// The serialized head.
    #[must_use]
    pub fn wire_head(&self) -> &[u8] {
        &self.wire_head[..self.wire_head_len]
    }
}

impl<'a> Slot<'a> {
    /// Gives `f` the request and a writable response, as a runner sees them. The response is
    /// reset to `200`, no headers, empty body first.
    pub fn serve<R>(&mut self, f: impl FnOnce(&Request<'_>, &mut Response<'_, '_>) -> R) -> R {
        self.serve_lending(&mut None, f)
    }

    /// [`serve`](Self::serve), lending `spare` (a larger buffer) to the response body: it is
    /// offered to the body the first time the runner writes to it ([`FixedBuf::offer`]), so
    /// a response longer than the slot's own buffer grows into it. `spare` is left `None`
    /// when it was offered: [`take_response_offer`](Self::take_response_offer) then gives it
    /// back unless the body grew into it.
    pub fn serve_lending<R>(
        &mut self,
        spare: &mut Option<&'a mut [u8]>,
        f: impl FnOnce(&Request<'_>, &mut Response<'_, 'a>) -> R,
    ) -> R {
        self.response.clear();
        let req = self.request.view();
        let mut resp = Response {
            data: &mut self.response,
            spare,
        };
        f(&req, &mut resp)
    }

    /// After a runner's `run`: a response body that outgrew its buffer (a write did not fit
    /// and the runner went on) while the status still says success is never sent truncated.
    /// It becomes a `500` with a short explanation when the body passed the limit, or a
    /// `503` with `Retry-After` when `short`: no larger buffer was free to grow into (see
    /// [`offer_response_reserve`](Self::offer_response_reserve)). Returns whether it did. A
    /// runner that meets the limit and answers another status (or resets the response)
    /// keeps its answer.
    pub fn refuse_truncated(&mut self, short: bool) -> bool {
        self.refuse_truncated_with(|_| short)
    }

    /// [`refuse_truncated`](Self::refuse_truncated), asking `short` only when it refuses.
    #[inline]
    pub fn refuse_truncated_with(&mut self, short: impl FnOnce(&Self) -> bool) -> bool {
        let r = &self.response;
        if !r.body.overflowed() || !(200..300).contains(&r.status) || r.echo {
            return false;
        }
        let short = short(self);
        let r = &mut self.response;
        r.clear();
        let _ = r.headers.push("Content-Type", b"text/plain; charset=utf-8");
        if short {
            r.status = 503;
            let _ = r.headers.push("Retry-After", b"1");
            let _ = r.body.extend_from_slice(b"no response buffer free\n");
        } else {
            r.status = 500;
            let _ = r.body.extend_from_slice(b"response body over the limit\n");
        }
        true
    }

    /// Offers the response body a larger buffer to grow into, for one call of a runner (see
    /// [`FixedBuf::offer`]); a buffer that cannot be used comes back.
    pub fn offer_response_reserve(&mut self, reserve: &'a mut [u8]) -> Option<&'a mut [u8]> {
        self.response.body.offer(reserve)
    }

    /// The reserve offered to the response body, if it was not used.
    pub fn take_response_offer(&mut self) -> Option<&'a mut [u8]> {
        self.response.body.take_offer()
    }

    /// Whether a response body that outgrows its buffer has somewhere to go.
    #[must_use]
    pub const fn response_can_grow(&self) -> bool {
        self.response.body.can_grow()
    }

    /// Once the response is written: the larger buffer the response body grew into, if it
    /// did (the slot goes back to its own).
    pub fn take_grown_response(&mut self) -> Option<&'a mut [u8]> {
        self.response.body.take_grown()
    }

    /// Bytes of response body the slot holds now.
    #[must_use]
    pub fn response_capacity(&self) -> usize {
        self.response.body.capacity()
    }

    /// Bytes of request head the slot can hold.
    #[must_use]
    pub fn head_capacity(&self) -> usize {
        self.request.head.capacity()
    }

    /// Moves the request (head, fields, body so far) and the ticket into `to`, a slot with
    /// room for them, when the request outgrows this one; this slot is left reset.
    ///
    /// # Errors
    /// [`Full`] when `to` cannot hold them (nothing moved then).
    pub fn move_request_into(&mut self, to: &mut Slot<'_>) -> Result<(), Full> {
        let (from, into) = (&self.request, &mut to.request);
        if into.head.capacity() < from.head.len() || into.body.capacity() < from.body.len() {
            return Err(Full);
        }
        into.clear();
        into.head.extend_from_slice(from.head.as_slice())?;
        into.body.extend_from_slice(from.body.as_slice())?;
        into.method = from.method;
        into.path = from.path.clone();
        into.query = from.query.clone();
        into.key = from.key.clone();
        into.headers.clone_from(&from.headers);
        to.ticket = self.ticket;
        self.reset();
        Ok(())
    }

    /// Replaces the response with `status` and a short plain-text `text` body (an error the
    /// runner returned, a panic, an answer the server gives in its place).
    pub fn answer_plain(&mut self, status: u16, text: &[u8]) {
        let r = &mut self.response;
        r.clear();
        r.status = if (100..=599).contains(&status) {
            status
        } else {
            500
        };
        let _ = r.headers.push("Content-Type", b"text/plain; charset=utf-8");
        if r.body.extend_from_slice(text).is_err() {
            r.body.clear();
        }
    }

    /// The bytes of the response body: the runner's, or the request body when it echoed.
    #[must_use]
    pub fn response_body(&self) -> &[u8] {
        if self.response.echo {
            self.request.body.as_slice()
        } else {
            self.response.body.as_slice()
        }
    }

    /// The body bytes that go on the wire after the head: none for a `HEAD` request or a
    /// status without content (204, 304; see [`crate::response::has_content`]), whatever
    /// the runner wrote.
    #[must_use]
    pub fn wire_body(&self) -> &[u8] {
        if self.ticket.head_only || !crate::response::has_content(self.response.status) {
            &[]
        } else {
            self.response_body()
        }
    }
}

/// What a runner writes: status, header lines, body, into fixed buffers.
#[derive(Debug)]
pub struct Response<'s, 'a> {
    data: &'s mut ResponseData<'a>,
    /// A larger buffer the body may grow into, offered at the first write.
    spare: &'s mut Option<&'a mut [u8]>,
}

impl<'a> Response<'_, 'a> {
    /// Sets the status code (default 200). Values outside 200..=599 become 500.
    pub fn set_status(&mut self, status: u16) {
        self.data.status = if (200..=599).contains(&status) {
            status
        } else {
            500
        };
    }

    /// Adds a header field. `Content-Length`, `Transfer-Encoding`, `Connection` and `Date`
    /// belong to the server and are refused.
    ///
    /// # Errors
    /// A [`crate::text::HeaderError`] saying why the field was refused.
    pub fn header(&mut self, name: &str, value: &[u8]) -> Result<(), crate::text::HeaderError> {
        self.data.headers.push(name, value)
    }

    /// The body buffer, to write into. Its capacity is the slot's own response buffer;
    /// a write past it grows into a larger spare buffer when one is free, up to the
    /// response body limit ([`FixedBuf::reserve`] makes room for a write through
    /// [`FixedBuf::spare_mut`]).
    pub fn body_mut(&mut self) -> &mut FixedBuf<'a> {
        self.data.echo = false;
        if let Some(spare) = self.spare.take() {
            *self.spare = self.data.body.offer(spare);
        }
        &mut self.data.body
    }

    /// Appends to the body.
    ///
    /// # Errors
    /// [`Full`] when the body limit is reached; the body is unchanged.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), Full> {
        self.body_mut().extend_from_slice(bytes)
    }

    /// Makes the response body the request body, without copying it.
    pub fn echo_request_body(&mut self) {
        self.data.body.clear();
        self.data.echo = true;
    }

    /// Discards the body and header lines (for example to answer an error instead).
    pub fn reset(&mut self) {
        self.data.clear();
    }
}
