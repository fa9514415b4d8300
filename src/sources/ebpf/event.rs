//! What the kernel programs send through the ring buffer (`ebpf/socket_trace.h`
//! is the other half of this layout), decoded into owned Rust values.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Bytes before the payload: `struct event_header` in `socket_trace.h`.
pub const HEADER_LEN: usize = 112;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The process wrote (sent) the bytes.
    Egress,
    /// The process read (received) the bytes.
    Ingress,
}

impl Direction {
    /// The other way: the replies' to the requests'.
    pub fn opposite(self) -> Direction {
        match self {
            Direction::Egress => Direction::Ingress,
            Direction::Ingress => Direction::Egress,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A read or write moved bytes on a TCP socket (or through OpenSSL).
    Data,
    /// A connect() finished: `value` is the connect latency in ns (SYN_SENT → ESTABLISHED).
    Connected,
    /// A connect() failed: `value` is the errno-like reason (0 when the kernel gave none).
    ConnectFailed,
    /// accept() returned this connection.
    Accepted,
    /// close() on the socket's last descriptor in this process.
    Closed,
    /// The kernel retransmitted a segment of this connection.
    Retransmit,
    /// A reset was sent (`value` 0) or received (`value` 1).
    Reset,
}

/// The connection's endpoints as this process sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoints {
    pub local: (IpAddr, u16),
    pub remote: (IpAddr, u16),
}

/// Borrows the payload and name from the ring buffer record: most records
/// are parsed and dropped, and copying them was the reader's largest cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub kind: Kind,
    /// CLOCK_MONOTONIC, ns (turned into wall-clock time by the reader).
    pub monotonic_ns: u64,
    /// The kernel's `struct sock` address: names the connection while it lives.
    pub socket: u64,
    pub pid: u32,
    pub tid: u32,
    pub fd: u32,
    /// Thread name (`comm`) at the time of the call.
    pub comm: &'a str,
    pub endpoints: Endpoints,
    pub direction: Direction,
    /// Bytes seen through OpenSSL (plaintext of a TLS connection).
    pub tls: bool,
    /// Retransmit and reset events: the socket was still connecting out, so
    /// it is the client end (and `pid`/`comm` are the connecting process's).
    pub connecting: bool,
    /// TCP sequence number of the first byte moved (0 for TLS plaintext).
    pub tcp_seq: u32,
    /// Shared by an ingress and the egress that follows it on the same thread:
    /// not in the record, the reader gives it ([`super::trace_ids`]).
    pub syscall_trace_id: u64,
    /// Bytes the call moved in all (the payload holds only the first ones).
    pub bytes: u32,
    pub payload: &'a [u8],
    /// Kind-specific: see [`Kind`].
    pub value: u64,
}

/// Why a ring buffer record could not be decoded (a build mismatch between
/// the kernel object and this reader; never expected at run time).
#[derive(Debug, PartialEq)]
pub struct Malformed(pub String);

impl<'a> Event<'a> {
    /// Decode one ring buffer record.
    pub fn decode(record: &'a [u8]) -> Result<Event<'a>, Malformed> {
        if record.len() < HEADER_LEN {
            return Err(Malformed(format!("record of {} bytes, shorter than the {HEADER_LEN}-byte header", record.len())));
        }
        let u64_at = |at: usize| u64::from_le_bytes(record[at..at + 8].try_into().unwrap());
        let u32_at = |at: usize| u32::from_le_bytes(record[at..at + 4].try_into().unwrap());
        let u16_at = |at: usize| u16::from_le_bytes(record[at..at + 2].try_into().unwrap());
        let captured = u32_at(44) as usize;
        if HEADER_LEN + captured > record.len() {
            return Err(Malformed(format!("record says {captured} payload bytes but holds {}", record.len() - HEADER_LEN)));
        }
        let family = u16_at(48);
        let address = |at: usize| -> IpAddr {
            if family == libc::AF_INET6 as u16 {
                let bytes: [u8; 16] = record[at..at + 16].try_into().unwrap();
                let v6 = Ipv6Addr::from(bytes);
                v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6))
            } else {
                IpAddr::V4(Ipv4Addr::new(record[at], record[at + 1], record[at + 2], record[at + 3]))
            }
        };
        let kind = match record[54] {
            1 => Kind::Data,
            2 => Kind::Connected,
            3 => Kind::ConnectFailed,
            4 => Kind::Accepted,
            5 => Kind::Closed,
            6 => Kind::Retransmit,
            7 => Kind::Reset,
            other => return Err(Malformed(format!("unknown event kind {other}"))),
        };
        let comm = &record[90..106];
        let comm = &comm[..comm.iter().position(|b| *b == 0).unwrap_or(comm.len())];
        // The kernel keeps the bytes a program named itself with: keep the valid UTF-8 prefix.
        let comm = std::str::from_utf8(comm).unwrap_or_else(|e| std::str::from_utf8(&comm[..e.valid_up_to()]).unwrap_or_default());
        Ok(Event {
            kind,
            monotonic_ns: u64_at(0),
            socket: u64_at(8),
            syscall_trace_id: 0,
            value: u64_at(16),
            pid: u32_at(24),
            tid: u32_at(28),
            fd: u32_at(32),
            tcp_seq: u32_at(36),
            bytes: u32_at(40),
            endpoints: Endpoints { local: (address(58), u16_at(50)), remote: (address(74), u16_at(52)) },
            direction: if record[55] == 1 { Direction::Ingress } else { Direction::Egress },
            tls: record[56] != 0,
            connecting: record[57] != 0,
            comm,
            payload: &record[HEADER_LEN..HEADER_LEN + captured],
        })
    }
}
