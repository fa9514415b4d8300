//! `console`: events to standard output (or error), one per line.

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::codec::Encoding;
use crate::component::{Result, SinkConfig, SinkContext, Task};
use crate::event::Kinds;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    #[serde(default)]
    pub target: Target,
    pub encoding: Encoding,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    #[default]
    Stdout,
    Stderr,
}

impl SinkConfig for ConsoleConfig {
    fn input_kinds(&self) -> Kinds {
        Kinds::ALL
    }

    fn build(&self, mut cx: SinkContext) -> Result<Task> {
        let config = self.clone();
        Ok(Box::pin(async move {
            let mut out: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = match config.target {
                Target::Stdout => Box::new(tokio::io::stdout()),
                Target::Stderr => Box::new(tokio::io::stderr()),
            };
            let mut buf = Vec::new();
            while let Some(batch) = cx.input.recv().await {
                buf.clear();
                let mut encoded = Vec::with_capacity(batch.len());
                for event in &batch {
                    match config.encoding.encode(event, &mut buf) {
                        Ok(()) => encoded.push(event),
                        Err(e) => cx.reject(event, &e),
                    }
                }
                let written = async {
                    out.write_all(&buf).await?;
                    out.flush().await
                }
                .await
                .map(|()| buf.len())
                .map_err(|e| e.to_string());
                cx.settle(encoded.iter().copied(), encoded.len(), written);
            }
            Ok(())
        }))
    }
}
