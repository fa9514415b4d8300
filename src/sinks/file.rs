//! `file`: events appended to files; the path may be a template, so one sink
//! can write one file per service or per day.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::codec::Encoding;
use crate::component::{Context, Result, SinkConfig, SinkContext, Task};
use crate::event::Kinds;
use crate::template::Template;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    pub path: String,
    pub encoding: Encoding,
    /// Close a file nothing was written to for this long.
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
}

fn default_idle() -> u64 {
    30
}

impl SinkConfig for FileSinkConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::ALL
    }

    fn check(&self) -> Result<()> {
        Template::parse(&self.path).context("`path`")?;
        Ok(())
    }

    fn build(&self, mut cx: SinkContext) -> Result<Task> {
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
                            cx.reject(event, &format!("cannot render `path`: {e}"));
                            continue;
                        }
                    };
                    let (buf, indexes) = by_path.entry(path).or_default();
                    match encoding.encode(event, buf) {
                        Ok(()) => indexes.push(index),
                        Err(e) => cx.reject(event, &e),
                    }
                }
                for (path, (buf, indexes)) in by_path.iter_mut() {
                    if indexes.is_empty() {
                        continue;
                    }
                    let written = write(&mut files, path, buf).await.map(|()| buf.len()).map_err(|e| format!("{path}: {e}"));
                    if written.is_err() {
                        files.remove(path.as_str());
                    }
                    cx.settle(indexes.iter().map(|&i| &batch[i]), indexes.len(), written);
                    buf.clear();
                    indexes.clear();
                }
                files.retain(|_, (_, last)| last.elapsed() < idle);
                // Keep a reusable buffer only for the files still open.
                by_path.retain(|path, _| files.contains_key(path));
            }
            for (_, (mut file, _)) in files {
                let _ = file.flush().await;
            }
            Ok(())
        }))
    }
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
