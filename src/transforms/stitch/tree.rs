//! A trace's tree, from its nodes: rules applied in order (DeepFlow's, see
//! `../shared/reference/stitching.md` §4), each giving a parent only through a
//! verified relation, and saying which (`tapline.link`).

use smallvec::{smallvec, SmallVec};

use super::node::{Node, Origin, Role};
use super::relate::{self, Tolerance};

/// Why a parent was chosen (`tapline.link`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    TcpSeq,
    Syscall,
    RequestId,
    SpanId,
    Traceparent,
}

impl Link {
    pub fn as_str(self) -> &'static str {
        match self {
            Link::TcpSeq => "tcp_seq",
            Link::Syscall => "syscall",
            Link::RequestId => "x_request_id",
            Link::SpanId => "span_id",
            Link::Traceparent => "traceparent",
        }
    }

    /// The own counter of links of this kind.
    pub fn counter(self) -> &'static str {
        match self {
            Link::TcpSeq => "stitch_links_tcp_seq_total",
            Link::Syscall => "stitch_links_syscall_total",
            Link::RequestId => "stitch_links_x_request_id_total",
            Link::SpanId => "stitch_links_span_id_total",
            Link::Traceparent => "stitch_links_traceparent_total",
        }
    }
}

/// One value per node of a trace: most traces are a few nodes, held without allocating.
pub type PerNode<T> = SmallVec<[T; 8]>;

/// A node's parent in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    /// Another node of the trace; `None` when the node named it itself (an
    /// APM span's parent, a gateway's call upstream under its server span).
    Node(usize, Option<Link>),
}

/// Each node's parent, by index: the tree rules in order.
pub fn parents(nodes: &[Node], tolerance: &Tolerance) -> PerNode<Option<Parent>> {
    let mut tree = Tree { nodes, parent: smallvec![None; nodes.len()], tolerance };
    tree.own_parents();
    // An eBPF call made by an instrumented process carries its SDK span's id: survives thread pools.
    tree.attach(
        |t, n| t.is(n, Origin::Ebpf, Role::Client),
        |t, n, p| t.is_apm(p) && t.nodes[n].parent_span_id == Some(t.nodes[p].span_id),
        Pick::Nearest,
        Link::Traceparent,
    );
    // The network hop: the client's end is the server's parent.
    tree.attach(
        |t, n| t.is(n, Origin::Ebpf, Role::Server),
        |t, n, p| relate::tcp_seq(&t.nodes[p], &t.nodes[n], t.tolerance),
        Pick::Nearest,
        Link::TcpSeq,
    );
    // A server whose caller was not seen by eBPF, but whose SDK span is here.
    tree.attach(
        |t, n| t.is(n, Origin::Ebpf, Role::Server),
        |t, n, p| t.is_apm(p) && t.nodes[n].parent_span_id == Some(t.nodes[p].span_id),
        Pick::Nearest,
        Link::SpanId,
    );
    // An application's root goes under the server record of the request it
    // handles: by span id, else syscall ids, else request id; the closest in time.
    for link in [Link::SpanId, Link::Syscall, Link::RequestId] {
        let handles =
            |t: &Tree, n: usize, p: usize| t.is(p, Origin::Ebpf, Role::Server) && t.same_process(n, p) && t.handled_by(n, p) == Some(link);
        tree.attach(|t, n| t.is_apm(n), handles, Pick::Nearest, link);
    }
    // The calls a server made while handling a request, by syscall ids: the closest enclosing one.
    tree.attach(
        |t, n| t.is(n, Origin::Ebpf, Role::Client),
        |t, n, p| t.is(p, Origin::Ebpf, Role::Server) && relate::syscall(&t.nodes[p], &t.nodes[n]),
        Pick::LatestStart,
        Link::Syscall,
    );
    // A hop by request id (a gateway's log, a proxy that ends TCP): the nearest enclosing node.
    tree.attach(
        |_, _| true,
        |t, n, p| {
            let (node, parent) = (&t.nodes[n], &t.nodes[p]);
            relate::request_id(parent, node, t.tolerance)
                && parent.covers(node, t.tolerance.between(parent, node))
                && parent.duration() >= node.duration()
        },
        Pick::Shortest,
        Link::RequestId,
    );
    tree.parent
}

/// Among several candidate parents, which one.
#[derive(Clone, Copy)]
enum Pick {
    /// The closest start.
    Nearest,
    /// The latest start (the innermost enclosing request).
    LatestStart,
    /// The shortest (the nearest hop).
    Shortest,
}

struct Tree<'a> {
    nodes: &'a [Node],
    parent: PerNode<Option<Parent>>,
    tolerance: &'a Tolerance,
}

impl Tree<'_> {
    fn is(&self, n: usize, origin: Origin, role: Role) -> bool {
        self.nodes[n].origin == origin && self.nodes[n].role == role
    }

    fn is_apm(&self, n: usize) -> bool {
        self.nodes[n].origin == Origin::Apm
    }

    /// Parents the nodes name themselves (APM parents, a gateway's call upstream).
    fn own_parents(&mut self) {
        for (n, node) in self.nodes.iter().enumerate() {
            if node.origin == Origin::Ebpf {
                continue; // its parent_span_id is the caller's, seen in a header
            }
            let Some(named) = node.parent_span_id else { continue };
            if let Some(p) = self.nodes.iter().position(|other| other.span_id == named && other.trace_id == node.trace_id) {
                if p != n {
                    self.parent[n] = Some(Parent::Node(p, None));
                }
            }
        }
    }

    /// Whether two nodes are (or may be) the same process: equal where both are known.
    fn same_process(&self, a: usize, b: usize) -> bool {
        let (a, b) = (&self.nodes[a], &self.nodes[b]);
        fn same<T: PartialEq>(x: &Option<T>, y: &Option<T>) -> bool {
            x.is_none() || y.is_none() || x == y
        }
        same(&a.host, &b.host) && same(&a.pid, &b.pid)
    }

    /// The relation by which server record `server` handled the request APM root `root` serves.
    fn handled_by(&self, root: usize, server: usize) -> Option<Link> {
        let (r, s) = (&self.nodes[root], &self.nodes[server]);
        if r.role != Role::Server {
            return None;
        }
        // Both saw one traceparent: the caller's span is the parent of each.
        if r.parent_span_id.is_some() && r.parent_span_id == s.parent_span_id {
            return Some(Link::SpanId);
        }
        // A call the server record's thread made carries a span of this root's subtree.
        let calls_from_root = self.nodes.iter().enumerate().any(|(c, call)| {
            call.origin == Origin::Ebpf && call.role == Role::Client && relate::syscall(s, call) && self.descends_from(c, root)
        });
        if calls_from_root {
            return Some(Link::Syscall);
        }
        let ids = [&s.request_id, &s.response_request_id];
        let dev = self.tolerance.between(s, r);
        (r.request_id.is_some() && ids.contains(&&r.request_id) && s.covers(r, dev)).then_some(Link::RequestId)
    }

    fn descends_from(&self, mut n: usize, ancestor: usize) -> bool {
        for _ in 0..self.nodes.len() {
            if n == ancestor {
                return true;
            }
            match self.parent[n] {
                Some(Parent::Node(p, _)) => n = p,
                None => return false,
            }
        }
        false
    }

    /// Give each node still without a parent, and chosen by `which`, the best
    /// of the nodes `fits` accepts, unless that would make a cycle.
    fn attach(&mut self, which: impl Fn(&Self, usize) -> bool, fits: impl Fn(&Self, usize, usize) -> bool, pick: Pick, link: Link) {
        for n in 0..self.nodes.len() {
            if self.parent[n].is_some() || !which(self, n) {
                continue;
            }
            let node = &self.nodes[n];
            let best = (0..self.nodes.len()).filter(|&p| p != n && fits(self, n, p) && !self.descends_from(p, n)).min_by_key(|&p| {
                let candidate = &self.nodes[p];
                match pick {
                    Pick::Nearest => candidate.start.abs_diff(node.start),
                    Pick::LatestStart => u64::MAX - candidate.start,
                    Pick::Shortest => candidate.duration(),
                }
            });
            if let Some(p) = best {
                self.parent[n] = Some(Parent::Node(p, Some(link)));
            }
        }
    }
}

/// Each node's own time: its duration less the time its children cover.
pub fn self_times(nodes: &[Node], parents: &[Option<Parent>]) -> PerNode<u64> {
    let mut children: PerNode<SmallVec<[(u64, u64); 4]>> = smallvec![SmallVec::new(); nodes.len()];
    for (n, parent) in parents.iter().enumerate() {
        if let Some(Parent::Node(p, _)) = parent {
            let (parent, child) = (&nodes[*p], &nodes[n]);
            let (start, end) = (child.start.max(parent.start), child.end.min(parent.end));
            if start < end {
                children[*p].push((start, end));
            }
        }
    }
    nodes
        .iter()
        .zip(children)
        .map(|(node, mut spans)| {
            spans.sort_unstable();
            let (mut covered, mut reach) = (0, node.start);
            for (start, end) in spans {
                let start = start.max(reach);
                if end > start {
                    covered += end - start;
                    reach = end;
                }
            }
            node.duration().saturating_sub(covered)
        })
        .collect()
}
