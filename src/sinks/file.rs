//! `file`: events appended to files; the path may be a template, so one sink
//! can write one file per service or per day.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::{SinkConfig, SinkContext};
use crate::codec::Encoding;
use crate::config::registry::Task;
use crate::event::{EventStatus, Kinds};
use crate::telemetry::ComponentMetrics;
use crate::template::Template;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub path: String,
    pub encoding: Encoding,
    /// Close a file nothing was written to for this long.
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
}

fn default_idle() -> u64 {
    30
}

impl SinkConfig for FileConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::ALL
    }

    fn build(&self, mut cx: SinkContext) -> Result<Task, String> {
        let template = Template::parse(&self.path).map_err(|e| format!("`path`: {e}"))?;
        let encoding = self.encoding.clone();
        let idle = Duration::from_secs(self.idle_timeout_secs.max(1));
        Ok(Box::pin(async move {
            let mut files: HashMap<String, (tokio::fs::File, Instant)> = HashMap::new();
            let mut by_path: HashMap<String, (Vec<u8>, Vec<usize>)> = HashMap::new();
            while let Some(batch) = cx.input.recv().await {
                for (index, event) in batch.iter().enumerate() {
                    let path = match template.render(event) {
                        Ok(path) => path,
                        Err(e) => {
                            reject(&cx, event, &format!("cannot render `path`: {e}"));
                            continue;
                        }
                    };
                    let (buf, indexes) = by_path.entry(path).or_default();
                    match encoding.encode(event, buf) {
                        Ok(()) => indexes.push(index),
                        Err(e) => reject(&cx, event, &e),
                    }
                }
                for (path, (buf, indexes)) in by_path.iter_mut() {
                    if indexes.is_empty() {
                        continue;
                    }
                    let status = match write(&mut files, path, buf).await {
                        Ok(()) => {
                            ComponentMetrics::add(&cx.metrics.sent_events, indexes.len());
                            ComponentMetrics::add(&cx.metrics.sent_bytes, buf.len());
                            EventStatus::Delivered
                        }
                        Err(e) => {
                            ComponentMetrics::add(&cx.metrics.errors, 1);
                            ComponentMetrics::add(&cx.metrics.discarded_events, indexes.len());
                            tracing::error!(component = %cx.id, path, error = %e, events = indexes.len(), "file: write failed");
                            files.remove(path.as_str());
                            EventStatus::Errored
                        }
                    };
                    for &i in indexes.iter() {
                        batch[i].finalizers.update_status(status);
                    }
                    buf.clear();
                    indexes.clear();
                }
                by_path.retain(|_, (buf, _)| buf.capacity() < 1 << 20);
                files.retain(|_, (_, last)| last.elapsed() < idle);
            }
            for (_, (mut file, _)) in files {
                let _ = file.flush().await;
            }
            Ok(())
        }))
    }
}

fn reject(cx: &SinkContext, event: &crate::event::Event, reason: &str) {
    ComponentMetrics::add(&cx.metrics.errors, 1);
    ComponentMetrics::add(&cx.metrics.discarded_events, 1);
    event.finalizers.update_status(EventStatus::Rejected);
    tracing::error!(component = %cx.id, reason, "file: event dropped");
}

async fn write(files: &mut HashMap<String, (tokio::fs::File, Instant)>, path: &str, buf: &[u8]) -> std::io::Result<()> {
    if !files.contains_key(path) {
        if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await?;
        }
        let file = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await?;
        files.insert(path.to_string(), (file, Instant::now()));
    }
    let (file, last) = files.get_mut(path).ok_or_else(|| std::io::Error::other("file just opened"))?;
    file.write_all(buf).await?;
    file.flush().await?;
    *last = Instant::now();
    Ok(())
}
