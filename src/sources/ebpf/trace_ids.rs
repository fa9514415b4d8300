//! Syscall trace ids: how a proxy's inbound request and the upstream request
//! it sends on the same thread are linked. On each thread, a read (ingress)
//! after a write (egress) starts a new id, and the writes after it share it.
//!
//! Given here rather than in the kernel: the ring buffer keeps each thread's
//! records in the order its calls ended, so user space sees the same sequence
//! for the price of a hash lookup, where the kernel paid an LRU map lookup,
//! and an update per request, on every traced call.

use rustc_hash::FxHashMap;

use super::event::Direction;

/// Threads idle longer than this are forgotten (their next read starts a new id anyway).
const IDLE_NS: u64 = 60_000_000_000;

#[derive(Debug)]
pub struct TraceIds {
    /// High 32 bits random: ids stay unique across restarts of the capture.
    base: u64,
    issued: u64,
    threads: FxHashMap<u32, Thread>,
}

#[derive(Debug)]
struct Thread {
    id: u64,
    last: Direction,
    /// CLOCK_MONOTONIC of the thread's last call, for [`TraceIds::forget_idle`].
    seen_ns: u64,
}

impl Default for TraceIds {
    fn default() -> TraceIds {
        TraceIds { base: rand::random::<u64>() & !0xffff_ffff, issued: 0, threads: FxHashMap::default() }
    }
}

impl TraceIds {
    /// The id of a call `tid` made, going `direction`, that ended at `monotonic_ns`.
    pub fn next(&mut self, tid: u32, direction: Direction, monotonic_ns: u64) -> u64 {
        let fresh = |issued: &mut u64, base: u64| {
            *issued += 1;
            base.wrapping_add(*issued)
        };
        let thread = self.threads.entry(tid).or_insert_with(|| Thread {
            id: fresh(&mut self.issued, self.base),
            last: direction,
            seen_ns: monotonic_ns,
        });
        if direction == Direction::Ingress && thread.last == Direction::Egress {
            thread.id = fresh(&mut self.issued, self.base);
        }
        thread.last = direction;
        thread.seen_ns = monotonic_ns;
        thread.id
    }

    /// Forget the threads with no call for a minute before `now_ns` (CLOCK_MONOTONIC).
    pub fn forget_idle(&mut self, now_ns: u64) {
        self.threads.retain(|_, thread| now_ns.saturating_sub(thread.seen_ns) < IDLE_NS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Egress, Ingress};

    #[test]
    fn a_read_after_a_write_starts_a_new_id_and_the_writes_after_it_share_it() {
        let mut ids = TraceIds::default();
        // A proxy thread: reads the request (in two reads) and writes it
        // upstream under one id; reads the upstream answer and writes the
        // response under the next: the inbound and upstream records share both.
        let request: Vec<u64> = [Ingress, Ingress, Egress].iter().map(|d| ids.next(7, *d, 1)).collect();
        assert!(request.iter().all(|id| *id == request[0]), "{request:?}");
        let response = ids.next(7, Ingress, 2);
        assert_ne!(response, request[0]);
        assert_eq!(ids.next(7, Egress, 3), response);
        // Another thread has its own, and does not disturb thread 7's.
        let other = ids.next(8, Ingress, 3);
        assert!(other != request[0] && other != response);
        assert_eq!(ids.next(7, Egress, 4), response);
    }

    #[test]
    fn idle_threads_are_forgotten_and_ids_are_never_reused() {
        let mut ids = TraceIds::default();
        let old = ids.next(7, Egress, 0);
        ids.next(8, Egress, IDLE_NS);
        ids.forget_idle(IDLE_NS + 1);
        assert_eq!(ids.threads.len(), 1);
        // Thread 7 starts afresh (a write first gets a new id, never the old one).
        assert_ne!(ids.next(7, Egress, IDLE_NS + 2), old);
        assert_eq!(ids.base >> 32, ids.next(9, Egress, IDLE_NS + 2) >> 32);
    }
}
