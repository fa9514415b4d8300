//! Whole pipelines from TOML files, run by the real `tapline` binary.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

/// Run a pipeline file with `input` on stdin until it ends by itself.
fn run_pipeline(name: &str, input: &str) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args(["run", "--config"])
        .arg(here(&format!("tests/topology/pipelines/{name}")))
        .env("OUT", out.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = wait(child, Duration::from_secs(60));
    assert!(output.status.success(), "exit {:?}; stderr:\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    out
}

/// Drop what the stdin source adds, to compare with what went in.
fn without_stdin_fields(mut v: Value) -> Value {
    if let Some(map) = v.as_object_mut() {
        map.remove("source_type");
        map.remove("timestamp");
    }
    v
}

#[test]
fn fan_out_gives_every_sink_every_event_in_order() {
    let input: Vec<Value> = (0..2500).map(|i| json!({"n": i, "path": format!("/orders/{i}")})).collect();
    let text: String = input.iter().map(|v| format!("{v}\n")).collect();
    let out = run_pipeline("fanout.toml", &text);
    for sink in ["a.jsonl", "b.jsonl"] {
        let got: Vec<Value> = read_json(&out.path().join(sink)).into_iter().map(without_stdin_fields).collect();
        assert_eq!(got, input, "{sink}");
    }
}

#[test]
fn route_remap_filter_and_glob_fan_in() {
    let input = [
        json!({"id": 1, "status": 200, "latency": 20}),
        json!({"id": 2, "status": 503, "latency": 300}),
        json!({"id": 3, "status": 404, "latency": 5}),
        json!({"id": 4, "status": 201, "latency": 150}),
        json!({"id": 5, "status": 500, "latency": 40}),
        json!({"id": 6, "status": 429, "latency": 1}),
        json!({"id": 7, "status": 302, "latency": 101}),
    ];
    let text: String = input.iter().map(|v| format!("{v}\n")).collect();
    let out = run_pipeline("routing.toml", &text);
    let by_id = |file: &str| -> BTreeMap<i64, Value> {
        read_json(&out.path().join(file)).into_iter().map(|v| (v["id"].as_i64().unwrap(), without_stdin_fields(v))).collect()
    };
    let all = by_id("all.jsonl");
    assert_eq!(all.keys().copied().collect::<Vec<_>>(), [1, 2, 4, 5, 7]);
    for (id, class) in [(1, "ok"), (2, "error"), (4, "ok"), (5, "error"), (7, "ok")] {
        assert_eq!(all[&id]["class"], class, "event {id}");
    }
    assert_eq!(all[&2], json!({"id": 2, "status": 503, "latency": 300, "class": "error"}));
    assert_eq!(by_id("slow.jsonl").keys().copied().collect::<Vec<_>>(), [2, 4, 7]);
    // `_unmatched`, written to one file per status by the path template.
    assert_eq!(by_id("other-404.jsonl").keys().copied().collect::<Vec<_>>(), [3]);
    assert_eq!(by_id("other-429.jsonl").keys().copied().collect::<Vec<_>>(), [6]);
}

#[test]
fn remap_errors_are_rerouted_not_lost() {
    let text = "{\"a\": 1}\nnot json\n{\"a\": 2}\n{broken\n";
    let out = run_pipeline("remap_errors.toml", text);
    assert_eq!(read_json(&out.path().join("good.jsonl")), [json!({"a": 1, "seen": true}), json!({"a": 2, "seen": true})]);
    assert_eq!(read_lines(&out.path().join("bad.txt")), ["not json", "{broken"]);
}

#[test]
fn every_example_validates() {
    let mut checked = 0;
    for entry in std::fs::read_dir(here("config/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| !["toml", "yaml", "json"].contains(&e.to_str().unwrap_or(""))) {
            continue;
        }
        let out = bin().args(["validate", "--no-environment", "--config"]).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // A build without some cargo feature (not CI's: it builds them all) cannot run every example.
        if !out.status.success()
            && stderr.contains("is not in this build of tapline")
            && !cfg!(all(feature = "ebpf", feature = "kafka", feature = "kubernetes", feature = "otlp"))
        {
            continue;
        }
        assert!(out.status.success(), "{}:\n{stderr}", path.display());
        checked += 1;
    }
    assert!(checked >= 1);
}

/// Without acknowledgements, an HTTP source's 200 means "in memory" (a crash
/// loses it): every Kong example turns them on.
#[test]
fn every_kong_example_asks_for_acknowledgements() {
    for entry in std::fs::read_dir(here("config/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if !(text.contains("\"kong_http_log\"") || text.contains("\"kong_file_log\"")) {
            continue;
        }
        let on = text.lines().any(|l| l.trim() == "acknowledgements = true" || l.trim() == "acknowledgements.enabled = true");
        assert!(on, "{} reads Kong's logs without acknowledgements", path.display());
    }
}

#[test]
fn invalid_configs_give_precise_errors() {
    let mut checked = 0;
    for entry in std::fs::read_dir(here("tests/topology/invalid")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks `# expect:`", path.display()));
        let (place, message) = expect.split_at(expect.find(": ").unwrap());
        let out = bin()
            .args(["validate", "--no-environment", "--config"])
            .arg(&path)
            .env("TAPLINE_TEST_NEWLINE", "1\n[sinks.x]")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{}: {stderr}", path.display());
        let wanted = format!("{}:{place}: error{message}", path.display());
        assert!(stderr.contains(&wanted), "{}:\nwanted: {wanted}\ngot: {stderr}", path.display());
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} invalid configs");
}

/// JSON has no comments for `# expect:`: its errors are checked here.
#[test]
fn json_errors_say_where() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("{\n  \"sources\": {\n    \"kong\": {\"type\": \"demo\",}\n  }\n}\n", "3:29: error: invalid JSON: key must be a string"),
        ("{\"sources\": {\"kong\": {\"type\": \"demo\"}},\n \"sinks\": {\"o\": {\"type\": \"blackhole\", \"inputs\": [\"kong\"], \"rate\": 1}}}\n", "2:59: error: unknown field `rate`"),
        ("{\"sources\": {\"kong\": {\"type\": \"demo\"}},\n \"sinks\": {\"o\": {\"type\": \"blackhole\", \"inputs\": [\"knog\"]}}}\n", "2:50: error: unknown input of `o`: `knog`"),
    ];
    for (i, (text, wanted)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("{i}.json"));
        std::fs::write(&path, text).unwrap();
        let out = bin().args(["validate", "--no-environment", "--config"]).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{stderr}");
        assert!(stderr.contains(&format!("{}:{wanted}", path.display())), "wanted {wanted}, got: {stderr}");
    }
}

/// `tapline convert` writes each format so that it reads back as the same
/// config, and a directory of mixed formats merges.
#[test]
fn convert_round_trips_and_formats_mix_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let convert = |file: &std::path::Path, to: &str| {
        let out = bin().args(["convert", "--to", to]).arg(file).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let graph = |file: &std::path::Path| {
        let out = bin().args(["graph", "--config"]).arg(file).env("HTTP_ADDRESS", "127.0.0.1:1").output().unwrap();
        assert!(out.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let original = here("config/examples/vector-kong-http.toml");
    let expected = graph(&original);
    for to in ["yaml", "json", "toml"] {
        let converted = dir.path().join(format!("converted.{to}"));
        std::fs::write(&converted, convert(&original, to)).unwrap();
        assert_eq!(graph(&converted), expected, "{to}");
        let back = dir.path().join(format!("back-from-{to}.toml"));
        std::fs::write(&back, convert(&converted, "toml")).unwrap();
        assert_eq!(graph(&back), expected, "{to} back to toml");
    }
    let yaml = convert(&here("config/examples/vector-kong-http.toml"), "yaml");
    assert!(yaml.contains("    source: |\n      .service_name = .service.name\n"), "{yaml}");

    let mixed = tempfile::tempdir().unwrap();
    std::fs::write(mixed.path().join("1-sources.yaml"), "sources:\n  kong:\n    type: demo\n").unwrap();
    std::fs::write(mixed.path().join("2-sinks.json"), "{\"sinks\": {\"o\": {\"type\": \"blackhole\", \"inputs\": [\"kong\"]}}}").unwrap();
    std::fs::write(mixed.path().join("3-api.toml"), "[api]\nenabled = false\n").unwrap();
    let out = bin().args(["validate", "--no-environment", "--config-dir"]).arg(mixed.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid: 2 component(s)"));
}

#[test]
fn several_files_and_a_directory_merge() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("1-sources.toml"), "[sources.kong]\ntype = \"demo\"\n").unwrap();
    std::fs::write(dir.path().join("2-sinks.toml"), "[sinks.o]\ntype = \"blackhole\"\ninputs = [\"kong\"]\n").unwrap();
    std::fs::write(dir.path().join("ignored.txt"), "not toml").unwrap();
    let out = bin().args(["validate", "--no-environment", "--config-dir"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid: 2 component(s)"));
    let out = bin()
        .args(["validate", "--no-environment", "--config"])
        .arg(dir.path().join("1-sources.toml"))
        .arg("--config")
        .arg(dir.path().join("2-sinks.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn config_unit_tests_pass_and_fail() {
    let out = bin().args(["test", "--config"]).arg(here("tests/topology/pipelines/unit_tests.toml")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("test parses and flags slow requests ... passed"), "{stdout}");
    assert!(stdout.contains("2 passed, 0 failed"), "{stdout}");

    let out = bin().args(["test", "--config"]).arg(here("tests/topology/pipelines/unit_tests_failing.toml")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("test wrong expectation ... FAILED"), "{stdout}");
    assert!(stdout.contains("service should be users"), "{stdout}");
}

#[test]
fn graph_dot_and_mermaid() {
    let config = here("tests/topology/pipelines/routing.toml");
    let out = bin().args(["graph", "--format", "dot", "--config"]).arg(&config).env("OUT", "/tmp").output().unwrap();
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(dot.starts_with("digraph {"), "{dot}");
    assert!(dot.contains("\"by_status\" -> \"tag_errors\" [label=\"errors\"];"), "{dot}");
    assert!(dot.contains("\"tag_ok\" -> \"all\";"), "{dot}");
    let out = bin().args(["graph", "--format", "mermaid", "--config"]).arg(&config).env("OUT", "/tmp").output().unwrap();
    let mermaid = String::from_utf8_lossy(&out.stdout);
    assert!(mermaid.contains("by_status -->|_unmatched| other"), "{mermaid}");
}

#[test]
fn list_and_version() {
    let out = bin().arg("list").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["demo", "stdin", "internal_metrics", "remap", "filter", "route", "console", "file", "blackhole"] {
        assert!(text.contains(&format!("  {name} ")), "{name} missing from:\n{text}");
    }
    let out = bin().arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("tapline {}", env!("CARGO_PKG_VERSION")));
}

// --- The running binary: backpressure, shutdown, reload ---

#[test]
fn slow_sink_makes_the_source_wait_and_nothing_is_dropped() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\naddress = \"127.0.0.1:{port}\"\n[sources.kong]\ntype = \"demo\"\nrate = 0\ncount = 30000\nseed = 1\n\
             [sinks.out]\ntype = \"console\"\ninputs = [\"kong\"]\nencoding.codec = \"json\"\nbuffer.max_events = 1000\n"
        ),
    )
    .unwrap();
    let mut child = bin().args(["run", "--config"]).arg(&config).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Nobody reads stdout yet: the console sink blocks on a full pipe.
    wait_for("the admin API", Duration::from_secs(30), || metric(port, "component_sent_events_total", "kong").is_some());
    let health = http_get(port, "/health").unwrap();
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("{\"ok\":true}"), "{health}");
    let mut last = 0;
    wait_for("the source to stall", Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(500));
        let now = metric(port, "component_sent_events_total", "kong").unwrap();
        let stalled = now == last && now > 0;
        last = now;
        stalled
    });
    // Stalled well short of the 30000 it wants to send: the pipe (64 KiB) plus
    // the sink's buffer (1000 events) plus a batch in the sink's hands.
    assert!(last < 5000, "source sent {last} events into a blocked sink");
    assert_eq!(metric(port, "component_discarded_events_total", "kong"), Some(0));
    assert_eq!(metric(port, "component_discarded_events_total", "out"), Some(0));
    // Now read: everything arrives, and the run ends by itself.
    let lines = BufReader::new(child.stdout.take().unwrap()).lines().count();
    let output = wait(child, Duration::from_secs(60));
    assert!(output.status.success());
    assert_eq!(lines, 30000);
}

#[test]
fn sigterm_drains_every_event_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nenabled = false\n[sources.kong]\ntype = \"demo\"\nrate = 0\n\
             [transforms.shape]\ntype = \"remap\"\ninputs = [\"kong\"]\nsource = '. = {{\"id\": .request.id, \"status\": .response.status}}'\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"shape\"]\npath = \"{}\"\nencoding.codec = \"json\"\n",
            out.display()
        ),
    )
    .unwrap();
    let child = bin().args(["run", "--config"]).arg(&config).stderr(Stdio::piped()).spawn().unwrap();
    wait_for("events in the file", Duration::from_secs(30), || std::fs::metadata(&out).map(|m| m.len() > 100_000).unwrap_or(false));
    signal(&child, "TERM");
    let output = wait(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let generated = totals(&stderr, "kong", "component_received_events_total");
    let written = read_lines(&out).len() as u64;
    assert!(generated > 0);
    assert_eq!(written, generated, "{stderr}");
    assert_eq!(totals(&stderr, "out", "component_sent_events_total"), generated);
}

#[test]
fn threads_option_sets_the_workers_and_refuses_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let config = dir.path().join("p.toml");
    let pipeline = format!(
        "[api]\nenabled = false\n[sources.kong]\ntype = \"demo\"\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"kong\"]\npath = \"{}\"\nencoding.codec = \"json\"\n",
        out.display()
    );
    std::fs::write(&config, pipeline).unwrap();
    for (flag, env, workers) in [(Some("3"), None, 3), (None, Some("1"), 1)] {
        let _ = std::fs::remove_file(&out);
        let mut cmd = bin();
        cmd.args(["run", "--config"]).arg(&config).stderr(Stdio::piped());
        if let Some(n) = flag {
            cmd.args(["--threads", n]);
        }
        if let Some(n) = env {
            cmd.env("TAPLINE_THREADS", n);
        }
        let child = cmd.spawn().unwrap();
        wait_for("events in the file", Duration::from_secs(30), || std::fs::metadata(&out).map(|m| m.len() > 1000).unwrap_or(false));
        signal(&child, "TERM");
        let output = wait(child, Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let started = stderr.lines().find(|l| l.contains("tapline started")).expect("a start line");
        assert!(started.ends_with(&format!(" threads={workers}")), "{started}");
    }
    for args in [&["--threads", "0"][..], &["-t", "many"][..]] {
        let output = bin().args(["run", "--config"]).arg(&config).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.contains(&format!("invalid value '{}' for '--threads <THREADS>'", args[1])), "{stderr}");
    }
}

fn reload_config(path: &Path, out: &Path, version: &str, port: u16) {
    std::fs::write(
        path,
        format!(
            "[api]\naddress = \"127.0.0.1:{port}\"\n[sources.kong]\ntype = \"demo\"\nrate = 2000\n\
             [transforms.shape]\ntype = \"remap\"\ninputs = [\"kong\"]\nsource = '. = {{\"id\": .request.id, \"version\": \"{version}\"}}'\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"shape\"]\npath = \"{}\"\nencoding.codec = \"json\"\n",
            out.display()
        ),
    )
    .unwrap();
}

/// Counts per version; while tapline runs, the last line may be half written: skip it.
fn versions(out: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut counts = BTreeMap::new();
    for v in complete.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()) {
        *counts.entry(v["version"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    counts
}

/// Start, change the remap, trigger a reload with `trigger`, then stop:
/// both versions appear, the source kept running, and counts in = counts out.
fn check_reload(watch: bool, trigger: impl Fn(&Child)) {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let config = dir.path().join("p.toml");
    reload_config(&config, &out, "v1", port);
    let mut cmd = bin();
    cmd.args(["run", "--config"]).arg(&config);
    if watch {
        cmd.arg("--watch-config");
    }
    let child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    wait_for("v1 events", Duration::from_secs(30), || versions(&out).get("v1").is_some_and(|n| *n > 200));
    // An invalid config is refused and the old pipeline keeps going.
    std::fs::write(&config, "[sources.kong]\ntype = \"demo\"\nrat = 1\n").unwrap();
    trigger(&child);
    std::thread::sleep(Duration::from_millis(1500));
    let before = versions(&out)["v1"];
    wait_for("more v1 events after a refused reload", Duration::from_secs(30), || versions(&out)["v1"] > before + 200);
    // A valid change: the remap is rebuilt, the source is not.
    reload_config(&config, &out, "v2", port);
    trigger(&child);
    wait_for("v2 events", Duration::from_secs(30), || versions(&out).get("v2").is_some_and(|n| *n > 200));
    signal(&child, "TERM");
    let output = wait(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("new config is invalid"), "{stderr}");
    assert!(stderr.contains("unknown field `rat`"), "{stderr}");
    // Only the changed remap was rebuilt; the source and the sink kept running.
    assert_eq!(stderr.matches("reloaded:").count(), 1, "{stderr}");
    assert!(stderr.contains("reloading: keeping [\"kong\", \"out\"], removing []"), "{stderr}");
    assert!(stderr.contains("reloaded: started [\"shape\"]"), "{stderr}");
    let counts = versions(&out);
    let generated = totals(&stderr, "kong", "component_received_events_total");
    assert_eq!((counts["v1"] + counts["v2"]) as u64, generated, "{counts:?}\n{stderr}");
    // One source ran throughout: its counter was never reset by a rebuild.
    assert_eq!(totals(&stderr, "kong", "component_sent_events_total"), generated);
}

#[test]
fn sighup_reload_rebuilds_what_changed_and_loses_nothing() {
    check_reload(false, |child| signal(child, "HUP"));
}

#[test]
fn watch_config_reloads_on_file_change() {
    check_reload(true, |_| std::thread::sleep(Duration::from_millis(1100)));
}

/// With acknowledgements on, the source learns that its events were delivered;
/// when the sink cannot write, it learns that too.
#[test]
fn acknowledgements_reach_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let run = |path: &Path| {
        let config = dir.path().join("acks.toml");
        std::fs::write(
            &config,
            format!(
                "acknowledgements = true\n[api]\nenabled = false\n[sources.kong]\ntype = \"demo\"\nrate = 0\ncount = 5000\n\
                 [sinks.out]\ntype = \"file\"\ninputs = [\"kong\"]\npath = \"{}\"\nencoding.codec = \"json\"\n",
                path.display()
            ),
        )
        .unwrap();
        let output = bin().args(["run", "--config"]).arg(&config).output().unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = run(&dir.path().join("out.jsonl"));
    assert_eq!(totals(&stderr, "kong", "component_acknowledged_events_total"), 5000, "{stderr}");
    assert_eq!(read_lines(&dir.path().join("out.jsonl")).len(), 5000);
    // A directory cannot be opened as a file: nothing is acknowledged, all is counted.
    let stderr = run(dir.path());
    assert_eq!(totals(&stderr, "kong", "component_acknowledged_events_total"), 0, "{stderr}");
    assert!(totals(&stderr, "kong", "component_errors_total") > 0, "{stderr}");
    assert_eq!(totals(&stderr, "out", "component_discarded_events_total"), 5000, "{stderr}");
}

/// `red` over Kong's file-log: every request of the stream is in the
/// metrics, the last windows flushed when tapline stops.
#[test]
fn red_counts_every_request_of_a_kong_log() {
    // Kong log lines from the demo source (3000 of them, 10 % 5xx, 5 % 4xx).
    let dir = tempfile::tempdir().unwrap();
    let demo = format!(
        "[api]\nenabled = false\n[sources.kong]\ntype = \"demo\"\ncount = 3000\nrate = 0\nseed = 7\nerror_rate = 0.1\nclient_error_rate = 0.05\n\
         [sinks.log]\ntype = \"file\"\ninputs = [\"kong\"]\npath = \"{}/access.log\"\nencoding.codec = \"json\"\n",
        dir.path().display()
    );
    let (child, stderr) = spawn_logged(&demo, dir.path());
    assert!(wait(child, Duration::from_secs(60)).status.success(), "{}", std::fs::read_to_string(stderr).unwrap());
    let config = format!(
        "data_dir = \"{0}\"\n[api]\nenabled = false\n\
         [sources.kong]\ntype = \"kong_file_log\"\ninclude = [\"{0}/access.log\"]\nread_from = \"beginning\"\n\
         [transforms.red]\ntype = \"red\"\ninputs = [\"kong\"]\ndimensions = [\"service\", \"status\"]\n\
         [sinks.metrics]\ntype = \"file\"\ninputs = [\"red\"]\npath = \"{0}/metrics.jsonl\"\nencoding.codec = \"json\"\n\
         [sinks.records]\ntype = \"file\"\ninputs = [\"kong\"]\npath = \"{0}/records.jsonl\"\nencoding.codec = \"json\"\n",
        dir.path().display()
    );
    let (child, stderr) = spawn_logged(&config, dir.path());
    wait_for("3000 records", Duration::from_secs(60), || read_lines(&dir.path().join("records.jsonl")).len() == 3000);
    signal(&child, "TERM");
    assert!(wait(child, Duration::from_secs(60)).status.success(), "{}", std::fs::read_to_string(stderr).unwrap());
    let records = read_json(&dir.path().join("records.jsonl"));
    let metrics = read_json(&dir.path().join("metrics.jsonl"));
    assert_eq!(records.len(), 3000);
    // Per (service, status): the records counted, against the metric sums.
    let mut expected: BTreeMap<(String, String), f64> = BTreeMap::new();
    for r in &records {
        *expected.entry((r["service"].as_str().unwrap().to_string(), r["status"].to_string())).or_default() += 1.0;
    }
    let mut counted: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut errors = 0.0;
    let mut observed = 0;
    for m in &metrics {
        let key = (m["tags"]["service"].as_str().unwrap().to_string(), m["tags"]["status"].as_str().unwrap().to_string());
        match m["name"].as_str().unwrap() {
            "requests_total" => *counted.entry(key).or_default() += m["value"]["counter"]["value"].as_f64().unwrap(),
            "request_errors_total" => errors += m["value"]["counter"]["value"].as_f64().unwrap(),
            "request_duration_seconds" => observed += m["value"]["histogram"]["count"].as_u64().unwrap(),
            _ => {}
        }
    }
    assert_eq!(counted, expected);
    let server_errors = records.iter().filter(|r| r["status"].as_u64().unwrap() >= 500).count();
    assert!(server_errors > 100, "the stream has errors");
    assert_eq!(errors, server_errors as f64);
    assert_eq!(observed, records.iter().filter(|r| r["duration_us"].is_u64()).count() as u64);
}

/// `tapline vrl` runs a program on JSON lines as `remap` would, and says which lines failed.
#[test]
fn vrl_command_runs_a_program_on_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "{\"status\": \"503\"}\nnot json\n{\"status\": \"x\"}\n\n{\"status\": \"200\"}\n").unwrap();
    let out = bin()
        .args(["vrl", "--program", ".status = to_int!(.status)\n.error = .status >= 500"])
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, "{\"error\":true,\"status\":503}\n{\"error\":false,\"status\":200}\n", "{stderr}");
    assert!(stderr.contains("line 2: not a JSON object") && stderr.contains("line 3: function call error"), "{stderr}");
    assert_eq!(out.status.code(), Some(1));
    let bad = bin().args(["vrl", "--program", ".a = nope("]).output().unwrap();
    assert_eq!(bad.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid VRL program"));
}
