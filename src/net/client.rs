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

/// How long a response's `Retry-After` asks to wait: seconds, or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
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
///
/// It follows no redirect, as Vector's sinks do: on a 301 or 302 reqwest
/// would send the POST again as a GET without its body, and the 200 that
/// answered it would count the events as delivered. A 3xx is a refusal.
pub fn http_client(timeout: Duration, ca_pem: Option<&[u8]>) -> Result<reqwest::Client, Error> {
    let mut client = reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none());
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

    /// The `Authorization` value (for transports other than reqwest: gRPC metadata), marked sensitive.
    pub fn header_value(&self) -> Result<reqwest::header::HeaderValue, reqwest::header::InvalidHeaderValue> {
        use base64::Engine as _;
        let text = match self {
            ClientAuth::Basic { user, password } => {
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
            }
            ClientAuth::Bearer { token } => format!("Bearer {token}"),
        };
        let mut value = reqwest::header::HeaderValue::from_str(&text)?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// `url` with the password of its userinfo replaced by `***`, for logs and
/// error messages. Text that is not a URL is returned as it is.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// The one rule for credentials in an HTTP sink's URL: they are taken out of
/// it (so no request, log or error carries them) and used as basic auth when
/// the sink's `auth` is not set; with `auth` set, `auth` wins (and the config
/// check warns, see `url_credentials_warning`). Returns the URL without them.
pub fn take_url_credentials(url: &str, auth: Option<&ClientAuth>) -> (String, Option<ClientAuth>) {
    let Ok(mut parsed) = reqwest::Url::parse(url) else { return (url.to_string(), auth.cloned()) };
    if parsed.username().is_empty() && parsed.password().is_none() {
        return (url.to_string(), auth.cloned());
    }
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let from_url = ClientAuth::Basic { user: decode(parsed.username()), password: decode(parsed.password().unwrap_or("")) };
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    // `Url` adds a `/` to a bare host: keep the URL as written otherwise.
    let mut bare = parsed.to_string();
    if !url.ends_with('/') && parsed.path() == "/" && parsed.query().is_none() {
        bare.pop();
    }
    (bare, Some(auth.cloned().unwrap_or(from_url)))
}

/// Whether a URL carries credentials (`user:password@`).
pub fn has_credentials(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
}

/// The config warning for a URL with credentials while `auth` is set too.
pub fn url_credentials_warning(option: &str, url: &str, auth: Option<&ClientAuth>) -> Option<String> {
    (has_credentials(url) && auth.is_some())
        .then(|| format!("`{option}` holds credentials and `auth` is set: `auth` is used, the URL's credentials are ignored"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url() {
        assert_eq!(redact_url("http://kong:s3cret@ch:8123/"), "http://kong:***@ch:8123/");
        assert_eq!(redact_url("http://ch:8123"), "http://ch:8123");
        let (url, auth) = take_url_credentials("https://kong:s%40cret@ch:8443", None);
        assert_eq!(url, "https://ch:8443");
        assert_eq!(auth, Some(ClientAuth::Basic { user: "kong".into(), password: "s@cret".into() }));
        let configured = ClientAuth::Bearer { token: "t".into() };
        let (url, auth) = take_url_credentials("http://u:p@h:1/api/v1/write", Some(&configured));
        assert_eq!((url.as_str(), auth), ("http://h:1/api/v1/write", Some(configured.clone())));
        assert!(url_credentials_warning("endpoint", "http://u:p@h:1", Some(&configured)).is_some());
        assert!(url_credentials_warning("endpoint", "http://u:p@h:1", None).is_none());
        assert_eq!(take_url_credentials("http://h:1/x", None), ("http://h:1/x".to_string(), None));
    }
}
