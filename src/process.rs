//! What /proc says about a process: its command line, name and container.
//! Shared by the `ebpf` source and `enrich`'s `process` table.

use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessInfo {
    /// The arguments joined by spaces (`/proc/PID/cmdline`); none for kernel threads.
    pub cmdline: Option<String>,
    /// The kernel's name for it (`/proc/PID/comm`).
    pub process_name: Option<String>,
    pub container_id: Option<String>,
}

/// Looked up once per pid and kept for `max_age` (a process seen once is
/// usually seen again soon; pids are reused, so nothing is kept for ever);
/// at `MAX_PROCESSES`, the stale entries go, and all of them if none is stale.
/// A pid without a /proc entry is remembered as gone for as long.
pub struct Processes {
    known: FxHashMap<u32, (Instant, Option<ProcessInfo>)>,
    max_age: Duration,
}

const MAX_PROCESSES: usize = 4096;

/// How long what /proc said about a pid is trusted.
pub const MAX_AGE: Duration = Duration::from_secs(30);

impl Default for Processes {
    fn default() -> Self {
        Processes::new(MAX_AGE)
    }
}

impl Processes {
    pub fn new(max_age: Duration) -> Self {
        Processes { known: FxHashMap::default(), max_age }
    }

    /// What /proc says about `pid`; `None` when it has no /proc entry (gone).
    pub fn get(&mut self, pid: u32) -> Option<&ProcessInfo> {
        self.get_at(pid, Instant::now())
    }

    /// [`Processes::get`] with the time read by the caller: once per batch
    /// where reading the clock for every record costs more than the lookup.
    pub fn get_at(&mut self, pid: u32, now: Instant) -> Option<&ProcessInfo> {
        if self.known.len() >= MAX_PROCESSES && !self.known.contains_key(&pid) {
            let max_age = self.max_age;
            self.known.retain(|_, (at, _)| now.duration_since(*at) < max_age);
            if self.known.len() >= MAX_PROCESSES {
                self.known.clear();
            }
        }
        let entry = self.known.entry(pid).or_insert_with(|| (now, read(pid)));
        if now.duration_since(entry.0) >= self.max_age {
            *entry = (now, read(pid));
        }
        entry.1.as_ref()
    }
}

fn read(pid: u32) -> Option<ProcessInfo> {
    // Every process (zombies and kernel threads too) has a comm: without one, it is gone.
    let comm = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
    let process_name = String::from_utf8_lossy(comm.strip_suffix(b"\n").unwrap_or(&comm)).into_owned();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok().map(|raw| {
        let args: Vec<String> = raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        args.join(" ")
    });
    let container_id = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok().and_then(|text| container_id(&text));
    Some(ProcessInfo {
        cmdline: cmdline.filter(|c| !c.is_empty()),
        process_name: Some(process_name).filter(|n| !n.is_empty()),
        container_id,
    })
}

/// The container id in a cgroup file: the 64-hex-digit name that Docker,
/// containerd (CRI) and CRI-O give the container's cgroup, e.g.
/// `0::/system.slice/docker-<id>.scope`, `…/cri-containerd-<id>.scope`,
/// `…/crio-<id>.scope` or `/docker/<id>` (cgroup v1).
pub fn container_id(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        path.rsplit('/').find_map(|segment| {
            let segment = segment.strip_suffix(".scope").unwrap_or(segment);
            let id = segment.rsplit(['-', ':']).next()?;
            (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
        })
    })
}

/// This machine's name, as the kernel knows it.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()).filter(|h| !h.is_empty())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `sleep 30`, once it runs `sleep` (right after the spawn, /proc may still show the parent).
    pub fn sleep() -> std::process::Child {
        let child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let start = Instant::now();
        while std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap_or_default() != b"sleep\x0030\x00" {
            assert!(start.elapsed() < Duration::from_secs(10), "sleep did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        child
    }

    const ID: &str = "3f4a9c0e1b2d3c4e5f60718293a4b5c6d7e8f90112233445566778899aabbccd";

    #[test]
    fn container_ids_of_the_usual_runtimes() {
        assert_eq!(container_id(&format!("0::/system.slice/docker-{ID}.scope\n")).as_deref(), Some(ID));
        assert_eq!(
            container_id(&format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{ID}.scope\n"))
                .as_deref(),
            Some(ID)
        );
        assert_eq!(container_id(&format!("0::/kubepods/besteffort/pod1/crio-{ID}.scope\n")).as_deref(), Some(ID));
        assert_eq!(container_id(&format!("12:memory:/docker/{ID}\n11:cpu:/docker/{ID}\n")).as_deref(), Some(ID));
        assert_eq!(container_id("0::/user.slice/user-0.slice/session-1.scope\n"), None);
        assert_eq!(container_id("0::/\n"), None);
    }

    #[test]
    fn this_process_is_read_from_proc() {
        let mut processes = Processes::default();
        let me = processes.get(std::process::id()).cloned().unwrap();
        assert!(me.cmdline.as_deref().is_some_and(|c| !c.is_empty()), "{me:?}");
        assert!(me.process_name.as_deref().is_some_and(|n| !n.is_empty() && !n.ends_with('\n')), "{me:?}");
        assert_eq!(processes.get(u32::MAX), None);
    }

    #[test]
    fn a_pid_is_read_again_once_stale() {
        let mut child = sleep();
        let pid = child.id();
        let mut processes = Processes::new(Duration::ZERO);
        assert_eq!(processes.get(pid).and_then(|p| p.cmdline.clone()).as_deref(), Some("sleep 30"));
        assert_eq!(processes.get(pid).and_then(|p| p.process_name.clone()).as_deref(), Some("sleep"));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(processes.get(pid), None, "gone once reaped");

        // Trusted for max_age: a pid that exited a moment ago still has its name.
        let mut child = sleep();
        let pid = child.id();
        let mut processes = Processes::new(Duration::from_secs(60));
        assert!(processes.get(pid).is_some());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(processes.get(pid).is_some());
    }
}
