//! `socket`: Vector's socket source. Listens on TCP (optionally TLS), UDP,
//! or a Unix stream or datagram socket; each frame (a line on a stream, a
//! datagram on UDP, by default) becomes an event. With `decoding.codec =
//! "kong"` each frame is a Kong log entry, as Kong's tcp-log (one JSON entry
//! per line) and udp-log (one per datagram) plugins send them, and becomes
//! a request record through the same decoder as `kong_http_log`.
//!
//! Logs get what Vector adds: `source_type`, `timestamp` (when the decoded
//! event has none), the sender's address under `host_key` and its port
//! under `port_key` (each only where the event has no such field). The
//! receiver and its limits are `sources::util::socket`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::codec::{Decoding, DecodingCodec};
use crate::component::{OutputDef, Result, SourceConfig, SourceContext, Task};
use crate::event::{Event, Kinds, ObjectMap, Value};
use crate::net::tls::ServerTls;
use crate::net::SocketMode;
use crate::sources::util::socket::{self, FrameDecoder, Framing, FramingMethod, Peer, SocketOptions, TcpKeepalive};
use crate::sources::util::{kong, syslog};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketConfig {
    pub mode: SocketMode,
    /// Where to listen (`tcp`, `udp`), e.g. `0.0.0.0:9000`.
    pub address: Option<SocketAddr>,
    /// The socket file (`unix_stream`, `unix_datagram`).
    pub path: Option<PathBuf>,
    /// The longest frame, in bytes; longer ones are dropped and counted.
    #[serde(default = "socket::default_max_length")]
    pub max_length: usize,
    /// Default: `newline_delimited` on streams, `bytes` (one frame per datagram) on datagrams.
    pub framing: Option<Framing>,
    #[serde(default)]
    pub decoding: SocketDecoding,
    /// The field for the sender's IP address (Unix: the socket's path); `""` for none.
    #[serde(default = "default_host_key")]
    pub host_key: String,
    /// The field for the sender's port (TCP, UDP); `""` for none.
    #[serde(default = "default_port_key")]
    pub port_key: String,
    pub keepalive: Option<TcpKeepalive>,
    pub tls: Option<ServerTls>,
    pub receive_buffer_bytes: Option<usize>,
    /// Connections open at once (`tcp`, `unix_stream`); one more is closed at once.
    #[serde(default = "socket::default_connection_limit")]
    pub connection_limit: u32,
    /// A connection with no byte for this long is closed.
    #[serde(default = "socket::default_idle_timeout_secs")]
    pub idle_timeout_secs: f64,
    pub max_connection_duration_secs: Option<u64>,
    pub socket_file_mode: Option<u32>,
    /// With the `kong` codec: keep the entry as Kong sent it in the record's `raw` field.
    #[serde(default)]
    pub keep_raw: bool,
}

/// Vector's `decoding` table, with Kong entries as one more codec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketDecoding {
    #[serde(default)]
    pub codec: SocketCodec,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum SocketCodec {
    /// The frame as the `message` field.
    #[default]
    Bytes,
    /// A JSON object per frame (an array gives one event per element).
    Json,
    /// A syslog message (RFC 5424 or 3164), with the syslog source's fields.
    Syslog,
    /// A Kong log entry (tcp-log, udp-log), as a request record.
    Kong,
}

fn default_host_key() -> String {
    "host".into()
}

fn default_port_key() -> String {
    "port".into()
}

impl SocketConfig {
    fn options(&self) -> SocketOptions {
        let datagram = matches!(self.mode, SocketMode::Udp | SocketMode::UnixDatagram);
        let default_framing = if datagram { FramingMethod::Bytes } else { FramingMethod::NewlineDelimited };
        SocketOptions {
            mode: self.mode,
            address: self.address,
            path: self.path.clone(),
            max_length: self.max_length,
            framing: self.framing.as_ref().map_or(default_framing, |f| f.method),
            tls: self.tls.clone(),
            keepalive: self.keepalive.clone(),
            receive_buffer_bytes: self.receive_buffer_bytes,
            connection_limit: self.connection_limit,
            idle_timeout_secs: self.idle_timeout_secs,
            max_connection_duration_secs: self.max_connection_duration_secs,
            socket_file_mode: self.socket_file_mode,
        }
    }
}

impl SourceConfig for SocketConfig {
    fn outputs(&self) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::LOG)]
    }

    fn check(&self) -> Result<()> {
        if self.keep_raw && self.decoding.codec != SocketCodec::Kong {
            return Err("`keep_raw` applies to `decoding.codec = \"kong\"` only".into());
        }
        self.options().check()
    }

    fn warnings(&self) -> Vec<String> {
        self.options().exposure_warning().into_iter().collect()
    }

    fn build(&self, cx: SourceContext) -> Result<Task> {
        let (codec, keep_raw) = (self.decoding.codec, self.keep_raw);
        let keys = Arc::new((self.host_key.clone(), self.port_key.clone()));
        let decode: FrameDecoder = Arc::new(move |frame, peer, batch| {
            let objects = match codec {
                SocketCodec::Kong => {
                    batch.extend(kong::decode(frame, keep_raw)?.into_iter().map(Event::record));
                    return Ok(());
                }
                SocketCodec::Bytes => Decoding { codec: DecodingCodec::Bytes }.decode(frame)?,
                SocketCodec::Json => Decoding { codec: DecodingCodec::Json }.decode(frame)?,
                SocketCodec::Syslog => vec![syslog::decode(frame)?],
            };
            let now = chrono::Utc::now();
            batch.extend(objects.into_iter().map(|mut log| {
                annotate(&mut log, peer, &keys.0, &keys.1, now);
                Event::log(Value::Object(log))
            }));
            Ok(())
        });
        socket::serve(self.options(), decode, cx)
    }
}

/// What Vector adds to each log; the decoded fields win over the sender's address.
fn annotate(log: &mut ObjectMap, peer: &Peer, host_key: &str, port_key: &str, now: chrono::DateTime<chrono::Utc>) {
    log.insert("source_type".into(), "socket".into());
    log.entry("timestamp".into()).or_insert(Value::Timestamp(now));
    let (host, port) = match peer {
        Peer::Net(address) => (Value::from(address.ip().to_string()), Some(Value::Integer(i64::from(address.port())))),
        Peer::Unix(path) => (Value::from(path.display().to_string()), None),
    };
    if !host_key.is_empty() {
        log.entry(host_key.into()).or_insert(host);
    }
    if let (false, Some(port)) = (port_key.is_empty(), port) {
        log.entry(port_key.into()).or_insert(port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> std::result::Result<SocketConfig, String> {
        toml_edit::de::from_str(toml).map_err(|e| e.to_string())
    }

    #[test]
    fn vector_options_read_and_checked() {
        let config = parse("mode = \"tcp\"\naddress = \"127.0.0.1:9000\"\ndecoding.codec = \"kong\"\nkeepalive.time_secs = 60\n").unwrap();
        assert_eq!(config.options().framing, FramingMethod::NewlineDelimited);
        config.check().unwrap();
        let udp = parse("mode = \"udp\"\naddress = \"127.0.0.1:9000\"\n").unwrap();
        assert_eq!(udp.options().framing, FramingMethod::Bytes);
        // Vector's older `unix` is `unix_stream`.
        assert_eq!(parse("mode = \"unix\"\npath = \"/tmp/x.sock\"\n").unwrap().mode, SocketMode::UnixStream);
        assert!(parse("mode = \"tcp\"\naddress = \"127.0.0.1:9000\"\npermit_origin = []\n").unwrap_err().contains("unknown field"));
        let wrong = |toml: &str| parse(toml).unwrap().check().unwrap_err().to_string();
        assert_eq!(
            wrong("mode = \"udp\"\naddress = \"127.0.0.1:9\"\ntls.enabled = false\n"),
            "`tls` applies to mode `tcp` only, not `udp`"
        );
        assert_eq!(wrong("mode = \"unix_stream\"\naddress = \"127.0.0.1:9\"\n"), "mode `unix_stream` needs `path`");
        assert_eq!(wrong("mode = \"tcp\"\npath = \"/tmp/x\"\n"), "mode `tcp` needs `address`");
        assert_eq!(
            wrong("mode = \"tcp\"\naddress = \"127.0.0.1:9\"\nkeep_raw = true\n"),
            "`keep_raw` applies to `decoding.codec = \"kong\"` only"
        );
        assert_eq!(wrong("mode = \"tcp\"\naddress = \"127.0.0.1:9\"\nmax_length = 0\n"), "`max_length` must be positive");
        // Open to the network without auth: a warning; on loopback none.
        assert_eq!(parse("mode = \"udp\"\naddress = \"0.0.0.0:9\"\n").unwrap().warnings().len(), 1);
        assert!(parse("mode = \"udp\"\naddress = \"127.0.0.1:9\"\n").unwrap().warnings().is_empty());
    }

    #[test]
    fn the_decoded_fields_win_over_the_senders_address() {
        let peer = Peer::Net("10.0.0.7:5140".parse().unwrap());
        let now = chrono::Utc::now();
        let mut log = Decoding { codec: DecodingCodec::Json }.decode(br#"{"host":"gw-1","msg":"x"}"#).unwrap().remove(0);
        annotate(&mut log, &peer, "host", "port", now);
        assert_eq!(log.get("host"), Some(&Value::from("gw-1")));
        assert_eq!(log.get("port"), Some(&Value::Integer(5140)));
        assert_eq!(log.get("source_type"), Some(&Value::from("socket")));
        assert_eq!(log.get("timestamp"), Some(&Value::Timestamp(now)));
        let mut log = ObjectMap::new();
        annotate(&mut log, &peer, "", "peer_port", now);
        assert_eq!(log.get("host"), None);
        assert_eq!(log.get("peer_port"), Some(&Value::Integer(5140)));
    }
}
