//! The `ebpf` source: HTTP requests and TCP connection events of every
//! process on the host, seen from the kernel (no change to any program).
//!
//! Kernel side: `ebpf/socket_trace.bpf.c` (the socket layer's send and
//! receive tracepoints, or on kernels before 6.3 the syscall ones, for the
//! read and write families; accepts and closes; TCP state changes,
//! retransmits and resets; uprobes on OpenSSL). User side: [`event`] decodes the ring
//! buffer, [`http`] parses HTTP/1.x payloads, [`http2`] (with [`hpack`])
//! HTTP/2 and gRPC streams, [`redis`] Redis calls, [`postgres`]
//! PostgreSQL queries and [`mysql`] MySQL commands (over [`exchange`], the framing and pairing of
//! in-order protocols; statements normalized by [`sql`]), [`session`] tells a
//! connection's protocol and pairs requests with responses, [`trace_ids`]
//! links the calls a thread makes for one request, [`tcp`] turns
//! connection events into metrics.

pub mod event;
pub mod exchange;
pub mod hpack;
pub mod http;
pub mod http2;
pub mod loader;
pub mod mysql;
pub mod postgres;
pub mod redis;
pub mod session;
pub mod sql;
pub mod tcp;
pub mod trace_ids;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aya::maps::{MapData, RingBuf};
use serde::Deserialize;

use crate::component::{OutputDef, Result, SourceConfig, SourceContext, Task};
use crate::event::{Event as PipelineEvent, EventBatch, Kinds, Metric};
use crate::process::Processes;
use crate::telemetry::ComponentMetrics;
use event::{Event, Kind};
use loader::{Capture, KernelHooks, Options, MAX_PAYLOAD};
use session::{Record, Sessions};
use trace_ids::TraceIds;

/// The named output that carries the TCP metrics.
pub const TCP_PORT: &str = "tcp";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EbpfConfig {
    /// Only connections with one of these as local or remote port (filtered in the kernel); empty: all.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Only these processes (filtered in the kernel); empty: all.
    #[serde(default)]
    pub pids: Vec<u32>,
    /// Only processes with one of these names (`comm`, as /proc/PID/comm shows it); empty: all.
    #[serde(default)]
    pub include_processes: Vec<String>,
    /// Never these process names.
    #[serde(default)]
    pub exclude_processes: Vec<String>,
    /// Bytes copied from the start of each read and write (at most 4096).
    #[serde(default = "default_payload_size")]
    pub payload_size: u32,
    /// `http` (request records) and `tcp` (connection metrics on the `tcp` output).
    #[serde(default = "default_protocols")]
    pub protocols: Vec<Protocol>,
    /// See HTTPS in plaintext through uprobes on OpenSSL.
    #[serde(default = "crate::defaults::yes")]
    pub ssl: bool,
    /// OpenSSL libraries to probe; default: the system's libssl.so.3.
    #[serde(default)]
    pub ssl_libraries: Vec<PathBuf>,
    /// Keep one request record in N (both ends of a request are kept or dropped together).
    #[serde(default = "one")]
    pub sample_rate: u32,
    /// A request with no response after this long is emitted with `error = "timeout"`.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: f64,
    /// Size of the kernel → user ring buffer (a power of two, at least 4096).
    #[serde(default = "default_ring_buffer_bytes")]
    pub ring_buffer_bytes: u32,
    /// The headers that carry a request id, preferred first (read on requests
    /// into `request_id`, on responses into `response_request_id`).
    #[serde(default = "http::default_request_id_headers")]
    pub request_id_headers: Vec<String>,
    /// When the capture cannot start (no privileges, no BTF…): `continue` logs the
    /// error and lets the rest of the pipeline run; `fail` stops tapline from starting.
    #[serde(default)]
    pub on_start_error: OnStartError,
    /// Where the kernel sees reads and writes: `auto` (the socket tracepoints
    /// where the kernel has them, Linux 6.3+, else the syscall ones), `sockets`, `syscalls`.
    #[serde(default)]
    pub kernel_hooks: KernelHooks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Http,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStartError {
    #[default]
    Continue,
    Fail,
}

fn default_payload_size() -> u32 {
    1024
}
fn default_protocols() -> Vec<Protocol> {
    vec![Protocol::Http, Protocol::Tcp]
}
fn one() -> u32 {
    1
}
fn default_request_timeout() -> f64 {
    30.0
}
fn default_ring_buffer_bytes() -> u32 {
    16 << 20
}

impl SourceConfig for EbpfConfig {
    fn outputs(&self) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::LOG), OutputDef::named(TCP_PORT, Kinds::METRIC)]
    }

    fn check(&self) -> Result<()> {
        if self.payload_size == 0 || self.payload_size > MAX_PAYLOAD {
            return Err(format!("`payload_size` must be between 1 and {MAX_PAYLOAD}").into());
        }
        if self.ring_buffer_bytes < 4096 || !self.ring_buffer_bytes.is_power_of_two() {
            return Err("`ring_buffer_bytes` must be a power of two of at least 4096".into());
        }
        if self.sample_rate == 0 {
            return Err("`sample_rate` must be at least 1 (1 keeps every request)".into());
        }
        if self.request_timeout_secs.is_nan() || self.request_timeout_secs <= 0.0 {
            return Err("`request_timeout_secs` must be positive".into());
        }
        if self.protocols.is_empty() {
            return Err("`protocols` is empty: give `http`, `tcp` or both".into());
        }
        Ok(())
    }

    fn check_environment(&self) -> Result<()> {
        loader::preflight()
    }

    fn build(&self, cx: SourceContext) -> Result<Task> {
        let ssl_libraries = match (self.ssl, self.ssl_libraries.is_empty()) {
            (false, _) => Vec::new(),
            (true, false) => self.ssl_libraries.clone(),
            (true, true) => loader::default_ssl_library().into_iter().collect(),
        };
        let options = Options {
            // No payload needed when only TCP events are wanted.
            payload_size: if self.protocols.contains(&Protocol::Http) { self.payload_size } else { 0 },
            ports: self.ports.clone(),
            pids: self.pids.clone(),
            ring_buffer_bytes: self.ring_buffer_bytes,
            ssl_libraries,
            bpf_loop: loader::kernel_has_bpf_loop(),
            hooks: self.kernel_hooks,
        };
        match loader::load(&options) {
            Ok(capture) => {
                tracing::info!(component = %cx.id, hooks = ?capture.hooks, ssl_libraries = ?capture.ssl_libraries, "eBPF capture started");
                Ok(Box::pin(run(self.clone(), capture, cx)))
            }
            Err(e) if self.on_start_error == OnStartError::Fail => Err(e),
            Err(e) => {
                tracing::error!(component = %cx.id, "the eBPF capture cannot start, the rest of the pipeline goes on without it: {e}");
                ComponentMetrics::add(&cx.metrics.errors, 1);
                Ok(Box::pin(idle(cx)))
            }
        }
    }
}

/// A source that could not start waits for the pipeline to stop.
async fn idle(cx: SourceContext) -> Result<()> {
    let mut shutdown = cx.shutdown.clone();
    shutdown.triggered().await;
    Ok(())
}

/// Most ring buffer records handled before sending a batch on.
const BATCH: usize = 4096;

/// Records handled between offers of the core to the traced programs.
const YIELD_EVERY: usize = 64;

/// The reader offers its core only while it is less than this behind the
/// kernel (the age of the record it handled last); further behind, it keeps
/// its fair share so that the ring buffer does not fill.
///
/// Why offer it at all: woken every poll, the reader displaces whichever
/// traced program runs on its core for the whole batch (milliseconds), while
/// the program it serves soon waits on the other core: on a saturated host
/// the scheduler leaves that core idle rather than move the displaced,
/// cache-hot program to it. Yielding every few dozen records bounds that wait.
const YIELD_WHILE_BEHIND_LESS_THAN_NS: u64 = 20_000_000;

/// How often the ring buffer is read. The kernel side never wakes the
/// reader (a wakeup per record costs more than the record): this is the
/// longest a record waits, and a 16 MiB buffer holds ~50k records.
const POLL: Duration = Duration::from_millis(10);

async fn run(config: EbpfConfig, capture: Capture, mut cx: SourceContext) -> Result<()> {
    let Capture { ebpf: _attached, mut ring, mut drops, .. } = capture;
    let mut tracker = Tracker::new(&config);
    let timeout_ns = (config.request_timeout_secs * 1e9) as u64;
    let mut poll = tokio::time::interval(POLL);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for timer in [&mut poll, &mut tick] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut shutdown = cx.shutdown.clone();
    loop {
        tokio::select! {
            _ = poll.tick() => {
                // A full batch means more is waiting: send it on and read again.
                while tracker.read(&mut ring, &cx.metrics, BATCH) == BATCH {
                    tracker.send(&mut cx).await;
                }
            }
            _ = tick.tick() => {
                tracker.clock = Clock::now();
                tracker.expire(timeout_ns);
                tracker.trace_ids.forget_idle(clock_ns(libc::CLOCK_MONOTONIC));
                tracker.tcp.flush(&mut tracker.metrics);
                tracker.count_parsers(&cx.metrics);
                let (new, total) = drops.new_since_last();
                if new > 0 {
                    ComponentMetrics::add(&cx.metrics.discarded_events, new as usize);
                    tracing::warn!(component = %cx.id, dropped = new, total, "the kernel ring buffer was full: captured reads/writes were dropped (raise `ring_buffer_bytes`, or narrow `ports`/`pids`)");
                }
            }
            _ = shutdown.triggered() => break,
        }
        tracker.send(&mut cx).await;
    }
    // What the kernel already wrote is read; requests still waiting for a
    // response are reported as they stand.
    tracker.read(&mut ring, &cx.metrics, usize::MAX);
    tracker.expire(0);
    tracker.tcp.flush(&mut tracker.metrics);
    tracker.count_parsers(&cx.metrics);
    ComponentMetrics::add(&cx.metrics.discarded_events, drops.new_since_last().0 as usize);
    tracker.send(&mut cx).await;
    cx.acknowledged_all().await;
    Ok(())
}

/// Wall-clock time of the kernel's CLOCK_MONOTONIC timestamps.
#[derive(Clone, Copy)]
struct Clock {
    offset_ns: i128,
}

impl Clock {
    fn now() -> Clock {
        Clock { offset_ns: clock_ns(libc::CLOCK_REALTIME) as i128 - clock_ns(libc::CLOCK_MONOTONIC) as i128 }
    }

    fn wall_ns(self, monotonic_ns: u64) -> u64 {
        (monotonic_ns as i128 + self.offset_ns).max(0) as u64
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(clock, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// User-side state: connections being paired, processes, TCP counts, and
/// what is ready to send.
struct Tracker {
    http: bool,
    include: HashSet<String>,
    exclude: HashSet<String>,
    sample_rate: u32,
    sampled: u64,
    clock: Clock,
    sessions: Sessions,
    trace_ids: TraceIds,
    /// This machine, on every record: syscall trace ids are unique per host only.
    host_name: Option<String>,
    processes: Processes,
    /// When the batch being read began: how old what /proc said is.
    batch_start: Instant,
    /// The kernel's timestamp (CLOCK_MONOTONIC) of the last record handled.
    last_event_ns: u64,
    tcp: tcp::TcpStats,
    records: Vec<Record>,
    metrics: Vec<Metric>,
}

impl Tracker {
    fn new(config: &EbpfConfig) -> Tracker {
        Tracker {
            http: config.protocols.contains(&Protocol::Http),
            include: config.include_processes.iter().cloned().collect(),
            exclude: config.exclude_processes.iter().cloned().collect(),
            sample_rate: config.sample_rate,
            sampled: 0,
            clock: Clock::now(),
            sessions: Sessions::new(config.request_id_headers.iter().map(|h| h.to_ascii_lowercase()).collect()),
            trace_ids: TraceIds::default(),
            host_name: crate::process::hostname(),
            processes: Processes::default(),
            batch_start: Instant::now(),
            last_event_ns: 0,
            tcp: tcp::TcpStats::new(config.protocols.contains(&Protocol::Tcp)),
            records: Vec::new(),
            metrics: Vec::new(),
        }
    }

    fn wanted(&self, comm: &str) -> bool {
        (self.include.is_empty() || self.include.contains(comm)) && !self.exclude.contains(comm)
    }

    /// Handle up to `limit` records waiting in the ring buffer; returns how many there were.
    fn read(&mut self, ring: &mut RingBuf<MapData>, metrics: &ComponentMetrics, limit: usize) -> usize {
        let (mut handled, mut bytes) = (0, 0);
        self.batch_start = Instant::now();
        while handled < limit {
            let Some(item) = ring.next() else { break };
            bytes += item.len();
            self.handle(&item, metrics);
            handled += 1;
            // The clock read at each offer, not once per batch: a reader held
            // back by its own offers would otherwise never see itself fall behind.
            if handled % YIELD_EVERY == 0
                && clock_ns(libc::CLOCK_MONOTONIC).saturating_sub(self.last_event_ns) < YIELD_WHILE_BEHIND_LESS_THAN_NS
            {
                std::thread::yield_now();
            }
        }
        ComponentMetrics::add(&metrics.received_bytes, bytes);
        handled
    }

    fn handle(&mut self, raw: &[u8], metrics: &ComponentMetrics) {
        let mut event = match Event::decode(raw) {
            Ok(event) => event,
            Err(e) => {
                ComponentMetrics::add(&metrics.errors, 1);
                tracing::error!("undecodable ring buffer record: {}", e.0);
                return;
            }
        };
        self.last_event_ns = event.monotonic_ns;
        let wall_ns = self.clock.wall_ns(event.monotonic_ns);
        // Retransmits, resets and (with the socket hooks) accepts and closes
        // come from softirq context: no process to filter on.
        if event.pid != 0 && !self.wanted(event.comm) {
            // The connection is not counted as an accept of no process either.
            self.tcp.disown(event.socket);
            return;
        }
        self.tcp.observe(&event);
        match event.kind {
            Kind::Data if self.http => {
                event.syscall_trace_id = self.trace_ids.next(event.tid, event.direction, event.monotonic_ns);
                let records = self.sessions.on_data(&event, wall_ns);
                self.keep(records);
            }
            Kind::Closed => {
                let records = self.sessions.on_close(event.socket, wall_ns);
                self.keep(records);
            }
            _ => {}
        }
    }

    /// What HTTP/2, Redis, PostgreSQL and MySQL parsing gave up, as the component's own counters.
    fn count_parsers(&mut self, metrics: &ComponentMetrics) {
        let counts = self.sessions.take_http2_counters();
        metrics.add_own("ebpf_http2_header_block_errors_total", counts.header_block_errors);
        metrics.add_own("ebpf_http2_header_block_gaps_total", counts.header_block_gaps);
        metrics.add_own("ebpf_http2_framing_lost_total", counts.framing_lost);
        metrics.add_own("ebpf_http2_streams_given_up_total", counts.streams_given_up);
        metrics.add_own("ebpf_http2_unmatched_responses_total", counts.unmatched_responses);
        let names = [
            ["ebpf_redis_framing_lost_total", "ebpf_redis_requests_given_up_total", "ebpf_redis_unmatched_responses_total"],
            ["ebpf_postgresql_framing_lost_total", "ebpf_postgresql_requests_given_up_total", "ebpf_postgresql_unmatched_responses_total"],
            ["ebpf_mysql_framing_lost_total", "ebpf_mysql_requests_given_up_total", "ebpf_mysql_unmatched_responses_total"],
        ];
        for (names, counts) in names.into_iter().zip(self.sessions.take_counters()) {
            metrics.add_own(names[0], counts.framing_lost);
            metrics.add_own(names[1], counts.requests_given_up);
            metrics.add_own(names[2], counts.unmatched_responses);
        }
    }

    fn expire(&mut self, timeout_ns: u64) {
        let now = self.clock.wall_ns(clock_ns(libc::CLOCK_MONOTONIC));
        let records = self.sessions.expire(now, timeout_ns);
        self.keep(records);
    }

    /// Sample, then add what /proc knows about the process.
    fn keep(&mut self, records: Vec<Record>) {
        for mut record in records {
            if self.sample_rate > 1 {
                // Both ends of a request have the same request seq: sampled alike.
                let key = record.tcp_seq_request.map(u64::from).unwrap_or_else(|| {
                    self.sampled += 1;
                    self.sampled
                });
                if (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % u64::from(self.sample_rate) != 0 {
                    continue;
                }
            }
            if let Some(info) = record.pid.and_then(|pid| self.processes.get_at(pid, self.batch_start)) {
                record.cmdline = info.cmdline.clone();
                record.container_id = info.container_id.clone();
            }
            record.host_name.clone_from(&self.host_name);
            self.records.push(record);
        }
    }

    async fn send(&mut self, cx: &mut SourceContext) {
        if !self.records.is_empty() {
            let mut batch: EventBatch = self.records.drain(..).map(PipelineEvent::record).collect();
            let n = batch.len();
            ComponentMetrics::add(&cx.metrics.received_events, n);
            let receiver = cx.finalize(&mut batch);
            cx.out.send(batch).await;
            if let Some(receiver) = receiver {
                cx.count_acknowledgement(receiver, n);
            }
        }
        if !self.metrics.is_empty() {
            let batch: EventBatch = self.metrics.drain(..).map(PipelineEvent::metric).collect();
            ComponentMetrics::add(&cx.metrics.received_events, batch.len());
            cx.out.send_to(TCP_PORT, batch).await;
        }
    }
}
