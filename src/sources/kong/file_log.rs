//! `kong_file_log`: tails the files Kong's file-log plugin writes, one JSON
//! entry per line, each becoming a request record. The tailing itself
//! (rotation, truncation, checkpoints) is `sources::util::tail`.

use std::sync::Arc;

use serde::Deserialize;

use crate::component::{OutputDef, Result, SourceConfig, SourceContext, Task};
use crate::event::{Event, Kinds};
use crate::sources::util::tail::{self, ReadFrom, TailOptions};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KongFileLogConfig {
    /// Globs of the files to read (Vector's option name).
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where to start in a file seen for the first time at start-up.
    /// Files that appear later are always read from the beginning.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Longer lines are dropped and counted.
    #[serde(default = "crate::defaults::max_line_bytes")]
    pub max_line_bytes: usize,
    /// How often to look for new files.
    #[serde(default = "crate::defaults::glob_minimum_cooldown_ms")]
    pub glob_minimum_cooldown_ms: u64,
    /// How long to keep reading a file renamed out of the globs or deleted, once it is idle.
    #[serde(default = "crate::defaults::rotate_wait_secs")]
    pub rotate_wait_secs: u64,
    #[serde(default)]
    pub keep_raw: bool,
}

impl KongFileLogConfig {
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

impl SourceConfig for KongFileLogConfig {
    fn outputs(&self) -> Vec<OutputDef> {
        vec![OutputDef::default(Kinds::LOG)]
    }

    fn check(&self) -> Result<()> {
        self.options().check()
    }

    fn build(&self, cx: SourceContext) -> Result<Task> {
        let keep_raw = self.keep_raw;
        let decode: tail::LineDecoder =
            Arc::new(move |line, _path| Ok(super::decode(line, keep_raw)?.into_iter().map(Event::record).collect()));
        let data_dir = cx.data_dir.clone();
        tail::start(self.options(), data_dir, decode, cx)
    }
}
