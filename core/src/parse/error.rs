//! Why a request is refused, one variant per failure, each with its status code.

/// Why a request was refused. Each variant names one failure and maps to one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The request line or a header field is not valid HTTP/1.1 syntax (400).
    Syntax,
    /// A NUL byte in the head (400).
    Nul,
    /// A CR not followed by LF in the head (400).
    BareCr,
    /// An LF not preceded by CR in the head (400). RFC 9112 §2.2 lets a recipient accept a
    /// bare LF as a line end; refusing it leaves no line a front proxy could split otherwise.
    BareLf,
    /// A header field continued on the next line (obs-fold) (400).
    ObsFold,
    /// The request target has characters or a form the server does not accept (400).
    InvalidTarget,
    /// HTTP/1.1 without a Host field (400).
    MissingHost,
    /// More than one Host field (400).
    DuplicateHost,
    /// A Host value that is not a valid authority (400).
    InvalidHost,
    /// Content-Length is not a plain decimal number, or overflows (400).
    InvalidContentLength,
    /// Several Content-Length fields with different values (400).
    ConflictingContentLength,
    /// Several Content-Type fields with different values: a runner and a proxy in front
    /// could read the body as different media types (400).
    ConflictingContentType,
    /// Both Content-Length and Transfer-Encoding (400).
    ContentLengthWithTransferEncoding,
    /// Transfer-Encoding in which `chunked` is missing from the end or repeated (400).
    ChunkedNotFinal,
    /// Transfer-Encoding on an HTTP/1.0 request, whose framing then cannot be trusted (400).
    TransferEncodingOnHttp10,
    /// A field name that is not `Content-Length` or `Transfer-Encoding` but reads as one once
    /// separators are ignored (`Content_Length`, `Transfer.Encoding`, `ContentLength`): a
    /// gateway that maps `_` to `-` would frame the body by it while this server does not,
    /// so the two would disagree on where the next request starts (400).
    AmbiguousFramingField,
    /// A malformed chunk size line, chunk terminator or trailer (400).
    InvalidChunk,
    /// The request target is longer than the limit (414).
    UriTooLong,
    /// The head is larger than the limit, has too many fields, or trailers are too large (431).
    HeadTooLarge,
    /// The body is larger than the limit (413).
    PayloadTooLarge,
    /// A transfer coding other than `chunked` (501).
    UnsupportedTransferCoding,
    /// An HTTP version other than 1.0 and 1.1 (505).
    VersionNotSupported,
    /// An `Expect` other than `100-continue` (417).
    ExpectationFailed,
    /// An `X-Deadline-Ms` that is not a number of milliseconds (400).
    InvalidDeadline,
}

impl Error {
    /// Every variant, in declaration order (for metrics that count errors by kind).
    pub const ALL: [Self; 24] = [
        Self::Syntax,
        Self::Nul,
        Self::BareCr,
        Self::BareLf,
        Self::ObsFold,
        Self::InvalidTarget,
        Self::MissingHost,
        Self::DuplicateHost,
        Self::InvalidHost,
        Self::InvalidContentLength,
        Self::ConflictingContentLength,
        Self::ConflictingContentType,
        Self::ContentLengthWithTransferEncoding,
        Self::ChunkedNotFinal,
        Self::TransferEncodingOnHttp10,
        Self::AmbiguousFramingField,
        Self::InvalidChunk,
        Self::UriTooLong,
        Self::HeadTooLarge,
        Self::PayloadTooLarge,
        Self::UnsupportedTransferCoding,
        Self::VersionNotSupported,
        Self::ExpectationFailed,
        Self::InvalidDeadline,
    ];

    /// The status code to answer with.
    #[must_use]
    pub const fn status(self) -> u16 {
        match self {
            Self::UriTooLong => 414,
            Self::HeadTooLarge => 431,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedTransferCoding => 501,
            Self::VersionNotSupported => 505,
            Self::ExpectationFailed => 417,
            _ => 400,
        }
    }

    /// A short `snake_case` name, for logs and metric labels.
    #[must_use]
    pub const fn kind(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::Nul => "nul",
            Self::BareCr => "bare_cr",
            Self::BareLf => "bare_lf",
            Self::ObsFold => "obs_fold",
            Self::InvalidTarget => "invalid_target",
            Self::MissingHost => "missing_host",
            Self::DuplicateHost => "duplicate_host",
            Self::InvalidHost => "invalid_host",
            Self::InvalidContentLength => "invalid_content_length",
            Self::ConflictingContentLength => "conflicting_content_length",
            Self::ConflictingContentType => "conflicting_content_type",
            Self::ContentLengthWithTransferEncoding => "content_length_with_transfer_encoding",
            Self::ChunkedNotFinal => "chunked_not_final",
            Self::TransferEncodingOnHttp10 => "transfer_encoding_on_http10",
            Self::AmbiguousFramingField => "ambiguous_framing_field",
            Self::InvalidChunk => "invalid_chunk",
            Self::UriTooLong => "uri_too_long",
            Self::HeadTooLarge => "head_too_large",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedTransferCoding => "unsupported_transfer_coding",
            Self::VersionNotSupported => "version_not_supported",
            Self::ExpectationFailed => "expectation_failed",
            Self::InvalidDeadline => "invalid_deadline",
        }
    }

    /// Position in [`Error::ALL`].
    #[must_use]
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|e| *e == self).unwrap_or(0)
    }
}
