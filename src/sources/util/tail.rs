//! Tailing files by glob, shared by `kong_file_log` and Vector's `file`.
//! Files are known by device and inode, so a rename keeps its reader (also one
//! made while tapline was down, if the file stayed in its directory); a file
//! that shrinks was copy-truncated and is read again from the start.
//!
//! What is promised, with the offsets checkpointed in `data_dir`:
//! - A line's offset is checkpointed only once every sink has settled it, so
//!   `kill -9` loses nothing: at most the lines settled in the last second
//!   (`SAVE_EVERY`) are read again. Checkpoints are written whole (temporary
//!   file, fsync, rename, fsync of the directory); a failed save is counted.
//! - With acknowledgements, only delivered lines are checkpointed: a failed
//!   delivery rewinds every file to what was delivered, and the lines are read
//!   and sent again after a growing pause (`RETRY_*`). Without, a sink that
//!   gives up on lines has counted them as discarded, and reading goes on.
//! - On shutdown, reading and sending stop at once; what was sent is awaited
//!   and checkpointed as it settles.
//! - A file rotated away is let go only once all of it was settled.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::component::{attach_finalizers, Context, Error, Result, SourceContext, Task};
use crate::event::{BatchStatusReceiver, Event, EventBatch, EventStatus};
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
/// How stale a saved checkpoint may be: what `kill -9` can make read twice.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// The pause before lines whose delivery failed are read again, doubling up to the cap.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_CAP: Duration = Duration::from_secs(10);

/// Own counters (`tapline_<name>` on /metrics).
pub const REWINDS: &str = "tail_rewinds_total";
pub const CHECKPOINT_SAVE_ERRORS: &str = "tail_checkpoint_save_errors_total";
pub const LOST_FILES: &str = "tail_checkpointed_files_lost_total";

/// Start tailing; checkpoints go to `<data_dir>/<source id>/checkpoints.json`.
pub fn start(options: TailOptions, data_dir: Option<PathBuf>, decode: LineDecoder, cx: SourceContext) -> Result<Task> {
    let data_dir = data_dir.ok_or("reading files needs `data_dir` (at the top of the config) for its checkpoints")?;
    let dir = data_dir.join(&cx.id);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let checkpoints = Checkpoints::load(dir.join("checkpoints.json"), cx.metrics.clone())?;
    let shared = Arc::new(Shared::default());
    let (tx, rx) = mpsc::channel::<Chunk>(2);
    let mut tailer = Tailer::new(options, decode, checkpoints.positions(), cx.metrics.clone(), shared.clone());
    std::thread::Builder::new().name(format!("tail-{}", cx.id)).spawn(move || tailer.run(&tx)).context("cannot start the file reader")?;
    Ok(Box::pin(run(rx, checkpoints, shared, cx)))
}

/// Between the reader thread and the async side.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Bumped by a failed delivery: chunks read before the rewind are stale.
    generation: AtomicU64,
    /// The rewind the reader must apply.
    rewind: Mutex<Option<Rewind>>,
    /// What was settled so far, per file: a file rotated away is closed only
    /// once all of it is, so that a rewind finds it open.
    settled: Mutex<HashMap<FileKey, u64>>,
}

/// Every file back to what was delivered: asked by a failed delivery, applied
/// by the reader once `when` has come.
struct Rewind {
    generation: u64,
    when: Instant,
    delivered: HashMap<FileKey, u64>,
}

/// What the settler is told, in order.
enum Settle {
    /// A batch handed on, waiting for its outcome.
    Sent { status: BatchStatusReceiver, ends: Vec<Position>, count: usize, generation: u64 },
    /// Files whose checkpoints go.
    Forget(Vec<FileKey>),
}

/// Hand chunks on until shutdown; a settler alongside checkpoints them in order.
async fn run(mut rx: mpsc::Receiver<Chunk>, checkpoints: Checkpoints, shared: Arc<Shared>, cx: SourceContext) -> Result<()> {
    let SourceContext { id, out, mut shutdown, metrics, acknowledgements, .. } = cx;
    let (sent_tx, sent_rx) = mpsc::unbounded_channel::<Settle>();
    let settler = settle_in_order(sent_rx, checkpoints, shared.clone(), metrics.clone(), id, acknowledgements);
    let reading = async {
        loop {
            let chunk = tokio::select! {
                biased;
                _ = shutdown.triggered() => break,
                next = rx.recv() => match next {
                    Some(chunk) => chunk,
                    None => break,
                },
            };
            let Chunk { mut batch, ends, bytes, forget, generation } = chunk;
            if !forget.is_empty() && sent_tx.send(Settle::Forget(forget)).is_err() {
                break;
            }
            if generation != shared.generation.load(Ordering::Acquire) || (batch.is_empty() && ends.is_empty()) {
                continue; // read before a rewind (these lines come again), or nothing read
            }
            let count = batch.len();
            ComponentMetrics::add(&metrics.received_events, count);
            ComponentMetrics::add(&metrics.received_bytes, bytes);
            // Always tracked: the checkpoint never passes a line no sink has settled.
            let status = attach_finalizers(&mut batch);
            let handed_on = tokio::select! {
                biased;
                // Unsent lines are not checkpointed: they are read again after a restart.
                _ = shutdown.triggered() => false,
                () = out.send(batch) => true,
            };
            if !handed_on || sent_tx.send(Settle::Sent { status, ends, count, generation }).is_err() {
                break;
            }
        }
        // Stop reading at once; downstream drains what it holds, and ends.
        shared.stop.store(true, Ordering::Relaxed);
        rx.close();
        drop(out);
        drop(sent_tx);
    };
    tokio::join!(reading, settler);
    Ok(())
}

/// Take each sent batch's outcome in order: checkpoint what was settled (with
/// acknowledgements: delivered), rewind on a failed delivery, save every
/// `SAVE_EVERY` and at the end.
async fn settle_in_order(
    mut sent: mpsc::UnboundedReceiver<Settle>,
    mut checkpoints: Checkpoints,
    shared: Arc<Shared>,
    metrics: Arc<ComponentMetrics>,
    id: String,
    acknowledgements: bool,
) {
    let mut save = tokio::time::interval(SAVE_EVERY);
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retry = RETRY_FIRST;
    loop {
        let next = tokio::select! {
            next = sent.recv() => next,
            _ = save.tick() => {
                checkpoints.save();
                continue;
            }
        };
        let (mut status, ends, count, generation) = match next {
            None => break,
            Some(Settle::Forget(keys)) => {
                keys.iter().for_each(|key| checkpoints.forget(key));
                continue;
            }
            Some(Settle::Sent { status, ends, count, generation }) => (status, ends, count, generation),
        };
        let outcome = loop {
            tokio::select! {
                outcome = &mut status => break outcome.unwrap_or(EventStatus::Errored),
                _ = save.tick() => checkpoints.save(),
            }
        };
        if generation != shared.generation.load(Ordering::Acquire) {
            continue; // sent before a rewind: read and sent again since
        }
        let delivered = outcome == EventStatus::Delivered;
        if delivered || !acknowledgements {
            if delivered && acknowledgements {
                ComponentMetrics::add(&metrics.acknowledged_events, count);
                retry = RETRY_FIRST;
            }
            let mut settled = shared.settled.lock().unwrap_or_else(|e| e.into_inner());
            for end in &ends {
                settled.insert(end.key, end.offset);
            }
            drop(settled);
            checkpoints.update(ends);
            continue;
        }
        // Not delivered: every file goes back to what was delivered, after a pause.
        ComponentMetrics::add(&metrics.errors, 1);
        metrics.add_own(REWINDS, 1);
        tracing::warn!(component = %id, events = count, ?outcome, retry_in = ?retry, "lines were not delivered; reading them again from the last delivered line");
        let delivered: HashMap<FileKey, u64> = checkpoints.positions.iter().map(|(key, p)| (*key, p.offset)).collect();
        let next_generation = generation + 1;
        *shared.rewind.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Rewind { generation: next_generation, when: Instant::now() + retry, delivered });
        shared.generation.store(next_generation, Ordering::Release);
        retry = (retry * 2).min(RETRY_CAP);
    }
    checkpoints.save();
}

/// What the reader thread hands over: records and the offsets they end at.
struct Chunk {
    batch: EventBatch,
    ends: Vec<Position>,
    bytes: usize,
    /// Files done with (all settled) or gone: drop their checkpoints.
    forget: Vec<FileKey>,
    /// The rewinds the reader had applied when it read this.
    generation: u64,
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
    metrics: Arc<ComponentMetrics>,
}

impl Checkpoints {
    fn load(path: PathBuf, metrics: Arc<ComponentMetrics>) -> Result<Self> {
        let positions = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Vec<Position>>(&bytes)
                .map_err(|e| format!("checkpoint file {} is unreadable ({e}); move it away to start over", path.display()))?
                .into_iter()
                .map(|p| (p.key, p))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::caused_by(format!("cannot read {}", path.display()), e)),
        };
        Ok(Checkpoints { path, positions, dirty: false, metrics })
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

    fn forget(&mut self, key: &FileKey) {
        self.dirty |= self.positions.remove(key).is_some();
    }

    /// Write a temporary file, fsync it, rename it over the old one and fsync
    /// the directory: a crash or a power loss leaves the old checkpoint or
    /// the new one, never a torn or empty one. A failed save is counted, and
    /// leaves nothing behind; the next save tries again.
    fn save(&mut self) {
        if !self.dirty {
            return;
        }
        let temporary = self.path.with_extension("json.tmp");
        match self.write(&temporary) {
            Ok(()) => self.dirty = false,
            Err(e) => {
                let _ = std::fs::remove_file(&temporary);
                ComponentMetrics::add(&self.metrics.errors, 1);
                self.metrics.add_own(CHECKPOINT_SAVE_ERRORS, 1);
                tracing::error!(component = %self.metrics.id, path = %self.path.display(), error = %e, "cannot save checkpoints; lines may be read twice after a restart");
            }
        }
    }

    fn write(&self, temporary: &Path) -> std::io::Result<()> {
        let all: Vec<&Position> = self.positions.values().collect();
        let bytes = serde_json::to_vec_pretty(&all).map_err(std::io::Error::other)?;
        let mut file = File::create(temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(temporary, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
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
    /// Where reading began: a rewind goes back here when nothing was delivered yet.
    opened_at: u64,
}

struct Tailer {
    config: TailOptions,
    decode: LineDecoder,
    saved: HashMap<FileKey, Position>,
    watched: BTreeMap<FileKey, Watched>,
    metrics: Arc<ComponentMetrics>,
    shared: Arc<Shared>,
    first_scan: bool,
    /// The last rewind applied: chunks carry it.
    generation: u64,
    /// Checkpointed files found gone at start: their checkpoints go.
    lost: Vec<FileKey>,
}

impl Tailer {
    fn new(
        config: TailOptions,
        decode: LineDecoder,
        saved: HashMap<FileKey, Position>,
        metrics: Arc<ComponentMetrics>,
        shared: Arc<Shared>,
    ) -> Self {
        Tailer { config, decode, saved, watched: BTreeMap::new(), metrics, shared, first_scan: true, generation: 0, lost: Vec::new() }
    }

    fn run(&mut self, tx: &mpsc::Sender<Chunk>) {
        let cooldown = Duration::from_millis(self.config.glob_minimum_cooldown_ms.max(10));
        let mut last_scan: Option<Instant> = None;
        while !self.shared.stop.load(Ordering::Relaxed) {
            if !self.apply_rewind() {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            if last_scan.is_none_or(|t| t.elapsed() >= cooldown) {
                self.scan();
                last_scan = Some(Instant::now());
            }
            let mut chunk = Chunk { batch: Vec::new(), ends: Vec::new(), bytes: 0, forget: self.retire(), generation: self.generation };
            let keys: Vec<FileKey> = self.watched.keys().copied().collect();
            for key in keys {
                if chunk.batch.len() >= MAX_BATCH {
                    break;
                }
                self.read(key, &mut chunk);
            }
            let idle = chunk.batch.is_empty() && chunk.ends.is_empty();
            if !(idle && chunk.forget.is_empty()) && tx.blocking_send(chunk).is_err() {
                return;
            }
            if idle {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Apply a rewind asked for by a failed delivery, once its pause is over:
    /// every file goes back to what was delivered (or to where reading began).
    /// `false` while the pause lasts.
    fn apply_rewind(&mut self) -> bool {
        let mut asked = self.shared.rewind.lock().unwrap_or_else(|e| e.into_inner());
        let Some(Rewind { generation, when, delivered }) = asked.as_ref() else { return true };
        if Instant::now() < *when {
            return false;
        }
        for (key, w) in self.watched.iter_mut() {
            let len = w.file.metadata().map(|m| m.len()).unwrap_or(0);
            // Past the end, the file was truncated since: start it over.
            let offset = delivered.get(key).copied().unwrap_or(w.opened_at);
            w.offset = if offset > len { 0 } else { offset };
            w.partial.clear();
            w.skipping = false;
            tracing::info!(path = %w.path.display(), offset = w.offset, "tail: reading again from the last delivered line");
        }
        self.generation = *generation;
        *asked = None;
        true
    }

    /// Open the files the globs name that are not open yet.
    fn scan(&mut self) {
        for w in self.watched.values_mut() {
            w.found = false;
        }
        let excludes: Vec<glob::Pattern> = self.config.exclude.iter().filter_map(|p| glob::Pattern::new(p).ok()).collect();
        for pattern in &self.config.include.clone() {
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
                    Ok(file) => {
                        let offset = match self.saved.remove(&key) {
                            Some(saved) if saved.offset <= meta.len() && head_crc(&file, saved.head_len) == saved.head => saved.offset,
                            Some(saved) => {
                                // Same inode, other content: the checkpointed file was deleted and its inode reused.
                                self.lost_file(&saved);
                                0
                            }
                            None if self.first_scan && self.config.read_from == ReadFrom::End => meta.len(),
                            None => 0,
                        };
                        tracing::info!(path = %path.display(), offset, "tail: reading");
                        self.watch(key, path, file, offset, true);
                    }
                    Err(e) => tracing::warn!(path = %path.display(), error = %e, "tail: cannot open"),
                }
            }
        }
        if self.first_scan {
            self.find_renamed();
        }
        self.first_scan = false;
    }

    fn watch(&mut self, key: FileKey, path: PathBuf, file: File, offset: u64, found: bool) {
        // What comes before where reading begins is settled (checkpointed, or skipped on purpose).
        self.shared.settled.lock().unwrap_or_else(|e| e.into_inner()).insert(key, offset);
        let head = (offset.min(HEAD), head_crc(&file, offset.min(HEAD)));
        let last_data = Instant::now();
        let w = Watched { path, file, offset, head, partial: Vec::new(), skipping: false, found, last_data, opened_at: offset };
        self.watched.insert(key, w);
    }

    /// Checkpointed files the globs no longer name were renamed (rotated) or
    /// deleted while tapline was down. One still in its directory, found by
    /// device and inode, is read to its end; the others are reported and
    /// counted, and their checkpoints dropped.
    fn find_renamed(&mut self) {
        for (key, saved) in std::mem::take(&mut self.saved) {
            let same_file = |p: &PathBuf| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.dev() == key.dev && m.ino() == key.ino);
            let renamed = saved
                .path
                .parent()
                .and_then(|dir| std::fs::read_dir(dir).ok())
                .and_then(|entries| entries.flatten().map(|e| e.path()).find(same_file));
            let same_content =
                |file: &File| file.metadata().is_ok_and(|m| saved.offset <= m.len()) && head_crc(file, saved.head_len) == saved.head;
            let opened = renamed.and_then(|path| File::open(&path).ok().map(|file| (path, file)));
            match opened.filter(|(_, file)| same_content(file)) {
                Some((path, file)) => {
                    tracing::info!(was = %saved.path.display(), path = %path.display(), offset = saved.offset, "tail: a checkpointed file was renamed while tapline was down; reading its rest");
                    self.watch(key, path, file, saved.offset, false);
                }
                None => {
                    self.lost_file(&saved);
                    self.lost.push(key);
                }
            }
        }
    }

    fn lost_file(&self, saved: &Position) {
        self.metrics.add_own(LOST_FILES, 1);
        tracing::warn!(path = %saved.path.display(), offset = saved.offset, "tail: a checkpointed file is gone (deleted, or moved out of its directory, while tapline was down): what was written to it after this offset, if anything, was not read");
    }

    /// Close files renamed out of the globs or deleted, once idle for
    /// `rotate_wait_secs` and all settled (a rewind may need them). Returns
    /// the files whose checkpoints go: those, and checkpointed files found gone.
    fn retire(&mut self) -> Vec<FileKey> {
        let wait = Duration::from_secs(self.config.rotate_wait_secs);
        let mut settled = self.shared.settled.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<FileKey> = self
            .watched
            .iter()
            .filter(|(key, w)| {
                !w.found && w.last_data.elapsed() >= wait && w.partial.is_empty() && settled.get(key).is_some_and(|s| *s >= w.offset)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in &gone {
            settled.remove(key);
            if let Some(w) = self.watched.remove(key) {
                tracing::info!(path = %w.path.display(), "tail: done with a rotated or deleted file");
            }
        }
        drop(settled);
        gone.into_iter().chain(self.lost.drain(..)).collect()
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
            w.head = (len, head_crc(&w.file, len));
        }
        chunk.ends.push(Position { key, path: w.path.clone(), offset: w.offset, head_len: w.head.0, head: w.head.1 });
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
fn head_crc(mut file: &File, len: u64) -> u32 {
    let mut head = Vec::with_capacity(len as usize);
    match file.seek(SeekFrom::Start(0)).and_then(|_| file.take(len).read_to_end(&mut head)) {
        Ok(_) => crc32fast::hash(&head),
        Err(_) => 0,
    }
}
