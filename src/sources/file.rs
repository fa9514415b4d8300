//! `file`: Vector's file source, so Vector configs that tail Kong's file-log
//! run unchanged. Each line becomes a log `{message, file, host, source_type,
//! timestamp}`, as Vector's does; a `remap` with `parse_json!(.message)`
//! then works as it did. The tailing is `sources::util::tail`.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::component::{OutputDef, Result, SourceConfig, SourceContext, Task};
use crate::event::{Event, Kinds, ObjectMap, Value};
use crate::sources::util::tail::{self, ReadFrom, TailOptions};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Vector's default: longer lines are dropped and counted.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    #[serde(default = "crate::defaults::glob_minimum_cooldown_ms")]
    pub glob_minimum_cooldown_ms: u64,
    #[serde(default = "crate::defaults::rotate_wait_secs")]
    pub rotate_wait_secs: u64,
    /// Where this source keeps its checkpoints (else the global `data_dir`).
    pub data_dir: Option<PathBuf>,
    /// The field that holds the file's path.
    #[serde(default = "default_file_key")]
    pub file_key: String,
    /// The field that holds this machine's name.
    #[serde(default = "default_host_key")]
    pub host_key: String,
}

fn default_max_line_bytes() -> usize {
    102_400
}
fn default_file_key() -> String {
    "file".into()
}
fn default_host_key() -> String {
    "host".into()
}

impl FileSourceConfig {
    fn options(&self) -> TailOptions {
        TailOptions {
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            read_from: self.read_from,
            max_line_bytes: self.max_line_bytes,
            glob_minimum_cooldown_ms: self.glob_minimum_cooldown_ms,
            rotate_wait_secs: self.rotate_wait_secs,
        }
    }
}

impl SourceConfig for FileSourceConfig {
    fn outputs(&self) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::LOG)]
    }

    fn check(&self) -> Result<()> {
        self.options().check()
    }

    fn build(&self, cx: SourceContext) -> Result<Task> {
        let host: Value = crate::process::hostname().unwrap_or_default().into();
        let (file_key, host_key) = (self.file_key.clone(), self.host_key.clone());
        let decode: tail::LineDecoder = Arc::new(move |line, path| {
            let mut log = ObjectMap::new();
            log.insert("message".into(), Value::Bytes(bytes::Bytes::copy_from_slice(line)));
            log.insert(file_key.as_str().into(), path.display().to_string().into());
            log.insert(host_key.as_str().into(), host.clone());
            log.insert("source_type".into(), "file".into());
            log.insert("timestamp".into(), Value::Timestamp(chrono::Utc::now()));
            Ok(vec![Event::log(Value::Object(log))])
        });
        let data_dir = self.data_dir.clone().or_else(|| cx.data_dir.clone());
        tail::start(self.options(), data_dir, decode, cx)
    }
}
