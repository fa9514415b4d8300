//! What is remembered of emitted traces, so that a span arriving after its
//! trace left still joins it (same trace id, and a parent where a relation
//! says which): the emitted nodes, without their inputs, by the keys they can
//! be found by. Bounded: the oldest are forgotten first, and a key on more
//! than `max_key_fanout` remembered nodes (a constant header, a trace id
//! every client sends) finds nothing, so that no lookup walks a long list.
//!
//! Keys are kept as hashes: a node found by a key is only a candidate, and
//! every use checks the relation itself (`late_link`, trace ids).

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::node::{key_hash, Input, Node, Role};

/// The keys a node is remembered by: what a late node can name or share. By
/// role, as `late_link` reads them: a late server finds its caller's client
/// end by TCP seq, a late call the server that made it by syscall ids. Its
/// trace id only when `by_trace` (one node per trace id is enough to find the trace).
fn keys_of_emitted(node: &Node, by_trace: bool) -> SmallVec<[u64; 8]> {
    let mut keys = shared_keys(node, node.role == Role::Client, node.role == Role::Server, by_trace);
    if node.span_id_given {
        keys.push(key_hash((3u8, node.span_id)));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The keys a late node looks for: the ones it shares, and its parent's span id.
fn keys_to_look_up(node: &Node) -> SmallVec<[u64; 8]> {
    let mut keys = shared_keys(node, node.role == Role::Server, node.role == Role::Client, true);
    keys.extend(node.parent_span_id.map(|span| key_hash((3u8, span))));
    keys
}

/// Request ids; TCP seq, syscall ids and trace id when asked.
fn shared_keys(node: &Node, tcp: bool, syscall: bool, trace: bool) -> SmallVec<[u64; 8]> {
    let mut keys = SmallVec::new();
    if tcp {
        keys.extend(node.tcp_seq_request.map(|seq| key_hash((0u8, seq))));
    }
    if syscall {
        for id in [node.syscall_request, node.syscall_response].into_iter().flatten() {
            keys.push(node.syscall_key(id));
        }
    }
    keys.extend(node.request_ids().map(|id| key_hash((2u8, &**id))));
    if trace {
        keys.extend(node.trace_id.map(|trace| key_hash((4u8, trace))));
    }
    keys
}

/// An emitted node and the trace it went out in.
pub struct Emitted {
    pub node: Node,
    pub trace_id: [u8; 16],
    /// Whether stitching made that trace id (its trace had no W3C one, or several).
    pub made_up: bool,
}

/// The remembered nodes with one key, by number: at most `max_key_fanout + 1`
/// (past that the key finds nothing until the newest it turned away is
/// forgotten). Numbers below `first` are forgotten nodes, left for `sweep`.
#[derive(Default)]
struct Holders {
    numbers: SmallVec<[u64; 2]>,
    blocked_below: u64,
}

pub struct LateCache {
    capacity: usize,
    max_key_fanout: usize,
    by_key: FxHashMap<u64, Holders>,
    /// The emitted nodes remembered, oldest first; the front one is number `first`.
    nodes: VecDeque<Emitted>,
    first: u64,
}

impl LateCache {
    pub fn new(capacity: usize, max_key_fanout: usize) -> Self {
        LateCache { capacity, max_key_fanout, by_key: FxHashMap::default(), nodes: VecDeque::new(), first: 0 }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    #[cfg(test)]
    pub fn keys_held(&self) -> usize {
        self.by_key.len()
    }

    /// Remember an emitted node (its input dropped), forgetting the oldest
    /// past the capacity; findable by its trace id when `by_trace`.
    pub fn remember(&mut self, mut node: Node, trace_id: [u8; 16], made_up: bool, by_trace: bool) {
        if self.capacity == 0 {
            return;
        }
        node.input = Input::Emitted;
        node.finalizers = Default::default();
        let (first, number) = (self.first, self.first + self.nodes.len() as u64);
        for key in keys_of_emitted(&node, by_trace) {
            let holders = self.by_key.entry(key).or_default();
            holders.numbers.retain(|n| *n >= first);
            if holders.numbers.len() <= self.max_key_fanout {
                holders.numbers.push(number);
            } else {
                holders.blocked_below = number + 1;
            }
        }
        self.nodes.push_back(Emitted { node, trace_id, made_up });
        if self.nodes.len() > self.capacity {
            self.nodes.pop_front();
            self.first += 1;
            if self.first.is_multiple_of(self.capacity as u64) {
                self.sweep();
            }
        }
    }

    /// Drop the forgotten nodes' numbers and the keys left with none: once
    /// per `capacity` forgotten, so the keys held stay under twice the live ones.
    fn sweep(&mut self) {
        let first = self.first;
        self.by_key.retain(|_, holders| {
            holders.numbers.retain(|n| *n >= first);
            !holders.numbers.is_empty() || holders.blocked_below > first
        });
    }

    /// The emitted nodes sharing a key with `node` (none by a key on too many).
    pub fn candidates(&self, node: &Node) -> Vec<&Emitted> {
        let mut found: Vec<u64> = keys_to_look_up(node)
            .iter()
            .filter_map(|key| self.by_key.get(key))
            .filter(|holders| holders.blocked_below <= self.first)
            .filter(|holders| holders.numbers.iter().filter(|n| **n >= self.first).count() <= self.max_key_fanout)
            .flat_map(|holders| &holders.numbers)
            .copied()
            .collect();
        found.sort_unstable();
        found.dedup();
        found.iter().filter_map(|n| self.nodes.get(n.checked_sub(self.first)? as usize)).collect()
    }
}
