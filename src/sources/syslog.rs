//! `syslog`: Vector's syslog source. Receives RFC 5424 and RFC 3164 messages
//! over TCP (one per line, or RFC 6587 octet counting, told apart per
//! message), UDP (one per datagram) or a Unix socket, and gives each the
//! fields Vector's syslog source gives (`sources::util::syslog`), plus
//! `source_type`, `source_ip` (the sender's IP; a Unix socket's path) and,
//! under `host_key`, the message's hostname or else the sender's IP.
//!
//! With `decoding.codec = "kong"` each message's text is a Kong log entry,
//! as Kong's syslog plugin logs it (the local syslog daemon forwarding it
//! here), and becomes a request record through the same decoder as
//! `kong_http_log`; a message that is not a Kong entry is counted and dropped.
//! The receiver and its limits are `sources::util::socket`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::component::{OutputDef, Result, SourceConfig, SourceContext, Task};
use crate::event::{Event, Kinds, ObjectMap, Value};
use crate::net::tls::ServerTls;
use crate::net::SocketMode;
use crate::sources::util::socket::{self, FrameDecoder, FramingMethod, Peer, SocketOptions, TcpKeepalive};
use crate::sources::util::{kong, syslog};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `tcp`, `udp`, `unix` (a stream socket, as Vector), or `unix_datagram`.
    pub mode: SocketMode,
    pub address: Option<SocketAddr>,
    pub path: Option<PathBuf>,
    /// The longest message, in bytes; longer ones are dropped and counted.
    #[serde(default = "socket::default_max_length")]
    pub max_length: usize,
    /// The field for the message's hostname, or else the sender's IP; `""` for none.
    #[serde(default = "default_host_key")]
    pub host_key: String,
    #[serde(default)]
    pub decoding: SyslogDecoding,
    pub keepalive: Option<TcpKeepalive>,
    pub tls: Option<ServerTls>,
    pub receive_buffer_bytes: Option<usize>,
    /// Connections open at once (`tcp`, `unix`); one more is closed at once.
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

/// What a message's text is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogDecoding {
    #[serde(default)]
    pub codec: SyslogCodec,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum SyslogCodec {
    /// A log with Vector's syslog fields.
    #[default]
    Syslog,
    /// A Kong log entry (Kong's syslog plugin), as a request record.
    Kong,
}

fn default_host_key() -> String {
    "host".into()
}

impl SyslogConfig {
    fn options(&self) -> SocketOptions {
        let stream = matches!(self.mode, SocketMode::Tcp | SocketMode::UnixStream);
        SocketOptions {
            mode: self.mode,
            address: self.address,
            path: self.path.clone(),
            max_length: self.max_length,
            framing: if stream { FramingMethod::OctetCounting } else { FramingMethod::Bytes },
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

impl SourceConfig for SyslogConfig {
    fn outputs(&self) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::LOG)]
    }

    fn check(&self) -> Result<()> {
        if self.keep_raw && self.decoding.codec != SyslogCodec::Kong {
            return Err("`keep_raw` applies to `decoding.codec = \"kong\"` only".into());
        }
        self.options().check()
    }

    fn warnings(&self) -> Vec<String> {
        self.options().exposure_warning().into_iter().collect()
    }

    fn build(&self, cx: SourceContext) -> Result<Task> {
        let (codec, keep_raw) = (self.decoding.codec, self.keep_raw);
        let host_key: Arc<str> = Arc::from(self.host_key.as_str());
        let decode: FrameDecoder = Arc::new(move |frame, peer, batch| {
            let mut log = syslog::decode(frame)?;
            if codec == SyslogCodec::Kong {
                let entry = log.get("message").and_then(Value::to_str_lossy).unwrap_or_default();
                let records = kong::decode(entry.as_bytes(), keep_raw).map_err(|e| format!("the message is not a Kong entry: {e}"))?;
                batch.extend(records.into_iter().map(Event::record));
                return Ok(());
            }
            annotate(&mut log, peer, &host_key);
            batch.push(Event::log(Value::Object(log)));
            Ok(())
        });
        socket::serve(self.options(), decode, cx)
    }
}

/// What Vector's syslog source adds to each message's fields.
fn annotate(log: &mut ObjectMap, peer: &Peer, host_key: &str) {
    let sender = match peer {
        Peer::Net(address) => address.ip().to_string(),
        Peer::Unix(path) => path.display().to_string(),
    };
    let host = match log.get("hostname") {
        Some(hostname) => hostname.clone(),
        None => Value::from(sender.as_str()),
    };
    log.insert("source_ip".into(), sender.into());
    if !host_key.is_empty() {
        log.insert(host_key.into(), host);
    }
    log.insert("source_type".into(), "syslog".into());
    log.entry("timestamp".into()).or_insert_with(|| Value::Timestamp(chrono::Utc::now()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_options_read_and_checked() {
        let config: SyslogConfig = toml_edit::de::from_str("mode = \"tcp\"\naddress = \"127.0.0.1:5140\"\n").unwrap();
        assert_eq!(config.options().framing, FramingMethod::OctetCounting);
        config.check().unwrap();
        let udp: SyslogConfig =
            toml_edit::de::from_str("mode = \"udp\"\naddress = \"127.0.0.1:5140\"\ndecoding.codec = \"kong\"\n").unwrap();
        assert_eq!((udp.options().framing, udp.decoding.codec), (FramingMethod::Bytes, SyslogCodec::Kong));
        let unix: SyslogConfig = toml_edit::de::from_str("mode = \"unix\"\npath = \"/tmp/syslog.sock\"\n").unwrap();
        assert_eq!(unix.options().framing, FramingMethod::OctetCounting);
        assert!(
            toml_edit::de::from_str::<SyslogConfig>("mode = \"tcp\"\naddress = \"127.0.0.1:5140\"\nframing.method = \"bytes\"\n").is_err()
        );
    }

    #[test]
    fn hostname_wins_over_the_sender_and_the_sender_is_kept() {
        let peer = Peer::Net("192.0.2.9:40000".parse().unwrap());
        let mut log = syslog::decode(b"<13>1 2019-02-13T19:48:34+00:00 74794bfb6795 root 8449 - - hi").unwrap();
        annotate(&mut log, &peer, "host");
        assert_eq!(log.get("host"), Some(&Value::from("74794bfb6795")));
        assert_eq!(log.get("source_ip"), Some(&Value::from("192.0.2.9")));
        assert_eq!(log.get("source_type"), Some(&Value::from("syslog")));
        assert_eq!(log.get("timestamp"), Some(&Value::Timestamp("2019-02-13T19:48:34Z".parse().unwrap())));
        let mut log = syslog::decode(b"<13>1 2019-02-13T19:48:34+00:00 - root - - - no hostname").unwrap();
        annotate(&mut log, &peer, "host");
        assert_eq!(log.get("host"), Some(&Value::from("192.0.2.9")));
    }
}
