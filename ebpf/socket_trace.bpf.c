// SPDX-License-Identifier: GPL-2.0
/* Socket tracing for tapline's `ebpf` source: every read and write on a TCP
 * socket (and the plaintext of OpenSSL calls), plus TCP connection events,
 * sent to user space through one ring buffer. User space parses the
 * payloads (src/sources/ebpf/). */

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "socket_trace.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9
#define TCP_CLOSING 11
/* Iovecs copied per call. gRPC (C-core) writes a frame in one slice per
 * header name and value: 64, through bpf_loop (kernel 5.17+). The object
 * built for older kernels (no TAPLINE_BPF_LOOP) unrolls a loop of 8. */
#ifdef TAPLINE_BPF_LOOP
#define MAX_IOV 64
#else
#define MAX_IOV 8
#endif
/* Iovecs read in one copy, their bytes copied without a loop callback. */
#define IOV_AT_ONCE 4

/* Set by the loader before load (read-only after). */
const volatile u32 self_pid = 0;        /* the pipeline itself: never traced */
const volatile u32 payload_limit = 1024;
const volatile u8 filter_ports = 0;     /* only sockets with a port in `ports` */
const volatile u8 filter_pids = 0;      /* only processes in `pids` */
const volatile u8 ssl_probes = 0;       /* the OpenSSL uprobes are attached */
const volatile u8 socket_hooks = 0;     /* data from the socket tracepoints, not the syscall ones */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* [0]: records the ring buffer had no room for. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u16);
	__type(value, u8);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u8);
} pids SEC(".maps");

/* A finished read or write syscall, or an OpenSSL call between uprobe and uretprobe. */
enum buffer_shape { PLAIN = 0, IOV = 1 };

/* A connected socket's addresses, as a record's header carries them. */
struct endpoints {
	u16 family;
	u16 lport;              /* host byte order */
	u16 rport;
	u8 known;               /* else read from the socket when a record is made */
	u8 laddr[16];
	u8 raddr[16];
};

struct call {
	struct endpoints ends;
	u64 sock;
	u64 buf;            /* the buffer, or the iovec array */
	u64 iovcnt;
	u64 ssl;            /* OpenSSL: the SSL*, and where *_ex writes the length */
	u64 len_out;
	u32 fd;
	u32 tcp_seq;
	u8 direction;
	u8 shape;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, u64);   /* pid_tgid */
	__type(value, struct call);
} ssl_calls SEC(".maps");

/* Entries in ssl_calls. While there are none, no syscall can be inside an
 * OpenSSL call, and the lookup is skipped (most programs never use OpenSSL).
 * It may stay above the truth (an entry the LRU evicted, a thread that died
 * inside a call): the lookups are then made for nothing, as before. */
u64 ssl_calls_open = 0;

/* Whether a syscall may be inside an OpenSSL call: one is open on some thread. */
static __always_inline bool ssl_may_be_open(void)
{
	return ssl_probes && ssl_calls_open;
}

/* SSL* → its socket's fd, for an SSL_read served from OpenSSL's buffer (no syscall). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, u64);
	__type(value, u32);
} ssl_fds SEC(".maps");

/* A connect in progress: when it started and who asked (state changes to
 * ESTABLISHED happen in softirq context, where the process is unknown). */
struct connecting {
	u64 start_ns;
	u32 tgid;
	u32 tid;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);   /* struct sock * */
	__type(value, struct connecting);
} connects SEC(".maps");

struct record {
	struct event_header h;
	/* Twice the largest payload so that the verifier can prove an offset
	 * below MAX_PAYLOAD plus a length up to MAX_PAYLOAD stays inside. */
	u8 payload[MAX_PAYLOAD * 2];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct record);
} scratch SEC(".maps");

/* Raw tracepoints get the tracepoint's C arguments (TP_PROTO), not a
 * formatted record: cheaper per call, and no tracefs needed to attach. */
struct bpf_raw_tracepoint_args {
	u64 args[0];
};

/* x86-64 syscall numbers. */
#define NR_read 0
#define NR_write 1
#define NR_close 3
#define NR_readv 19
#define NR_writev 20
#define NR_accept 43
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_accept4 288

static __always_inline bool process_wanted(u32 tgid)
{
	if (tgid == self_pid)
		return false;
	return !filter_pids || bpf_map_lookup_elem(&pids, &tgid);
}

/* Whether a connection's local or remote port is in `ports` (host byte order). */
static __always_inline bool ports_listed(u16 local, u16 remote)
{
	return bpf_map_lookup_elem(&ports, &local) || bpf_map_lookup_elem(&ports, &remote);
}

static __always_inline bool ports_wanted(struct sock *sk)
{
	return !filter_ports ||
	       ports_listed(BPF_CORE_READ(sk, __sk_common.skc_num), bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)));
}

static __always_inline bool is_tcp(struct sock *sk)
{
	u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return false;
	return BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP;
}

/* What a file is to us, decided once per open file: the TCP socket we
 * trace, or 0 (not a socket, not TCP, not a wanted port), with its addresses
 * once connected (read once, not at each record). Entries go at close() (with
 * the socket hooks only the OpenSSL path makes them, and the LRU ends them); the
 * inode number guards against a file freed otherwise (a process exiting)
 * whose address a new one takes: a new socket has a new number. */
struct file_verdict {
	u64 ino;
	u64 sock;
	struct endpoints ends;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, u64);   /* struct file * */
	__type(value, struct file_verdict);
} files SEC(".maps");

static __always_inline struct file *file_of(u32 fd)
{
#ifdef TAPLINE_BPF_LOOP
	/* A BTF pointer (5.11+): the walk to the descriptor table is plain
	 * loads, not a helper call each. */
	struct fdtable *fdt = bpf_get_current_task_btf()->files->fdt;
	if (!fdt || fd >= fdt->max_fds)
		return 0;
	struct file **fds = fdt->fd;
#else
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
#endif
	struct file *file = 0;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file;
}

static __always_inline void read_endpoints(struct endpoints *e, struct sock *sk)
{
	u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->family = family;
	e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		BPF_CORE_READ_INTO(&e->laddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO(&e->raddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO(&e->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&e->raddr, sk, __sk_common.skc_v6_daddr);
	}
}

/* The verdict on an open file (its `sock` is 0 unless we trace it). */
static __always_inline struct file_verdict *verdict_of(struct file *file)
{
	if (!file)
		return 0;
	u64 key = (u64)file;
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	u64 ino = BPF_CORE_READ(inode, i_ino);
	struct file_verdict *known = bpf_map_lookup_elem(&files, &key);
	if (known && known->ino == ino)
		return known;
	struct file_verdict verdict = { .ino = ino };
	if ((BPF_CORE_READ(inode, i_mode) & S_IFMT) == S_IFSOCK) {
		struct socket *socket = BPF_CORE_READ(file, private_data);
		struct sock *sk = BPF_CORE_READ(socket, sk);
		if (sk && is_tcp(sk) && ports_wanted(sk)) {
			verdict.sock = (u64)sk;
			read_endpoints(&verdict.ends, sk);
			/* Not yet connected (no peer port): read them again at each record. */
			verdict.ends.known = verdict.ends.rport != 0;
		}
	}
	bpf_map_update_elem(&files, &key, &verdict, BPF_ANY);
	return bpf_map_lookup_elem(&files, &key);
}

/* The TCP socket behind an open file, if it is one we trace. */
static __always_inline struct sock *socket_of_file(struct file *file)
{
	struct file_verdict *verdict = verdict_of(file);
	return verdict ? (struct sock *)verdict->sock : 0;
}

/* The TCP socket behind a descriptor of the current process, if it is one we trace. */
static __always_inline struct sock *traced_socket(u32 fd)
{
	return socket_of_file(file_of(fd));
}

/* A record of the socket, with its addresses from `known` when they are there. */
static __always_inline struct record *new_record_of(u8 kind, struct sock *sk, struct endpoints *known)
{
	u32 zero = 0;
	struct record *r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return 0;
	struct event_header *h = &r->h;
	__builtin_memset(h, 0, sizeof(*h));
	h->ts_ns = bpf_ktime_get_ns();
	h->sock = (u64)sk;
	h->kind = kind;
	struct endpoints read, *e = known;
	if (!known || !known->known) {
		read_endpoints(&read, sk);
		e = &read;
	}
	h->family = e->family;
	h->lport = e->lport;
	h->rport = e->rport;
	__builtin_memcpy(h->laddr, e->laddr, sizeof(h->laddr));
	__builtin_memcpy(h->raddr, e->raddr, sizeof(h->raddr));
	return r;
}

static __always_inline struct record *new_record(u8 kind, struct sock *sk)
{
	return new_record_of(kind, sk, 0);
}

static __always_inline void set_process(struct event_header *h)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	h->tgid = pid_tgid >> 32;
	h->tid = (u32)pid_tgid;
	bpf_get_current_comm(&h->comm, sizeof(h->comm));
}

static __always_inline void submit(struct record *r, u32 captured)
{
	if (captured > MAX_PAYLOAD)
		captured = MAX_PAYLOAD;
	r->h.captured = captured;
	/* No wakeup: the reader polls every few milliseconds, and a wakeup per
	 * record (or even asking how full the buffer is) costs more than the record. */
	if (bpf_ringbuf_output(&events, r, sizeof(r->h) + captured, BPF_RB_NO_WAKEUP)) {
		u32 zero = 0;
		u64 *count = bpf_map_lookup_elem(&drops, &zero);
		if (count)
			*count += 1;
	}
}

static __always_inline u32 copy_plain(struct record *r, u64 buf, u32 len)
{
	u64 n = len < payload_limit ? len : payload_limit;
	/* Hide what clang knows of n, so that it bounds all 64 bits of the
	 * register it passes (else it may compare the low 32 only, and the
	 * verifier refuses the length as unbounded). */
	asm volatile("" : "+r"(n));
	if (n > MAX_PAYLOAD)
		n = MAX_PAYLOAD;
	if (bpf_probe_read_user(r->payload, n, (const void *)buf))
		return 0;
	return n;
}

struct iov_copy {
	u64 iov;
	u64 iovcnt;
	u32 limit;
	u32 copied;
};

/* Append an iovec's bytes, up to the limit, after what is copied; false when
 * they cannot be read. */
static __always_inline bool append_iov(struct record *r, struct iov_copy *c, struct iovec *v)
{
	u32 want = c->limit - c->copied;
	if (v->iov_len < want)
		want = v->iov_len;
	if (want > MAX_PAYLOAD)
		want = MAX_PAYLOAD;
	u32 offset = c->copied & (MAX_PAYLOAD - 1);
	if (bpf_probe_read_user(&r->payload[offset], want, v->iov_base))
		return false;
	c->copied += want;
	return true;
}

/* Copy iovec IOV_AT_ONCE + `i` into the scratch record after what is copied;
 * 1 stops the loop. With bpf_loop, a callback the verifier checks once,
 * however many iovecs a call has (an unrolled loop of 64 exceeds its limit). */
#ifdef TAPLINE_BPF_LOOP
static long copy_one_iov(u32 i, void *arg)
#else
static __always_inline long copy_one_iov(u32 i, void *arg)
#endif
{
	struct iov_copy *c = arg;
	u32 zero = 0;
	struct record *r = bpf_map_lookup_elem(&scratch, &zero);
	i += IOV_AT_ONCE;
	if (!r || i >= c->iovcnt || c->copied >= c->limit)
		return 1;
	struct iovec v;
	if (bpf_probe_read_user(&v, sizeof(v), (const void *)(c->iov + i * sizeof(v))))
		return 1;
	return !append_iov(r, c, &v);
}

/* The first bytes of an iovec array, into the record's payload. The first
 * IOV_AT_ONCE iovecs are read in one copy and their bytes copied inline (a
 * user copy and a loop callback per iovec cost more than the bytes); the
 * rest, rare (gRPC's header slices), one by one. */
static __always_inline u32 copy_iov(struct record *r, u64 iov, u64 iovcnt, u32 len)
{
	struct iov_copy c = { .iov = iov, .iovcnt = iovcnt, .limit = len < payload_limit ? len : payload_limit };
	struct iovec v[IOV_AT_ONCE] = {};
	u64 head = iovcnt < IOV_AT_ONCE ? iovcnt : IOV_AT_ONCE;
	if (!head || bpf_probe_read_user(v, head * sizeof(v[0]), (const void *)iov))
		return 0;
	for (int i = 0; i < IOV_AT_ONCE; i++)
		if (i >= head || c.copied >= c.limit || !append_iov(r, &c, &v[i]))
			return c.copied;
	if (iovcnt <= IOV_AT_ONCE || c.copied >= c.limit)
		return c.copied;
#ifdef TAPLINE_BPF_LOOP
	bpf_loop(MAX_IOV - IOV_AT_ONCE, copy_one_iov, &c, 0);
#else
	for (int i = 0; i < MAX_IOV - IOV_AT_ONCE; i++)
		if (copy_one_iov(i, &c))
			break;
#endif
	return c.copied;
}

/* Send one data record for a finished call that moved `len` bytes. */
static __always_inline void emit_data(struct call *c, s64 len, bool tls)
{
	if (len <= 0)
		return;
	struct record *r = new_record_of(KIND_DATA, (struct sock *)c->sock, &c->ends);
	if (!r)
		return;
	set_process(&r->h);
	r->h.fd = c->fd;
	r->h.direction = c->direction;
	r->h.tls = tls;
	r->h.tcp_seq = c->tcp_seq;
	r->h.bytes = len;
	u32 captured = c->shape == IOV ? copy_iov(r, c->buf, c->iovcnt, len) : copy_plain(r, c->buf, len);
	submit(r, captured);
}

/* The sequence number of the first byte a finished call moved: the call has
 * moved the socket's counter past its bytes already (a peek moves nothing),
 * and past the peer's FIN too when the read reached it (the FIN counts one,
 * and once it is read the counter stands at rcv_nxt, past it). */
static __always_inline u32 first_seq(struct sock *sk, u8 direction, s64 len, bool peek)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	if (direction == EGRESS)
		return BPF_CORE_READ(tp, write_seq) - (u32)len;
	u32 seq = BPF_CORE_READ(tp, copied_seq);
	if (peek)
		return seq;
	u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
	/* The states a FIN received leads to while the socket can still be read.
	 * Not CLOSE: a reset leads there too, with no FIN to count (a socket that
	 * sent its own FIN first and reads the peer's in CLOSE is one off). */
	bool fin_received = state == TCP_CLOSE_WAIT || state == TCP_LAST_ACK || state == TCP_CLOSING;
	if (fin_received && seq == BPF_CORE_READ(tp, rcv_nxt))
		seq -= 1;
	return seq - (u32)len;
}

/* Inside an OpenSSL call the bytes are ciphertext: the call's socket is
 * noted for the SSL* (its plaintext is traced at the uretprobe instead). */
static __always_inline bool noted_inside_ssl(u64 pid_tgid, u32 fd)
{
	struct call *ssl = ssl_may_be_open() ? bpf_map_lookup_elem(&ssl_calls, &pid_tgid) : 0;
	if (!ssl)
		return false;
	ssl->fd = fd;
	bpf_map_update_elem(&ssl_fds, &ssl->ssl, &fd, BPF_ANY);
	return true;
}

/* A read or write call of a wanted process that moved `len` bytes, seen at
 * its exit (its arguments are still in the saved registers): one record, and
 * no state kept between entry and exit. */
static __always_inline int data_call(u64 pid_tgid, u32 fd, u64 buf, u64 iovcnt, u8 shape, u8 direction, s64 len, bool peek)
{
	if (noted_inside_ssl(pid_tgid, fd))
		return 0;
	if (len <= 0)
		return 0;
	struct file_verdict *verdict = verdict_of(file_of(fd));
	if (!verdict || !verdict->sock)
		return 0;
	struct sock *sk = (struct sock *)verdict->sock;
	struct call c = { .ends = verdict->ends, .sock = (u64)sk, .buf = buf, .iovcnt = iovcnt, .fd = fd, .direction = direction, .shape = shape };
	c.tcp_seq = first_seq(sk, direction, len, peek);
	emit_data(&c, len, false);
	return 0;
}

static __always_inline int msg_call(u64 pid_tgid, u32 fd, u64 msg, u8 direction, s64 len, bool peek)
{
	struct user_msghdr m;
	if (bpf_probe_read_user(&m, sizeof(m), (const void *)msg))
		return 0;
	return data_call(pid_tgid, fd, (u64)m.msg_iov, m.msg_iovlen, IOV, direction, len, peek);
}

/* A connection event seen by its process: accept() returned it, or close() ends it. */
static __always_inline int socket_event(u32 fd, struct sock *sk, u8 kind)
{
	if (!sk)
		return 0;
	struct record *r = new_record(kind, sk);
	if (!r)
		return 0;
	set_process(&r->h);
	r->h.fd = fd;
	submit(r, 0);
	return 0;
}

/* close(): the descriptor's file may go, and its verdict with it. */
static __always_inline int on_close(u32 fd)
{
	struct file *file = file_of(fd);
	if (!file)
		return 0;
	if (process_wanted(bpf_get_current_pid_tgid() >> 32))
		socket_event(fd, socket_of_file(file), KIND_CLOSED);
	u64 key = (u64)file;
	bpf_map_delete_elem(&files, &key);
	return 0;
}

/* The syscall tracepoints as tp_btf programs: their arguments are typed
 * (TP_PROTO(struct pt_regs *regs, long id_or_ret)), so the saved registers
 * are read with plain loads, not a helper call each. */

/* Every syscall passes here. Only close() is seen at entry (at exit its
 * file is gone); the calls that move data are seen whole at exit. */
SEC("tp_btf/sys_enter")
int sys_enter(u64 *ctx)
{
	if (ctx[1] != NR_close)
		return 0;
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	return on_close(regs->di);
}

#define MSG_PEEK 2

/* A syscall's arguments are still in its saved registers when it returns. */
SEC("tp_btf/sys_exit")
int sys_exit(u64 *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	s64 ret = ctx[1];
	u64 nr = regs->orig_ax;
	switch (nr) {
	case NR_read:
	case NR_write:
	case NR_readv:
	case NR_writev:
	case NR_sendto:
	case NR_recvfrom:
	case NR_sendmsg:
	case NR_recvmsg:
		break;
	case NR_accept:
	case NR_accept4:
		if (ret < 0 || !process_wanted(bpf_get_current_pid_tgid() >> 32))
			return 0;
		return socket_event(ret, traced_socket(ret), KIND_ACCEPTED);
	default:
		return 0;
	}
	/* A failed call moves nothing; but inside OpenSSL it still names the socket. */
	if (ret <= 0 && !ssl_may_be_open())
		return 0;
	u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!process_wanted(pid_tgid >> 32))
		return 0;
	u32 fd = regs->di;
	u64 buf = regs->si;
	switch (nr) {
	case NR_write:
	case NR_sendto:
		return data_call(pid_tgid, fd, buf, 0, PLAIN, EGRESS, ret, false);
	case NR_read:
		return data_call(pid_tgid, fd, buf, 0, PLAIN, INGRESS, ret, false);
	case NR_recvfrom:
		return data_call(pid_tgid, fd, buf, 0, PLAIN, INGRESS, ret, regs->r10 & MSG_PEEK);
	case NR_writev:
		return data_call(pid_tgid, fd, buf, regs->dx, IOV, EGRESS, ret, false);
	case NR_readv:
		return data_call(pid_tgid, fd, buf, regs->dx, IOV, INGRESS, ret, false);
	case NR_sendmsg:
		return msg_call(pid_tgid, fd, buf, EGRESS, ret, false);
	default:
		return msg_call(pid_tgid, fd, buf, INGRESS, ret, regs->dx & MSG_PEEK);
	}
}

/* The socket layer's tracepoints (6.3+), used instead of the syscall ones
 * where the kernel has them: each sendmsg and recvmsg a socket serves passes
 * here with its socket, the length moved and the flags, and no other syscall
 * of the machine runs a program (a syscall tracepoint puts every syscall on
 * the kernel's slow path). The call's buffer is in the syscall's saved
 * registers; accepts and closes come from the TCP tracepoints. */
#define PF_KTHREAD 0x00200000

/* first_seq, with plain loads from the tracepoint's socket. */
static __always_inline u32 first_seq_of(struct sock *sk, struct tcp_sock *tp, u8 direction, s64 len, bool peek)
{
	if (direction == EGRESS)
		return tp->write_seq - (u32)len;
	u32 seq = tp->copied_seq;
	if (peek)
		return seq;
	u8 state = sk->__sk_common.skc_state;
	bool fin_received = state == TCP_CLOSE_WAIT || state == TCP_LAST_ACK || state == TCP_CLOSING;
	if (fin_received && seq == tp->rcv_nxt)
		seq -= 1;
	return seq - (u32)len;
}

/* read_endpoints, with plain loads from the tracepoint's socket. */
static __always_inline void endpoints_of(struct endpoints *e, struct sock *sk)
{
	u16 family = sk->__sk_common.skc_family;
	e->family = family;
	e->lport = sk->__sk_common.skc_num;
	e->rport = bpf_ntohs(sk->__sk_common.skc_dport);
	e->known = 1;
	if (family == AF_INET) {
		__builtin_memcpy(e->laddr, &sk->__sk_common.skc_rcv_saddr, 4);
		__builtin_memcpy(e->raddr, &sk->__sk_common.skc_daddr, 4);
	} else {
		__builtin_memcpy(e->laddr, &sk->__sk_common.skc_v6_rcv_saddr, 16);
		__builtin_memcpy(e->raddr, &sk->__sk_common.skc_v6_daddr, 16);
	}
}

/* TP_PROTO(struct sock *sk, int ret, int flags): one send or receive. */
static __always_inline int socket_call(u64 *ctx, u8 direction, bool peek)
{
	struct sock *sk = (struct sock *)ctx[0];
	s64 ret = (int)ctx[1];
	/* A failed call moves nothing; but inside OpenSSL it still names the socket. */
	if (ret <= 0 && !ssl_may_be_open())
		return 0;
	u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!process_wanted(pid_tgid >> 32))
		return 0;
	/* TCP first: the sends and receives of UNIX and UDP sockets pass here too. */
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	if (filter_ports && !ports_listed(sk->__sk_common.skc_num, bpf_ntohs(sk->__sk_common.skc_dport)))
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->flags & PF_KTHREAD)
		return 0;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	u64 nr = regs->orig_ax;
	u32 fd = regs->di;
	u64 buf = regs->si, iovcnt = 0;
	u8 shape = PLAIN;
	switch (nr) {
	case NR_read:
	case NR_write:
	case NR_sendto:
	case NR_recvfrom:
		break;
	case NR_readv:
	case NR_writev:
		shape = IOV;
		iovcnt = regs->dx;
		break;
	case NR_sendmsg:
	case NR_recvmsg: {
		struct user_msghdr m;
		if (bpf_probe_read_user(&m, sizeof(m), (const void *)buf))
			return 0;
		shape = IOV;
		buf = (u64)m.msg_iov;
		iovcnt = m.msg_iovlen;
		break;
	}
	default:
		return 0;
	}
	/* The syscall's descriptor is this socket, not a file whose filesystem
	 * sends on a socket of its own (NFS) while the caller waits. */
	struct socket *socket = sk->sk_socket;
	if (!socket || file_of(fd) != socket->file)
		return 0;
	if (noted_inside_ssl(pid_tgid, fd))
		return 0;
	if (ret <= 0)
		return 0;
	struct call c = { .sock = (u64)sk, .buf = buf, .iovcnt = iovcnt, .fd = fd, .direction = direction, .shape = shape };
	endpoints_of(&c.ends, sk);
	c.tcp_seq = first_seq_of(sk, tp, direction, ret, peek);
	emit_data(&c, ret, false);
	return 0;
}

SEC("tp_btf/sock_send_length")
int sock_send_length(u64 *ctx) { return socket_call(ctx, EGRESS, false); }
SEC("tp_btf/sock_recv_length")
int sock_recv_length(u64 *ctx) { return socket_call(ctx, INGRESS, ctx[2] & MSG_PEEK); }

/* With the socket tracepoints: a socket is gone once the kernel destroys it,
 * after its last read and write (a socket can reach CLOSE while its process
 * still reads what came before the FIN). Softirq or the closing process. */
SEC("raw_tracepoint/tcp_destroy_sock")
int destroy_sock(struct bpf_raw_tracepoint_args *ctx)
{
	/* TP_PROTO(struct sock *sk) */
	struct sock *sk = (struct sock *)ctx->args[0];
	/* The local port as the socket sent from: by now the kernel has given
	 * its port back (skc_num is 0). */
	if (filter_ports &&
	    !ports_listed(bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport)), bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport))))
		return 0;
	struct record *r = new_record(KIND_CLOSED, sk);
	if (r)
		submit(r, 0);
	return 0;
}

/* connect() as TCP state changes: → SYN_SENT runs in the caller's context,
 * SYN_SENT → ESTABLISHED or CLOSE ends it (also for non-blocking connects). */
SEC("raw_tracepoint/inet_sock_set_state")
int set_state(struct bpf_raw_tracepoint_args *ctx)
{
	/* TP_PROTO(const struct sock *sk, const int oldstate, const int newstate) */
	struct sock *sk = (struct sock *)ctx->args[0];
	int oldstate = ctx->args[1], newstate = ctx->args[2];
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	u64 key = (u64)sk;
	if (newstate == TCP_SYN_SENT) {
		u64 pid_tgid = bpf_get_current_pid_tgid();
		if (!process_wanted(pid_tgid >> 32) || !ports_wanted(sk))
			return 0;
		struct connecting c = { .start_ns = bpf_ktime_get_ns(), .tgid = pid_tgid >> 32, .tid = (u32)pid_tgid };
		bpf_get_current_comm(&c.comm, sizeof(c.comm));
		bpf_map_update_elem(&connects, &key, &c, BPF_ANY);
		return 0;
	}
	/* With the socket tracepoints, an accept is the handshake's end (SYN_RECV →
	 * ESTABLISHED, softirq: user space learns the process from the first read
	 * or write on it). */
	if (socket_hooks && oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		if (!ports_wanted(sk))
			return 0;
		struct record *r = new_record(KIND_ACCEPTED, sk);
		if (r)
			submit(r, 0);
		return 0;
	}
	if (oldstate != TCP_SYN_SENT)
		return 0;
	struct connecting *c = bpf_map_lookup_elem(&connects, &key);
	if (!c)
		return 0;
	struct record *r = new_record(newstate == TCP_ESTABLISHED ? KIND_CONNECTED : KIND_CONNECT_FAILED, sk);
	if (r) {
		r->h.tgid = c->tgid;
		r->h.tid = c->tid;
		__builtin_memcpy(r->h.comm, c->comm, sizeof(c->comm));
		r->h.value = r->h.ts_ns - c->start_ns;
		submit(r, 0);
	}
	bpf_map_delete_elem(&connects, &key);
	return 0;
}

/* Retransmits and resets run in softirq context: user space finds the
 * process from the socket address. The socket is the first argument of
 * each (it may be NULL for a reset answering no socket). */
static __always_inline int tcp_event(struct sock *sk, u8 kind, u64 value)
{
	if (!sk || !ports_wanted(sk))
		return 0;
	struct record *r = new_record(kind, sk);
	if (!r)
		return 0;
	r->h.value = value;
	/* A connect still in progress (a refused one gets its reset before it
	 * ends): the process that connects is known, and it is the client. */
	u64 key = (u64)sk;
	struct connecting *c = bpf_map_lookup_elem(&connects, &key);
	if (c) {
		r->h.tgid = c->tgid;
		r->h.tid = c->tid;
		__builtin_memcpy(r->h.comm, c->comm, sizeof(c->comm));
		r->h.connecting = 1;
	}
	submit(r, 0);
	return 0;
}

SEC("raw_tracepoint/tcp_retransmit_skb")
int retransmit(struct bpf_raw_tracepoint_args *ctx) { return tcp_event((struct sock *)ctx->args[0], KIND_RETRANSMIT, 0); }
SEC("raw_tracepoint/tcp_send_reset")
int send_reset(struct bpf_raw_tracepoint_args *ctx) { return tcp_event((struct sock *)ctx->args[0], KIND_RESET, 0); }
SEC("raw_tracepoint/tcp_receive_reset")
int receive_reset(struct bpf_raw_tracepoint_args *ctx) { return tcp_event((struct sock *)ctx->args[0], KIND_RESET, 1); }

/* OpenSSL: SSL_write(ssl, buf, num), SSL_read(ssl, buf, num) return the
 * length; the _ex variants return 1 and store the length through a 4th
 * argument. The socket is learnt from the syscall OpenSSL makes inside the
 * call, or from the last one it made for that SSL*. */
static __always_inline int ssl_enter(struct pt_regs *ctx, u8 direction, bool ex)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!process_wanted(pid_tgid >> 32))
		return 0;
	struct call c = { .ssl = ctx->di, .buf = ctx->si, .len_out = ex ? ctx->cx : 0, .fd = (u32)-1, .direction = direction, .shape = PLAIN };
	if (!bpf_map_update_elem(&ssl_calls, &pid_tgid, &c, BPF_NOEXIST))
		__sync_fetch_and_add(&ssl_calls_open, 1);
	else
		bpf_map_update_elem(&ssl_calls, &pid_tgid, &c, BPF_ANY);
	return 0;
}

static __always_inline int ssl_exit(struct pt_regs *ctx)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	struct call *c = bpf_map_lookup_elem(&ssl_calls, &pid_tgid);
	if (!c)
		return 0;
	s64 len = (int)ctx->ax;
	if (c->len_out) {
		size_t n = 0;
		if (len != 1 || bpf_probe_read_user(&n, sizeof(n), (const void *)c->len_out))
			n = 0;
		len = n;
	}
	u32 fd = c->fd;
	if (fd == (u32)-1) {
		u32 *known = bpf_map_lookup_elem(&ssl_fds, &c->ssl);
		fd = known ? *known : fd;
	}
	struct sock *sk = fd == (u32)-1 ? 0 : traced_socket(fd);
	if (sk) {
		c->sock = (u64)sk;
		c->fd = fd;
		emit_data(c, len, true);
	}
	if (!bpf_map_delete_elem(&ssl_calls, &pid_tgid))
		__sync_fetch_and_sub(&ssl_calls_open, 1);
	return 0;
}

SEC("uprobe")
int ssl_write_enter(struct pt_regs *ctx) { return ssl_enter(ctx, EGRESS, false); }
SEC("uprobe")
int ssl_write_ex_enter(struct pt_regs *ctx) { return ssl_enter(ctx, EGRESS, true); }
SEC("uprobe")
int ssl_read_enter(struct pt_regs *ctx) { return ssl_enter(ctx, INGRESS, false); }
SEC("uprobe")
int ssl_read_ex_enter(struct pt_regs *ctx) { return ssl_enter(ctx, INGRESS, true); }
SEC("uretprobe")
int ssl_exit_probe(struct pt_regs *ctx) { return ssl_exit(ctx); }
