//! The relations that join two nodes into one trace. Each is verified, never
//! bare key equality: a TCP seq or a syscall id reused later, a request id
//! shared by chance, must not merge two requests.

use super::node::{Node, Origin, Role};

/// How far apart two observations of one event may be: the network's delay on
/// one host, plus the clocks' offset across hosts.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    pub same_host: u64,
    pub cross_host: u64,
}

impl Tolerance {
    pub fn between(&self, a: &Node, b: &Node) -> u64 {
        if a.host.is_some() && a.host == b.host {
            self.same_host
        } else {
            self.cross_host
        }
    }
}

fn within(a: u64, b: u64, tolerance: u64) -> bool {
    a.abs_diff(b) <= tolerance
}

/// The client and server ends of one network hop (eBPF): the same TCP
/// sequence number on the request, and nothing in their records that
/// disagrees. When both saw the response, its sequence number is the same
/// too and the client's time holds the server's (it wrote first and read
/// last; a busy server may read the request late), give or take the
/// tolerance; otherwise they started within the tolerance.
pub fn tcp_seq(a: &Node, b: &Node, tolerance: &Tolerance) -> bool {
    let (client, server) = match (a.role, b.role) {
        (Role::Client, Role::Server) => (a, b),
        (Role::Server, Role::Client) => (b, a),
        _ => return false,
    };
    if a.origin != Origin::Ebpf || b.origin != Origin::Ebpf {
        return false;
    }
    let (Some(seq_a), Some(seq_b)) = (a.tcp_seq_request, b.tcp_seq_request) else { return false };
    let dev = tolerance.between(a, b);
    let timely = match (a.tcp_seq_response, b.tcp_seq_response) {
        (Some(resp_a), Some(resp_b)) => resp_a == resp_b && client.covers(server, dev),
        _ => within(a.start, b.start, dev),
    };
    if seq_a != seq_b || !timely {
        return false;
    }
    if a.trace_id.is_some() && b.trace_id.is_some() && a.trace_id != b.trace_id {
        return false;
    }
    let ids_agree = a.request_id.is_none() || b.request_id.is_none() || a.request_id == b.request_id;
    let records_agree = match (&a.fingerprint, &b.fingerprint) {
        (Some(fa), Some(fb)) => fa.agrees(fb),
        _ => true,
    };
    ids_agree && records_agree
}

/// A server's request and a call it made while handling it (eBPF, one
/// process): they share a syscall trace id (a read after a write starts a
/// new one), the server's time holds the call's (one host's clock: no
/// tolerance), and no request id tells them apart. A server that called
/// nothing (a leaf) joins nothing this way; two servers never do, and two
/// calls only through the server both share ids with (on a thread pool the
/// calls of two requests follow each other).
pub fn syscall(a: &Node, b: &Node) -> bool {
    let (server, call) = match (a.role, b.role) {
        (Role::Server, Role::Client) => (a, b),
        (Role::Client, Role::Server) => (b, a),
        _ => return false,
    };
    if server.origin != Origin::Ebpf
        || call.origin != Origin::Ebpf
        || server.host != call.host
        || server.pid != call.pid
        || server.is_leaf_server()
    {
        return false;
    }
    let ids = [server.syscall_request, server.syscall_response];
    let shared = [call.syscall_request, call.syscall_response].iter().flatten().any(|id| ids.contains(&Some(*id)));
    shared && server.covers(call, 0) && !ids_conflict(server, call)
}

/// Both carry request ids and none is the same: an event loop (nginx)
/// serving many requests on one thread, where syscall ids alone mix them.
fn ids_conflict(a: &Node, b: &Node) -> bool {
    if a.request_ids().next().is_none() || b.request_ids().next().is_none() {
        return false;
    }
    !a.request_ids().any(|x| b.request_ids().any(|y| x == y))
}

/// The same request id: across sides always (a proxy injected it: its answer
/// to the client carries it, and so does its request upstream); on the same
/// side only when one node's time holds the other's (a proxy passing it through).
pub fn request_id(a: &Node, b: &Node, tolerance: &Tolerance) -> bool {
    let cross = |x: &Node, y: &Node| x.response_request_id.is_some() && x.response_request_id == y.request_id;
    if cross(a, b) || cross(b, a) {
        return true;
    }
    let same_side = (a.request_id.is_some() && a.request_id == b.request_id)
        || (a.response_request_id.is_some() && a.response_request_id == b.response_request_id);
    let dev = tolerance.between(a, b);
    same_side && (a.covers(b, dev) || b.covers(a, dev))
}

/// Whether two groups with these trace ids may become one: not when both have
/// trace ids and none is shared (two traces the applications told apart).
pub fn compatible(a: &[[u8; 16]], b: &[[u8; 16]], merge_disjoint_traces: bool) -> bool {
    merge_disjoint_traces || a.is_empty() || b.is_empty() || a.iter().any(|t| b.contains(t))
}
