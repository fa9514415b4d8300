//! Loads and attaches the kernel programs of `ebpf/socket_trace.bpf.c`, after
//! checking what they need, so that a failure says what to do about it.

use std::path::{Path, PathBuf};

use aya::maps::{HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::uprobe::UProbeScope;
use aya::programs::{BtfTracePoint, RawTracePoint, UProbe};
use aya::{Btf, Ebpf, EbpfLoader};
use aya_obj::btf::BtfKind;
use serde::Deserialize;

use crate::component::{Context, Error, Result};

/// The largest payload prefix the kernel side can copy (`MAX_PAYLOAD`).
pub const MAX_PAYLOAD: u32 = 4096;

/// The socket layer's tracepoints (Linux 6.3+), as tp_btf programs of the
/// same names: each send and receive of a socket, and nothing else. Typed
/// arguments, read with plain loads; like raw tracepoints, they need no
/// tracefs (often not mounted) and cost less per call than tracefs ones.
const SOCKET_TRACEPOINTS: &[&str] = &["sock_send_length", "sock_recv_length"];

/// Older kernels: the syscall tracepoints, through which every syscall of
/// the machine passes (accepts and closes are seen there too).
const SYSCALL_TRACEPOINTS: &[&str] = &["sys_enter", "sys_exit"];

/// With the socket tracepoints: program → raw tracepoint that ends a socket.
const DESTROY_TRACEPOINT: (&str, &str) = ("destroy_sock", "tcp_destroy_sock");

/// Program name → raw tracepoint it attaches to.
const RAW_TRACEPOINTS: &[(&str, &str)] = &[
    ("set_state", "inet_sock_set_state"),
    ("retransmit", "tcp_retransmit_skb"),
    ("send_reset", "tcp_send_reset"),
    ("receive_reset", "tcp_receive_reset"),
];

/// Program name → OpenSSL function; `ssl_exit_probe` catches the return of all four.
const SSL_ENTRIES: &[(&str, &str)] = &[
    ("ssl_write_enter", "SSL_write"),
    ("ssl_write_ex_enter", "SSL_write_ex"),
    ("ssl_read_enter", "SSL_read"),
    ("ssl_read_ex_enter", "SSL_read_ex"),
];

/// Where Debian and most distributions keep OpenSSL 3.
const SSL_LIBRARY_PATHS: &[&str] =
    &["/usr/lib/x86_64-linux-gnu/libssl.so.3", "/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib64/libssl.so.3", "/usr/lib/libssl.so.3"];

/// Which tracepoints see the reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelHooks {
    /// The socket tracepoints where the kernel has them, else the syscall ones.
    #[default]
    Auto,
    /// `sock_send_length`/`sock_recv_length` (Linux 6.3+): sockets' sends and receives only.
    Sockets,
    /// `sys_enter`/`sys_exit`: every syscall of the machine.
    Syscalls,
}

pub struct Options {
    pub payload_size: u32,
    pub ports: Vec<u16>,
    pub pids: Vec<u32>,
    pub ring_buffer_bytes: u32,
    /// OpenSSL libraries to probe (empty: none).
    pub ssl_libraries: Vec<PathBuf>,
    /// Load the programs that use `bpf_loop` ([`kernel_has_bpf_loop`]).
    pub bpf_loop: bool,
    pub hooks: KernelHooks,
}

/// The loaded programs (detached when dropped) and what user space reads.
pub struct Capture {
    /// Kept while capturing: dropping it detaches the programs.
    pub ebpf: Ebpf,
    pub ring: RingBuf<MapData>,
    pub drops: Drops,
    /// The OpenSSL libraries actually probed.
    pub ssl_libraries: Vec<PathBuf>,
    /// The hooks chosen: [`KernelHooks::Sockets`] or [`KernelHooks::Syscalls`].
    pub hooks: KernelHooks,
}

/// The kernel's count of records the ring buffer had no room for.
pub struct Drops {
    per_cpu: PerCpuArray<MapData, u64>,
    reported: u64,
}

impl Drops {
    /// Drops since the last call (summed over CPUs), and the total since load.
    pub fn new_since_last(&mut self) -> (u64, u64) {
        let total = self.per_cpu.get(&0, 0).map(|per_cpu| per_cpu.iter().sum()).unwrap_or(self.reported);
        let new = total.saturating_sub(self.reported);
        self.reported = total;
        (new, total)
    }
}

/// The programs for kernels with `bpf_loop` (5.17+), which copy up to 64
/// iovecs of a call, and for older ones, which copy the first 8.
#[cfg(tapline_ebpf)]
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/socket_trace.bpf.o"));
#[cfg(tapline_ebpf)]
static OBJECT_NO_LOOP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/socket_trace_no_loop.bpf.o"));
#[cfg(not(tapline_ebpf))]
static OBJECT: &[u8] = &[];
#[cfg(not(tapline_ebpf))]
static OBJECT_NO_LOOP: &[u8] = &[];

/// Whether this kernel has the `bpf_loop` helper (5.17+); unknown counts as not.
pub fn kernel_has_bpf_loop() -> bool {
    aya::util::KernelVersion::current().is_ok_and(|version| version >= aya::util::KernelVersion::new(5, 17, 0))
}

/// The default OpenSSL library of this machine, if there is one.
pub fn default_ssl_library() -> Option<PathBuf> {
    SSL_LIBRARY_PATHS.iter().map(PathBuf::from).find(|p| p.exists())
}

/// What loading needs, checked before trying: the programs built in, the
/// privileges, the kernel's BTF.
pub fn preflight() -> Result<()> {
    if OBJECT.is_empty() {
        return Err("this tapline was built without its eBPF programs (clang was not found at build time): install clang and libbpf-dev (Debian: apt-get install clang libbpf-dev) and rebuild".into());
    }
    check_privileges()?;
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err("the kernel has no BTF (/sys/kernel/btf/vmlinux is missing): the eBPF programs need a kernel built with CONFIG_DEBUG_INFO_BTF=y (5.8 or newer)".into());
    }
    Ok(())
}

pub fn load(options: &Options) -> Result<Capture> {
    preflight()?;

    let self_pid = std::process::id();
    let (filter_ports, filter_pids) = (u8::from(!options.ports.is_empty()), u8::from(!options.pids.is_empty()));
    let ssl_probes = u8::from(!options.ssl_libraries.is_empty());
    // One copy of the kernel's BTF (tens of MiB parsed), for the loader's
    // relocations and the tp_btf programs: the loader's own is dropped first.
    let mut loader = EbpfLoader::new();
    loader.btf(None);
    let btf = Btf::from_sys_fs().context("reading the kernel's BTF (/sys/kernel/btf/vmlinux)")?;
    let hooks = choose_hooks(options.hooks, &btf)?;
    let mut ebpf = loader
        .btf(Some(&btf))
        .override_global("self_pid", &self_pid, true)
        .override_global("payload_limit", &options.payload_size, true)
        .override_global("filter_ports", &filter_ports, true)
        .override_global("filter_pids", &filter_pids, true)
        .override_global("ssl_probes", &ssl_probes, true)
        .override_global("socket_hooks", &u8::from(hooks == KernelHooks::Sockets), true)
        .map_max_entries("events", options.ring_buffer_bytes)
        .load(if options.bpf_loop { OBJECT } else { OBJECT_NO_LOOP })
        .context("loading the eBPF programs failed")?;

    let mut ports: HashMap<_, u16, u8> = HashMap::try_from(ebpf.map_mut("ports").ok_or("no `ports` map")?).context("the `ports` map")?;
    for port in &options.ports {
        ports.insert(port, 1, 0).context("the port filter")?;
    }
    let mut pids: HashMap<_, u32, u8> = HashMap::try_from(ebpf.map_mut("pids").ok_or("no `pids` map")?).context("the `pids` map")?;
    for pid in &options.pids {
        pids.insert(pid, 1, 0).context("the pid filter (at most 1024 pids)")?;
    }

    let (tracepoints, raw_tracepoints) = match hooks {
        KernelHooks::Sockets => (SOCKET_TRACEPOINTS, [RAW_TRACEPOINTS, &[DESTROY_TRACEPOINT]].concat()),
        _ => (SYSCALL_TRACEPOINTS, RAW_TRACEPOINTS.to_vec()),
    };
    for tracepoint in tracepoints {
        let program: &mut BtfTracePoint =
            ebpf.program_mut(tracepoint).ok_or_else(|| format!("no program {tracepoint}"))?.try_into().context(*tracepoint)?;
        program.load(tracepoint, &btf).with_context(|| format!("the kernel refused {tracepoint}"))?;
        program.attach().with_context(|| format!("attaching to tracepoint {tracepoint}"))?;
    }
    for (program, tracepoint) in &raw_tracepoints {
        let raw: &mut RawTracePoint =
            ebpf.program_mut(program).ok_or_else(|| format!("no program {program}"))?.try_into().context(*program)?;
        raw.load().with_context(|| format!("the kernel refused {program}"))?;
        raw.attach(tracepoint).with_context(|| format!("attaching to raw tracepoint {tracepoint}"))?;
    }

    let mut ssl_libraries = Vec::new();
    if !options.ssl_libraries.is_empty() {
        for (program, _) in SSL_ENTRIES {
            load_uprobe(&mut ebpf, program)?;
        }
        load_uprobe(&mut ebpf, "ssl_exit_probe")?;
        for library in &options.ssl_libraries {
            match attach_ssl(&mut ebpf, library) {
                Ok(()) => ssl_libraries.push(library.clone()),
                Err(e) => tracing::warn!(library = %library.display(), "HTTPS plaintext will not be seen through this library: {e}"),
            }
        }
    }

    let ring = RingBuf::try_from(ebpf.take_map("events").ok_or("no `events` map")?).context("the `events` ring buffer")?;
    let drops =
        Drops { per_cpu: PerCpuArray::try_from(ebpf.take_map("drops").ok_or("no `drops` map")?).context("the `drops` map")?, reported: 0 };
    Ok(Capture { ebpf, ring, drops, ssl_libraries, hooks })
}

/// The hooks to load: the socket tracepoints if asked for or, by default,
/// if this kernel's BTF has them.
fn choose_hooks(wanted: KernelHooks, btf: &Btf) -> Result<KernelHooks> {
    let has_sockets = btf.id_by_type_name_kind("btf_trace_sock_send_length", BtfKind::Typedef).is_ok()
        && btf.id_by_type_name_kind("btf_trace_sock_recv_length", BtfKind::Typedef).is_ok();
    match wanted {
        KernelHooks::Auto if has_sockets => Ok(KernelHooks::Sockets),
        KernelHooks::Auto => Ok(KernelHooks::Syscalls),
        KernelHooks::Sockets if !has_sockets => Err("`kernel_hooks = \"sockets\"` needs the kernel's sock_send_length and sock_recv_length tracepoints (Linux 6.3+), which this kernel does not have: use \"auto\" or \"syscalls\"".into()),
        hooks => Ok(hooks),
    }
}

fn load_uprobe(ebpf: &mut Ebpf, program: &str) -> Result<()> {
    let probe: &mut UProbe =
        ebpf.program_mut(program).ok_or_else(|| format!("no program {program}"))?.try_into().context(program.to_string())?;
    probe.load().with_context(|| format!("the kernel refused {program}"))
}

fn attach_ssl(ebpf: &mut Ebpf, library: &Path) -> Result<()> {
    if !library.exists() {
        return Err("no such file".into());
    }
    for (program, function) in SSL_ENTRIES {
        for name in [*program, "ssl_exit_probe"] {
            let probe: &mut UProbe = ebpf.program_mut(name).ok_or_else(|| format!("no program {name}"))?.try_into().context(name)?;
            probe.attach(*function, library, UProbeScope::AllProcesses).context(*function)?;
        }
    }
    Ok(())
}

/// Root, or the capabilities that loading and attaching need.
fn check_privileges() -> Result<()> {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let effective =
        status.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok()).unwrap_or(0);
    let has = |cap: u32| effective & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let missing: Vec<&str> =
        [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")].into_iter().filter(|(cap, _)| !has(*cap)).map(|(_, name)| name).collect();
    Err(Error::new(format!(
        "the ebpf source needs root, or the capabilities CAP_BPF and CAP_PERFMON (missing: {}); run tapline as root, or grant them: setcap cap_bpf,cap_perfmon+ep $(which tapline)",
        missing.join(", ")
    )))
}
