//! `stitch`: one trace per request, across gateway logs, eBPF records and APM
//! spans, in the stream (DeepFlow's AutoTracing does it at query time).
//!
//! Every request record becomes a span (a gateway entry two: its server
//! span and its call upstream); APM spans pass through with their ids. Nodes
//! are grouped by verified relations only (`relate`): the same trace id, the
//! TCP seq of one network hop, the syscall ids of one thread, a request id
//! injected or passed through (joined when the group is emitted, so that a
//! key seen on too many nodes, `max_key_fanout`, is dropped before it can
//! merge unrelated requests). Two groups whose trace ids are disjoint are not
//! merged. When emitted, a group gets its tree (`tree`, each stitched parent
//! with its reason in `tapline.link`), one trace id (its only W3C one, else a
//! generated one; originals in `tapline.original_trace_id`) and each span its
//! self time.
//!
//! Memory is bounded, on event time: a group is emitted once idle for
//! `expire_after_ms` (past `allowed_lateness_ms`), older than
//! `max_trace_duration_ms`, at `max_spans_per_trace`, or, with `max_traces`
//! held, the longest-idle one early (counted, never dropped); all at
//! shutdown. A span arriving after its trace left joins it through a bounded
//! cache of what was emitted (`late`), counted.

mod late;
mod node;
mod relate;
mod tree;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use serde::Deserialize;
use slab::Slab;
use smallvec::{smallvec, SmallVec};

use crate::component::{OutputDef, Result, Transform, TransformConfig, TransformOutput};
use crate::event::{trace_id_of, Event, EventBatch, Kinds, Span, SpanIds, SpanKind, Value};
use late::LateCache;
use node::{HostNames, Input, Node, Origin, Part, Role};
use relate::Tolerance;
use tree::{Link, Parent, PerNode};

/// Own counters and gauges (`tapline_<name>` on /metrics).
pub const TRACES_HELD: &str = "stitch_traces_held";
pub const SPANS_HELD: &str = "stitch_spans_held";
pub const LATE_CACHE_SPANS: &str = "stitch_late_cache_spans";
pub const LATE_SPANS: &str = "stitch_late_spans_total";
pub const KEYS_DROPPED: &str = "stitch_keys_dropped_total";
pub const NOT_STITCHED: &str = "stitch_not_stitched_total";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StitchConfig {
    /// A trace is emitted once no span joined it for this long (event time), as Vector's `reduce`.
    pub expire_after_ms: u64,
    /// How late (event time) a span may arrive and still find its trace open.
    pub allowed_lateness_ms: u64,
    /// A trace older than this is emitted, however busy.
    pub max_trace_duration_ms: u64,
    /// A trace with this many spans is emitted at once (DeepFlow's default).
    pub max_spans_per_trace: usize,
    /// Traces held at most; past it the longest-idle one is emitted early.
    pub max_traces: usize,
    /// A request id on more nodes than this (a constant header) stops being a join key.
    pub max_key_fanout: usize,
    /// How far apart a TCP hop's two ends may be seen, on one host (DeepFlow's 50 ms).
    pub network_delay_ms: u64,
    /// Added across hosts: their clocks' offset (DeepFlow's 10 ms).
    pub clock_offset_ms: u64,
    /// Emitted spans remembered for late ones to join.
    pub late_cache_spans: usize,
    /// Merge groups whose trace ids are disjoint when a relation says so (off, as in DeepFlow).
    pub merge_disjoint_traces: bool,
}

impl Default for StitchConfig {
    fn default() -> Self {
        StitchConfig {
            expire_after_ms: 10_000,
            allowed_lateness_ms: 2_000,
            max_trace_duration_ms: 60_000,
            max_spans_per_trace: 1000,
            max_traces: 100_000,
            max_key_fanout: 16,
            network_delay_ms: 50,
            clock_offset_ms: 10,
            late_cache_spans: 50_000,
            merge_disjoint_traces: false,
        }
    }
}

impl TransformConfig for StitchConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::LOG.union(Kinds::SPAN)
    }

    fn outputs(&self, _input: Kinds) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::SPAN)]
    }

    fn build(&self) -> Result<Box<dyn Transform>> {
        if self.expire_after_ms == 0
            || self.max_trace_duration_ms == 0
            || self.max_spans_per_trace == 0
            || self.max_traces == 0
            || self.max_key_fanout == 0
        {
            return Err(
                "`expire_after_ms`, `max_trace_duration_ms`, `max_spans_per_trace`, `max_traces` and `max_key_fanout` must be positive"
                    .into(),
            );
        }
        Ok(Box::new(Stitch::new(self.clone())))
    }
}

/// Why a trace was emitted, and the counter of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Idle,
    MaxDuration,
    MaxSpans,
    MaxTraces,
    Shutdown,
}

impl Reason {
    fn counter(self) -> &'static str {
        match self {
            Reason::Idle => "stitch_emitted_idle_total",
            Reason::MaxDuration => "stitch_emitted_max_duration_total",
            Reason::MaxSpans => "stitch_emitted_max_spans_total",
            Reason::MaxTraces => "stitch_emitted_max_traces_total",
            Reason::Shutdown => "stitch_emitted_shutdown_total",
        }
    }
}

struct Held {
    node: Node,
    group: usize,
}

/// Nodes joined so far into one trace.
struct Group {
    nodes: SmallVec<[usize; 4]>,
    /// The earliest start (event time, ns).
    first: u64,
    /// The event clock when a node last joined.
    last: u64,
    /// The distinct W3C trace ids among its nodes (one, mostly).
    traces: SmallVec<[[u8; 16]; 1]>,
}

/// The event clock: the newest event time seen, moving on with the wall
/// clock while nothing new arrives; an event from the future counts as now.
/// The clocks are read once a batch (and a tick): a batch is handled as of one instant.
struct Clock {
    newest: u64,
    /// The monotonic clock is read as ns since `origin`.
    origin: std::time::Instant,
    /// When `newest` was seen, on the monotonic clock.
    at: u64,
    /// The monotonic clock and the wall clock (Unix ns) as of the batch in hand.
    read: u64,
    wall: u64,
    /// The last `stamp` given.
    stamped: u64,
}

impl Clock {
    fn new() -> Self {
        Clock { newest: 0, origin: std::time::Instant::now(), at: 0, read: 0, wall: 0, stamped: 0 }
    }

    fn now(&self) -> u64 {
        self.newest.saturating_add(self.read.saturating_sub(self.at))
    }

    /// `now`, but never the same twice: when a node joins its group.
    fn stamp(&mut self) -> u64 {
        self.stamped = self.now().max(self.stamped + 1);
        self.stamped
    }

    /// Read the clocks, once a batch and a tick.
    fn read(&mut self) {
        self.read = self.origin.elapsed().as_nanos() as u64;
        self.wall = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default().max(0) as u64;
    }

    fn see(&mut self, time: u64) {
        let now = self.now();
        if time.min(self.wall) > now {
            self.newest = time.min(self.wall);
            self.at = self.read;
        }
    }
}

pub struct Stitch {
    config: StitchConfig,
    tolerance: Tolerance,
    /// The nodes held, by node id (reused once a node leaves).
    held: Slab<Held>,
    /// The groups, by group id (reused once a group leaves, as node ids).
    groups: Slab<Group>,
    by_tcp: FxHashMap<u32, SmallVec<[usize; 2]>>,
    /// By `Node::syscall_key`.
    by_syscall: FxHashMap<u64, SmallVec<[usize; 2]>>,
    by_trace: FxHashMap<[u8; 16], usize>,
    by_request_id: FxHashMap<Arc<str>, SmallVec<[usize; 4]>>,
    /// Request ids seen on too many nodes, newest last (bounded).
    banned: BTreeSet<Arc<str>>,
    banned_order: VecDeque<Arc<str>>,
    /// (last, group), oldest first: a group's `last` only grows, with the
    /// event clock, so a newer entry goes at the back and the older one of the
    /// same group is stale (skipped when it reaches the front). No two groups
    /// get the same `last` (`Clock::stamp`), so an entry left by a group that
    /// went never names the one that took its id.
    idle_order: VecDeque<(u64, usize)>,
    late: LateCache,
    hosts: HostNames,
    clock: Clock,
}

/// Request ids remembered as dropped (a constant header stays dropped).
const BANNED_KEYS: usize = 65_536;

impl Stitch {
    pub fn new(config: StitchConfig) -> Self {
        let ms = 1_000_000;
        let tolerance =
            Tolerance { same_host: config.network_delay_ms * ms, cross_host: (config.network_delay_ms + config.clock_offset_ms) * ms };
        Stitch {
            late: LateCache::new(config.late_cache_spans, config.max_key_fanout),
            config,
            tolerance,
            held: Slab::new(),
            groups: Slab::new(),
            by_tcp: FxHashMap::default(),
            by_syscall: FxHashMap::default(),
            by_trace: FxHashMap::default(),
            by_request_id: FxHashMap::default(),
            banned: BTreeSet::new(),
            banned_order: VecDeque::new(),
            idle_order: VecDeque::new(),
            hosts: HostNames::default(),
            clock: Clock::new(),
        }
    }

    fn ms(&self, ms: u64) -> u64 {
        ms * 1_000_000
    }

    /// Take one node in: a group of its own, then joined to every group it
    /// relates to, and to `sibling`'s (the other node of the same record).
    /// Returns its id.
    fn ingest(&mut self, node: Node, sibling: Option<usize>, out: &mut TransformOutput) -> usize {
        self.clock.see(node.end);
        let now = self.clock.stamp();
        let id = self.held.vacant_key();
        let group = match sibling.and_then(|s| self.held.get(s)).map(|s| s.group) {
            // The second node of a record goes straight into the first one's group.
            Some(group) => {
                self.join(group, id, &node, now);
                group
            }
            None => {
                let traces = node.trace_id.into_iter().collect();
                let group = self.groups.insert(Group { nodes: smallvec![id], first: node.start, last: now, traces });
                self.idle_order.push_back((now, group));
                group
            }
        };
        let mut related: SmallVec<[usize; 4]> = SmallVec::new();
        if let Some(trace) = node.trace_id {
            match self.by_trace.get(&trace) {
                Some(&other) => related.push(other),
                None => {
                    self.by_trace.insert(trace, group);
                }
            }
        }
        if node.origin == Origin::Ebpf {
            if let Some(seq) = node.tcp_seq_request {
                let entry = self.by_tcp.entry(seq).or_default();
                related.extend(
                    entry
                        .iter()
                        .filter_map(|m| self.held.get(*m))
                        .filter(|m| relate::tcp_seq(&node, &m.node, &self.tolerance))
                        .map(|m| m.group),
                );
                entry.push(id);
            }
            if !node.is_leaf_server() {
                for sid in [node.syscall_request, node.syscall_response].into_iter().flatten() {
                    let entry = self.by_syscall.entry(node.syscall_key(sid)).or_default();
                    related.extend(
                        entry.iter().filter_map(|m| self.held.get(*m)).filter(|m| relate::syscall(&node, &m.node)).map(|m| m.group),
                    );
                    if !entry.contains(&id) {
                        entry.push(id);
                    }
                }
            }
        }
        for key in node.request_ids() {
            if self.banned.contains(key) {
                continue;
            }
            let entry = self.by_request_id.entry(key.clone()).or_default();
            entry.push(id);
            if entry.len() > self.config.max_key_fanout {
                self.by_request_id.remove(key);
                self.ban(key.clone());
                out.count(KEYS_DROPPED, 1);
            }
        }
        let inserted = self.held.insert(Held { node, group });
        debug_assert_eq!(inserted, id, "a node goes in at the key its indexes name");
        let mut group = group;
        for other in related {
            group = self.merge(group, other);
        }
        if self.groups.get(group).is_some_and(|g| g.nodes.len() >= self.config.max_spans_per_trace) {
            self.emit(group, Reason::MaxSpans, out);
        }
        while self.groups.len() > self.config.max_traces {
            let Some(oldest) = self.next_idle(u64::MAX) else { break };
            self.emit(oldest, Reason::MaxTraces, out);
        }
        id
    }

    /// Add node `id` to a group.
    fn join(&mut self, group: usize, id: usize, node: &Node, now: u64) {
        self.absorb(group, [id], node.start, now, node.trace_id.as_slice());
    }

    /// Put nodes into group `keep`, with the span of time and the trace ids
    /// they bring (what a join and a merge share).
    fn absorb(&mut self, keep: usize, nodes: impl IntoIterator<Item = usize>, first: u64, last: u64, traces: &[[u8; 16]]) {
        let Some(group) = self.groups.get_mut(keep) else { return };
        group.nodes.extend(nodes);
        group.first = group.first.min(first);
        if last > group.last {
            group.last = last;
            self.idle_order.push_back((last, keep));
        }
        for trace in traces {
            if !group.traces.contains(trace) {
                group.traces.push(*trace);
            }
        }
    }

    /// The longest-idle group, if it has been idle since `before` or longer;
    /// stale entries are dropped on the way.
    fn next_idle(&mut self, before: u64) -> Option<usize> {
        while let Some(&(last, group)) = self.idle_order.front() {
            if last > before {
                return None;
            }
            self.idle_order.pop_front();
            if self.groups.get(group).is_some_and(|g| g.last == last) {
                return Some(group);
            }
        }
        None
    }

    fn ban(&mut self, key: Arc<str>) {
        if self.banned.insert(key.clone()) {
            self.banned_order.push_back(key);
        }
        while self.banned_order.len() > BANNED_KEYS {
            if let Some(oldest) = self.banned_order.pop_front() {
                self.banned.remove(&oldest);
            }
        }
    }

    /// Join two groups (the smaller into the larger) unless their trace ids
    /// are disjoint; returns the group that holds both (or `a`, unchanged).
    fn merge(&mut self, a: usize, b: usize) -> usize {
        let (Some(ga), Some(gb)) = (self.groups.get(a), self.groups.get(b)) else { return a };
        if a == b || !relate::compatible(&ga.traces, &gb.traces, self.config.merge_disjoint_traces) {
            return a;
        }
        let (keep, gone) = if ga.nodes.len() >= gb.nodes.len() { (a, b) } else { (b, a) };
        let Some(absorbed) = self.groups.try_remove(gone) else { return keep };
        for id in &absorbed.nodes {
            if let Some(held) = self.held.get_mut(*id) {
                held.group = keep;
            }
        }
        for trace in &absorbed.traces {
            self.by_trace.insert(*trace, keep);
        }
        self.absorb(keep, absorbed.nodes, absorbed.first, absorbed.last, &absorbed.traces);
        keep
    }

    /// Join by request id what relates to the group's nodes (see the module doc).
    fn join_by_request_id(&mut self, mut group: usize) -> usize {
        let mut queue: SmallVec<[usize; 8]> = self.groups.get(group).map(|g| g.nodes.iter().copied().collect()).unwrap_or_default();
        while let Some(id) = queue.pop() {
            let Some(held) = self.held.get(id) else { continue };
            let mut others = Vec::new();
            for key in held.node.request_ids() {
                for m in self.by_request_id.get(key).into_iter().flatten() {
                    let Some(other) = self.held.get(*m) else { continue };
                    if other.group != held.group && relate::request_id(&held.node, &other.node, &self.tolerance) {
                        others.push(other.group);
                    }
                }
            }
            for other in others {
                if other == group || !self.groups.contains(other) {
                    continue;
                }
                let newcomers = self.groups.get(other).map(|g| g.nodes.clone()).unwrap_or_default();
                let merged = self.merge(group, other);
                let refused = merged == group && self.groups.contains(other);
                if !refused {
                    queue.extend(newcomers);
                    group = merged;
                }
            }
        }
        group
    }

    /// Emit a group's trace, unless joining by request id showed it is still busy.
    fn emit(&mut self, group: usize, reason: Reason, out: &mut TransformOutput) {
        let group = self.join_by_request_id(group);
        let watermark = self.clock.now().saturating_sub(self.ms(self.config.allowed_lateness_ms));
        if reason == Reason::Idle && self.groups.get(group).is_some_and(|g| g.last + self.ms(self.config.expire_after_ms) > watermark) {
            return;
        }
        let Some(taken) = self.groups.try_remove(group) else { return };
        for trace in &taken.traces {
            if self.by_trace.get(trace) == Some(&group) {
                self.by_trace.remove(trace);
            }
        }
        let mut nodes: Vec<Node> = taken.nodes.iter().filter_map(|id| self.unindex(*id)).collect();
        for node in &mut nodes {
            node.drop_request_ids(|id| self.banned.contains(id));
        }
        nodes.sort_by_key(|n| (n.start, std::cmp::Reverse(n.duration())));
        out.count(reason.counter(), 1);
        self.write_trace(nodes, out);
    }

    /// Take a node out of the held set and the indexes.
    fn unindex(&mut self, id: usize) -> Option<Node> {
        let Held { node, .. } = self.held.try_remove(id)?;
        if let Some(seq) = node.tcp_seq_request {
            unlist(&mut self.by_tcp, &seq, id);
        }
        for sid in [node.syscall_request, node.syscall_response].into_iter().flatten() {
            unlist(&mut self.by_syscall, &node.syscall_key(sid), id);
        }
        for key in node.request_ids() {
            unlist(&mut self.by_request_id, key, id);
        }
        Some(node)
    }

    /// The spans of one trace: tree, trace id, self times, and what was
    /// emitted before (late spans join it).
    fn write_trace(&mut self, nodes: Vec<Node>, out: &mut TransformOutput) {
        let parents = tree::parents(&nodes, &self.tolerance);
        let self_times = tree::self_times(&nodes, &parents);
        let mut traces: SmallVec<[[u8; 16]; 2]> = nodes.iter().filter_map(|n| n.trace_id).collect();
        traces.sort_unstable();
        traces.dedup();
        // A root that relates to something emitted before: the trace is late, and
        // joins it, unless the two carry trace ids the applications told apart.
        let mut external: PerNode<Option<([u8; 8], Link)>> = smallvec![None; nodes.len()];
        let mut joined_trace = None;
        for (n, node) in nodes.iter().enumerate() {
            if parents[n].is_some() {
                continue;
            }
            for emitted in self.late.candidates(node) {
                let compatible =
                    self.config.merge_disjoint_traces || emitted.made_up || traces.is_empty() || traces.contains(&emitted.trace_id);
                if !compatible || joined_trace.is_some_and(|trace| trace != emitted.trace_id) {
                    continue;
                }
                let link = late_link(&emitted.node, node, &self.tolerance);
                if link.is_some() || (node.trace_id.is_some() && emitted.node.trace_id == node.trace_id) {
                    joined_trace.get_or_insert(emitted.trace_id);
                }
                if let Some(link) = link {
                    external[n] = Some((emitted.node.span_id, link));
                    break;
                }
            }
        }
        let (trace_id, made_up) = match (joined_trace, traces.as_slice()) {
            (Some(trace), _) => (trace, !traces.contains(&trace)),
            (None, [only]) => (*only, false),
            (None, _) => (trace_id_of(nodes.first().map(|n| n.span_id).unwrap_or([1; 8])), true),
        };
        if joined_trace.is_some() {
            out.count(LATE_SPANS, nodes.len() as u64);
        }
        let span_ids: PerNode<[u8; 8]> = nodes.iter().map(|n| n.span_id).collect();
        // The trace ids the late cache knows this trace by, once each.
        let mut keyed_traces: SmallVec<[[u8; 16]; 2]> = SmallVec::new();
        for (n, mut node) in nodes.into_iter().enumerate() {
            let (parent, link) = match (parents[n], external[n]) {
                (Some(Parent::Node(p, link)), _) => (Some(span_ids[p]), link),
                (None, Some((span, link))) => (Some(span), Some(link)),
                (None, None) => (node.parent_span_id, None),
            };
            if let Some(link) = link {
                out.count(link.counter(), 1);
            }
            let span = span_of(&mut node, trace_id, parent, link, self_times[n]);
            let finalizers = std::mem::take(&mut node.finalizers);
            out.primary.push(Event { data: crate::event::EventData::Span(span), finalizers });
            let by_trace = node.trace_id.is_some_and(|trace| !keyed_traces.contains(&trace));
            keyed_traces.extend(node.trace_id.filter(|_| by_trace));
            self.late.remember(node, trace_id, made_up, by_trace);
        }
    }

    fn report(&self, out: &mut TransformOutput) {
        out.gauge(TRACES_HELD, self.groups.len() as u64);
        out.gauge(SPANS_HELD, self.held.len() as u64);
        out.gauge(LATE_CACHE_SPANS, self.late.len() as u64);
    }
}

/// Take `id` off an index's list for `key`, and the list when it is left
/// empty: one probe of the table (most lists hold that one node).
fn unlist<K: std::hash::Hash + Eq + Clone, const N: usize>(index: &mut FxHashMap<K, SmallVec<[usize; N]>>, key: &K, id: usize) {
    if let Entry::Occupied(mut list) = index.entry(key.clone()) {
        list.get_mut().retain(|m| *m != id);
        if list.get().is_empty() {
            list.remove();
        }
    }
}

/// The link by which a late root goes under an emitted node.
fn late_link(emitted: &Node, node: &Node, tolerance: &Tolerance) -> Option<Link> {
    if emitted.role == Role::Client && node.role == Role::Server && relate::tcp_seq(emitted, node, tolerance) {
        return Some(Link::TcpSeq);
    }
    if emitted.role == Role::Server && relate::syscall(emitted, node) {
        return Some(Link::Syscall);
    }
    if node.parent_span_id.is_some() && node.parent_span_id == Some(emitted.span_id) {
        return Some(Link::SpanId);
    }
    (relate::request_id(emitted, node, tolerance) && emitted.covers(node, tolerance.between(emitted, node))).then_some(Link::RequestId)
}

/// A node's span, in its trace: its input is taken (an APM span is not copied).
fn span_of(node: &mut Node, trace_id: [u8; 16], parent: Option<[u8; 8]>, link: Option<Link>, self_time_ns: u64) -> Box<Span> {
    let mut stitched: SmallVec<[(Cow<'static, str>, Value); 3]> = SmallVec::new();
    if let Some(link) = link {
        stitched.push(("tapline.link".into(), Value::from_static_str(link.as_str())));
    }
    if let Some(original) = node.trace_id.filter(|original| *original != trace_id) {
        stitched.push(("tapline.original_trace_id".into(), Value::from(const_hex::encode(original))));
    }
    stitched.push(("tapline.self_time_us".into(), Value::Integer((self_time_ns / 1000) as i64)));
    let mut span = match std::mem::replace(&mut node.input, Input::Emitted) {
        Input::Span(mut span) => {
            span.attributes.extend(stitched);
            span
        }
        Input::Record(record) => Box::new(Span::from_record_with(Cow::Owned(*record), stitched)),
        Input::Shared(record, part) => {
            // The last span of its record takes the record's text; the other copies it.
            let mut span = Box::new(match Arc::try_unwrap(record) {
                Ok(record) => Span::from_record_with(Cow::Owned(record), stitched),
                Err(shared) => Span::from_record_with(Cow::Borrowed(&shared), stitched),
            });
            if part == Part::Upstream {
                span.kind = SpanKind::Client;
                span.name.push_str(" upstream");
                (span.start_time_unix_nano, span.end_time_unix_nano) = (node.start, node.end);
            }
            span
        }
        Input::Emitted => Box::default(),
    };
    span.set_ids(SpanIds { trace_id, span_id: node.span_id, parent_span_id: parent });
    span
}

impl Transform for Stitch {
    fn transform(&mut self, batch: EventBatch, out: &mut TransformOutput) {
        self.clock.read();
        // About one span goes out per record that comes in: one allocation for the batch's.
        out.primary.reserve(batch.len());
        for event in batch {
            match Node::from_event(event, &mut self.hosts) {
                Some(nodes) => {
                    let mut first = None;
                    for node in nodes {
                        let id = self.ingest(node, first, out);
                        first.get_or_insert(id);
                    }
                }
                None => {
                    // A plain log or a metric: nothing to stitch. Counted, and dropped.
                    out.count(NOT_STITCHED, 1);
                    out.discarded += 1;
                }
            }
        }
        self.report(out);
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(200))
    }

    fn tick(&mut self, last: bool, out: &mut TransformOutput) {
        self.clock.read();
        let now = self.clock.now();
        if last {
            let all: Vec<usize> = self.groups.iter().map(|(id, _)| id).collect();
            for group in all {
                self.emit(group, Reason::Shutdown, out);
            }
        }
        let watermark = now.saturating_sub(self.ms(self.config.allowed_lateness_ms));
        let idle_before = watermark.saturating_sub(self.ms(self.config.expire_after_ms));
        while let Some(group) = self.next_idle(idle_before) {
            self.emit(group, Reason::Idle, out);
        }
        // Stale entries leave at the front; should they pile up behind a busy group, sweep them.
        if self.idle_order.len() > 4 * self.groups.len() + 1024 {
            let groups = &self.groups;
            self.idle_order.retain(|(last, group)| groups.get(*group).is_some_and(|g| g.last == *last));
        }
        // A scan of the groups, five times a second, rather than an index every node would update.
        let old_before = now.saturating_sub(self.ms(self.config.max_trace_duration_ms));
        let old: Vec<usize> = self.groups.iter().filter(|(_, g)| g.first <= old_before).map(|(id, _)| id).collect();
        for group in old {
            self.emit(group, Reason::MaxDuration, out);
        }
        self.report(out);
    }
}
