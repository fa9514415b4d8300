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

/// Whether only this machine can reach `address` (`127.0.0.1:…`, `[::1]:…`,
/// `localhost:…`): what the warnings about open receivers look at.
pub fn is_loopback(address: &str) -> bool {
    match address.parse::<std::net::SocketAddr>() {
        Ok(address) => address.ip().is_loopback(),
        Err(_) => address.rsplit_once(':').is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost")),
    }
}

/// The warning for a server others can reach on `address` with no auth (so
/// anyone who can reach it `can` …), or with auth but no TLS (the credentials
/// then cross the network in the clear).
pub fn exposure_warning(address: std::net::SocketAddr, auth: bool, tls: bool, can: &str) -> Option<String> {
    if address.ip().is_loopback() {
        return None;
    }
    match (auth, tls) {
        (false, _) => Some(format!(
            "listens on {address} without `auth`: anyone who can reach the port can {can} (set `auth` and `tls`, or listen on 127.0.0.1)"
        )),
        (true, false) => {
            Some(format!("listens on {address} with `auth` but without `tls`: the credentials cross the network in the clear"))
        }
        (true, true) => None,
    }
}

/// Vector's `mode` of the socket source and sink (and of `syslog`).
#[derive(Debug, Clone, Copy, serde::Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum SocketMode {
    Tcp,
    Udp,
    /// `unix` is Vector's older name, and the syslog source's.
    #[serde(alias = "unix")]
    UnixStream,
    UnixDatagram,
}

impl SocketMode {
    pub fn is_stream(self) -> bool {
        matches!(self, SocketMode::Tcp | SocketMode::UnixStream)
    }

    pub fn is_unix(self) -> bool {
        matches!(self, SocketMode::UnixStream | SocketMode::UnixDatagram)
    }

    pub fn name(self) -> &'static str {
        match self {
            SocketMode::Tcp => "tcp",
            SocketMode::Udp => "udp",
            SocketMode::UnixStream => "unix_stream",
            SocketMode::UnixDatagram => "unix_datagram",
        }
    }
}
