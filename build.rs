//! Compiles the eBPF programs in `ebpf/` with clang (`$CLANG`, default
//! `clang`) into OUT_DIR, for the `ebpf` source to embed. Without clang the
//! crate still builds; the `ebpf` source then refuses to start and says why.
//! Nothing is compiled in a build without the `ebpf` feature.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tapline_ebpf)");
    println!("cargo::rerun-if-env-changed=CLANG");
    for file in ["ebpf/socket_trace.bpf.c", "ebpf/socket_trace.h", "ebpf/vmlinux.h"] {
        println!("cargo::rerun-if-changed={file}");
    }
    // Built without the `ebpf` source: no kernel programs to compile.
    if std::env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return;
    }
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64") {
        println!("cargo::warning=the eBPF programs are written for x86-64 (uprobe registers); the ebpf source is left out");
        return;
    }
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // Two objects: one for kernels with bpf_loop (5.17+), one for 5.8 to 5.16.
    for (object, defines) in [("socket_trace.bpf.o", &["-DTAPLINE_BPF_LOOP"][..]), ("socket_trace_no_loop.bpf.o", &[])] {
        // -mcpu=v3: clang 14 otherwise emits code the verifier rejects for the
        // clamped lengths given to bpf_probe_read_user. -g: BTF for maps and CO-RE.
        let result = Command::new(&clang)
            .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_x86", "-Iebpf"])
            .args(defines)
            .args(["-c", "ebpf/socket_trace.bpf.c", "-o"])
            .arg(out_dir.join(object))
            .output();
        match result {
            Ok(output) if output.status.success() => {}
            Ok(output) => panic!("{clang} failed on ebpf/socket_trace.bpf.c ({object}):\n{}", String::from_utf8_lossy(&output.stderr)),
            Err(e) => {
                println!(
                    "cargo::warning=cannot run `{clang}` ({e}): built without the eBPF programs; install clang and libbpf-dev (Debian: apt-get install clang libbpf-dev) for the ebpf source"
                );
                return;
            }
        }
    }
    println!("cargo::rustc-cfg=tapline_ebpf");
}
