//! `process` tables: a pid → what /proc says about the process: `cmdline`,
//! `process_name` (its comm) and `container_id` (from its cgroup). Read
//! through the reader the `ebpf` source uses, which keeps each pid for a
//! while; a pid without a /proc entry is a miss. Pids are those of
//! tapline's pid namespace (in Kubernetes: `hostPID: true`).

use serde::Deserialize;

use super::Table;
use crate::event::{Event, FieldPath};
use crate::process::Processes;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessTableConfig {
    /// The event field holding the pid.
    #[serde(default = "default_pid_field")]
    pub pid_field: String,
}

fn default_pid_field() -> String {
    "pid".into()
}

impl ProcessTableConfig {
    pub fn build(&self) -> Result<ProcessTable, String> {
        let field = |name: &str| FieldPath::parse(name).expect("a valid name");
        Ok(ProcessTable {
            pid: FieldPath::parse(&self.pid_field).map_err(|e| format!("`pid_field`: {e}"))?,
            processes: Processes::default(),
            cmdline: field("cmdline"),
            process_name: field("process_name"),
            container_id: field("container_id"),
        })
    }
}

pub struct ProcessTable {
    pid: FieldPath,
    processes: Processes,
    cmdline: FieldPath,
    process_name: FieldPath,
    container_id: FieldPath,
}

impl Table for ProcessTable {
    fn enrich(&mut self, event: &mut Event) -> bool {
        let pid = {
            let Some(text) = self.pid.get(event) else { return false };
            let Ok(pid) = text.trim().parse::<u32>() else { return false };
            pid
        };
        let Some(info) = self.processes.get(pid) else { return false };
        for (field, value) in
            [(&self.cmdline, &info.cmdline), (&self.process_name, &info.process_name), (&self.container_id, &info.container_id)]
        {
            if let Some(value) = value {
                field.set_if_absent(event, value);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, run};
    use super::*;
    use crate::component::TransformConfig;
    use crate::event::{EventData, RequestRecord};

    #[test]
    fn a_pid_gets_its_command_line() {
        let mut child = crate::process::tests::sleep();
        let mut t = config("[[tables]]\ntype = \"process\"\n").build().unwrap();
        assert_eq!(t.tick_interval(), None, "nothing to reload");
        let record = Event::record(RequestRecord { pid: Some(child.id()), process_name: Some("kept".into()), ..Default::default() });
        let log = Event::log(serde_json::json!({"pid": child.id()}));
        let gone = Event::log(serde_json::json!({"pid": u32::MAX}));
        let (out, misses) = run(&mut t, vec![record, log, gone, Event::log(serde_json::json!({"pid": "x"}))]);
        child.kill().unwrap();
        child.wait().unwrap();
        let EventData::Record(r) = &out[0].data else { unreachable!() };
        assert_eq!((r.cmdline.as_deref(), r.process_name.as_deref()), (Some("sleep 30"), Some("kept")));
        assert_eq!(FieldPath::parse("cmdline").unwrap().get(&out[1]).as_deref(), Some("sleep 30"));
        assert_eq!(FieldPath::parse("process_name").unwrap().get(&out[1]).as_deref(), Some("sleep"));
        assert_eq!(FieldPath::parse("cmdline").unwrap().get(&out[2]), None);
        assert_eq!(misses, 2);
    }
}
