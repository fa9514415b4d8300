//! What /proc says about a traced process: its command line and container.

use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessInfo {
    pub cmdline: Option<String>,
    pub container_id: Option<String>,
}

/// Looked up once per pid; forgotten wholesale when full (pids are reused,
/// and a process seen once is usually seen again soon).
#[derive(Default)]
pub struct Processes {
    known: HashMap<u32, ProcessInfo>,
}

const MAX_PROCESSES: usize = 4096;

impl Processes {
    pub fn get(&mut self, pid: u32) -> &ProcessInfo {
        if self.known.len() >= MAX_PROCESSES && !self.known.contains_key(&pid) {
            self.known.clear();
        }
        self.known.entry(pid).or_insert_with(|| read(pid))
    }
}

fn read(pid: u32) -> ProcessInfo {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok().map(|raw| {
        let args: Vec<String> = raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        args.join(" ")
    });
    let container_id = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok().and_then(|text| container_id(&text));
    ProcessInfo { cmdline: cmdline.filter(|c| !c.is_empty()), container_id }
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

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4a9c0e1b2d3c4e5f60718293a4b5c6d7e8f90112233445566778899aabbccd";

    #[test]
    fn container_ids_of_the_usual_runtimes() {
        assert_eq!(container_id(&format!("0::/system.slice/docker-{ID}.scope\n")).as_deref(), Some(ID));
        assert_eq!(container_id(&format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{ID}.scope\n")).as_deref(), Some(ID));
        assert_eq!(container_id(&format!("0::/kubepods/besteffort/pod1/crio-{ID}.scope\n")).as_deref(), Some(ID));
        assert_eq!(container_id(&format!("12:memory:/docker/{ID}\n11:cpu:/docker/{ID}\n")).as_deref(), Some(ID));
        assert_eq!(container_id("0::/user.slice/user-0.slice/session-1.scope\n"), None);
        assert_eq!(container_id("0::/\n"), None);
    }

    #[test]
    fn this_process_is_read_from_proc() {
        let mut processes = Processes::default();
        let me = processes.get(std::process::id()).clone();
        assert!(me.cmdline.as_deref().is_some_and(|c| !c.is_empty()), "{me:?}");
        assert_eq!(processes.get(u32::MAX), &ProcessInfo::default());
    }
}
