//! What is remembered of emitted traces, so that a span arriving after its
//! trace left still joins it (same trace id, and a parent where a relation
//! says which): the emitted nodes, without their inputs, by the keys they can
//! be found by. Bounded: the oldest are forgotten first.

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::node::{Input, Node};

/// A join key of a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    TcpSeq(u32),
    Syscall(Option<Arc<str>>, u64),
    RequestId(Arc<str>),
    SpanId([u8; 8]),
    TraceId([u8; 16]),
}

impl Key {
    /// Every key a node can be found by.
    pub fn of(node: &Node) -> Vec<Key> {
        let mut keys = Vec::with_capacity(8);
        keys.extend(node.tcp_seq_request.map(Key::TcpSeq));
        for id in [node.syscall_request, node.syscall_response].into_iter().flatten() {
            keys.push(Key::Syscall(node.host.clone(), id));
        }
        keys.extend(node.request_ids().cloned().map(Key::RequestId));
        keys.push(Key::SpanId(node.span_id));
        keys.extend(node.parent_span_id.map(Key::SpanId));
        keys.extend(node.trace_id.map(Key::TraceId));
        keys
    }
}

/// An emitted node and the trace it went out in.
pub struct Emitted {
    pub node: Node,
    pub trace_id: [u8; 16],
    /// Whether stitching made that trace id (its trace had no W3C one, or several).
    pub made_up: bool,
}

pub struct LateCache {
    capacity: usize,
    /// A request id on more emitted nodes than this joins nothing late.
    max_key_fanout: usize,
    by_key: FxHashMap<Key, Vec<u64>>,
    nodes: FxHashMap<u64, (Emitted, Vec<Key>)>,
    order: VecDeque<u64>,
    next: u64,
}

impl LateCache {
    pub fn new(capacity: usize, max_key_fanout: usize) -> Self {
        LateCache { capacity, max_key_fanout, by_key: FxHashMap::default(), nodes: FxHashMap::default(), order: VecDeque::new(), next: 0 }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Remember an emitted node (its input dropped), forgetting the oldest past the capacity.
    pub fn remember(&mut self, mut node: Node, trace_id: [u8; 16], made_up: bool) {
        if self.capacity == 0 {
            return;
        }
        node.input = Input::Emitted;
        node.finalizers = Default::default();
        let keys = Key::of(&node);
        let id = self.next;
        self.next += 1;
        for key in &keys {
            self.by_key.entry(key.clone()).or_default().push(id);
        }
        self.nodes.insert(id, (Emitted { node, trace_id, made_up }, keys));
        self.order.push_back(id);
        while self.order.len() > self.capacity {
            let Some(oldest) = self.order.pop_front() else { break };
            self.forget(oldest);
        }
    }

    fn forget(&mut self, id: u64) {
        let Some((_, keys)) = self.nodes.remove(&id) else { return };
        for key in keys {
            if let Some(ids) = self.by_key.get_mut(&key) {
                ids.retain(|known| *known != id);
                if ids.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }

    /// The emitted nodes sharing a key with `node`.
    pub fn candidates(&self, node: &Node) -> Vec<&Emitted> {
        let usable = |(key, ids): &(&Key, &Vec<u64>)| !matches!(key, Key::RequestId(_)) || ids.len() <= self.max_key_fanout;
        let keys = Key::of(node);
        let mut found: Vec<u64> = keys
            .iter()
            .filter_map(|key| self.by_key.get(key).map(|ids| (key, ids)))
            .filter(usable)
            .flat_map(|(_, ids)| ids)
            .copied()
            .collect();
        found.sort_unstable();
        found.dedup();
        found.iter().filter_map(|id| self.nodes.get(id)).map(|(emitted, _)| emitted).collect()
    }
}
