//! The HTTP server side shared by every receiver (the HTTP sources, the
//! Prometheus exporter, the admin API): a listener with optional TLS that
//! serves HTTP/1.1 and HTTP/2, server auth, bodies read within limits, and
//! refusals that tell the client what to do.

use std::io::Read;
use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use serde::Deserialize;

use super::tls::{ServerTls, TlsListener};
use super::AuthStrategy;
use crate::component::{Context, Error};

/// Credentials a client must send: `username` + `password` (basic; Kong
/// sends its `http_endpoint`'s userinfo so) or `token` (bearer). `strategy`
/// (Vector's) may name which; without it the fields tell.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ServerAuthOptions")]
pub enum ServerAuth {
    Basic { username: String, password: String },
    Bearer { token: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerAuthOptions {
    strategy: Option<AuthStrategy>,
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

impl TryFrom<ServerAuthOptions> for ServerAuth {
    type Error = String;

    fn try_from(o: ServerAuthOptions) -> Result<Self, String> {
        match (o.strategy, o.username, o.password, o.token) {
            (None | Some(AuthStrategy::Basic), Some(username), Some(password), None) => Ok(ServerAuth::Basic { username, password }),
            (None | Some(AuthStrategy::Bearer), None, None, Some(token)) => Ok(ServerAuth::Bearer { token }),
            _ => Err("`auth` takes `username` and `password` (basic), or `token` (bearer)".into()),
        }
    }
}

/// A bound socket, with TLS when configured; serves HTTP/1.1 and HTTP/2 (gRPC).
pub struct Listener {
    listener: std::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
}

impl Listener {
    pub fn bind(address: SocketAddr, tls: Option<&ServerTls>) -> Result<Listener, Error> {
        let listener = std::net::TcpListener::bind(address).with_context(|| format!("cannot listen on {address}"))?;
        listener.set_nonblocking(true).context("cannot make the socket non-blocking")?;
        let acceptor = match tls {
            Some(tls) => tls.acceptor()?,
            None => None,
        };
        Ok(Listener { listener, acceptor })
    }

    /// Bind, trying again for up to `patience`: on reload, the component
    /// being replaced still holds the address for a moment.
    pub async fn bind_within(address: SocketAddr, tls: Option<&ServerTls>, patience: std::time::Duration) -> Result<Listener, Error> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match Listener::bind(address, tls) {
                Ok(listener) => return Ok(listener),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    pub fn scheme(&self) -> &'static str {
        if self.acceptor.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub async fn serve(self, app: Router, stop: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        let listener = tokio::net::TcpListener::from_std(self.listener).context("cannot serve on the socket")?;
        let served = match self.acceptor {
            Some(acceptor) => {
                axum::serve(TlsListener::new(listener, acceptor).context("cannot serve TLS")?, app).with_graceful_shutdown(stop).await
            }
            None => axum::serve(listener, app).with_graceful_shutdown(stop).await,
        };
        served.context("HTTP server failed")
    }
}

/// A refused request: its status, what to tell the sender, and a header
/// that goes with the status (`Allow`, `WWW-Authenticate`, `Retry-After`).
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    pub header: Option<(header::HeaderName, HeaderValue)>,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal { status, message: message.into(), header: None }
    }

    /// 503 + `Retry-After`: the sender should try again.
    pub fn retry_later(message: &str) -> Self {
        Refusal {
            header: Some((header::RETRY_AFTER, HeaderValue::from_static("1"))),
            ..Refusal::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// The refusal as a plain-text response, with its header.
    pub fn into_response_with(self, content_type: &'static str, body: Vec<u8>) -> Response {
        let mut response = (self.status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        if let Some((name, value)) = self.header {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = format!("{}\n", self.message).into_bytes();
        self.into_response_with("text/plain; charset=utf-8", body)
    }
}

pub fn method_not_allowed(method: &Method, allow: &str) -> Refusal {
    let refusal = Refusal::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not accepted: use {allow}"));
    Refusal { header: HeaderValue::from_str(allow).ok().map(|v| (header::ALLOW, v)), ..refusal }
}

/// Check the `Authorization` header against the configured credentials.
pub fn authorize(auth: Option<&ServerAuth>, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(auth) = auth else { return Ok(()) };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (scheme, expected) = match auth {
        ServerAuth::Basic { username, password } => {
            ("Basic", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))))
        }
        ServerAuth::Bearer { token } => ("Bearer", format!("Bearer {token}")),
    };
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Ok(());
    }
    let refusal = Refusal::new(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
    Err(Refusal {
        header: HeaderValue::from_str(&format!("{scheme} realm=\"tapline\"")).ok().map(|v| (header::WWW_AUTHENTICATE, v)),
        ..refusal
    })
}

/// Read the whole body as sent, at most `max_body` bytes (else 413).
pub async fn read_raw(body: Body, max_body: usize) -> Result<axum::body::Bytes, Refusal> {
    axum::body::to_bytes(body, max_body).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than max_body_bytes ({max_body} bytes)"))
        } else {
            Refusal::new(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}"))
        }
    })
}

/// Read the whole body (at most `max_body` bytes as sent) and undo its
/// `Content-Encoding` (identity or gzip, at most `max_decompressed` bytes).
/// Returns the size as sent and the decoded body.
pub async fn read_body(body: Body, headers: &HeaderMap, max_body: usize, max_decompressed: usize) -> Result<(usize, Vec<u8>), Refusal> {
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity").trim().to_ascii_lowercase();
    if !matches!(encoding.as_str(), "identity" | "gzip" | "x-gzip") {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding `{encoding}` is not supported: send identity or gzip"),
        ));
    }
    let raw = read_raw(body, max_body).await?;
    if encoding == "identity" {
        return Ok((raw.len(), raw.to_vec()));
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&raw[..])
        .take(max_decompressed as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("invalid gzip body: {e}")))?;
    if out.len() > max_decompressed {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than max_decompressed_bytes ({max_decompressed} bytes) once decompressed"),
        ));
    }
    Ok((raw.len(), out))
}

/// Compare secrets without leaking, through timing, how much of them matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
