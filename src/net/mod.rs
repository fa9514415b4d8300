//! Network code shared by components, knowing none of them: the HTTP server
//! side (listener, limits, auth, refusals), the HTTP client side (timeouts,
//! retries, auth, compression) and TLS for both.

pub mod client;
pub mod server;
pub mod tls;

use serde::Deserialize;

/// Which credentials (`auth.strategy`), the same word for servers and clients.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum AuthStrategy {
    Basic,
    Bearer,
}
