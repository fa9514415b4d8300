//! `demo`: Kong request logs as Kong's http-log and file-log plugins write
//! them (3.x shape), at a set rate, with a set share of errors and a
//! log-normal latency spread. Runs with no external service.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use crate::component::{OutputDef, Result, SourceConfig, SourceContext, Task};
use crate::event::{Event, EventBatch, Kinds, ObjectMap, Value};
use crate::telemetry::ComponentMetrics;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Events per second; 0 means as fast as downstream takes them.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Stop after this many events (0: never).
    #[serde(default)]
    pub count: u64,
    /// Share of requests answered with a 5xx (0.0 to 1.0).
    #[serde(default = "default_error_rate")]
    pub error_rate: f64,
    /// Share of requests answered with a 4xx.
    #[serde(default = "default_client_error_rate")]
    pub client_error_rate: f64,
    /// Median upstream latency in milliseconds.
    #[serde(default = "default_latency_ms")]
    pub latency_ms: f64,
    /// Spread of the latency: the sigma of its log-normal law (0 = constant).
    #[serde(default = "default_latency_spread")]
    pub latency_spread: f64,
    /// The Kong services to spread requests over.
    #[serde(default = "default_services")]
    pub services: Vec<String>,
    /// Seed for a reproducible stream.
    pub seed: Option<u64>,
    /// Events per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_rate() -> f64 {
    10.0
}
fn default_error_rate() -> f64 {
    0.02
}
fn default_client_error_rate() -> f64 {
    0.05
}
fn default_latency_ms() -> f64 {
    40.0
}
fn default_latency_spread() -> f64 {
    0.6
}
fn default_services() -> Vec<String> {
    ["orders", "users", "payments", "catalog"].map(String::from).to_vec()
}
fn default_batch_size() -> usize {
    500
}

impl SourceConfig for DemoConfig {
    fn outputs(&self) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::LOG)]
    }

    fn check(&self) -> Result<()> {
        let share = 0.0..=1.0;
        if !share.contains(&self.error_rate)
            || !share.contains(&self.client_error_rate)
            || !share.contains(&(self.error_rate + self.client_error_rate))
        {
            return Err("`error_rate` and `client_error_rate` are shares: each in 0.0..=1.0, and their sum too".into());
        }
        if self.rate < 0.0 || !self.rate.is_finite() {
            return Err("`rate` must be 0 (unlimited) or a positive number of events per second".into());
        }
        if !(self.latency_ms >= 0.0 && self.latency_spread >= 0.0) {
            return Err("`latency_ms` and `latency_spread` cannot be negative".into());
        }
        if self.services.is_empty() {
            return Err("`services` must name at least one service".into());
        }
        Ok(())
    }

    fn build(&self, cx: SourceContext) -> Result<Task> {
        let generator = Generator::new(self);
        Ok(Box::pin(run(self.clone(), generator, cx)))
    }
}

async fn run(config: DemoConfig, mut generator: Generator, mut cx: SourceContext) -> Result<()> {
    let batch_size = if config.rate > 0.0 {
        (config.rate / 20.0).clamp(1.0, config.batch_size.max(1) as f64) as usize
    } else {
        config.batch_size.max(1)
    };
    let mut ticker = (config.rate > 0.0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(batch_size as f64 / config.rate));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut sent = 0u64;
    let mut shutdown = cx.shutdown.clone();
    loop {
        if let Some(ticker) = ticker.as_mut() {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.triggered() => break,
            }
        } else if shutdown.is_triggered() {
            break;
        }
        let n = if config.count > 0 { (config.count - sent).min(batch_size as u64) as usize } else { batch_size };
        let mut batch: EventBatch = (0..n).map(|_| generator.next_event()).collect();
        ComponentMetrics::add(&cx.metrics.received_events, n);
        let receiver = cx.finalize(&mut batch);
        // Not abandoned on shutdown: downstream drains, so this send completes.
        cx.out.send(batch).await;
        if let Some(receiver) = receiver {
            cx.count_acknowledgement(receiver, n);
        }
        sent += n as u64;
        if config.count > 0 && sent >= config.count {
            break;
        }
        if ticker.is_none() {
            tokio::task::yield_now().await;
        }
    }
    cx.acknowledged_all().await;
    Ok(())
}

struct Service {
    name: String,
    id: String,
    route_id: String,
    host: String,
    port: i64,
    upstream_ip: String,
}

struct Generator {
    rng: SmallRng,
    services: Vec<Service>,
    config: DemoConfig,
    workspace: String,
}

const METHODS: &[(&str, u32)] = &[("GET", 70), ("POST", 18), ("PUT", 6), ("DELETE", 4), ("PATCH", 2)];
const CONSUMERS: &[&str] = &["mobile-app", "web-frontend", "partner-acme", "batch-jobs"];
const AGENTS: &[&str] = &["curl/8.5.0", "okhttp/4.12.0", "Mozilla/5.0 (X11; Linux x86_64)", "python-requests/2.31.0"];

impl Generator {
    fn new(config: &DemoConfig) -> Self {
        let mut rng = match config.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_os_rng(),
        };
        let services = config
            .services
            .iter()
            .enumerate()
            .map(|(i, name)| Service {
                name: name.clone(),
                id: uuid(&mut rng),
                route_id: uuid(&mut rng),
                host: format!("{name}.default.svc.cluster.local"),
                port: 8080,
                upstream_ip: format!("10.0.{}.{}", i + 1, rng.random_range(2..250)),
            })
            .collect();
        let workspace = uuid(&mut rng);
        Generator { rng, services, config: config.clone(), workspace }
    }

    fn next_event(&mut self) -> Event {
        let rng = &mut self.rng;
        let service = &self.services[rng.random_range(0..self.services.len())];
        let method = pick_weighted(rng, METHODS);
        let item: u32 = rng.random_range(1..100_000);
        let uri = match method {
            "GET" if item.is_multiple_of(3) => format!("/{}?page={}&limit=50", service.name, item % 20),
            "POST" => format!("/{}", service.name),
            _ => format!("/{}/{item}", service.name),
        };
        let roll: f64 = rng.random();
        let (status, source) = if roll < self.config.error_rate {
            ([500, 502, 503, 504][rng.random_range(0..4)], "upstream")
        } else if roll < self.config.error_rate + self.config.client_error_rate {
            match rng.random_range(0..4) {
                0 => (401, "kong"),
                1 => (429, "kong"),
                2 => (404, "upstream"),
                _ => (400, "upstream"),
            }
        } else if method == "POST" {
            (201, "upstream")
        } else {
            (200, "upstream")
        };
        let proxied = source == "upstream";
        let proxy_ms =
            if proxied { (self.config.latency_ms * (self.config.latency_spread * normal(rng)).exp()).round().max(1.0) as i64 } else { -1 };
        let kong_ms = rng.random_range(0..4);
        let receive_ms = rng.random_range(0..2);
        let request_ms = kong_ms + proxy_ms.max(0) + receive_ms;
        let started_at = chrono::Utc::now().timestamp_millis() - request_ms;
        let request_id = hex(rng, 16);
        let trace_id = hex(rng, 16);
        let request_size = rng.random_range(120..900) as i64;
        let response_size = if status < 300 { rng.random_range(300..12_000) } else { rng.random_range(80..400) } as i64;
        let consumer = (rng.random_range(0..10) < 7).then(|| CONSUMERS[rng.random_range(0..CONSUMERS.len())]);
        let client_ip = format!("203.0.113.{}", rng.random_range(1..255));
        let agent = AGENTS[rng.random_range(0..AGENTS.len())];

        let mut entry = ObjectMap::new();
        entry.insert(
            "request".into(),
            obj([
                ("id", Value::from(request_id.clone())),
                ("method", method.into()),
                ("uri", uri.clone().into()),
                ("url", format!("https://api.example.com:443{uri}").into()),
                ("querystring", querystring(&uri)),
                ("size", request_size.into()),
                (
                    "headers",
                    obj([
                        ("host", "api.example.com".into()),
                        ("user-agent", agent.into()),
                        ("accept", "application/json".into()),
                        ("x-request-id", request_id.clone().into()),
                        ("traceparent", format!("00-{trace_id}-{}-01", hex(rng, 8)).into()),
                    ]),
                ),
            ]),
        );
        entry.insert("upstream_uri".into(), uri.into());
        if proxied {
            entry.insert("upstream_status".into(), status.to_string().into());
        }
        entry.insert(
            "response".into(),
            obj([
                ("status", Value::from(status as i64)),
                ("size", response_size.into()),
                (
                    "headers",
                    obj([
                        ("content-type", "application/json".into()),
                        ("content-length", response_size.to_string().into()),
                        ("x-kong-request-id", request_id.into()),
                        ("x-kong-proxy-latency", kong_ms.to_string().into()),
                    ]),
                ),
            ]),
        );
        entry.insert(
            "latencies".into(),
            obj([
                ("kong", Value::from(kong_ms)),
                ("proxy", proxy_ms.into()),
                ("request", request_ms.into()),
                ("receive", receive_ms.into()),
            ]),
        );
        if proxied {
            entry.insert(
                "tries".into(),
                Value::Array(vec![obj([
                    ("ip", Value::from(service.upstream_ip.clone())),
                    ("port", service.port.into()),
                    ("balancer_start", (started_at + kong_ms).into()),
                    ("balancer_latency", 0.into()),
                ])]),
            );
        }
        entry.insert(
            "service".into(),
            obj([
                ("id", Value::from(service.id.clone())),
                ("name", service.name.clone().into()),
                ("host", service.host.clone().into()),
                ("port", service.port.into()),
                ("protocol", "http".into()),
                ("path", "/".into()),
            ]),
        );
        entry.insert(
            "route".into(),
            obj([
                ("id", Value::from(service.route_id.clone())),
                ("name", format!("{}-route", service.name).into()),
                ("paths", Value::Array(vec![format!("/{}", service.name).into()])),
                ("protocols", Value::Array(vec!["http".into(), "https".into()])),
            ]),
        );
        if let Some(consumer) = consumer {
            entry.insert("consumer".into(), obj([("id", Value::from(format!("{consumer}-id"))), ("username", consumer.into())]));
        }
        entry.insert("client_ip".into(), client_ip.into());
        entry.insert("started_at".into(), started_at.into());
        entry.insert("source".into(), source.into());
        entry.insert("workspace".into(), self.workspace.clone().into());
        entry.insert("workspace_name".into(), "default".into());
        entry.insert("trace_id".into(), obj([("w3c", Value::from(trace_id))]));
        Event::log(Value::Object(entry))
    }
}

fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

fn querystring(uri: &str) -> Value {
    let Some((_, query)) = uri.split_once('?') else { return Value::Object(ObjectMap::new()) };
    Value::Object(query.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (k.into(), Value::from(v))).collect())
}

fn pick_weighted<'a>(rng: &mut SmallRng, choices: &[(&'a str, u32)]) -> &'a str {
    let total: u32 = choices.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total);
    for (choice, weight) in choices {
        if roll < *weight {
            return choice;
        }
        roll -= weight;
    }
    choices[0].0
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn hex(rng: &mut SmallRng, bytes: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        let b: u8 = rng.random();
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn uuid(rng: &mut SmallRng) -> String {
    let h = hex(rng, 16);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(error_rate: f64) -> DemoConfig {
        let mut c: DemoConfig = serde_json::from_str("{}").unwrap();
        c.error_rate = error_rate;
        c.seed = Some(7);
        c
    }

    #[test]
    fn error_share_and_shape() {
        let mut g = Generator::new(&config(0.25));
        let n = 4000;
        let mut errors = 0;
        for _ in 0..n {
            let event = g.next_event();
            let log = event.as_log().unwrap();
            let status = log.get(vrl::path!("response", "status")).and_then(|v| v.as_integer()).unwrap();
            if status >= 500 {
                errors += 1;
            }
            assert!(log.get(vrl::path!("request", "id")).is_some() && log.get(vrl::path!("latencies", "request")).is_some());
        }
        let share = errors as f64 / n as f64;
        assert!((0.21..0.29).contains(&share), "5xx share {share}");
    }

    #[test]
    fn latency_follows_median_and_spread() {
        let proxy_latencies = |spread: f64| {
            let mut c = config(0.0);
            c.client_error_rate = 0.0;
            c.latency_ms = 80.0;
            c.latency_spread = spread;
            let mut g = Generator::new(&c);
            let mut v: Vec<i64> = (0..2000)
                .map(|_| g.next_event().as_log().unwrap().get(vrl::path!("latencies", "proxy")).and_then(|v| v.as_integer()).unwrap())
                .collect();
            v.sort();
            v
        };
        let tight = proxy_latencies(0.0);
        assert_eq!((tight[0], tight[1999]), (80, 80));
        let wide = proxy_latencies(1.0);
        let median = wide[1000];
        assert!((68..=92).contains(&median), "median {median}");
        // sigma 1: the 95th percentile is about e^1.645 ≈ 5.2 times the median.
        let p95 = wide[1900] as f64 / median as f64;
        assert!((3.5..8.0).contains(&p95), "p95/median {p95}");
    }
}
