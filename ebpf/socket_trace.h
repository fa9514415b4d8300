/* The record the kernel programs put in the ring buffer. Its Rust reader is
 * src/sources/ebpf/event.rs: change both together. */
#ifndef TAPLINE_SOCKET_TRACE_H
#define TAPLINE_SOCKET_TRACE_H

/* Largest payload prefix a record can carry (the configured size is at most this). */
#define MAX_PAYLOAD 4096

enum event_kind {
	KIND_DATA = 1,
	KIND_CONNECTED = 2,
	KIND_CONNECT_FAILED = 3,
	KIND_ACCEPTED = 4,
	KIND_CLOSED = 5,
	KIND_RETRANSMIT = 6,
	KIND_RESET = 7,
};

enum direction {
	EGRESS = 0,
	INGRESS = 1,
};

struct event_header {
	u64 ts_ns;              /* CLOCK_MONOTONIC */
	u64 sock;               /* struct sock address: the connection's name */
	u64 value;              /* connect latency (ns), reset direction, ... */
	u32 tgid;
	u32 tid;
	u32 fd;
	u32 tcp_seq;            /* seq of the first byte moved */
	u32 bytes;              /* bytes the call moved */
	u32 captured;           /* payload bytes after the header */
	u16 family;
	u16 lport;              /* host byte order */
	u16 rport;
	u8 kind;
	u8 direction;
	u8 tls;
	u8 connecting;          /* TCP events: the socket is connecting out (so it is the client end) */
	u8 laddr[16];           /* IPv4 in the first 4 bytes */
	u8 raddr[16];
	char comm[16];
	u8 pad1[6];
};

_Static_assert(sizeof(struct event_header) == 112, "event.rs reads a 112-byte header");

#endif
