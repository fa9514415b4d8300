//! What stitching knows of each span to be: a request record makes one (an
//! eBPF record) or two (a gateway's entry: its server span and its call
//! upstream); an APM span is one. A node keeps its input whole (the span is
//! made only when its trace is emitted) and the keys the relations read.

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;

use rustc_hash::FxHashSet;
use smallvec::{smallvec, SmallVec};

use crate::event::{from_hex, Event, EventData, Finalizers, ObservationPoint, RequestRecord, SignalSource, Span, SpanKind, Value};

/// The nodes of one event: one or two.
pub type Nodes = SmallVec<[Node; 2]>;

/// Which end of a call a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
    /// An internal APM span, a producer, a consumer.
    Other,
}

/// Who saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A process's socket, seen from the kernel.
    Ebpf,
    /// A gateway's own log (Kong's http-log or file-log).
    Gateway,
    /// An application's own span.
    Apm,
}

/// Which of a gateway entry's spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The request as the gateway received it.
    Gateway,
    /// Its call upstream.
    Upstream,
}

#[derive(Debug)]
pub enum Input {
    /// A record that makes one span.
    Record(Box<RequestRecord>),
    /// A gateway entry that makes two: they share it.
    Shared(Arc<RequestRecord>, Part),
    Span(Box<Span>),
    /// Emitted already: only the keys are kept (see `late`).
    Emitted,
}

#[derive(Debug)]
pub struct Node {
    pub input: Input,
    pub role: Role,
    pub origin: Origin,
    /// The machine (eBPF records; APM spans by `host.name`): syscall ids and pids are per host.
    pub host: Option<Arc<str>>,
    pub pid: Option<u32>,
    /// Unix nanoseconds.
    pub start: u64,
    pub end: u64,
    /// The request id the request carried (`x_request_id_0` in DeepFlow's terms)
    /// and the one its response carried (`x_request_id_1`).
    pub request_id: Option<Arc<str>>,
    pub response_request_id: Option<Arc<str>>,
    /// A W3C trace id it carries (APM; a record that saw traceparent or b3).
    pub trace_id: Option<[u8; 16]>,
    /// Its own span id: the APM span's, or stable for a record.
    pub span_id: [u8; 8],
    /// Whether `span_id` came with its input (an APM span, a record that
    /// carried one): a made-up id is named by no other span.
    pub span_id_given: bool,
    /// APM: its parent. eBPF: the span id the request's traceparent named (the
    /// caller's client span). Gateway upstream call: the gateway span.
    pub parent_span_id: Option<[u8; 8]>,
    pub tcp_seq_request: Option<u32>,
    pub tcp_seq_response: Option<u32>,
    /// The eBPF source's syscall trace ids (never 0: 0 is "none" there).
    pub syscall_request: Option<NonZeroU64>,
    pub syscall_response: Option<NonZeroU64>,
    /// What its record says of the request (none for an APM span), kept once emitted.
    pub fingerprint: Option<Fingerprint>,
    pub finalizers: Finalizers,
}

/// A record's protocol, method, path and status, hashed: the two ends of one
/// hop must not disagree on them, and a late span is checked against an
/// emitted node whose record is gone. Zero is "not known" (a known text's
/// hash is odd), so that every node holds it in 16 bytes. 32-bit hashes are
/// enough: a fingerprint is only compared once a key and the times agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    protocol: NonZeroU32,
    method: u32,
    path: u32,
    status: u16,
}

impl Fingerprint {
    fn of(record: &RequestRecord) -> Self {
        let hash = |text: &str| key_hash(text) as u32 | 1;
        Fingerprint {
            protocol: NonZeroU32::new(hash(&record.protocol)).unwrap_or(NonZeroU32::MIN),
            method: record.method.as_deref().map_or(0, hash),
            path: record.path.as_deref().map_or(0, hash),
            status: record.status.unwrap_or(0),
        }
    }

    /// No field known on both sides differs.
    pub fn agrees(&self, other: &Fingerprint) -> bool {
        fn same<T: PartialEq + Default>(x: T, y: T) -> bool {
            x == T::default() || y == T::default() || x == y
        }
        self.protocol == other.protocol && same(self.method, other.method) && same(self.path, other.path) && same(self.status, other.status)
    }
}

/// The host names nodes were seen on, each held once: a few machines send
/// most records, and a name per node would be an allocation each. Bounded:
/// past `HOST_NAMES` distinct names it starts again.
#[derive(Default)]
pub struct HostNames(FxHashSet<Arc<str>>);

const HOST_NAMES: usize = 4096;

impl HostNames {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(held) = self.0.get(name) {
            return held.clone();
        }
        if self.0.len() >= HOST_NAMES {
            self.0.clear();
        }
        let held: Arc<str> = Arc::from(name);
        self.0.insert(held.clone());
        held
    }
}

impl Node {
    /// The nodes an event makes; `None` for what stitching does not take (a plain log, a metric).
    pub fn from_event(event: Event, hosts: &mut HostNames) -> Option<Nodes> {
        let Event { data, finalizers } = event;
        match data {
            EventData::Record(record) => Some(from_record(record, finalizers, hosts)),
            EventData::Span(span) => Some(smallvec![from_span(span, finalizers, hosts)]),
            _ => None,
        }
    }

    /// A server record that made no call downstream (its request and response
    /// share one syscall trace id): its id joins nothing.
    pub fn is_leaf_server(&self) -> bool {
        self.role == Role::Server && self.syscall_request.is_some() && self.syscall_request == self.syscall_response
    }

    pub fn duration(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether this node's interval holds `other`'s, give or take `tolerance` ns.
    pub fn covers(&self, other: &Node, tolerance: u64) -> bool {
        self.start <= other.start.saturating_add(tolerance) && self.end.saturating_add(tolerance) >= other.end
    }

    /// Forget the request ids `dropped` names (a constant header): they join nothing, now or late.
    pub fn drop_request_ids(&mut self, dropped: impl Fn(&Arc<str>) -> bool) {
        for id in [&mut self.request_id, &mut self.response_request_id] {
            if id.as_ref().is_some_and(&dropped) {
                *id = None;
            }
        }
    }

    /// A syscall trace id of its, as a key: the ids are unique on one host only.
    pub fn syscall_key(&self, id: NonZeroU64) -> u64 {
        key_hash((1u8, self.host.as_deref(), id))
    }

    /// The ids it carries, either side, for joins by request id.
    pub fn request_ids(&self) -> impl Iterator<Item = &Arc<str>> {
        self.request_id.iter().chain(self.response_request_id.iter().filter(|id| Some(*id) != self.request_id.as_ref()))
    }
}

/// A join key, hashed: what it finds is checked by a relation before it joins.
pub fn key_hash(key: impl std::hash::Hash) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(key)
}

fn nanos(record: &RequestRecord) -> u64 {
    record.time.timestamp_nanos_opt().unwrap_or_default().max(0) as u64
}

fn text(value: &Option<String>) -> Option<Arc<str>> {
    value.as_deref().filter(|v| !v.is_empty()).map(Arc::from)
}

fn hex<const N: usize>(value: &Option<String>) -> Option<[u8; N]> {
    value.as_deref().and_then(from_hex)
}

fn from_record(mut record: Box<RequestRecord>, finalizers: Finalizers, hosts: &mut HostNames) -> Nodes {
    let start = nanos(&record);
    let end = start + record.duration_us.unwrap_or_default() * 1000;
    // Made once: a gateway entry's two nodes share them.
    let host = record.host_name.as_deref().filter(|name| !name.is_empty()).map(|name| hosts.get(name));
    let (request_id, response_request_id) = (text(&record.request_id), text(&record.response_request_id));
    let fingerprint = Fingerprint::of(&record);
    // The ids are read here, and their text is not held: each span gets its ids from its node.
    let (trace_id, given_span_id, parent_span_id) =
        (hex(&record.trace_id.take()), hex(&record.span_id.take()), hex(&record.parent_span_id.take()));
    // Hashed only when a span needs one: the record brought none, or it makes a call upstream too.
    let gateway = record.observation_point == ObservationPoint::Gateway;
    let stable_ids = if given_span_id.is_none() || gateway { record.stable_ids() } else { [[0; 8]; 2] };
    let node = |input: Input, role: Role, origin: Origin| Node {
        input,
        role,
        origin,
        host: host.clone(),
        pid: record.pid,
        start,
        end,
        request_id: request_id.clone(),
        response_request_id: response_request_id.clone(),
        trace_id,
        span_id: given_span_id.unwrap_or(stable_ids[0]),
        span_id_given: given_span_id.is_some(),
        parent_span_id,
        tcp_seq_request: record.tcp_seq_request,
        tcp_seq_response: record.tcp_seq_response,
        syscall_request: record.syscall_trace_id_request.and_then(NonZeroU64::new),
        syscall_response: record.syscall_trace_id_response.and_then(NonZeroU64::new),
        fingerprint: Some(fingerprint),
        finalizers: finalizers.clone(),
    };
    if !gateway {
        let (role, origin) = match (record.observation_point, record.signal_source) {
            (ObservationPoint::ClientProcess, _) => (Role::Client, Origin::Ebpf),
            (_, SignalSource::Ebpf) => (Role::Server, Origin::Ebpf),
            _ => (Role::Server, Origin::Apm),
        };
        // `node` reads the record: it is moved in after.
        let mut node = node(Input::Emitted, role, origin);
        node.input = Input::Record(record);
        return smallvec![node];
    }
    // The gateway gives the request its id, answers with it and sends it
    // upstream: the server span shows it on the response side, the call on the request side.
    let mut server = node(Input::Emitted, Role::Server, Origin::Gateway);
    server.response_request_id = server.request_id.take().or(server.response_request_id);
    server.tcp_seq_request = None;
    if record.tries == 0 || record.upstream_us.is_none() {
        // Kong answered alone: no call upstream.
        server.input = Input::Record(record);
        return smallvec![server];
    }
    let mut upstream = node(Input::Emitted, Role::Client, Origin::Gateway);
    // The id a record carried is its server span's, not its call upstream's.
    (upstream.span_id, upstream.span_id_given) = (stable_ids[1], false);
    upstream.response_request_id = None;
    upstream.parent_span_id = Some(server.span_id);
    upstream.trace_id = server.trace_id;
    // The call upstream: after what the gateway did first, for as long as the upstream took.
    let upstream_ns = record.upstream_us.unwrap_or_default() * 1000;
    let before = record.gateway_us.unwrap_or_default() * 1000;
    upstream.start = (start + before).min(end.saturating_sub(upstream_ns)).max(start);
    upstream.end = upstream.start + upstream_ns;
    let shared = Arc::<RequestRecord>::from(record);
    server.input = Input::Shared(shared.clone(), Part::Gateway);
    upstream.input = Input::Shared(shared, Part::Upstream);
    smallvec![server, upstream]
}

fn from_span(span: Box<Span>, finalizers: Finalizers, hosts: &mut HostNames) -> Node {
    let role = match span.kind {
        SpanKind::Server => Role::Server,
        SpanKind::Client => Role::Client,
        _ => Role::Other,
    };
    let pid = match span.resource.get("process.pid") {
        Some(Value::Integer(pid)) => u32::try_from(*pid).ok(),
        _ => None,
    };
    Node {
        role,
        origin: Origin::Apm,
        host: match span.resource.get("host.name") {
            Some(Value::Bytes(name)) => Some(hosts.get(&String::from_utf8_lossy(name))),
            _ => None,
        },
        pid,
        start: span.start_time_unix_nano,
        end: span.end_time_unix_nano.max(span.start_time_unix_nano),
        request_id: span.request_id.as_deref().map(Arc::from),
        response_request_id: None,
        trace_id: Some(span.trace_id).filter(|t| *t != [0; 16]),
        span_id: span.span_id,
        span_id_given: true,
        parent_span_id: span.parent_span_id,
        tcp_seq_request: None,
        tcp_seq_response: None,
        syscall_request: None,
        syscall_response: None,
        fingerprint: None,
        finalizers,
        input: Input::Span(span),
    }
}
