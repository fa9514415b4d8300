//! The socket receiver behind `socket` and `syslog`: TCP (with optional TLS),
//! UDP, and Unix stream and datagram sockets. Frames are cut from each
//! connection's bytes (newline-delimited, RFC 6587 octet counting, or one per
//! datagram) and handed to the component's decoder; the events go on in
//! batches, and a full pipeline makes every reader wait (for TCP, the wait
//! reaches the senders through their socket buffers).
//!
//! What a broken or hostile client cannot do:
//! - make tapline hold more than `max_length` bytes of one frame: a longer
//!   frame is skipped to its end, counted (`socket_oversized_frames_total`,
//!   an error and a discarded event), and the connection goes on;
//! - stop the connection with a frame that does not decode: it is counted
//!   (`socket_decode_errors_total`, an error and a discarded event), logged at
//!   most once per 10 s, and the next frame is read;
//! - open more than `connection_limit` connections: one more is accepted and
//!   closed at once, counted (`socket_connections_refused_total`);
//! - hold a connection without sending: past `idle_timeout_secs` with no
//!   byte it is closed, counted (`socket_idle_timeouts_total`);
//! - slow the others down: each connection is read by its own task.
//!
//! On shutdown (and at `max_connection_duration_secs`), a connection's
//! reader takes one more read of what the kernel already holds, sends its
//! frames, and closes the connection.

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{mpsc, Semaphore};

use crate::component::{Context, Error, Result, ShutdownSignal, SourceContext, Task};
use crate::event::EventBatch;
use crate::net::tls::ServerTls;
use crate::net::SocketMode;
use crate::telemetry::{ComponentMetrics, LogLimiter};

/// Own counters and gauge of the socket sources (`tapline_<name>` on /metrics).
pub const CONNECTIONS_REFUSED: &str = "socket_connections_refused_total";
pub const OVERSIZED_FRAMES: &str = "socket_oversized_frames_total";
pub const DECODE_ERRORS: &str = "socket_decode_errors_total";
pub const IDLE_TIMEOUTS: &str = "socket_idle_timeouts_total";
pub const OPEN_CONNECTIONS: &str = "socket_open_connections";

/// How frames are cut.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum FramingMethod {
    /// One frame per line (the newline is not part of it).
    NewlineDelimited,
    /// RFC 6587: `LEN SP MSG` when a frame starts with a digit, else one line.
    OctetCounting,
    /// A whole datagram, or a whole stream connection, is one frame.
    Bytes,
}

/// Vector's `framing` table (only `method`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Framing {
    pub method: FramingMethod,
}

/// Vector's `keepalive` table of TCP sources.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpKeepalive {
    /// Idle seconds before the kernel probes the peer.
    pub time_secs: Option<u64>,
}

/// Where the events of a frame came from.
#[derive(Debug, Clone)]
pub enum Peer {
    /// The sender's address (TCP, UDP).
    Net(SocketAddr),
    /// A Unix socket: its path.
    Unix(Arc<Path>),
}

/// Turns one frame into events, appended to the batch; `Err` drops the
/// frame with its reason (counted and logged by the receiver).
pub type FrameDecoder = Arc<dyn Fn(&[u8], &Peer, &mut EventBatch) -> Result<(), String> + Send + Sync>;

/// What the receiver does, whatever the component.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    pub mode: SocketMode,
    pub address: Option<SocketAddr>,
    pub path: Option<PathBuf>,
    pub max_length: usize,
    pub framing: FramingMethod,
    pub tls: Option<ServerTls>,
    pub keepalive: Option<TcpKeepalive>,
    pub receive_buffer_bytes: Option<usize>,
    pub connection_limit: u32,
    pub idle_timeout_secs: f64,
    pub max_connection_duration_secs: Option<u64>,
    pub socket_file_mode: Option<u32>,
}

/// The default `connection_limit` (Vector's is unlimited; a bound keeps one
/// client from taking every file descriptor).
pub fn default_connection_limit() -> u32 {
    1024
}

/// The default `idle_timeout_secs`: longer than the senders' own keepalive
/// (Kong's tcp-log: 60 s), so that a sender closes first.
pub fn default_idle_timeout_secs() -> f64 {
    300.0
}

/// Vector's default `max_length` (bytes).
pub fn default_max_length() -> usize {
    102_400
}

impl SocketOptions {
    pub fn check(&self) -> Result<()> {
        let mode = self.mode.name();
        match (self.mode.is_unix(), &self.address, &self.path) {
            (false, None, _) => return Err(format!("mode `{mode}` needs `address`").into()),
            (false, Some(_), Some(_)) => return Err(format!("mode `{mode}` takes `address`, not `path`").into()),
            (true, _, None) => return Err(format!("mode `{mode}` needs `path`").into()),
            (true, Some(_), Some(_)) => return Err(format!("mode `{mode}` takes `path`, not `address`").into()),
            _ => {}
        }
        let only = |set: bool, option: &str, modes: &str| {
            if set {
                Err(Error::new(format!("`{option}` applies to mode {modes} only, not `{mode}`")))
            } else {
                Ok(())
            }
        };
        only(self.mode != SocketMode::Tcp && self.tls.is_some(), "tls", "`tcp`")?;
        only(self.mode != SocketMode::Tcp && self.keepalive.is_some(), "keepalive", "`tcp`")?;
        only(self.mode.is_unix() && self.receive_buffer_bytes.is_some(), "receive_buffer_bytes", "`tcp` and `udp`")?;
        only(!self.mode.is_unix() && self.socket_file_mode.is_some(), "socket_file_mode", "`unix_stream` and `unix_datagram`")?;
        only(
            !self.mode.is_stream() && self.max_connection_duration_secs.is_some(),
            "max_connection_duration_secs",
            "`tcp` and `unix_stream`",
        )?;
        if self.max_length == 0 {
            return Err("`max_length` must be positive".into());
        }
        if self.connection_limit == 0 {
            return Err("`connection_limit` must be positive".into());
        }
        if self.idle_timeout_secs.is_nan() || self.idle_timeout_secs <= 0.0 {
            return Err("`idle_timeout_secs` must be positive".into());
        }
        if self.max_connection_duration_secs == Some(0) {
            return Err("`max_connection_duration_secs` must be positive".into());
        }
        self.tls.as_ref().map_or(Ok(()), ServerTls::check)?;
        Ok(())
    }

    /// For `warnings`: a TCP or UDP receiver others can reach takes events from anyone.
    pub fn exposure_warning(&self) -> Option<String> {
        let address = self.address.filter(|a| !a.ip().is_loopback())?;
        Some(format!(
            "listens on {address} ({}) with no authentication: anyone who can reach the port can send events (listen on 127.0.0.1, or filter the port)",
            self.mode.name()
        ))
    }
}

/// A batch and the bytes read for it, from a reader to the sending task.
type Read = (EventBatch, usize);

/// Frames handed on in one batch at most.
const MAX_BATCH: usize = 1000;
/// Bytes read from a connection in one go.
const READ_CHUNK: usize = 64 << 10;
/// Batches waiting between the readers and the sending task.
const CHANNEL: usize = 8;

/// Bind now (so a taken address is a start-up error), then receive until shutdown.
pub fn serve(options: SocketOptions, decode: FrameDecoder, cx: SourceContext) -> Result<Task> {
    let socket = Bound::bind(&options)?;
    let where_ =
        options.address.map_or_else(|| options.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(), |a| a.to_string());
    tracing::info!(component = %cx.id, address = %where_, mode = options.mode.name(), "listening");
    Ok(Box::pin(run(socket, options, decode, cx)))
}

/// A socket bound at build time.
enum Bound {
    Tcp(std::net::TcpListener, Option<tokio_rustls::TlsAcceptor>),
    Udp(std::net::UdpSocket),
    UnixStream(std::os::unix::net::UnixListener, Arc<Path>),
    UnixDatagram(std::os::unix::net::UnixDatagram, Arc<Path>),
}

impl Bound {
    fn bind(options: &SocketOptions) -> Result<Bound> {
        let bound = match (options.mode, options.address, &options.path) {
            (SocketMode::Tcp, Some(address), _) => {
                let listener = std::net::TcpListener::bind(address).with_context(|| format!("cannot listen on {address} (tcp)"))?;
                if let Some(bytes) = options.receive_buffer_bytes {
                    socket2::SockRef::from(&listener).set_recv_buffer_size(bytes).context("cannot set receive_buffer_bytes")?;
                }
                let acceptor = match &options.tls {
                    Some(tls) => tls.acceptor()?,
                    None => None,
                };
                Bound::Tcp(listener, acceptor)
            }
            (SocketMode::Udp, Some(address), _) => {
                let socket = std::net::UdpSocket::bind(address).with_context(|| format!("cannot listen on {address} (udp)"))?;
                if let Some(bytes) = options.receive_buffer_bytes {
                    socket2::SockRef::from(&socket).set_recv_buffer_size(bytes).context("cannot set receive_buffer_bytes")?;
                }
                Bound::Udp(socket)
            }
            (SocketMode::UnixStream, _, Some(path)) => {
                remove_stale_socket(path)?;
                let listener =
                    std::os::unix::net::UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
                set_file_mode(path, options.socket_file_mode)?;
                Bound::UnixStream(listener, Arc::from(path.as_path()))
            }
            (SocketMode::UnixDatagram, _, Some(path)) => {
                remove_stale_socket(path)?;
                let socket =
                    std::os::unix::net::UnixDatagram::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
                set_file_mode(path, options.socket_file_mode)?;
                Bound::UnixDatagram(socket, Arc::from(path.as_path()))
            }
            _ => return Err("the socket's address or path is missing".into()),
        };
        match &bound {
            Bound::Tcp(l, _) => l.set_nonblocking(true),
            Bound::Udp(s) => s.set_nonblocking(true),
            Bound::UnixStream(l, _) => l.set_nonblocking(true),
            Bound::UnixDatagram(s, _) => s.set_nonblocking(true),
        }
        .context("cannot make the socket non-blocking")?;
        Ok(bound)
    }
}

/// A socket file left by a run that did not end cleanly is replaced; any
/// other file at the path is an error (never deleted).
fn remove_stale_socket(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).with_context(|| format!("cannot remove the old socket {}", path.display()))
        }
        Ok(_) => Err(format!("{} exists and is not a socket", path.display()).into()),
        Err(_) => Ok(()),
    }
}

fn set_file_mode(path: &Path, mode: Option<u32>) -> Result<()> {
    let Some(mode) = mode else { return Ok(()) };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set socket_file_mode on {}", path.display()))
}

/// What every reader of one source shares.
struct Shared {
    options: SocketOptions,
    decode: FrameDecoder,
    metrics: Arc<ComponentMetrics>,
    log: LogLimiter,
}

/// Kinds of log line, each rate-limited on its own.
const LOG_OVERSIZED: u32 = 1;
const LOG_DECODE: u32 = 2;
const LOG_REFUSED: u32 = 3;
const LOG_IDLE: u32 = 4;
/// Accepting or receiving failed.
const LOG_SOCKET: u32 = 5;

impl Shared {
    fn warn(&self, kind: u32, peer: Option<&Peer>, what: &str) {
        if let Some(suppressed) = self.log.allow(kind) {
            let peer = match peer {
                Some(Peer::Net(address)) => address.to_string(),
                Some(Peer::Unix(path)) => path.display().to_string(),
                None => String::new(),
            };
            tracing::warn!(component = %self.metrics.id, peer, suppressed, "{what}");
        }
    }

    /// Decode one frame into `batch`, or count why it is dropped.
    fn frame(&self, frame: Frame<'_>, peer: &Peer, batch: &mut EventBatch) {
        let failure = match frame {
            Frame::Data([]) => return,
            Frame::Data(data) => match (self.decode)(data, peer, batch) {
                Ok(()) => return,
                Err(e) => {
                    self.metrics.add_own(DECODE_ERRORS, 1);
                    (LOG_DECODE, format!("frame dropped: {e}"))
                }
            },
            Frame::TooLong => {
                self.metrics.add_own(OVERSIZED_FRAMES, 1);
                (LOG_OVERSIZED, format!("frame longer than max_length ({} bytes) dropped", self.options.max_length))
            }
            Frame::Truncated(missing) => {
                self.metrics.add_own(DECODE_ERRORS, 1);
                (LOG_DECODE, format!("frame dropped: the connection closed {missing} bytes before the end of an octet-counted frame"))
            }
        };
        ComponentMetrics::add(&self.metrics.errors, 1);
        ComponentMetrics::add(&self.metrics.discarded_events, 1);
        self.warn(failure.0, Some(peer), &failure.1);
    }
}

async fn run(socket: Bound, options: SocketOptions, decode: FrameDecoder, mut cx: SourceContext) -> Result<()> {
    let shared = Arc::new(Shared { options, decode, metrics: cx.metrics.clone(), log: LogLimiter::new(Duration::from_secs(10)) });
    let (tx, mut rx) = mpsc::channel::<Read>(CHANNEL);
    let shutdown = cx.shutdown.clone();
    let unix_path = match &socket {
        Bound::UnixStream(_, path) | Bound::UnixDatagram(_, path) => Some(path.clone()),
        _ => None,
    };
    match socket {
        Bound::Tcp(listener, acceptor) => {
            let listener = tokio::net::TcpListener::from_std(listener).context("cannot serve on the socket")?;
            tokio::spawn(accept(listener, acceptor, shared, tx, shutdown));
        }
        Bound::UnixStream(listener, path) => {
            let listener = tokio::net::UnixListener::from_std(listener).context("cannot serve on the socket")?;
            tokio::spawn(accept(UnixAcceptor(listener, path), None, shared, tx, shutdown));
        }
        Bound::Udp(socket) => {
            let socket = tokio::net::UdpSocket::from_std(socket).context("cannot serve on the socket")?;
            tokio::spawn(datagrams(UdpReceiver(socket), shared, tx, shutdown));
        }
        Bound::UnixDatagram(socket, path) => {
            let socket = tokio::net::UnixDatagram::from_std(socket).context("cannot serve on the socket")?;
            tokio::spawn(datagrams(UnixReceiver(socket, path), shared, tx, shutdown));
        }
    }
    // Every reader holds a sender: this ends once all have stopped.
    while let Some((mut batch, bytes)) = rx.recv().await {
        ComponentMetrics::add(&cx.metrics.received_bytes, bytes);
        if batch.is_empty() {
            continue;
        }
        let count = batch.len();
        ComponentMetrics::add(&cx.metrics.received_events, count);
        let receiver = cx.finalize(&mut batch);
        cx.out.send(batch).await;
        if let Some(receiver) = receiver {
            cx.count_acknowledgement(receiver, count);
        }
    }
    if let Some(path) = unix_path {
        let _ = std::fs::remove_file(&path);
    }
    cx.acknowledged_all().await;
    Ok(())
}

/// A listener of stream connections: TCP or Unix.
trait StreamListener: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&self) -> impl std::future::Future<Output = std::io::Result<(Self::Stream, Peer)>> + Send;
}

impl StreamListener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&self) -> std::io::Result<(Self::Stream, Peer)> {
        let (stream, address) = tokio::net::TcpListener::accept(self).await?;
        Ok((stream, Peer::Net(address)))
    }
}

struct UnixAcceptor(tokio::net::UnixListener, Arc<Path>);

impl StreamListener for UnixAcceptor {
    type Stream = tokio::net::UnixStream;

    async fn accept(&self) -> std::io::Result<(Self::Stream, Peer)> {
        let (stream, _) = self.0.accept().await?;
        Ok((stream, Peer::Unix(self.1.clone())))
    }
}

/// Accept connections until shutdown, each read by its own task within the connection limit.
async fn accept<L: StreamListener>(
    listener: L,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Read>,
    mut shutdown: ShutdownSignal,
) where
    L::Stream: AsKeepalive,
{
    let limit = shared.options.connection_limit;
    let permits = Arc::new(Semaphore::new(limit as usize));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.triggered() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to be freed.
                    shared.warn(LOG_SOCKET, None, &format!("cannot accept a connection: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            shared.metrics.add_own(CONNECTIONS_REFUSED, 1);
            shared.warn(LOG_REFUSED, Some(&peer), &format!("connection closed at once: {limit} connections are open (connection_limit)"));
            continue;
        };
        stream.keepalive(shared.options.keepalive.as_ref());
        let (shared, tx, shutdown, tls, permits) = (shared.clone(), tx.clone(), shutdown.clone(), tls.clone(), permits.clone());
        tokio::spawn(async move {
            shared.metrics.set_own_gauge(OPEN_CONNECTIONS, u64::from(limit) - permits.available_permits() as u64);
            let idle = Duration::from_secs_f64(shared.options.idle_timeout_secs);
            match tls {
                None => connection(stream, peer.clone(), &shared, &tx, shutdown).await,
                Some(tls) => match tokio::time::timeout(idle, tls.accept(stream)).await {
                    Ok(Ok(stream)) => connection(stream, peer.clone(), &shared, &tx, shutdown).await,
                    Ok(Err(e)) => tracing::debug!(component = %shared.metrics.id, ?peer, error = %e, "TLS handshake failed"),
                    Err(_) => {
                        shared.metrics.add_own(IDLE_TIMEOUTS, 1);
                        shared.warn(LOG_IDLE, Some(&peer), "TLS handshake not done within idle_timeout_secs: connection closed");
                    }
                },
            }
            drop(permit);
            shared.metrics.set_own_gauge(OPEN_CONNECTIONS, u64::from(limit) - permits.available_permits() as u64);
        });
    }
}

/// Sockets that take Vector's `keepalive.time_secs`.
trait AsKeepalive {
    fn keepalive(&self, keepalive: Option<&TcpKeepalive>);
}

impl AsKeepalive for tokio::net::TcpStream {
    fn keepalive(&self, keepalive: Option<&TcpKeepalive>) {
        let _ = self.set_nodelay(true);
        if let Some(secs) = keepalive.and_then(|k| k.time_secs) {
            let probe = socket2::TcpKeepalive::new().with_time(Duration::from_secs(secs));
            if let Err(e) = socket2::SockRef::from(self).set_tcp_keepalive(&probe) {
                tracing::debug!(error = %e, "cannot set TCP keepalive");
            }
        }
    }
}

impl AsKeepalive for tokio::net::UnixStream {
    fn keepalive(&self, _: Option<&TcpKeepalive>) {}
}

/// Read one connection until it ends, times out, or shutdown.
async fn connection<S: AsyncRead + Unpin>(mut io: S, peer: Peer, shared: &Shared, tx: &mpsc::Sender<Read>, mut shutdown: ShutdownSignal) {
    let options = &shared.options;
    let idle = Duration::from_secs_f64(options.idle_timeout_secs);
    let aged = async {
        match options.max_connection_duration_secs {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(aged);
    let mut framer = Framer::new(options.framing, options.max_length);
    let mut buf = BytesMut::new();
    loop {
        buf.reserve(READ_CHUNK.min(options.max_length.saturating_add(1)).max(4096));
        let (read, last) = tokio::select! {
            read = tokio::time::timeout(idle, io.read_buf(&mut buf)) => match read {
                Ok(read) => (read, false),
                Err(_) => {
                    shared.metrics.add_own(IDLE_TIMEOUTS, 1);
                    shared.warn(LOG_IDLE, Some(&peer), &format!("no byte for idle_timeout_secs ({} s): connection closed", options.idle_timeout_secs));
                    break;
                }
            },
            // What the kernel already holds is still read, once.
            _ = shutdown.triggered() => (io.read_buf(&mut buf).now_or_never().unwrap_or(Ok(0)), true),
            _ = &mut aged => (io.read_buf(&mut buf).now_or_never().unwrap_or(Ok(0)), true),
        };
        let (n, eof) = match read {
            Ok(0) => (0, true),
            Ok(n) => (n, last),
            Err(e) => {
                tracing::debug!(component = %shared.metrics.id, ?peer, error = %e, "read failed; connection closed");
                (0, true)
            }
        };
        let mut batch = Vec::new();
        while let Some(frame) = framer.next(&buf, eof) {
            shared.frame(frame, &peer, &mut batch);
            if batch.len() >= MAX_BATCH && tx.send((std::mem::take(&mut batch), 0)).await.is_err() {
                return;
            }
        }
        framer.consumed(&mut buf);
        if (n > 0 || !batch.is_empty()) && tx.send((batch, n)).await.is_err() {
            return;
        }
        if eof {
            break;
        }
    }
}

/// A datagram socket: UDP or Unix.
trait DatagramSocket: Send + 'static {
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> impl std::future::Future<Output = std::io::Result<(usize, Peer)>> + Send + 'a;
    fn try_recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, Peer)>;
}

struct UdpReceiver(tokio::net::UdpSocket);

impl DatagramSocket for UdpReceiver {
    async fn recv<'a>(&'a self, buf: &'a mut [u8]) -> std::io::Result<(usize, Peer)> {
        let (n, from) = self.0.recv_from(buf).await?;
        Ok((n, Peer::Net(from)))
    }

    fn try_recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, Peer)> {
        let (n, from) = self.0.try_recv_from(buf)?;
        Ok((n, Peer::Net(from)))
    }
}

struct UnixReceiver(tokio::net::UnixDatagram, Arc<Path>);

impl DatagramSocket for UnixReceiver {
    async fn recv<'a>(&'a self, buf: &'a mut [u8]) -> std::io::Result<(usize, Peer)> {
        let n = self.0.recv(buf).await?;
        Ok((n, Peer::Unix(self.1.clone())))
    }

    fn try_recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, Peer)> {
        let n = self.0.try_recv(buf)?;
        Ok((n, Peer::Unix(self.1.clone())))
    }
}

/// The largest datagram there can be.
const MAX_DATAGRAM: usize = 65_536;

/// Read datagrams until shutdown; those waiting already go in the same batch.
async fn datagrams<D: DatagramSocket>(socket: D, shared: Arc<Shared>, tx: mpsc::Sender<Read>, mut shutdown: ShutdownSignal) {
    let options = &shared.options;
    // One byte more than allowed tells a datagram too long from one just long enough.
    let mut buf = vec![0u8; options.max_length.saturating_add(1).min(MAX_DATAGRAM)];
    loop {
        let received = tokio::select! {
            _ = shutdown.triggered() => break,
            received = socket.recv(&mut buf) => received,
        };
        let (mut batch, mut bytes, mut failed) = (Vec::new(), 0, false);
        let mut next = Some(received);
        while let Some(received) = next.take() {
            match received {
                Ok((n, peer)) => {
                    bytes += n;
                    datagram(&buf[..n], &peer, &shared, &mut batch);
                }
                Err(e) => {
                    shared.warn(LOG_SOCKET, None, &format!("cannot receive: {e}"));
                    failed = true;
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = match socket.try_recv(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                    other => Some(other),
                };
            }
        }
        if tx.send((batch, bytes)).await.is_err() {
            break;
        }
        if failed {
            // Whatever failed, do not spin on it.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One datagram: its frames, none spanning into the next datagram.
fn datagram(data: &[u8], peer: &Peer, shared: &Shared, batch: &mut EventBatch) {
    let options = &shared.options;
    if data.len() > options.max_length {
        shared.frame(Frame::TooLong, peer, batch);
        return;
    }
    let mut framer = Framer::new(options.framing, options.max_length);
    while let Some(frame) = framer.next(data, true) {
        shared.frame(frame, peer, batch);
    }
}

/// One frame cut from the bytes, borrowed from the buffer until the next call.
#[derive(Debug, PartialEq)]
enum Frame<'a> {
    Data(&'a [u8]),
    /// Longer than `max_length`: skipped.
    TooLong,
    /// The stream ended this many bytes before the end of an octet-counted frame.
    Truncated(usize),
}

/// What the framer is skipping.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Skip {
    Nothing,
    /// The rest of an overlong line.
    ToNewline,
    /// The rest of an overlong octet-counted frame.
    Bytes(usize),
    /// The rest of an overlong `bytes` stream.
    All,
}

/// Cuts frames out of a connection's bytes, holding at most `max_length`
/// bytes of an unfinished one.
struct Framer {
    method: FramingMethod,
    max_length: usize,
    skip: Skip,
    /// Bytes of the buffer's head already searched for a newline.
    scanned: usize,
    /// Bytes of the buffer's head taken by frames already returned.
    taken: usize,
}

/// The longest length prefix of an octet-counted frame (RFC 6587: digits, no leading zero).
const MAX_LENGTH_DIGITS: usize = 10;

impl Framer {
    fn new(method: FramingMethod, max_length: usize) -> Self {
        Framer { method, max_length, skip: Skip::Nothing, scanned: 0, taken: 0 }
    }

    /// Drop what the frames returned so far took from the buffer.
    fn consumed(&mut self, buf: &mut BytesMut) {
        buf.advance(self.taken);
        self.scanned = self.scanned.saturating_sub(self.taken);
        self.taken = 0;
    }

    /// The next complete frame in `buf` (after what was already taken);
    /// `eof`: no more bytes will come, so an unfinished frame ends here.
    fn next<'a>(&mut self, buf: &'a [u8], eof: bool) -> Option<Frame<'a>> {
        if !self.skipped(buf) {
            return None;
        }
        let start = self.taken;
        let rest = &buf[start..];
        if rest.is_empty() {
            return None;
        }
        match self.method {
            FramingMethod::Bytes if eof => {
                self.taken = buf.len();
                Some(if rest.len() > self.max_length { Frame::TooLong } else { Frame::Data(rest) })
            }
            FramingMethod::Bytes if rest.len() > self.max_length => {
                self.skip = Skip::All;
                self.taken = buf.len();
                Some(Frame::TooLong)
            }
            FramingMethod::Bytes => None,
            FramingMethod::OctetCounting => match octet_count(rest, eof) {
                OctetCount::Length(header, len) if len > self.max_length => {
                    // Counted now; its bytes are skipped as they come.
                    self.taken += header;
                    self.skip = Skip::Bytes(len);
                    Some(Frame::TooLong)
                }
                OctetCount::Length(header, len) if rest.len() >= header + len => {
                    self.taken += header + len;
                    Some(Frame::Data(&rest[header..header + len]))
                }
                OctetCount::Length(header, len) if eof => {
                    self.taken = buf.len();
                    Some(Frame::Truncated(header + len - rest.len()))
                }
                OctetCount::Length(..) | OctetCount::Undecided => None,
                OctetCount::NotCounted => self.line(buf, eof),
            },
            FramingMethod::NewlineDelimited => self.line(buf, eof),
        }
    }

    /// Go on skipping the rest of an overlong frame; whether it is all skipped.
    fn skipped(&mut self, buf: &[u8]) -> bool {
        let rest = &buf[self.taken..];
        match self.skip {
            Skip::Nothing => return true,
            Skip::ToNewline => match memchr::memchr(b'\n', rest) {
                Some(at) => self.taken += at + 1,
                None => {
                    self.taken = buf.len();
                    return false;
                }
            },
            Skip::Bytes(n) if rest.len() < n => {
                self.taken = buf.len();
                self.skip = Skip::Bytes(n - rest.len());
                return false;
            }
            Skip::Bytes(n) => self.taken += n,
            Skip::All => {
                self.taken = buf.len();
                return false;
            }
        }
        self.skip = Skip::Nothing;
        true
    }

    /// The next line after what was taken.
    fn line<'a>(&mut self, buf: &'a [u8], eof: bool) -> Option<Frame<'a>> {
        let start = self.taken;
        let from = self.scanned.max(start);
        match memchr::memchr(b'\n', &buf[from..]) {
            Some(at) => {
                let end = from + at;
                self.taken = end + 1;
                self.scanned = self.taken;
                Some(if end - start > self.max_length { Frame::TooLong } else { Frame::Data(&buf[start..end]) })
            }
            None if buf.len() - start > self.max_length => {
                self.skip = Skip::ToNewline;
                self.taken = buf.len();
                self.scanned = buf.len();
                Some(Frame::TooLong)
            }
            None if eof => {
                self.taken = buf.len();
                self.scanned = buf.len();
                Some(Frame::Data(&buf[start..]))
            }
            None => {
                self.scanned = buf.len();
                None
            }
        }
    }
}

/// How an RFC 6587 frame starts.
#[derive(Debug, PartialEq)]
enum OctetCount {
    /// `LEN SP`: the header's bytes and the message's length.
    Length(usize, usize),
    /// Not a length prefix: a newline-delimited frame.
    NotCounted,
    /// Only digits so far: wait for more.
    Undecided,
}

fn octet_count(rest: &[u8], eof: bool) -> OctetCount {
    if !rest.first().is_some_and(|b| (b'1'..=b'9').contains(b)) {
        return OctetCount::NotCounted;
    }
    for (i, b) in rest.iter().enumerate().take(MAX_LENGTH_DIGITS + 1) {
        match b {
            b'0'..=b'9' => continue,
            b' ' => {
                let digits = std::str::from_utf8(&rest[..i]).unwrap_or_default();
                return digits.parse().map_or(OctetCount::NotCounted, |len| OctetCount::Length(i + 1, len));
            }
            _ => return OctetCount::NotCounted,
        }
    }
    if rest.len() > MAX_LENGTH_DIGITS || eof {
        OctetCount::NotCounted
    } else {
        OctetCount::Undecided
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every frame `framer` cuts from `chunks` fed one after the other, then EOF.
    fn frames(method: FramingMethod, max_length: usize, chunks: &[&[u8]]) -> Vec<Result<String, String>> {
        let mut framer = Framer::new(method, max_length);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let last = chunks.len();
        for (i, chunk) in chunks.iter().chain(std::iter::once(&&b""[..])).enumerate() {
            buf.extend_from_slice(chunk);
            let eof = i == last;
            while let Some(frame) = framer.next(&buf, eof) {
                out.push(match frame {
                    Frame::Data(d) => Ok(String::from_utf8_lossy(d).into_owned()),
                    Frame::TooLong => Err("too long".into()),
                    Frame::Truncated(n) => Err(format!("truncated {n}")),
                });
            }
            framer.consumed(&mut buf);
            assert!(buf.len() <= max_length + chunk.len(), "the framer holds {} bytes", buf.len());
        }
        out
    }

    fn ok(s: &str) -> Result<String, String> {
        Ok(s.to_string())
    }

    fn too_long() -> Result<String, String> {
        Err("too long".into())
    }

    #[test]
    fn lines_across_reads_and_the_last_without_newline() {
        let got = frames(FramingMethod::NewlineDelimited, 100, &[b"one\ntw", b"o\n\nthr", b"ee"]);
        assert_eq!(got, vec![ok("one"), ok("two"), ok(""), ok("three")]);
    }

    #[test]
    fn an_overlong_line_is_skipped_to_its_end_and_counted_once() {
        let got = frames(FramingMethod::NewlineDelimited, 5, &[b"ok\n0123", b"456789", b"abcdef", b"\nnext\n"]);
        assert_eq!(got, vec![ok("ok"), too_long(), ok("next")]);
        // Whole in one read too.
        let got = frames(FramingMethod::NewlineDelimited, 5, &[b"0123456789\nnext\n"]);
        assert_eq!(got, vec![too_long(), ok("next")]);
        // Exactly max_length is fine.
        assert_eq!(frames(FramingMethod::NewlineDelimited, 5, &[b"12345\n"]), vec![ok("12345")]);
    }

    #[test]
    fn octet_counting_and_newlines_mixed() {
        let got = frames(FramingMethod::OctetCounting, 100, &[b"5 hello11 hello", b" world<13>plain line\n3 abc"]);
        assert_eq!(got, vec![ok("hello"), ok("hello world"), ok("<13>plain line"), ok("abc")]);
        // A length split across reads.
        let got = frames(FramingMethod::OctetCounting, 100, &[b"1", b"2 message tw", b"o|"]);
        assert_eq!(got, vec![ok("message two|")]);
    }

    #[test]
    fn an_overlong_octet_counted_frame_is_skipped_by_its_length() {
        let got = frames(FramingMethod::OctetCounting, 4, &[b"10 0123", b"456789", b"3 abc"]);
        assert_eq!(got, vec![too_long(), ok("abc")]);
    }

    #[test]
    fn a_stream_cut_inside_an_octet_counted_frame_is_truncated() {
        let got = frames(FramingMethod::OctetCounting, 100, &[b"3 abc20 only"]);
        assert_eq!(got, vec![ok("abc"), Err("truncated 16".into())]);
    }

    #[test]
    fn digits_without_a_space_are_a_line() {
        let got = frames(FramingMethod::OctetCounting, 100, &[b"12345678901234 not a length\n42x\n"]);
        assert_eq!(got, vec![ok("12345678901234 not a length"), ok("42x")]);
    }

    #[test]
    fn bytes_framing_takes_the_whole_stream_within_max_length() {
        assert_eq!(frames(FramingMethod::Bytes, 100, &[b"a\nb", b"c"]), vec![ok("a\nbc")]);
        assert_eq!(frames(FramingMethod::Bytes, 3, &[b"ab", b"cd", b"ef"]), vec![too_long()]);
    }
}
