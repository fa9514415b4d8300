//! `kong_http_log`: receives what Kong's http-log plugin posts, one entry or
//! an array of them, and turns each into a request record. The server
//! (limits, auth, gzip, backpressure, status codes) is `sources::util::http`.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;

use crate::component::{OutputDef, Result, SourceConfig, SourceContext, Task};
use crate::event::{Event, Kinds};
use crate::net::exposure_warning;
use crate::net::server::{Keepalive, ServerAuth, ServerLimits};
use crate::net::tls::ServerTls;
use crate::sources::util::http::{BodyDecoder, ServerOptions};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KongHttpLogConfig {
    /// Where to listen, e.g. `0.0.0.0:8080`.
    pub address: SocketAddr,
    /// The path Kong's `http_endpoint` names.
    #[serde(default = "crate::defaults::root_path")]
    pub path: String,
    /// Only `path` itself (else any path below it).
    #[serde(default = "crate::defaults::yes")]
    pub strict_path: bool,
    #[serde(default = "crate::defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Limit after gzip decompression (a gzip bomb is refused with 413).
    #[serde(default = "crate::defaults::max_decompressed_bytes")]
    pub max_decompressed_bytes: usize,
    pub auth: Option<ServerAuth>,
    pub tls: Option<ServerTls>,
    /// Connections, timeouts and memory (see `net::server::ServerLimits`).
    #[serde(default)]
    pub limits: ServerLimits,
    #[serde(default)]
    pub keepalive: Keepalive,
    /// With acknowledgements, the longest wait for delivery before a 503.
    #[serde(default = "crate::defaults::ack_timeout_secs")]
    pub ack_timeout_secs: f64,
    /// Keep the entry as Kong sent it in the record's `raw` field.
    #[serde(default)]
    pub keep_raw: bool,
}

impl KongHttpLogConfig {
    fn options(&self) -> ServerOptions {
        ServerOptions {
            address: self.address,
            path: self.path.clone(),
            strict_path: self.strict_path,
            method: None,
            max_body_bytes: self.max_body_bytes,
            max_decompressed_bytes: self.max_decompressed_bytes,
            auth: self.auth.clone(),
            tls: self.tls.clone(),
            limits: self.limits.clone(),
            keepalive: self.keepalive.clone(),
            ack_timeout_secs: self.ack_timeout_secs,
            json_only: true,
        }
    }
}

impl SourceConfig for KongHttpLogConfig {
    fn outputs(&self) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::LOG)]
    }

    fn check(&self) -> Result<()> {
        self.options().check()
    }

    fn warnings(&self) -> Vec<String> {
        let tls = self.tls.as_ref().is_some_and(|t| t.enabled);
        exposure_warning(self.address, self.auth.is_some(), tls, "send log entries").into_iter().collect()
    }

    fn build(&self, cx: SourceContext) -> Result<Task> {
        let keep_raw = self.keep_raw;
        let decode: BodyDecoder =
            Arc::new(move |body, _request| Ok(super::decode(body, keep_raw)?.into_iter().map(Event::record).collect()));
        crate::sources::util::http::serve(self.options(), decode, cx)
    }
}
