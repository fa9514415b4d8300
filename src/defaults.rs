//! Serde defaults that several components' options share, in one home.

/// For options that are on unless turned off.
pub fn yes() -> bool {
    true
}

/// An HTTP receiver's path: every path.
pub fn root_path() -> String {
    "/".into()
}

/// The largest body an HTTP receiver reads, as sent.
pub fn max_body_bytes() -> usize {
    16 << 20
}

/// The largest body an HTTP receiver accepts once decompressed.
pub fn max_decompressed_bytes() -> usize {
    64 << 20
}

/// The longest line a tailed file may have.
pub fn max_line_bytes() -> usize {
    1 << 20
}

/// How often a tailing source looks for new files matching its globs.
pub fn glob_minimum_cooldown_ms() -> u64 {
    1000
}

/// How long a tailing source keeps reading a file rotated away.
pub fn rotate_wait_secs() -> u64 {
    10
}

/// With acknowledgements, how long an HTTP source waits for delivery before
/// answering 503: below the usual senders' own timeouts (Kong's http-log and
/// the OpenTelemetry SDKs: 10 s), so the sender hears back before giving up.
pub fn ack_timeout_secs() -> f64 {
    8.0
}
