//! The HTTP receivers against hostile or unlucky clients: slowloris, idle
//! connections, huge bodies, floods of bad requests, a sink that stalls while
//! acknowledgements are on. A receiver must keep its limits, `/health` must
//! keep answering, and the log must not flood.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

/// A pipeline with the admin API on `api`; `DIR` in `config` is its directory.
fn start_with_api(api: u16, config: &str) -> Pipeline {
    let dir = tempfile::tempdir().unwrap();
    let config = config.replace("DIR", dir.path().to_str().unwrap());
    // `[api]` last: the config may begin with top-level options.
    let (child, stderr) = spawn_logged(&format!("{config}\n[api]\naddress = \"127.0.0.1:{api}\"\n"), dir.path());
    wait_for("the admin API", Duration::from_secs(30), || health(api));
    Pipeline { child: Some(child), dir, stderr }
}

/// `kong_http_log` on `port` with `options`, into `DIR/out.jsonl` (or `sink_path`).
fn receiver(port: u16, api: u16, options: &str, sink_path: &str, sink_options: &str) -> Pipeline {
    let pipeline = start_with_api(
        api,
        &format!(
            "[sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{port}\"\n{options}\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"kong\"]\npath = \"{sink_path}\"\nencoding.codec = \"json\"\n{sink_options}\n"
        ),
    );
    wait_for("the source to listen", Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", port)).is_ok());
    pipeline
}

fn entries(ids: std::ops::Range<usize>) -> String {
    let entries: Vec<String> = ids.map(|n| kong_line(n).trim_end().to_string()).collect();
    format!("[{}]", entries.join(","))
}

/// A POST of an http-log body, raw HTTP/1.1 over a new connection.
fn post_raw(port: u16, body: &str, extra_headers: &str) -> u16 {
    raw(
        port,
        format!("POST / HTTP/1.1\r\nHost: tapline\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            .as_bytes(),
    )
}

/// One raw HTTP/1.1 exchange; the answer's status (0 if the server closed first).
fn raw(port: u16, request: &[u8]) -> u16 {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return 0 };
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    if stream.write_all(request).is_err() {
        return 0;
    }
    let mut head = [0u8; 12];
    match stream.read_exact(&mut head) {
        Ok(()) => String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0),
        Err(_) => 0,
    }
}

fn health(api: u16) -> bool {
    http_get(api, "/health").is_some_and(|r| r.starts_with("HTTP/1.1 200"))
}

/// VmRSS of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok()).unwrap_or(0)
        * 1024
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Whether the server has closed this connection (EOF or reset, without blocking).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let closed = match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

fn log_lines(log: &str, what: &str) -> usize {
    log.lines().filter(|l| l.contains(what)).count()
}

#[test]
fn a_stalled_delivery_is_answered_503_and_withdrawn() {
    let (port, api) = (free_port(), free_port());
    let fifo_dir = tempfile::tempdir().unwrap();
    let fifo = fifo_dir.path().join("out.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // The sink writes to a pipe nobody reads yet: it stalls on the first batch; the next waits in its buffer.
    let mut pipeline =
        receiver(port, api, "ack_timeout_secs = 2", &fifo.display().to_string(), "buffer.max_events = 100\nacknowledgements = true");
    let started = Instant::now();
    assert_eq!(post_raw(port, &entries(0..10), ""), 503, "the batch the stalled sink holds");
    assert_eq!(post_raw(port, &entries(10..20), ""), 503, "the batch waiting in the buffer");
    assert!(started.elapsed() < Duration::from_secs(10), "each request should end after ack_timeout_secs");
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            std::fs::File::open(&fifo).unwrap().read_to_string(&mut text).unwrap();
            text
        })
    };
    // Kong retries the second batch: delivered once, not twice.
    assert_eq!(post_raw(port, &entries(10..20), ""), 200);
    let log = pipeline.stop();
    let written = reader.join().unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for line in written.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        *counts.entry(record["request_id"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    for n in 10..20 {
        assert_eq!(counts.get(&format!("line-{n}")), Some(&1), "line-{n}: the withdrawn copy was delivered too: {counts:?}");
    }
    assert_eq!(totals(&log, "kong", "http_ack_timeouts_total"), 2, "{log}");
    assert_eq!(totals(&log, "out", "component_discarded_events_total"), 10, "the withdrawn events are counted where they were dropped");
}

#[test]
fn bodies_in_flight_have_a_memory_budget() {
    let (port, api) = (free_port(), free_port());
    let pipeline = receiver(port, api, "", "DIR/out.jsonl", "");
    let pid = pipeline.child.as_ref().unwrap().id();
    // A Content-Length over max_body_bytes is refused before any of the body is sent.
    let head = "POST / HTTP/1.1\r\nHost: tapline\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n";
    assert_eq!(raw(port, head.as_bytes()), 413);
    let before = rss(pid);
    // 60 clients each send a 16 MiB body but its last byte, and hold on.
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let size = 16 << 20;
    let clients: Vec<_> = (0..60)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
                let head = format!("POST / HTTP/1.1\r\nHost: tapline\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n");
                let _ = stream.write_all(head.as_bytes());
                let piece = vec![b' '; 1 << 20];
                let mut sent = 0;
                // A refused request is answered and closed: the writes then fail.
                while sent + piece.len() < size && stream.write_all(&piece).is_ok() {
                    sent += piece.len();
                }
                let _ = stream.write_all(&piece[..size.saturating_sub(sent + 1).min(piece.len())]);
                stream
            })
        })
        .collect();
    let held: Vec<TcpStream> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    std::thread::sleep(Duration::from_secs(1));
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let refused = metric(api, "http_requests_refused_total", "kong").unwrap_or(0);
    let grown = peak.load(Ordering::Relaxed).saturating_sub(before);
    eprintln!(
        "60 clients × 16 MiB bodies short of their last byte: RSS {} MiB → peak +{} MiB, {refused} refused with 503",
        before >> 20,
        grown >> 20
    );
    // The budget (64 MiB by default) holds about 4 bodies; the others are refused, not buffered.
    assert!(refused >= 50, "only {refused} of 60 refused");
    assert!(grown < 300 << 20, "RSS grew by {} MiB", grown >> 20);
    assert!(health(api));
    // Once the held bodies are gone, so is what they held of the budget.
    drop(held);
    wait_for("the budget to be given back", Duration::from_secs(10), || post_raw(port, &entries(0..5), "") == 200);
}

#[test]
fn slowloris_and_idle_connections_are_closed_and_health_keeps_answering() {
    let (port, api) = (free_port(), free_port());
    let limits = "limits.max_connections = 100\nlimits.header_timeout_secs = 2\nlimits.idle_timeout_secs = 3";
    let mut pipeline = receiver(port, api, limits, "DIR/out.jsonl", "");
    let pid = pipeline.child.as_ref().unwrap().id();
    let baseline = open_files(pid);
    let mut slow: Vec<TcpStream> = Vec::new();
    let mut idle: Vec<TcpStream> = Vec::new();
    for i in 0..300 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        if i % 2 == 0 {
            let _ = stream.write_all(b"POST / HTTP/1.1\r\nHost: tapline\r\n");
            slow.push(stream);
        } else {
            idle.push(stream);
        }
    }
    let started = Instant::now();
    let (mut asked, mut failed) = (0, 0);
    while started.elapsed() < Duration::from_secs(5) {
        // Slowloris: a byte of header now and then, never the end of the headers.
        for stream in &mut slow {
            let _ = stream.write_all(b"X");
        }
        asked += 1;
        failed += usize::from(!health(api));
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(failed, 0, "/health failed {failed} of {asked} times");
    let still_open = slow.iter_mut().chain(idle.iter_mut()).map(closed_by_server).filter(|closed| !closed).count();
    assert_eq!(still_open, 0, "{still_open} slow or idle connections still open after their timeouts");
    wait_for("the descriptors to be freed", Duration::from_secs(10), || open_files(pid) <= baseline + 5);
    assert_eq!(post_raw(port, &entries(0..5), ""), 200);
    let log = pipeline.stop();
    assert!(totals(&log, "kong", "http_connections_refused_total") >= 150, "{log}");
    assert!(totals(&log, "kong", "http_timeouts_total") >= 100, "{log}");
    // Refusals and timeouts are logged, but not one line each.
    assert!(log_lines(&log, "WARN") <= 10, "{} warnings:\n{log}", log_lines(&log, "WARN"));
}

#[test]
fn a_flood_of_bad_requests_is_counted_and_logged_sparingly() {
    let (port, api) = (free_port(), free_port());
    let mut pipeline = receiver(port, api, "auth.token = \"s3cret\"", "DIR/out.jsonl", "");
    let mut connection = TcpStream::connect(("127.0.0.1", port)).unwrap();
    connection.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // On one keep-alive connection, as fast as the server answers.
    let mut statuses = BTreeSet::new();
    let mut reader = std::io::BufReader::new(connection.try_clone().unwrap());
    for i in 0..3000 {
        let (auth, body) = if i % 10 == 0 { ("wrong", "") } else { ("s3cret", "not json") };
        let request = format!(
            "POST / HTTP/1.1\r\nHost: tapline\r\nAuthorization: Bearer {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        connection.write_all(request.as_bytes()).unwrap();
        statuses.insert(read_response(&mut reader));
    }
    assert_eq!(statuses, BTreeSet::from([400, 401]));
    // Two content types: refused, the receiver cannot tell which one to believe.
    let two = "[]";
    let doubled = format!("POST / HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{two}", two.len());
    connection.write_all(doubled.as_bytes()).unwrap();
    assert_eq!(read_response(&mut reader), 400);
    std::thread::sleep(Duration::from_secs(11));
    // After the quiet period, the next refusal is logged with the count of those held back.
    connection.write_all(doubled.as_bytes()).unwrap();
    assert_eq!(read_response(&mut reader), 400);
    let log = pipeline.stop();
    assert!(log_lines(&log, "request refused") <= 3, "{log}");
    assert!(log_lines(&log, "authentication failed") >= 1, "a failed authentication is logged:\n{log}");
    let held_back: u64 = log
        .lines()
        .filter(|l| l.contains("request refused"))
        .filter_map(|l| l.split("suppressed=").nth(1)?.split_whitespace().next()?.parse().ok())
        .max()
        .unwrap_or(0);
    assert!(held_back >= 2000, "the suppressed count is reported: {held_back}\n{log}");
    assert!(totals(&log, "kong", "http_requests_refused_total") >= 3001, "{log}");
}

/// Read one HTTP/1.1 response (status line, headers, `Content-Length` body); its status.
fn read_response(reader: &mut impl std::io::BufRead) -> u16 {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header.trim().is_empty() {
            break;
        }
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    status
}

/// A steady Kong posting with acknowledgements beside hostile clients, for
/// `TAPLINE_SOAK_SECS` (60 by default; the release notes quote a 600 s run).
#[test]
fn a_soak_with_hostile_clients_stays_bounded_and_loses_nothing_accepted() {
    let seconds: u64 = std::env::var("TAPLINE_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let (port, api) = (free_port(), free_port());
    let mut pipeline = start_with_api(
        api,
        &format!(
            "acknowledgements = true\n\
             [sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{port}\"\nlimits.header_timeout_secs = 5\nlimits.idle_timeout_secs = 10\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"kong\"]\npath = \"DIR/out.jsonl\"\nencoding.codec = \"json\"\n"
        ),
    );
    wait_for("the source to listen", Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", port)).is_ok());
    let pid = pipeline.child.as_ref().unwrap().id();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut hostile = Vec::new();
    // Slowloris and idle connections, kept at 200 each.
    for slow in [true, false] {
        let stop = stop.clone();
        hostile.push(std::thread::spawn(move || {
            let mut open: Vec<TcpStream> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                open.retain_mut(|s| !closed_by_server(s));
                while open.len() < 200 {
                    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { break };
                    if slow {
                        let _ = s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\n");
                    }
                    open.push(s);
                }
                if slow {
                    for s in &mut open {
                        let _ = s.write_all(b"X");
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }));
    }
    // Oversized bodies, declared and sent.
    {
        let stop = stop.clone();
        hostile.push(std::thread::spawn(move || {
            let big = vec![b' '; 4 << 20];
            while !stop.load(Ordering::Relaxed) {
                let head = "POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n";
                raw(port, head.as_bytes());
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    let head =
                        format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", 17 << 20);
                    let _ = s.write_all(head.as_bytes());
                    for _ in 0..4 {
                        let _ = s.write_all(&big);
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }));
    }
    // Kong: 50 entries every 50 ms, retried until accepted.
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let kong = {
        let (stop, accepted) = (stop.clone(), accepted.clone());
        std::thread::spawn(move || {
            let mut next = 0;
            while !stop.load(Ordering::Relaxed) {
                let batch = next..next + 50;
                while post_raw(port, &entries(batch.clone()), "") != 200 {
                    std::thread::sleep(Duration::from_millis(100));
                }
                accepted.lock().unwrap().extend(batch);
                next += 50;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let (mut peak_rss, mut files, mut health_failures, mut samples) = (0u64, Vec::new(), 0, 0);
    while Instant::now() < deadline {
        peak_rss = peak_rss.max(rss(pid));
        files.push(open_files(pid));
        health_failures += usize::from(!health(api));
        samples += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    stop.store(true, Ordering::Relaxed);
    kong.join().unwrap();
    for thread in hostile {
        thread.join().unwrap();
    }
    let log = pipeline.stop();
    let accepted = accepted.lock().unwrap().clone();
    let written = id_counts(&pipeline.path("out.jsonl"));
    let lost = accepted.iter().filter(|id| !written.contains_key(id)).count();
    let (first_half, second_half) = files.split_at(files.len() / 2);
    let (early, late) = (first_half.iter().max().copied().unwrap_or(0), second_half.iter().max().copied().unwrap_or(0));
    eprintln!(
        "soak {seconds} s: {} entries accepted, {lost} lost, peak RSS {} MiB, open files max {early} (first half) / {late} (second half), /health failed {health_failures} of {samples}",
        accepted.len(),
        peak_rss >> 20
    );
    assert_eq!(lost, 0, "accepted entries not written");
    assert_eq!(health_failures, 0);
    assert!(peak_rss < 400 << 20, "peak RSS {} MiB", peak_rss >> 20);
    assert!(late <= early + 50, "open files grew: {early} → {late}");
    assert!(accepted.len() >= 50 * seconds as usize, "Kong got too little through: {}", accepted.len());
    assert!(totals(&log, "kong", "http_timeouts_total") > 0, "the slow clients were not timed out:\n{log}");
}
