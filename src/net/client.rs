//! The HTTP client side shared by the HTTP sinks: a client with timeout and
//! extra CAs, configured headers, client auth, gzip, and the retry waits
//! (Vector's `request` options).

use std::io::Write;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;

use super::AuthStrategy;
use crate::component::{Context, Error};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    #[default]
    Gzip,
}

/// Gzip at the fast level: on these paths CPU costs more than bytes.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// Vector's `request` options of the HTTP-style sinks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestConfig {
    pub timeout_secs: u64,
    /// Tries after the first, for errors a retry can help: as in Vector, no
    /// limit by default, so a server that is down is waited for, not given up on.
    pub retry_attempts: u64,
    pub retry_initial_backoff_secs: f64,
    /// The longest wait between two tries (Vector's meaning).
    pub retry_max_duration_secs: f64,
    /// Requests in flight at once (each its own batch).
    pub concurrency: usize,
}

impl Default for RequestConfig {
    fn default() -> Self {
        RequestConfig {
            timeout_secs: 60,
            retry_attempts: u64::MAX,
            retry_initial_backoff_secs: 0.5,
            retry_max_duration_secs: 30.0,
            concurrency: 1,
        }
    }
}

/// Waits between tries: doubling from the initial backoff up to the cap, with jitter.
pub struct Backoff {
    next: f64,
    max: f64,
}

impl Backoff {
    pub fn new(request: &RequestConfig) -> Self {
        let max = request.retry_max_duration_secs.max(0.01);
        Backoff { next: request.retry_initial_backoff_secs.clamp(0.01, max), max }
    }

    /// Sleep before the next try: at least `asked` when the server said how long.
    pub async fn wait(&mut self, asked: Option<Duration>) {
        let jitter = rand::rng().random_range(0.5..1.5);
        let wait = Duration::from_secs_f64(self.next * jitter).max(asked.unwrap_or_default());
        tokio::time::sleep(wait).await;
        self.next = (self.next * 2.0).min(self.max);
    }
}

/// Configured headers as a header map; a bad name or value is a config error.
pub fn header_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<reqwest::header::HeaderMap, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in pairs {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`headers`: `{name}` is not a valid header name"))?;
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| format!("`headers.{name}`: the value is not a valid header value"))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// An HTTP client for a sink: its timeout, and more CAs to trust (PEM).
pub fn http_client(timeout: Duration, ca_pem: Option<&[u8]>) -> Result<reqwest::Client, Error> {
    let mut client = reqwest::Client::builder().timeout(timeout);
    if let Some(pem) = ca_pem {
        for certificate in reqwest::Certificate::from_pem_bundle(pem).context("tls.ca_file")? {
            client = client.add_root_certificate(certificate);
        }
    }
    client.build().context("cannot make an HTTP client")
}

/// Vector's `auth` of HTTP sinks: `user` + `password` (basic) or `token`
/// (bearer). `strategy` may name which; without it the fields tell.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ClientAuthOptions")]
pub enum ClientAuth {
    Basic { user: String, password: String },
    Bearer { token: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientAuthOptions {
    strategy: Option<AuthStrategy>,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

impl TryFrom<ClientAuthOptions> for ClientAuth {
    type Error = String;

    fn try_from(o: ClientAuthOptions) -> Result<Self, String> {
        match (o.strategy, o.user, o.password, o.token) {
            (None | Some(AuthStrategy::Basic), Some(user), Some(password), None) => Ok(ClientAuth::Basic { user, password }),
            (None | Some(AuthStrategy::Bearer), None, None, Some(token)) => Ok(ClientAuth::Bearer { token }),
            _ => Err("`auth` takes `user` and `password` (strategy `basic`), or `token` (strategy `bearer`)".into()),
        }
    }
}

impl ClientAuth {
    /// The request with this `Authorization`.
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            ClientAuth::Basic { user, password } => request.basic_auth(user, Some(password)),
            ClientAuth::Bearer { token } => request.bearer_auth(token),
        }
    }
}
