//! The `file` sink under faults: its output deleted or renamed, a full disk,
//! and event fields that try to steer its path out of its directory.

use std::path::Path;
use std::time::Duration;

use super::SmallDisk;
use crate::common::*;

/// Kong's http-log posting to tapline (acknowledgements on) and a file sink at `path`.
fn pipeline(path: &str) -> (Pipeline, u16) {
    let port = free_port();
    let pipeline = Pipeline::start(&format!(
        "[sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{port}\"\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"kong\"]\npath = \"{path}\"\nencoding.codec = \"json\"\nacknowledgements = true\n"
    ));
    wait_for("the source to listen", Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    (pipeline, port)
}

/// Post the entries `ids` as one http-log batch; the answer's status.
fn post_entries(port: u16, ids: std::ops::Range<usize>) -> u16 {
    let entries: Vec<String> = ids.map(|n| kong_line(n).trim_end().to_string()).collect();
    post(port, "/", format!("[{}]", entries.join(",")).as_bytes(), &["Content-Type: application/json"]).status
}

fn ids(path: &Path) -> Vec<usize> {
    id_counts(path).into_keys().collect()
}

#[test]
fn an_output_deleted_or_renamed_is_opened_again() {
    let (mut pipeline, port) = pipeline("DIR/out.jsonl");
    let out = pipeline.path("out.jsonl");
    assert_eq!(post_entries(port, 0..100), 200);
    std::fs::remove_file(&out).unwrap();
    assert_eq!(post_entries(port, 100..200), 200);
    assert_eq!(ids(&out), (100..200).collect::<Vec<_>>(), "what was acknowledged after the rm is lost");
    // logrotate's `create`: renamed, then written again under the old name.
    let rotated = pipeline.path("out.jsonl.1");
    std::fs::rename(&out, &rotated).unwrap();
    assert_eq!(post_entries(port, 200..300), 200);
    assert_eq!(ids(&rotated), (100..200).collect::<Vec<_>>());
    assert_eq!(ids(&out), (200..300).collect::<Vec<_>>());
    // SIGHUP reopens too (and reloads the unchanged config).
    std::fs::rename(&out, pipeline.path("out.jsonl.2")).unwrap();
    signal(pipeline.child.as_ref().unwrap(), "HUP");
    assert_eq!(post_entries(port, 300..310), 200);
    assert_eq!(ids(&out), (300..310).collect::<Vec<_>>());
    let log = pipeline.stop();
    assert_eq!(totals(&log, "out", "component_discarded_events_total"), 0);
}

#[test]
fn a_full_disk_leaves_no_torn_line_and_refuses_what_it_could_not_write() {
    if !root("the full-disk test mounts a small tmpfs") {
        return;
    }
    let (mut pipeline, port) = pipeline("DIR/disk/out.jsonl");
    let disk = SmallDisk::mount(&pipeline.path("disk"), 1 << 20);
    assert_eq!(post_entries(port, 0..100), 200);
    let filler = disk.fill();
    // ~260 bytes a line: these do not fit. Delivery fails: 503, the sender retries.
    let refused = post_entries(port, 100..1100);
    assert_eq!(refused, 503);
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(post_entries(port, 1100..1200), 200);
    let out = pipeline.path("disk/out.jsonl");
    // Every line parses (read_json panics on a torn one), and holds exactly what was acknowledged.
    let expected: Vec<usize> = (0..100).chain(1100..1200).collect();
    assert_eq!(ids(&out), expected);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 200, "a partial write was left in the file");
    let log = pipeline.stop();
    assert_eq!(totals(&log, "out", "component_discarded_events_total"), 1000);
    assert!(totals(&log, "out", "component_errors_total") >= 1);
    drop(disk);
}

#[test]
fn event_fields_cannot_steer_the_path_out_of_its_directory() {
    let (mut pipeline, port) = pipeline("DIR/out/{{ service }}.jsonl");
    let outside = format!("/tmp/tapline-escape-{}", std::process::id());
    let body = |service: &str| {
        format!(
            "[{{\"request\":{{\"id\":\"x\"}},\"service\":{{\"name\":{}}},\"response\":{{\"status\":200}}}}]",
            serde_json::Value::from(service)
        )
    };
    for service in [format!("../../../..{outside}"), "a/b".to_string(), "..".to_string(), "orders".to_string()] {
        assert_eq!(post(port, "/", body(&service).as_bytes(), &["Content-Type: application/json"]).status, 200, "{service}");
    }
    let log = pipeline.stop();
    assert!(!Path::new(&format!("{outside}.jsonl")).exists(), "a field wrote outside the sink's directory");
    let mut written: Vec<String> =
        std::fs::read_dir(pipeline.path("out")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    written.sort();
    let escaped = format!("{}.jsonl", format!("../../../..{outside}").replace('/', "_"));
    let mut expected = vec![escaped, "_.jsonl".to_string(), "a_b.jsonl".to_string(), "orders.jsonl".to_string()];
    expected.sort();
    assert_eq!(written, expected, "{log}");
    assert!(
        std::fs::read_dir(pipeline.path("out")).unwrap().all(|e| e.unwrap().file_type().unwrap().is_file()),
        "a field made a directory"
    );
}

/// tapline killed in the middle of a write leaves a torn line; the batch was
/// never acknowledged and comes again. The next start cuts the torn line off
/// rather than gluing the next line to it.
#[test]
fn a_torn_line_left_by_a_crash_is_cut_off_before_the_next_write() {
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().join("out.jsonl");
    let whole = kong_line(0);
    std::fs::write(&out, format!("{{\"request_id\":\"line-7\"}}\n{}", &whole[..40])).unwrap();
    let (mut pipeline, port) = pipeline(out.to_str().unwrap());
    assert_eq!(post_entries(port, 1..3), 200);
    assert_eq!(ids(&out), [1, 2, 7], "{:?}", std::fs::read_to_string(&out));
    let log = pipeline.stop();
    assert!(log.contains("the file ended in a torn line") && log.contains("bytes=40"), "{log}");
}
