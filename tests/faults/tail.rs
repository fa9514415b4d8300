//! `kong_file_log` (the tailing shared with `file`) under faults: a sink that
//! fails, `kill -9`, SIGTERM while backpressured, rotation while down, a disk
//! too full for the checkpoint. What went in is counted against what came out.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::SmallDisk;
use crate::common::*;

fn config(dir: &Path, out: &Path, acks: bool) -> String {
    config_at(&dir.join("data"), dir, out, acks)
}

/// Checkpoints in `data`, Kong's log `logs/access.log`, output to `out`.
fn config_at(data: &Path, logs: &Path, out: &Path, acks: bool) -> String {
    format!(
        "data_dir = \"{data}\"\nacknowledgements = {acks}\n[api]\nenabled = false\n\
         [sources.kong]\ntype = \"kong_file_log\"\ninclude = [\"{logs}/access.log\"]\nglob_minimum_cooldown_ms = 100\nrotate_wait_secs = 1\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"kong\"]\npath = \"{out}\"\nencoding.codec = \"json\"\n",
        data = data.display(),
        logs = logs.display(),
        out = out.display()
    )
}

/// The ids written to any of `outs`, with how many times each.
fn counts(outs: &[PathBuf]) -> BTreeMap<usize, usize> {
    let mut all = BTreeMap::new();
    for out in outs {
        for (id, n) in id_counts(out) {
            *all.entry(id).or_insert(0) += n;
        }
    }
    all
}

fn duplicates(counts: &BTreeMap<usize, usize>) -> usize {
    counts.values().map(|n| n - 1).sum()
}

/// A `tapline run` that is killed if the test fails before stopping it.
struct Running(Option<Child>);

impl Running {
    fn start(config: &str, dir: &Path) -> (Running, PathBuf) {
        let (child, stderr) = spawn_logged(config, dir);
        (Running(Some(child)), stderr)
    }

    fn kill(mut self) {
        let mut child = self.0.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn stop(mut self, stderr: &Path) -> String {
        stop(self.0.take().unwrap(), stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn stop(child: Child, stderr: &Path) -> String {
    signal(&child, "TERM");
    let status = wait(child, Duration::from_secs(60)).status;
    let log = std::fs::read_to_string(stderr).unwrap();
    assert!(status.success(), "tapline failed:\n{log}");
    log
}

/// The saved offset of the one file checkpointed.
fn checkpointed_offset(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("data/kong/checkpoints.json")).ok()?;
    let saved: serde_json::Value = serde_json::from_str(&text).ok()?;
    saved.as_array()?.first()?["offset"].as_u64()
}

#[test]
fn a_failed_delivery_is_read_again_from_the_first_undelivered_line() {
    let dir = tempfile::tempdir().unwrap();
    let (log, out, before) = (dir.path().join("access.log"), dir.path().join("out.jsonl"), dir.path().join("out.1.jsonl"));
    append(&log, 0..1000);
    let (child, stderr) = Running::start(&config(dir.path(), &out, true), dir.path());
    wait_for("the first 1000 lines", Duration::from_secs(60), || id_counts(&out).len() >= 1000);
    // For 5 s the output cannot be written: its path is a directory.
    std::fs::rename(&out, &before).unwrap();
    std::fs::create_dir(&out).unwrap();
    append(&log, 1000..5000);
    std::thread::sleep(Duration::from_secs(5));
    std::fs::remove_dir(&out).unwrap();
    let outs = [before, out];
    wait_for("all 5000 lines", Duration::from_secs(90), || counts(&outs).len() >= 5000);
    let log = child.stop(&stderr);
    let seen = counts(&outs);
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), (0..5000).collect::<Vec<_>>(), "lines lost");
    assert!(log.contains("reading them again from the last delivered line"), "{log}");
    assert!(totals(&log, "kong", "tail_rewinds_total") >= 1, "{log}");
    assert!(totals(&log, "out", "component_errors_total") >= 1, "{log}");
    eprintln!("sink failing for 5 s: 5000 lines in, 5000 out, 0 lost, {} read twice", duplicates(&seen));
}

#[test]
fn a_caught_up_source_saves_its_checkpoint_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let (log, out) = (dir.path().join("access.log"), dir.path().join("out.jsonl"));
    append(&log, 0..5000);
    let (child, stderr) = Running::start(&config(dir.path(), &out, true), dir.path());
    wait_for("5000 lines", Duration::from_secs(60), || id_counts(&out).len() >= 5000);
    let size = std::fs::metadata(&log).unwrap().len();
    wait_for("the checkpoint", Duration::from_secs(3), || checkpointed_offset(dir.path()) == Some(size));
    // Idle, caught up: a kill -9 now costs nothing on restart.
    child.kill();
    append(&log, 5000..5010);
    let (child, _) = Running::start(&config(dir.path(), &out, true), dir.path());
    wait_for("5010 lines", Duration::from_secs(60), || id_counts(&out).len() >= 5010);
    child.stop(&stderr);
    let seen = id_counts(&out);
    assert_eq!(seen.len(), 5010);
    assert_eq!(duplicates(&seen), 0, "lines read twice after a kill -9 of a caught-up source");
}

/// A tiny random generator for the kill times, seeded from the clock (the seed is printed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Lines in a file, counted fast (no parsing).
fn lines_in(path: &Path) -> usize {
    std::fs::read(path).map(|bytes| bytes.iter().filter(|b| **b == b'\n').count()).unwrap_or(0)
}

/// `kill -9` at random points of a 200 000-line run, then a clean run to the end.
fn kill_storm(acks: bool) {
    const LINES: usize = 200_000;
    const KILLS: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let (log, out) = (dir.path().join("access.log"), dir.path().join("out.jsonl"));
    append(&log, 0..LINES);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut random = Lcg(seed);
    // Read twice at most, per kill: what was settled after the last checkpoint
    // save (at most 1 s of output), and what was in flight (a read chunk, the
    // sink's buffer, a batch being written: a few thousand lines).
    let mut bound = 0;
    for _ in 0..KILLS {
        let at_start = lines_in(&out);
        let (child, _) = Running::start(&config(dir.path(), &out, acks), dir.path());
        let until = Instant::now() + Duration::from_millis(300 + random.below(1500));
        let mut written = Vec::new();
        while Instant::now() < until {
            written.push((Instant::now(), lines_in(&out)));
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill();
        let at_kill = lines_in(&out);
        let second_before =
            written.iter().rev().find(|(t, _)| until.duration_since(*t) >= Duration::from_millis(1100)).map_or(at_start, |(_, n)| *n);
        bound += at_kill.saturating_sub(second_before) + 4000;
    }
    let started = Instant::now();
    let (child, stderr) = Running::start(&config(dir.path(), &out, acks), dir.path());
    wait_for("every line", Duration::from_secs(300), || id_counts(&out).len() >= LINES);
    let elapsed = started.elapsed();
    child.stop(&stderr);
    let seen = id_counts(&out);
    let (lost, twice) = (LINES - seen.len(), duplicates(&seen));
    eprintln!(
        "kill -9 ×{KILLS} (acknowledgements {acks}, seed {seed}): {LINES} lines in, {} out, {lost} lost, {twice} read twice (bound {bound}: 1 s of output + 4000 per kill); the last run took {elapsed:?}",
        LINES + twice
    );
    assert_eq!(lost, 0, "lines lost");
    assert!(twice <= bound, "{twice} lines read twice, more than {bound}");
}

#[test]
fn kill_9_loses_nothing_with_acknowledgements() {
    kill_storm(true);
}

#[test]
fn kill_9_loses_nothing_without_acknowledgements() {
    kill_storm(false);
}

/// Without acknowledgements, behind a slow sink: lines wait in buffers, and a
/// `kill -9` must not find them checkpointed.
#[test]
fn kill_9_behind_a_slow_sink_loses_nothing_without_acknowledgements() {
    const LINES: usize = 30_000;
    let dir = tempfile::tempdir().unwrap();
    let (log, fifo) = (dir.path().join("access.log"), dir.path().join("out.fifo"));
    append(&log, 0..LINES);
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // The reader: slow until told to hurry, and it opens the pipe again for each new writer.
    let hurry = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (fifo, hurry) = (fifo.clone(), hurry.clone());
        std::thread::spawn(move || {
            let (mut got, mut piece, mut seen) = (Vec::new(), vec![0u8; 4096], std::collections::BTreeSet::new());
            loop {
                let mut pipe = std::fs::File::open(&fifo).unwrap();
                loop {
                    let n = pipe.read(&mut piece).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&piece[..n]);
                    let complete = got.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                    for line in got[..complete].split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        // A writer killed mid-write leaves part of a record (not settled: it comes
                        // again), and the next writer's first record follows it on the same line.
                        let line = String::from_utf8_lossy(line);
                        let record = line.rfind("{\"time\"").map_or(&line[..], |at| &line[at..]);
                        let record: serde_json::Value = serde_json::from_str(record).unwrap_or_else(|e| panic!("{e}: {line}"));
                        seen.insert(record["request_id"].as_str().unwrap().to_string());
                    }
                    got.drain(..complete);
                    if seen.len() >= LINES {
                        return seen.len();
                    }
                    if !hurry.load(std::sync::atomic::Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        })
    };
    // The sink drains a batch in seconds: lines wait in buffers far longer than a checkpoint interval.
    for _ in 0..2 {
        let (child, _) = Running::start(&config(dir.path(), &fifo, false), dir.path());
        std::thread::sleep(Duration::from_secs(3));
        child.kill();
    }
    hurry.store(true, std::sync::atomic::Ordering::Relaxed);
    let (child, stderr) = Running::start(&config(dir.path(), &fifo, false), dir.path());
    let deadline = Instant::now() + Duration::from_secs(120);
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "lines lost: the reader never saw them all");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(reader.join().unwrap(), LINES);
    child.stop(&stderr);
    eprintln!("kill -9 ×2 behind a slow sink, acknowledgements off: {LINES} lines in, all {LINES} out, 0 lost");
}

#[test]
fn sigterm_under_backpressure_stops_reading_at_once() {
    const LINES: usize = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let (log, fifo, rest) = (dir.path().join("access.log"), dir.path().join("out.fifo"), dir.path().join("rest.jsonl"));
    append(&log, 0..LINES);
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let (child, stderr) = Running::start(&config(dir.path(), &fifo, true), dir.path());
    // A slow reader: the sink, and behind it the source, wait on the pipe.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut pipe = std::fs::File::open(&fifo).unwrap();
            let (mut got, mut piece, started) = (Vec::new(), vec![0u8; 4096], Instant::now());
            loop {
                let n = pipe.read(&mut piece).unwrap();
                if n == 0 {
                    return got;
                }
                got.extend_from_slice(&piece[..n]);
                if started.elapsed() < Duration::from_secs(3) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let asked = Instant::now();
    let log_text = child.stop(&stderr);
    let took = asked.elapsed();
    let written = reader.join().unwrap();
    let delivered = String::from_utf8(written).unwrap().lines().count();
    // The source stopped reading at SIGTERM: what came out is what was in flight then.
    assert!(delivered < LINES / 4, "{delivered} of {LINES} lines were read after SIGTERM into a blocked pipe");
    assert!(took < Duration::from_secs(30), "shutdown took {took:?}");
    // The checkpoint covers exactly what was delivered: a restart reads the rest, none twice.
    let offset = checkpointed_offset(dir.path()).unwrap();
    let delivered_bytes: usize = (0..delivered).map(|n| kong_line(n).len()).sum();
    assert_eq!(offset, delivered_bytes as u64, "checkpoint past or behind what was delivered:\n{log_text}");
    let (child, stderr) = Running::start(&config(dir.path(), &rest, true), dir.path());
    wait_for("the rest", Duration::from_secs(120), || id_counts(&rest).len() >= LINES - delivered);
    child.stop(&stderr);
    let seen = id_counts(&rest);
    assert_eq!(seen.keys().next(), Some(&delivered));
    assert_eq!((seen.len(), duplicates(&seen)), (LINES - delivered, 0));
    eprintln!("SIGTERM under backpressure: {delivered} lines delivered before stopping (in {took:?}), the other {} after restart, 0 lost, 0 twice", LINES - delivered);
}

#[test]
fn a_file_rotated_away_while_down_is_read_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let (log, out) = (dir.path().join("access.log"), dir.path().join("out.jsonl"));
    let config = config(dir.path(), &out, true);
    append(&log, 0..1000);
    let (child, stderr) = Running::start(&config, dir.path());
    wait_for("1000 lines", Duration::from_secs(60), || id_counts(&out).len() >= 1000);
    child.stop(&stderr);
    // While tapline is down, Kong writes more, the file is rotated out of the glob, a new one begun.
    append(&log, 1000..1500);
    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    append(&log, 1500..1700);
    let (child, stderr) = Running::start(&config, dir.path());
    wait_for("1700 lines", Duration::from_secs(60), || id_counts(&out).len() >= 1700);
    let text = child.stop(&stderr);
    assert!(text.contains("renamed while tapline was down; reading its rest"), "{text}");
    let seen = id_counts(&out);
    assert_eq!((seen.len(), duplicates(&seen)), (1700, 0));

    // Deleted while down: said, counted, and its checkpoint dropped.
    append(&log, 1700..1800);
    let (child, stderr) = Running::start(&config, dir.path());
    wait_for("1800 lines", Duration::from_secs(60), || id_counts(&out).len() >= 1800);
    child.stop(&stderr);
    append(&log, 1800..1850);
    std::fs::remove_file(&log).unwrap();
    append(&log, 1850..1900);
    let (child, stderr) = Running::start(&config, dir.path());
    wait_for("1850 lines", Duration::from_secs(60), || id_counts(&out).len() >= 1850);
    let text = child.stop(&stderr);
    assert!(text.contains("a checkpointed file is gone"), "{text}");
    assert_eq!(totals(&text, "kong", "tail_checkpointed_files_lost_total"), 1);
    // Every checkpoint left names a file that exists (by device and inode).
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("data/kong/checkpoints.json")).unwrap()).unwrap();
    let files: Vec<(u64, u64)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap())
        .map(|m| (std::os::unix::fs::MetadataExt::dev(&m), std::os::unix::fs::MetadataExt::ino(&m)))
        .collect();
    for entry in saved.as_array().unwrap() {
        let key = (entry["key"]["dev"].as_u64().unwrap(), entry["key"]["ino"].as_u64().unwrap());
        assert!(files.contains(&key), "a checkpoint for a file that is gone was kept: {entry}");
    }
    // What was written to the deleted file after the stop is gone with it: 1800..1850.
    assert_eq!(id_counts(&out).len(), 1850);
}

#[test]
fn checkpoints_are_synced_and_a_failed_save_is_counted() {
    if !root("the checkpoint tests trace system calls and mount a small disk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (log, out, trace) = (dir.path().join("access.log"), dir.path().join("out.jsonl"), dir.path().join("strace.txt"));
    append(&log, 0..100);
    let config_path = dir.path().join("pipeline.toml");
    std::fs::write(&config_path, config(dir.path(), &out, true)).unwrap();
    let stderr = dir.path().join("stderr.log");
    let child = Command::new("strace")
        .args(["-f", "-y", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_tapline"))
        .args(["run", "--config"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("strace must be installed (scripts/install-test-deps.sh)");
    wait_for("100 lines", Duration::from_secs(60), || id_counts(&out).len() >= 100);
    wait_for("the checkpoint", Duration::from_secs(5), || checkpointed_offset(dir.path()).is_some());
    // strace exits with tapline's status once tapline, its child, stops.
    assert!(Command::new("pkill").args(["-TERM", "-P", &child.id().to_string()]).status().unwrap().success());
    let status = wait(child, Duration::from_secs(60)).status;
    assert!(status.success(), "{}", std::fs::read_to_string(&stderr).unwrap());
    let calls = std::fs::read_to_string(&trace).unwrap();
    let data = dir.path().join("data/kong");
    let synced = |path: &str| calls.lines().any(|l| l.contains("fsync(") && l.contains(&format!("<{path}>")) && l.ends_with("= 0"));
    assert!(synced(&format!("{}/checkpoints.json.tmp", data.display())), "the new checkpoint is not synced before its rename:\n{calls}");
    assert!(synced(&data.display().to_string()), "the directory is not synced after the rename:\n{calls}");

    // A data_dir on a full disk: saves fail, are counted, and leave nothing behind.
    let disk = SmallDisk::mount(&dir.path().join("full"), 256 << 10);
    let data_dir = disk.dir.join("data");
    let second = dir.path().join("second");
    let (log2, out2) = (second.join("access.log"), second.join("out.jsonl"));
    std::fs::create_dir_all(data_dir.join("kong")).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    append(&log2, 0..50);
    disk.fill();
    let (child, stderr) = Running::start(&config_at(&data_dir, &second, &out2, true), &second);
    wait_for("50 lines", Duration::from_secs(60), || id_counts(&out2).len() >= 50);
    std::thread::sleep(Duration::from_millis(2500));
    let text = child.stop(&stderr);
    assert!(totals(&text, "kong", "tail_checkpoint_save_errors_total") >= 1, "{text}");
    assert!(text.contains("cannot save checkpoints"), "{text}");
    assert!(!data_dir.join("kong/checkpoints.json.tmp").exists(), "a failed save left its temporary file");
}
