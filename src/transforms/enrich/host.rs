//! `host` table: this machine, read once at build: `host.name` (hostname),
//! `host.arch` (OpenTelemetry's names: `amd64`, `arm64` …), `os.type`
//! (`linux`) and `os.version` (the kernel release). Never a miss.

use serde::Deserialize;

use super::Table;
use crate::event::{Event, FieldPath};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostTableConfig {}

impl HostTableConfig {
    pub fn build(&self) -> Result<HostTable, String> {
        let kernel = |name: &str| {
            std::fs::read_to_string(format!("/proc/sys/kernel/{name}")).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
        };
        let values = [
            ("host.name", crate::process::hostname()),
            ("host.arch", Some(arch(std::env::consts::ARCH).to_string())),
            ("os.type", kernel("ostype").map(|t| t.to_ascii_lowercase()).or_else(|| Some(std::env::consts::OS.to_string()))),
            ("os.version", kernel("osrelease")),
        ];
        let values = values.into_iter().filter_map(|(name, value)| Some((FieldPath::parse(name).expect("a valid name"), value?))).collect();
        Ok(HostTable { values })
    }
}

/// OpenTelemetry's `host.arch` values.
fn arch(rust: &str) -> &str {
    match rust {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm32",
        "powerpc" => "ppc32",
        "powerpc64" => "ppc64",
        other => other,
    }
}

pub struct HostTable {
    values: Vec<(FieldPath, String)>,
}

impl Table for HostTable {
    fn enrich(&mut self, event: &mut Event) -> bool {
        for (field, value) in &self.values {
            field.set_if_absent(event, value);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, run, tags};
    use super::*;
    use crate::component::TransformConfig;
    use crate::event::RequestRecord;

    #[test]
    fn this_machine() {
        let mut t = config("[[tables]]\ntype = \"host\"\n").build().unwrap();
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
        let record = Event::record(RequestRecord { host: Some("api.example.com".into()), ..Default::default() });
        let (out, misses) = run(
            &mut t,
            vec![record, Event::log(serde_json::json!({"host": {"name": "mine"}})), Event::log(serde_json::json!({"host": "web-1"}))],
        );
        assert_eq!(FieldPath::parse("host").unwrap().get(&out[2]).as_deref(), Some("web-1"), "{:?}", out[2].data);
        let tags = tags(&out[0]);
        let names: Vec<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["host.arch", "host.name", "os.type", "os.version"]);
        assert_eq!(tags[1].1, hostname);
        assert_eq!(tags[2].1, "linux");
        assert_eq!(FieldPath::parse("host.name").unwrap().get(&out[1]).as_deref(), Some("mine"));
        assert_eq!(FieldPath::parse("os.type").unwrap().get(&out[1]).as_deref(), Some("linux"));
        assert_eq!(misses, 0);
    }
}
