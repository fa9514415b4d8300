//! `prometheus_remote_write`: sends metric events as Prometheus remote write
//! 1.0 (snappy + protobuf) to Prometheus, Mimir, Cortex, Thanos, VictoriaMetrics…
//!
//! Remote write carries running totals: incremental counters and gauges are
//! added up here into absolute values, per series. Retries as the spec says:
//! 5xx, 429 and network errors, waiting at least a `Retry-After`; any other
//! 4xx, and a 3xx (redirects are not followed), is final (the receiver will
//! never take that data) and counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;

use crate::component::{with_causes, Reporter, Result, SinkConfig, SinkContext, Task};
use crate::event::{Event, EventData, Kinds, Metric, MetricKind, MetricValue};
use crate::net::client::{
    header_map, http_client, redact_url, take_url_credentials, url_credentials_warning, Backoff, ClientAuth, RequestConfig,
};
use crate::net::tls::ClientTls;
use crate::prometheus::{encode_v1, full_name};
use crate::sinks::util::{run_batches, BatchConfig, BatchLimits};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusRemoteWriteSinkConfig {
    /// The receiver's write URL, e.g. `http://prometheus:9090/api/v1/write`.
    pub endpoint: String,
    /// Prefix for metrics without a namespace: `namespace_name`.
    pub default_namespace: Option<String>,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub request: RequestConfig,
    pub auth: Option<ClientAuth>,
    /// Sent as `X-Scope-OrgID` (Mimir, Cortex, Loki-style multi-tenancy).
    pub tenant_id: Option<String>,
    /// More headers for every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub tls: ClientTls,
}

impl PrometheusRemoteWriteSinkConfig {
    fn headers(&self) -> Result<HeaderMap, String> {
        let fixed =
            [("content-type", "application/x-protobuf"), ("content-encoding", "snappy"), ("x-prometheus-remote-write-version", "0.1.0")];
        let tenant = self.tenant_id.as_deref().map(|t| ("x-scope-orgid", t));
        header_map(fixed.into_iter().chain(tenant).chain(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
    }
}

impl SinkConfig for PrometheusRemoteWriteSinkConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::METRIC
    }

    fn check(&self) -> Result<()> {
        let shown = redact_url(&self.endpoint);
        let url: axum::http::Uri = self.endpoint.parse().map_err(|e| format!("`endpoint` `{shown}` is not a URL: {e}"))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) {
            return Err(format!("`endpoint` `{shown}` must start with http:// or https://").into());
        }
        self.batch.limits(BatchLimits::EVENTS_AND_TIME)?;
        self.headers()?;
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        url_credentials_warning("endpoint", &self.endpoint, self.auth.as_ref()).into_iter().collect()
    }

    fn build(&self, cx: SinkContext) -> Result<Task> {
        let client = http_client(Duration::from_secs(self.request.timeout_secs.max(1)), self.tls.ca_pem()?.as_deref())?;
        let headers = self.headers()?;
        let batch = self.batch.limits(BatchLimits::EVENTS_AND_TIME)?;
        let (endpoint, auth) = take_url_credentials(&self.endpoint, self.auth.as_ref());
        let SinkContext { id, input, metrics } = cx;
        let report = Reporter { id, metrics };
        let writer = Arc::new(Writer { config: self.clone(), endpoint, auth, client, headers, report, totals: Mutex::default() });
        Ok(Box::pin(async move {
            tracing::info!(component = %writer.report.id, endpoint = %writer.endpoint, "sending remote write");
            let concurrency = writer.config.request.concurrency;
            run_batches(input, batch, concurrency, |event| writer.accepts(event).then_some(()), |(), events| writer.clone().flush(events))
                .await;
            Ok(())
        }))
    }
}

struct Writer {
    config: PrometheusRemoteWriteSinkConfig,
    /// `endpoint` without credentials; those are in `auth` (see `take_url_credentials`).
    endpoint: String,
    auth: Option<ClientAuth>,
    client: reqwest::Client,
    headers: HeaderMap,
    report: Reporter,
    /// Running totals of incremental counters and gauges, per series.
    totals: Mutex<HashMap<Series, f64>>,
}

/// A series: the metric's full name and its labels.
type Series = (String, BTreeMap<String, String>);

impl Writer {
    /// Metrics with a remote write form; a distribution (raw samples) has none.
    fn accepts(&self, event: &Event) -> bool {
        match &event.data {
            EventData::Metric(metric) if matches!(metric.value, MetricValue::Distribution { .. }) => {
                self.report.reject(
                    event,
                    &format!(
                        "metric `{}` is a distribution (raw samples), which remote write cannot carry: aggregate it first",
                        metric.name
                    ),
                );
                false
            }
            EventData::Metric(_) => true,
            _ => false,
        }
    }

    /// The metric with an incremental counter or gauge turned into its running total.
    fn absolute(&self, metric: &Metric) -> Metric {
        let (MetricKind::Incremental, MetricValue::Counter { value } | MetricValue::Gauge { value }) = (metric.kind, &metric.value) else {
            return metric.clone();
        };
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        let total = totals.entry((full_name(metric, self.config.default_namespace.as_deref()), metric.tags.clone())).or_insert(0.0);
        *total += value;
        let mut absolute = metric.clone();
        absolute.kind = MetricKind::Absolute;
        absolute.value = match metric.value {
            MetricValue::Counter { .. } => MetricValue::Counter { value: *total },
            _ => MetricValue::Gauge { value: *total },
        };
        absolute
    }

    async fn flush(self: Arc<Self>, events: Vec<Event>) {
        let metrics: Vec<Metric> =
            events.iter().filter_map(|e| if let EventData::Metric(m) = &e.data { Some(self.absolute(m)) } else { None }).collect();
        let now = chrono::Utc::now().timestamp_millis();
        let body = encode_v1(&metrics, self.config.default_namespace.as_deref(), now).encode_to_vec();
        let body = snap::raw::Encoder::new().compress_vec(&body).unwrap_or_default();
        let written = self.send(body).await;
        self.report.settle(events.iter(), events.len(), written);
    }

    async fn send(&self, body: Vec<u8>) -> Result<usize, String> {
        let mut backoff = Backoff::new(&self.config.request);
        let mut attempt: u64 = 0;
        loop {
            let mut request = self.client.post(&self.endpoint).headers(self.headers.clone()).body(body.clone());
            if let Some(auth) = &self.auth {
                request = auth.apply(request);
            }
            let (error, after) = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(body.len()),
                Ok(response) => {
                    let status = response.status();
                    let after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text: String = response.text().await.unwrap_or_default().trim().chars().take(300).collect();
                    let error = format!("HTTP {status}: {text}");
                    // A redirect (not followed), or a 4xx other than 429: the
                    // receiver will never take this data as it was sent.
                    if status.is_redirection() || (status.is_client_error() && status.as_u16() != 429) {
                        return Err(error);
                    }
                    (error, after)
                }
                Err(e) => (with_causes(&e), None),
            };
            attempt += 1;
            if attempt > self.config.request.retry_attempts {
                return Err(error);
            }
            crate::telemetry::ComponentMetrics::add(&self.report.metrics.errors, 1);
            tracing::warn!(component = %self.report.id, attempt, error, "remote write failed; retrying");
            backoff.wait(after).await;
        }
    }
}
