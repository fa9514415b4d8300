//! The admin HTTP server: `/health` and `/metrics` (Prometheus text).

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::telemetry;

/// Bind now (so a taken port is a clear start-up error), serve in the background.
pub async fn start(address: &str) -> Result<std::net::SocketAddr, String> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| format!("admin API cannot listen on {address}: {e} (set `api.address`, or `api.enabled = false`)"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let app = Router::new()
        .route("/health", get(|| async { ([(CONTENT_TYPE, "application/json")], "{\"ok\":true}") }))
        .route("/metrics", get(|| async { ([(CONTENT_TYPE, "text/plain; version=0.0.4")], telemetry::prometheus_text()) }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
    Ok(local)
}
