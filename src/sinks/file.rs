//! `file`: events appended to files; the path may be a template, so one sink
//! can write one file per service or per day.
//!
//! What it promises: a batch is written whole or not at all (on a failed
//! write, a full disk, the file is truncated back to where the batch began,
//! so no torn line is left for the next one to be glued to), and a failed
//! write is counted and reported to the sources. A file deleted or renamed
//! while open (logrotate's `create`) is noticed before the next write and the
//! path opened again; SIGHUP reopens every file too. A file that ends in a
//! torn line when opened (tapline killed mid-write: that batch was never
//! acknowledged, and comes again) is cut back to its last whole line. Values
//! inserted in the path are made single path components (`Template::render_path`).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::codec::Encoding;
use crate::component::{reopen_requests, Context, Result, SinkConfig, SinkContext, Task};
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
        let template = Template::parse(&self.path).context("`path`")?;
        let encoding = self.encoding.clone();
        let idle = Duration::from_secs(self.idle_timeout_secs.max(1));
        Ok(Box::pin(async move {
            let mut files = OpenFiles::default();
            let mut by_path: HashMap<String, (Vec<u8>, Vec<usize>)> = HashMap::new();
            while let Some(batch) = cx.input.recv().await {
                for (index, event) in batch.iter().enumerate() {
                    let path = match template.render_path(event) {
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
                files.reopen_if_asked();
                for (path, (buf, indexes)) in by_path.iter_mut() {
                    if indexes.is_empty() {
                        continue;
                    }
                    let written = files.write(path, buf).await.map(|()| buf.len()).map_err(|e| format!("{path}: {e}"));
                    cx.settle(indexes.iter().map(|&i| &batch[i]), indexes.len(), written);
                    buf.clear();
                    indexes.clear();
                }
                files.close_idle(idle);
                // Keep a reusable buffer only for the files still open.
                by_path.retain(|path, _| files.open.contains_key(path));
            }
            for (_, mut open) in files.open {
                let _ = open.file.flush().await;
            }
            Ok(())
        }))
    }
}

/// The files open for writing, by path.
#[derive(Default)]
struct OpenFiles {
    open: HashMap<String, OpenFile>,
    /// The reopen requests (SIGHUP) already acted on.
    reopened: u64,
}

struct OpenFile {
    file: tokio::fs::File,
    /// Device and inode: the path still names this file while they match.
    id: (u64, u64),
    last_write: Instant,
}

impl OpenFiles {
    fn reopen_if_asked(&mut self) {
        let asked = reopen_requests();
        if asked != self.reopened {
            self.reopened = asked;
            self.open.clear();
        }
    }

    fn close_idle(&mut self, idle: Duration) {
        self.open.retain(|_, f| f.last_write.elapsed() < idle);
    }

    /// Append `buf` whole, or leave the file as it was.
    async fn write(&mut self, path: &str, buf: &[u8]) -> std::io::Result<()> {
        // Deleted or renamed since it was opened: the path names another file, or none.
        let current = tokio::fs::metadata(path).await.ok().map(|m| (m.dev(), m.ino()));
        if self.open.get(path).is_some_and(|f| Some(f.id) != current) {
            tracing::info!(path, "the file was deleted or renamed; opening the path again");
            self.open.remove(path);
        }
        if !self.open.contains_key(path) {
            if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir).await?;
            }
            let file = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await?;
            let meta = file.metadata().await?;
            // A regular file only: a pipe or a device has no tail to cut (and opening
            // a pipe to read would stop its writes from waiting for a reader).
            if meta.is_file() && meta.len() > 0 {
                let torn = cut_torn_tail(path.to_string()).await?;
                if torn > 0 {
                    tracing::warn!(path, bytes = torn, "the file ended in a torn line (a write cut short by a crash); cut it off");
                }
            }
            self.open.insert(path.to_string(), OpenFile { file, id: (meta.dev(), meta.ino()), last_write: Instant::now() });
        }
        let open = self.open.get_mut(path).ok_or_else(|| std::io::Error::other("file just opened"))?;
        let before = open.file.metadata().await?.len();
        let written = async {
            open.file.write_all(buf).await?;
            open.file.flush().await
        };
        if let Err(e) = written.await {
            // Part of the batch may be in the file: cut it off, so the next write starts a line.
            let truncated = open.file.set_len(before).await;
            self.open.remove(path);
            if let Err(t) = truncated {
                tracing::error!(path, error = %t, "a failed write could not be undone: the file may end in a torn line");
            }
            return Err(e);
        }
        open.last_write = Instant::now();
        Ok(())
    }
}

/// Cut a regular file back to just after its last newline; returns how many bytes went.
async fn cut_torn_tail(path: String) -> std::io::Result<u64> {
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        let mut end = len;
        let mut chunk = vec![0u8; 64 << 10];
        while end > 0 {
            let start = end.saturating_sub(chunk.len() as u64);
            let piece = &mut chunk[..(end - start) as usize];
            file.read_exact_at(piece, start)?;
            if let Some(at) = piece.iter().rposition(|b| *b == b'\n') {
                let keep = start + at as u64 + 1;
                if keep < len {
                    file.set_len(keep)?;
                }
                return Ok(len - keep);
            }
            end = start;
        }
        // Not one whole line: all of it is torn.
        file.set_len(0)?;
        Ok(len)
    })
    .await
    .map_err(std::io::Error::other)?
}
