//! Tailing files by glob, shared by `kong_file_log` and Vector's `file`.
//! Files are known by device and inode, so a rename keeps its reader; a file
//! that shrinks was copy-truncated and is read again from the start. Offsets
//! are checkpointed in `data_dir` after each batch is handed on (with
//! acknowledgements: once it is delivered), so a restart neither loses nor
//! repeats lines.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::component::{Context, Result, SourceContext, Task};
use crate::event::{Event, EventBatch, EventStatus};
use crate::telemetry::ComponentMetrics;

/// Where to start in a file seen for the first time at start-up.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    #[default]
    Beginning,
    End,
}

/// What to tail and how.
#[derive(Debug, Clone)]
pub struct TailOptions {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub read_from: ReadFrom,
    pub max_line_bytes: usize,
    pub glob_minimum_cooldown_ms: u64,
    pub rotate_wait_secs: u64,
}

impl TailOptions {
    pub fn check(&self) -> Result<()> {
        if self.include.is_empty() {
            return Err("`include` must name at least one glob".into());
        }
        for pattern in self.include.iter().chain(&self.exclude) {
            glob::Pattern::new(pattern).map_err(|e| format!("invalid glob `{pattern}`: {e}"))?;
        }
        if self.max_line_bytes == 0 {
            return Err("`max_line_bytes` must be positive".into());
        }
        Ok(())
    }
}

/// Turns one complete line (without its newline) of a file into events.
pub type LineDecoder = Arc<dyn Fn(&[u8], &Path) -> Result<Vec<Event>, String> + Send + Sync>;

/// Lines per batch at most.
const MAX_BATCH: usize = 1000;
/// Bytes read from one file in one go.
const CHUNK: usize = 1 << 20;
/// Bytes hashed to tell a file from a new one that reuses its inode.
const HEAD: u64 = 256;

/// Start tailing; checkpoints go to `<data_dir>/<source id>/checkpoints.json`.
pub fn start(options: TailOptions, data_dir: Option<PathBuf>, decode: LineDecoder, mut cx: SourceContext) -> Result<Task> {
    let data_dir = data_dir.ok_or("reading files needs `data_dir` (at the top of the config) for its checkpoints")?;
    let dir = data_dir.join(&cx.id);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let checkpoints = Checkpoints::load(dir.join("checkpoints.json"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::channel::<Chunk>(2);
    let mut tailer = Tailer::new(options, decode, checkpoints.positions(), cx.metrics.clone(), stop.clone());
    std::thread::Builder::new().name(format!("tail-{}", cx.id)).spawn(move || tailer.run(&tx)).context("cannot start the file reader")?;
    Ok(Box::pin(async move {
        let mut checkpoints = checkpoints;
        let mut shutdown = cx.shutdown.clone();
        let mut last_write = Instant::now();
        // With acknowledgements, a batch's offsets are saved once it is delivered, in order.
        let mut awaiting = std::collections::VecDeque::new();
        loop {
            let next = tokio::select! {
                next = rx.recv() => next,
                _ = shutdown.triggered(), if !shutdown.is_triggered() => {
                    // Stop reading; hand on what was read.
                    stop.store(true, Ordering::Relaxed);
                    rx.close();
                    continue;
                }
            };
            let Some(Chunk { mut batch, positions, bytes, forget }) = next else { break };
            let count = batch.len();
            ComponentMetrics::add(&cx.metrics.received_events, count);
            ComponentMetrics::add(&cx.metrics.received_bytes, bytes);
            let status = cx.finalize(&mut batch);
            cx.out.send(batch).await;
            checkpoints.forget(&forget);
            awaiting.push_back((status, positions, count));
            // Save offsets in order, each once its batch is settled.
            while let Some((status, _, _)) = awaiting.front_mut() {
                let outcome = match status {
                    None => Some(crate::event::EventStatus::Delivered),
                    Some(receiver) => match receiver.try_recv() {
                        Ok(outcome) => Some(outcome),
                        Err(tokio::sync::oneshot::error::TryRecvError::Empty) => break,
                        Err(tokio::sync::oneshot::error::TryRecvError::Closed) => None,
                    },
                };
                if let Some((status, positions, count)) = awaiting.pop_front() {
                    settle(&mut checkpoints, &cx, outcome, positions, count, status.is_some());
                }
            }
            if last_write.elapsed() > Duration::from_secs(1) {
                checkpoints.save();
                last_write = Instant::now();
            }
        }
        for (status, positions, count) in awaiting {
            let acknowledged = status.is_some();
            let outcome = match status {
                None => Some(crate::event::EventStatus::Delivered),
                Some(receiver) => receiver.await.ok(),
            };
            settle(&mut checkpoints, &cx, outcome, positions, count, acknowledged);
        }
        cx.acknowledged_all().await;
        checkpoints.save();
        Ok(())
    }))
}

/// Save a settled batch's offsets; a failed batch's are not saved.
fn settle(
    checkpoints: &mut Checkpoints,
    cx: &SourceContext,
    outcome: Option<EventStatus>,
    positions: Vec<Position>,
    count: usize,
    acknowledged: bool,
) {
    match outcome {
        Some(EventStatus::Delivered) => {
            if acknowledged {
                ComponentMetrics::add(&cx.metrics.acknowledged_events, count);
            }
            checkpoints.update(positions);
        }
        _ => {
            // Not saved: after a restart these lines are read again.
            ComponentMetrics::add(&cx.metrics.errors, 1);
            tracing::warn!(component = %cx.id, events = count, "a batch of lines was not delivered; they will be read again after a restart");
        }
    }
}

/// What the reader thread hands over: records and the offsets they end at.
struct Chunk {
    batch: EventBatch,
    positions: Vec<Position>,
    bytes: usize,
    /// Files gone for good: drop their checkpoints.
    forget: Vec<FileKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
struct FileKey {
    dev: u64,
    ino: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Position {
    key: FileKey,
    path: PathBuf,
    /// Just after the last complete line handed on.
    offset: u64,
    /// CRC-32 of the file's first `head_len` bytes (up to 256), to tell a
    /// new file that reuses an old inode.
    head_len: u64,
    head: u32,
}

/// The saved offsets, one JSON file per source.
struct Checkpoints {
    path: PathBuf,
    positions: BTreeMap<FileKey, Position>,
    dirty: bool,
}

impl Checkpoints {
    fn load(path: PathBuf) -> Result<Self, String> {
        let positions = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Vec<Position>>(&bytes)
                .map_err(|e| format!("checkpoint file {} is unreadable ({e}); move it away to start over", path.display()))?
                .into_iter()
                .map(|p| (p.key, p))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(Checkpoints { path, positions, dirty: false })
    }

    fn positions(&self) -> HashMap<FileKey, Position> {
        self.positions.iter().map(|(k, p)| (*k, p.clone())).collect()
    }

    fn update(&mut self, positions: Vec<Position>) {
        for p in positions {
            self.positions.insert(p.key, p);
            self.dirty = true;
        }
    }

    fn forget(&mut self, keys: &[FileKey]) {
        for key in keys {
            self.dirty |= self.positions.remove(key).is_some();
        }
    }

    /// Write to a temporary file, then rename: a crash never leaves half a checkpoint.
    fn save(&mut self) {
        if !self.dirty {
            return;
        }
        let all: Vec<&Position> = self.positions.values().collect();
        let temporary = self.path.with_extension("json.tmp");
        let written = serde_json::to_vec_pretty(&all)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&temporary, bytes))
            .and_then(|_| std::fs::rename(&temporary, &self.path));
        match written {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::error!(path = %self.path.display(), error = %e, "cannot save checkpoints"),
        }
    }
}

/// One open file being read.
struct Watched {
    path: PathBuf,
    file: File,
    offset: u64,
    /// (bytes hashed, CRC-32) of the start of the file, as far as it was read.
    head: (u64, u32),
    /// Bytes after the last newline: a line still being written.
    partial: Vec<u8>,
    /// Inside an over-long line: skip to its end.
    skipping: bool,
    /// Still found by the globs at the last scan.
    found: bool,
    last_data: Instant,
}

struct Tailer {
    config: TailOptions,
    decode: LineDecoder,
    saved: HashMap<FileKey, Position>,
    watched: BTreeMap<FileKey, Watched>,
    metrics: Arc<ComponentMetrics>,
    stop: Arc<AtomicBool>,
    first_scan: bool,
}

impl Tailer {
    fn new(
        config: TailOptions,
        decode: LineDecoder,
        saved: HashMap<FileKey, Position>,
        metrics: Arc<ComponentMetrics>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Tailer { config, decode, saved, watched: BTreeMap::new(), metrics, stop, first_scan: true }
    }

    fn run(&mut self, tx: &mpsc::Sender<Chunk>) {
        let cooldown = Duration::from_millis(self.config.glob_minimum_cooldown_ms.max(10));
        let mut last_scan: Option<Instant> = None;
        while !self.stop.load(Ordering::Relaxed) {
            if last_scan.is_none_or(|t| t.elapsed() >= cooldown) {
                self.scan();
                last_scan = Some(Instant::now());
            }
            let mut chunk = Chunk { batch: Vec::new(), positions: Vec::new(), bytes: 0, forget: self.retire() };
            let keys: Vec<FileKey> = self.watched.keys().copied().collect();
            for key in keys {
                if chunk.batch.len() >= MAX_BATCH {
                    break;
                }
                self.read(key, &mut chunk);
            }
            let idle = chunk.batch.is_empty() && chunk.positions.is_empty();
            if !(idle && chunk.forget.is_empty()) && tx.blocking_send(chunk).is_err() {
                return;
            }
            if idle {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Open the files the globs name that are not open yet.
    fn scan(&mut self) {
        for w in self.watched.values_mut() {
            w.found = false;
        }
        let excludes: Vec<glob::Pattern> = self.config.exclude.iter().filter_map(|p| glob::Pattern::new(p).ok()).collect();
        for pattern in &self.config.include {
            let Ok(paths) = glob::glob(pattern) else { continue };
            for path in paths.flatten() {
                if excludes.iter().any(|e| e.matches_path(&path)) {
                    continue;
                }
                let Ok(meta) = std::fs::metadata(&path) else { continue };
                if !meta.is_file() {
                    continue;
                }
                let key = FileKey { dev: meta.dev(), ino: meta.ino() };
                if let Some(w) = self.watched.get_mut(&key) {
                    // Same file, maybe under a new name (rotation by rename within the globs).
                    w.path = path;
                    w.found = true;
                    continue;
                }
                match File::open(&path) {
                    Ok(mut file) => {
                        let offset = match self.saved.remove(&key) {
                            Some(saved) if saved.offset <= meta.len() && head_crc(&mut file, saved.head_len) == saved.head => saved.offset,
                            _ if self.first_scan && self.config.read_from == ReadFrom::End => meta.len(),
                            _ => 0,
                        };
                        tracing::info!(path = %path.display(), offset, "tail: reading");
                        let head = (offset.min(HEAD), head_crc(&mut file, offset.min(HEAD)));
                        let w = Watched {
                            path,
                            file,
                            offset,
                            head,
                            partial: Vec::new(),
                            skipping: false,
                            found: true,
                            last_data: Instant::now(),
                        };
                        self.watched.insert(key, w);
                    }
                    Err(e) => tracing::warn!(path = %path.display(), error = %e, "tail: cannot open"),
                }
            }
        }
        self.first_scan = false;
    }

    /// Close files renamed out of the globs or deleted, once idle for `rotate_wait_secs`.
    fn retire(&mut self) -> Vec<FileKey> {
        let wait = Duration::from_secs(self.config.rotate_wait_secs);
        let gone: Vec<FileKey> = self
            .watched
            .iter()
            .filter(|(_, w)| !w.found && w.last_data.elapsed() >= wait && w.partial.is_empty())
            .map(|(k, _)| *k)
            .collect();
        for key in &gone {
            if let Some(w) = self.watched.remove(key) {
                tracing::info!(path = %w.path.display(), "tail: done with a rotated or deleted file");
            }
        }
        gone
    }

    fn read(&mut self, key: FileKey, chunk: &mut Chunk) {
        let Some(w) = self.watched.get_mut(&key) else { return };
        let Ok(meta) = w.file.metadata() else { return };
        if meta.len() < w.offset {
            // Copytruncate: the file was emptied (and maybe written again) in place.
            tracing::info!(path = %w.path.display(), "tail: file truncated; reading it from the start");
            w.offset = 0;
            w.partial.clear();
            w.skipping = false;
            w.head = (0, 0);
        }
        if meta.len() == w.offset {
            return;
        }
        let mut buf = Vec::new();
        let read = w
            .file
            .seek(SeekFrom::Start(w.offset + w.partial.len() as u64))
            .and_then(|_| (&mut w.file).take(CHUNK as u64).read_to_end(&mut buf));
        if let Err(e) = read {
            ComponentMetrics::add(&self.metrics.errors, 1);
            tracing::error!(path = %w.path.display(), error = %e, "tail: read failed");
            return;
        }
        if buf.is_empty() {
            return;
        }
        w.last_data = Instant::now();
        chunk.bytes += buf.len();
        let mut rest: &[u8] = &buf;
        while let Some(newline) = rest.iter().position(|b| *b == b'\n') {
            let (piece, after) = rest.split_at(newline);
            rest = &after[1..];
            let line_start = w.offset;
            w.offset += (w.partial.len() + piece.len() + 1) as u64;
            if w.skipping {
                w.skipping = false;
                continue;
            }
            if w.partial.len() + piece.len() > self.config.max_line_bytes {
                too_long(&self.metrics, &w.path, line_start, self.config.max_line_bytes);
                w.partial.clear();
                continue;
            }
            let line: &[u8] = if w.partial.is_empty() {
                piece
            } else {
                w.partial.extend_from_slice(piece);
                &w.partial
            };
            emit(line, &w.path, line_start, &self.decode, &self.metrics, &mut chunk.batch);
            w.partial.clear();
        }
        if !w.skipping {
            w.partial.extend_from_slice(rest);
        } else {
            w.offset += rest.len() as u64;
        }
        if w.partial.len() > self.config.max_line_bytes {
            too_long(&self.metrics, &w.path, w.offset, self.config.max_line_bytes);
            w.offset += w.partial.len() as u64;
            w.partial.clear();
            w.skipping = true;
        }
        if w.head.0 < w.offset.min(HEAD) {
            let len = w.offset.min(HEAD);
            w.head = (len, head_crc(&mut w.file, len));
        }
        chunk.positions.push(Position { key, path: w.path.clone(), offset: w.offset, head_len: w.head.0, head: w.head.1 });
    }
}

fn too_long(metrics: &ComponentMetrics, path: &Path, offset: u64, max_line_bytes: usize) {
    ComponentMetrics::add(&metrics.errors, 1);
    ComponentMetrics::add(&metrics.discarded_events, 1);
    tracing::warn!(path = %path.display(), offset, max_line_bytes, "tail: line too long; dropped");
}

fn emit(line: &[u8], path: &Path, offset: u64, decode: &LineDecoder, metrics: &ComponentMetrics, batch: &mut EventBatch) {
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    match decode(line, path) {
        Ok(events) => batch.extend(events),
        Err(e) => {
            ComponentMetrics::add(&metrics.errors, 1);
            ComponentMetrics::add(&metrics.discarded_events, 1);
            tracing::warn!(path = %path.display(), offset, error = %e, "tail: cannot decode a line; dropped");
        }
    }
}

/// CRC-32 of the first `len` bytes of a file (of fewer if it is shorter).
fn head_crc(file: &mut File, len: u64) -> u32 {
    let mut head = Vec::with_capacity(len as usize);
    match file.seek(SeekFrom::Start(0)).and_then(|_| file.take(len).read_to_end(&mut head)) {
        Ok(_) => crc32fast::hash(&head),
        Err(_) => 0,
    }
}
