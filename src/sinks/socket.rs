//! `socket`: Vector's socket sink. Events go over a TCP or Unix stream,
//! each encoded event followed by a newline, or as datagrams (UDP, Unix
//! datagram), one event per datagram with no framing.
//!
//! What it promises. Streams: a batch is written with one `write_all`, and
//! its events are reported delivered once the write returned, that is once
//! the local kernel took the bytes: TCP says nothing of whether the peer's
//! program read them. Before each write the connection is checked: a peer
//! that closed it (a listener restarted) is noticed, and the sink connects
//! again, with backoff (0.5 s doubling to 30 s, no limit), before it writes.
//! A write that fails (reset, broken pipe) is counted and the whole batch is
//! written again on a new connection: at least once, so the peer may get the
//! part written before the failure twice. What TCP cannot tell: bytes the
//! kernel took shortly before the peer died, and that the peer had not read,
//! are lost although reported delivered. Datagrams: an event is reported
//! delivered once the kernel took it; UDP confirms nothing beyond that (a
//! datagram may be lost, or nobody listens), and a datagram the kernel
//! refuses (too large, no such socket file) is counted as failed.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket, UnixDatagram, UnixStream};

use crate::codec::{Encoding, Framing};
use crate::component::{Result, SinkConfig, SinkContext, Task};
use crate::event::Kinds;
use crate::net::client::{Backoff, RequestConfig};
use crate::net::SocketMode;
use crate::telemetry::ComponentMetrics;

/// Connections made again after one was lost (the sink's own counter).
const RECONNECTS: &str = "socket_reconnects_total";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketSinkConfig {
    pub mode: SocketMode,
    /// `host:port`, for `tcp` and `udp`.
    pub address: Option<String>,
    /// The socket file, for the Unix modes.
    pub path: Option<PathBuf>,
    pub encoding: Encoding,
    /// Streams only: `newline_delimited`, the default.
    pub framing: Option<Framing>,
}

/// Where the events go: `host:port` or a socket file.
#[derive(Debug, Clone)]
enum Peer {
    Address(String),
    Path(PathBuf),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Address(address) => f.write_str(address),
            Peer::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

impl SocketSinkConfig {
    fn peer(&self) -> Result<Peer, String> {
        match (self.mode, &self.address, &self.path) {
            (SocketMode::Tcp | SocketMode::Udp, Some(address), None) => {
                let port = address.rsplit_once(':').and_then(|(host, port)| (!host.is_empty()).then_some(port));
                match port.map(str::parse::<u16>) {
                    Some(Ok(_)) => Ok(Peer::Address(address.clone())),
                    _ => Err(format!("`address` must be `host:port`, not `{address}`")),
                }
            }
            (SocketMode::UnixStream | SocketMode::UnixDatagram, None, Some(path)) => Ok(Peer::Path(path.clone())),
            (SocketMode::Tcp | SocketMode::Udp, _, _) => {
                Err("`mode = \"tcp\"` and `\"udp\"` take `address` (`host:port`), not `path`".into())
            }
            _ => Err("the Unix modes take `path` (the socket file), not `address`".into()),
        }
    }
}

impl SinkConfig for SocketSinkConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::ALL
    }

    fn check(&self) -> Result<()> {
        self.peer()?;
        if self.framing.is_some() && matches!(self.mode, SocketMode::Udp | SocketMode::UnixDatagram) {
            return Err("datagrams carry one event each: `framing` is for `tcp` and `unix_stream`".into());
        }
        Ok(())
    }

    fn build(&self, cx: SinkContext) -> Result<Task> {
        let peer = self.peer()?;
        let encoding = self.encoding.clone();
        Ok(match self.mode {
            SocketMode::Tcp | SocketMode::UnixStream => Box::pin(run_stream(peer, encoding, cx)),
            SocketMode::Udp | SocketMode::UnixDatagram => Box::pin(run_datagrams(peer, encoding, cx)),
        })
    }
}

/// Waits between connection attempts: the HTTP sinks' defaults (0.5 s, doubling up to 30 s).
fn backoff() -> Backoff {
    Backoff::new(&RequestConfig::default())
}

async fn run_stream(peer: Peer, encoding: Encoding, mut cx: SinkContext) -> Result<()> {
    let mut connection = Connection { peer, stream: None, connected_before: false };
    let mut buf = Vec::new();
    while let Some(batch) = cx.input.recv().await {
        buf.clear();
        let mut encoded = Vec::with_capacity(batch.len());
        for event in &batch {
            match encoding.encode(event, &mut buf) {
                Ok(()) => encoded.push(event),
                Err(e) => cx.reject(event, &e),
            }
        }
        if encoded.is_empty() {
            continue;
        }
        connection.write(&buf, &cx).await;
        cx.settle(encoded.iter().copied(), encoded.len(), Ok(buf.len()));
    }
    Ok(())
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    async fn connect(peer: &Peer) -> std::io::Result<Stream> {
        Ok(match peer {
            Peer::Address(address) => Stream::Tcp(TcpStream::connect(address).await?),
            Peer::Path(path) => Stream::Unix(UnixStream::connect(path).await?),
        })
    }

    /// Whether the peer closed the connection (or it broke). What the peer
    /// sent is read and dropped: this sink only writes.
    fn closed(&self) -> bool {
        let mut scratch = [0u8; 512];
        loop {
            let read = match self {
                Stream::Tcp(s) => s.try_read(&mut scratch),
                Stream::Unix(s) => s.try_read(&mut scratch),
            };
            match read {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(buf).await,
            Stream::Unix(s) => s.write_all(buf).await,
        }
    }
}

struct Connection {
    peer: Peer,
    stream: Option<Stream>,
    connected_before: bool,
}

impl Connection {
    /// Write `buf` whole on a live connection, connecting (again) as needed;
    /// returns once written.
    async fn write(&mut self, buf: &[u8], cx: &SinkContext) {
        let mut waits = backoff();
        loop {
            if self.stream.as_ref().is_some_and(Stream::closed) {
                tracing::info!(component = %cx.id, peer = %self.peer, "the peer closed the connection; connecting again");
                self.stream = None;
            }
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => match Stream::connect(&self.peer).await {
                    Ok(stream) => {
                        if self.connected_before {
                            cx.metrics.add_own(RECONNECTS, 1);
                        }
                        self.connected_before = true;
                        tracing::info!(component = %cx.id, peer = %self.peer, "connected");
                        self.stream.insert(stream)
                    }
                    Err(e) => {
                        ComponentMetrics::add(&cx.metrics.errors, 1);
                        tracing::warn!(component = %cx.id, peer = %self.peer, error = %e, "cannot connect; retrying");
                        waits.wait(None).await;
                        continue;
                    }
                },
            };
            match stream.write_all(buf).await {
                Ok(()) => return,
                Err(e) => {
                    ComponentMetrics::add(&cx.metrics.errors, 1);
                    tracing::warn!(component = %cx.id, peer = %self.peer, error = %e, "write failed; writing the batch again on a new connection");
                    self.stream = None;
                    waits.wait(None).await;
                }
            }
        }
    }
}

async fn run_datagrams(peer: Peer, encoding: Encoding, mut cx: SinkContext) -> Result<()> {
    let socket = match &peer {
        Peer::Address(address) => {
            let to = resolve(address, &cx).await;
            let local: SocketAddr = if to.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
            Datagrams::Udp(UdpSocket::bind(local).await.map_err(|e| format!("cannot open a UDP socket: {e}"))?, to)
        }
        Peer::Path(path) => {
            Datagrams::Unix(UnixDatagram::unbound().map_err(|e| format!("cannot open a Unix datagram socket: {e}"))?, path.clone())
        }
    };
    let mut buf = Vec::new();
    while let Some(batch) = cx.input.recv().await {
        let (mut sent, mut failed, mut bytes, mut error) = (Vec::new(), Vec::new(), 0, None);
        for event in &batch {
            buf.clear();
            if let Err(e) = encoding.encode_message(event, &mut buf) {
                cx.reject(event, &e);
                continue;
            }
            match socket.send(&buf).await {
                Ok(n) => {
                    sent.push(event);
                    bytes += n;
                }
                Err(e) => {
                    failed.push(event);
                    error.get_or_insert_with(|| format!("{peer}: {e}"));
                }
            }
        }
        cx.settle(sent.iter().copied(), sent.len(), Ok(bytes));
        if let Some(error) = error {
            cx.settle(failed.iter().copied(), failed.len(), Err(error));
        }
    }
    Ok(())
}

enum Datagrams {
    Udp(UdpSocket, SocketAddr),
    Unix(UnixDatagram, PathBuf),
}

impl Datagrams {
    async fn send(&self, datagram: &[u8]) -> std::io::Result<usize> {
        match self {
            Datagrams::Udp(socket, to) => socket.send_to(datagram, to).await,
            Datagrams::Unix(socket, path) => socket.send_to(datagram, path).await,
        }
    }
}

/// The UDP peer's address, waiting with backoff while the name does not resolve.
async fn resolve(address: &str, cx: &SinkContext) -> SocketAddr {
    let mut waits = backoff();
    loop {
        match tokio::net::lookup_host(address).await.map(|mut found| found.next()) {
            Ok(Some(to)) => return to,
            Ok(None) => tracing::warn!(component = %cx.id, address, "the address resolves to nothing; retrying"),
            Err(e) => tracing::warn!(component = %cx.id, address, error = %e, "cannot resolve the address; retrying"),
        }
        ComponentMetrics::add(&cx.metrics.errors, 1);
        waits.wait(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(options: &str) -> Result<(), String> {
        toml_edit::de::from_str::<SocketSinkConfig>(&format!("encoding.codec = \"json\"\n{options}"))
            .map_err(|e| e.to_string())?
            .check()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_mode_takes_its_own_options() {
        assert!(check("mode = \"tcp\"\naddress = \"127.0.0.1:9000\"\nframing.method = \"newline_delimited\"").is_ok());
        assert!(check("mode = \"udp\"\naddress = \"logs.example.com:514\"").is_ok());
        assert!(check("mode = \"unix\"\npath = \"/run/x.sock\"").is_ok());
        assert!(check("mode = \"unix_datagram\"\npath = \"/run/x.sock\"").is_ok());
        assert!(check("mode = \"tcp\"\naddress = \"127.0.0.1\"").unwrap_err().contains("host:port"));
        assert!(check("mode = \"tcp\"\npath = \"/run/x.sock\"").unwrap_err().contains("take `address`"));
        assert!(check("mode = \"unix_stream\"\naddress = \"127.0.0.1:9000\"").unwrap_err().contains("take `path`"));
        assert!(check("mode = \"udp\"\naddress = \"127.0.0.1:9000\"\nframing.method = \"newline_delimited\"")
            .unwrap_err()
            .contains("one event each"));
        assert!(check("mode = \"tcp\"\naddress = \"127.0.0.1:9000\"\nframing.method = \"bytes\"")
            .unwrap_err()
            .contains("newline_delimited"));
        assert!(check("mode = \"tcp\"\naddress = \"127.0.0.1:9000\"\nkeepalive.time_secs = 60").unwrap_err().contains("keepalive"));
    }
}
