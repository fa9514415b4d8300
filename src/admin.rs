//! The admin HTTP server: `/health` and `/metrics` (Prometheus text). It
//! has its own listener, connection cap and timeouts, apart from every
//! receiver's, so that `/health`, which orchestrators restart on, keeps
//! answering while a receiver is flooded.

use std::net::{SocketAddr, ToSocketAddrs};

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;

use crate::component::Error;
use crate::net::server::{Keepalive, Listener, ServerLimits};
use crate::telemetry;

/// Bind now (so a taken port is a clear start-up error), serve in the background.
pub async fn start(address: &str) -> Result<SocketAddr, Error> {
    let resolved = address
        .to_socket_addrs()
        .map_err(|e| Error::caused_by(format!("api.address `{address}` is not an address (such as 127.0.0.1:8686)"), e))?;
    let address = resolved.into_iter().next().ok_or_else(|| Error::new(format!("api.address `{address}` resolves to no address")))?;
    let listener =
        Listener::bind(address, None).map_err(|e| Error::caused_by("admin API (set `api.address`, or `api.enabled = false`)", e))?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/health", get(|| async { ([(CONTENT_TYPE, "application/json")], "{\"ok\":true}") }))
        .route("/metrics", get(|| async { ([(CONTENT_TYPE, "text/plain; version=0.0.4")], telemetry::prometheus_text()) }));
    // Few clients (probes, one scraper): a small cap, short timeouts, no bodies.
    let limits = ServerLimits {
        max_connections: 64,
        header_timeout_secs: 10.0,
        body_timeout_secs: 10.0,
        idle_timeout_secs: 30.0,
        max_in_flight_bytes: 1 << 20,
        ..ServerLimits::default()
    };
    let metrics = telemetry::component("api", "admin", "api");
    tokio::spawn(async move {
        if let Err(e) = listener.serve(app, &limits, &Keepalive::default(), metrics, std::future::pending()).await {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
    Ok(local)
}
