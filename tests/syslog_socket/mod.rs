//! The `syslog` and `socket` sources fed by real senders on loopback:
//! util-linux's `logger` and rsyslog (Debian's, as a foreground process
//! with its own config) for syslog over TCP and UDP, and Kong-shaped tcp-log
//! and udp-log payloads (the fixtures in tests/fixtures/kong) for `socket`
//! with the `kong` codec, including broken, oversized and slow clients. In
//! CI a missing `logger` or `rsyslogd` fails the tests; elsewhere they skip.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

/// A pipeline with the admin API on `api` (for the counters); `DIR` in `config` is its directory.
fn start(api: u16, config: &str) -> Pipeline {
    let dir = tempfile::tempdir().unwrap();
    let config = config.replace("DIR", dir.path().to_str().unwrap());
    let (mut child, stderr) = spawn_logged(&format!("{config}\n[api]\naddress = \"127.0.0.1:{api}\"\n"), dir.path());
    wait_for("the admin API", Duration::from_secs(60), || {
        if child.try_wait().unwrap().is_some() {
            panic!("tapline stopped:\n{}", std::fs::read_to_string(&stderr).unwrap_or_default());
        }
        http_get(api, "/health").is_some_and(|r| r.starts_with("HTTP/1.1 200"))
    });
    Pipeline { child: Some(child), dir, stderr }
}

/// A free UDP port on loopback.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Wait until `path` holds `n` complete JSON lines; return them.
fn wait_records(path: &Path, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} events in {}", path.display()), Duration::from_secs(60), || read_lines(path).len() >= n);
    read_json(path)
}

/// A counter (or gauge) of one component from /metrics.
fn counter(api: u16, name: &str, component: &str) -> u64 {
    metric(api, name, component).unwrap_or(0)
}

fn hostname() -> String {
    let out = Command::new("hostname").output().expect("hostname (util-linux/hostname) must be installed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Run `logger` with `args`; it must succeed.
fn logger(args: &[&str]) {
    let out = Command::new("logger").args(args).output().unwrap();
    assert!(out.status.success(), "logger {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The events of `records` by their `appname`.
fn by_appname(records: &[Value]) -> std::collections::BTreeMap<String, Value> {
    records.iter().map(|r| (r["appname"].as_str().unwrap_or_default().to_string(), r.clone())).collect()
}

/// `event` without `timestamp`, checked to be within the test's run: now or
/// (RFC 3164: whole seconds) up to a minute before.
fn without_timestamp(event: &Value) -> Value {
    let at: chrono::DateTime<chrono::Utc> = event["timestamp"].as_str().expect("a timestamp").parse().unwrap();
    let age = chrono::Utc::now() - at;
    assert!(age >= chrono::Duration::seconds(-1) && age < chrono::Duration::minutes(5), "timestamp {at} is not from this test: {event}");
    let mut event = event.clone();
    event.as_object_mut().unwrap().remove("timestamp");
    event
}

/// `logger`'s own `timeQuality` element: its `isSynced` says whether the clock is NTP-synced here.
fn time_quality(event: &Value) -> Value {
    let synced = event["timeQuality"]["isSynced"].as_str().unwrap_or_default();
    assert!(synced == "0" || synced == "1", "{event}");
    json!({"tzKnown": "1", "isSynced": synced})
}

#[test]
fn logger_over_tcp_udp_and_unix_sockets_in_rfc5424_and_rfc3164() {
    if !have("logger") {
        return;
    }
    let (api, tcp, udp) = (free_port(), free_port(), free_udp_port());
    let mut pipeline = start(
        api,
        &format!(
            "[sources.tcp]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\n\
             [sources.udp]\ntype = \"syslog\"\nmode = \"udp\"\naddress = \"127.0.0.1:{udp}\"\n\
             [sources.unix]\ntype = \"syslog\"\nmode = \"unix\"\npath = \"DIR/stream.sock\"\n\
             [sources.unix_datagram]\ntype = \"syslog\"\nmode = \"unix_datagram\"\npath = \"DIR/dgram.sock\"\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"tcp\", \"udp\", \"unix*\"]\npath = \"DIR/out.jsonl\"\nencoding.codec = \"json\"\n"
        ),
    );
    let (tcp_port, udp_port) = (tcp.to_string(), udp.to_string());
    let to_tcp = ["--server", "127.0.0.1", "--port", &tcp_port, "--tcp"];
    let to_udp = ["--server", "127.0.0.1", "--port", &udp_port, "--udp"];
    let sd = ["--sd-id", "exampleSDID@32473", "--sd-param", "iut=\"3\"", "--sd-param", "eventSource=\"App \\\"quoted\\\"\""];
    // RFC 5424 over TCP, newline-framed and octet-counted; over UDP.
    logger(
        &[&to_tcp[..], &["--rfc5424", "-t", "tcp5424", "-p", "local3.warning", "--id=4242", "--msgid", "MID1"], &sd, &["five over tcp"]]
            .concat(),
    );
    logger(&[&to_tcp[..], &["--rfc5424", "--octet-count", "-t", "octet5424", "-p", "user.err"], &["counted five"]].concat());
    logger(
        &[&to_udp[..], &["--rfc5424", "-t", "udp5424", "-p", "local7.debug", "--id=77", "--msgid", "MID2"], &sd, &["five over udp"]]
            .concat(),
    );
    // RFC 3164 over TCP, newline-framed and octet-counted; over UDP.
    logger(&[&to_tcp[..], &["--rfc3164", "-t", "tcp3164", "-p", "daemon.info", "--id=99"], &["bsd over tcp"]].concat());
    logger(&[&to_tcp[..], &["--rfc3164", "--octet-count", "-t", "octet3164", "-p", "mail.notice"], &["counted bsd"]].concat());
    logger(&[&to_udp[..], &["--rfc3164", "-t", "udp3164", "-p", "auth.crit", "--id=5"], &["bsd over udp"]].concat());
    // A Unix stream socket (logger falls back to a stream when a datagram is refused) and a datagram one,
    // in the local format syslog(3) writes to /dev/log: no hostname.
    let (stream, dgram) = (pipeline.path("stream.sock"), pipeline.path("dgram.sock"));
    logger(&["-u", stream.to_str().unwrap(), "-t", "unixstream", "-p", "local0.notice", "--id=12", "to a unix stream"]);
    logger(&["-u", dgram.to_str().unwrap(), "-t", "unixdgram", "-p", "local1.info", "--id=13", "to a unix datagram"]);

    let records = wait_records(&pipeline.path("out.jsonl"), 8);
    let host = hostname();
    let by_app = by_appname(&records);
    assert_eq!(by_app.len(), 8, "{records:#?}");
    let base = |app: &str, facility: &str, severity: &str, message: &str| {
        json!({"appname": app, "facility": facility, "severity": severity, "message": message, "hostname": host, "host": host,
               "source_ip": "127.0.0.1", "source_type": "syslog"})
    };
    let with = |mut event: Value, more: Value| {
        event.as_object_mut().unwrap().extend(more.as_object().unwrap().clone());
        event
    };
    let sd_fields =
        |event: &Value| json!({"timeQuality": time_quality(event), "exampleSDID@32473": {"iut": "3", "eventSource": "App \"quoted\""}});
    let expected = [
        (
            "tcp5424",
            with(
                with(base("tcp5424", "local3", "warning", "five over tcp"), json!({"version": 1, "procid": 4242, "msgid": "MID1"})),
                sd_fields(&by_app["tcp5424"]),
            ),
        ),
        (
            "octet5424",
            with(
                base("octet5424", "user", "err", "counted five"),
                json!({"version": 1, "timeQuality": time_quality(&by_app["octet5424"])}),
            ),
        ),
        (
            "udp5424",
            with(
                with(base("udp5424", "local7", "debug", "five over udp"), json!({"version": 1, "procid": 77, "msgid": "MID2"})),
                sd_fields(&by_app["udp5424"]),
            ),
        ),
        ("tcp3164", with(base("tcp3164", "daemon", "info", "bsd over tcp"), json!({"procid": 99}))),
        ("octet3164", base("octet3164", "mail", "notice", "counted bsd")),
        ("udp3164", with(base("udp3164", "auth", "crit", "bsd over udp"), json!({"procid": 5}))),
        // No hostname: `host` and `source_ip` are the socket's path.
        (
            "unixstream",
            json!({"appname": "unixstream", "facility": "local0", "severity": "notice", "message": "to a unix stream", "procid": 12,
                   "host": stream, "source_ip": stream, "source_type": "syslog"}),
        ),
        (
            "unixdgram",
            json!({"appname": "unixdgram", "facility": "local1", "severity": "info", "message": "to a unix datagram", "procid": 13,
                   "host": dgram, "source_ip": dgram, "source_type": "syslog"}),
        ),
    ];
    for (app, want) in expected {
        assert_eq!(without_timestamp(&by_app[app]), want, "{app}");
    }

    let log = pipeline.stop();
    assert_eq!(totals(&log, "tcp", "component_received_events_total"), 4);
    assert_eq!(totals(&log, "udp", "component_received_events_total"), 2);
    assert_eq!(totals(&log, "unix", "component_received_events_total"), 1);
    assert_eq!(totals(&log, "unix_datagram", "component_received_events_total"), 1);
    for source in ["tcp", "udp", "unix", "unix_datagram"] {
        assert_eq!(totals(&log, source, "component_errors_total"), 0, "{source}");
    }
    // The socket files are removed on shutdown.
    assert!(!stream.exists() && !dgram.exists());
}

/// A foreground rsyslogd with `config` (its work files in `dir`), stopped on drop.
struct Rsyslog(Child);

impl Rsyslog {
    fn start(dir: &Path, config: &str) -> Rsyslog {
        let conf = dir.join("rsyslog.conf");
        std::fs::write(&conf, config).unwrap();
        let check = Command::new("rsyslogd").args(["-N1", "-f"]).arg(&conf).output().unwrap();
        assert!(check.status.success(), "rsyslog refuses its config: {}", String::from_utf8_lossy(&check.stderr));
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("rsyslogd.log")).unwrap())
            .spawn()
            .unwrap();
        Rsyslog(child)
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        signal(&self.0, "TERM");
        let _ = self.0.wait();
    }
}

/// A Kong entry as one line (as Kong's cjson writes it: compact).
fn compact(entry: &Value) -> String {
    serde_json::to_string(entry).unwrap()
}

/// Every entry of the Kong fixtures, in order.
fn kong_entries() -> Vec<Value> {
    ["kong3_single.json", "kong3_array5.json", "kong2_variants.json", "kong_stream.json", "kong_no_service.json"]
        .iter()
        .flat_map(|name| {
            let value: Value = serde_json::from_slice(&std::fs::read(here(&format!("tests/fixtures/kong/{name}"))).unwrap()).unwrap();
            match value {
                Value::Array(items) => items,
                one => vec![one],
            }
        })
        .collect()
}

/// The request records tapline's Kong decoder makes of `entries`, as JSON, sorted.
fn expected_records(entries: &[Value]) -> Vec<String> {
    let mut records: Vec<String> = entries
        .iter()
        .map(|e| {
            let record = tapline::sources::kong::decode(compact(e).as_bytes(), false).unwrap().remove(0);
            serde_json::to_value(&record).unwrap().to_string()
        })
        .collect();
    records.sort();
    records
}

fn sorted(records: &[Value]) -> Vec<String> {
    let mut lines: Vec<String> = records.iter().map(|r| serde_json::to_string(r).unwrap()).collect();
    lines.sort();
    lines
}

#[test]
fn rsyslog_forwards_to_syslog_over_tcp_and_udp_and_kongs_syslog_entries_become_records() {
    if !have("logger") || !have("rsyslogd") {
        return;
    }
    let (api, tcp, udp, kong_tcp, kong_udp) = (free_port(), free_port(), free_udp_port(), free_port(), free_udp_port());
    let mut pipeline = start(
        api,
        &format!(
            "[sources.rs_tcp]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\n\
             [sources.rs_udp]\ntype = \"syslog\"\nmode = \"udp\"\naddress = \"127.0.0.1:{udp}\"\n\
             [sources.kong_tcp]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{kong_tcp}\"\ndecoding.codec = \"kong\"\n\
             [sources.kong_udp]\ntype = \"syslog\"\nmode = \"udp\"\naddress = \"127.0.0.1:{kong_udp}\"\ndecoding.codec = \"kong\"\n\
             [sinks.out_tcp]\ntype = \"file\"\ninputs = [\"rs_tcp\"]\npath = \"DIR/tcp.jsonl\"\nencoding.codec = \"json\"\n\
             [sinks.out_udp]\ntype = \"file\"\ninputs = [\"rs_udp\"]\npath = \"DIR/udp.jsonl\"\nencoding.codec = \"json\"\n\
             [sinks.out_kong_tcp]\ntype = \"file\"\ninputs = [\"kong_tcp\"]\npath = \"DIR/kong_tcp.jsonl\"\nencoding.codec = \"json\"\n\
             [sinks.out_kong_udp]\ntype = \"file\"\ninputs = [\"kong_udp\"]\npath = \"DIR/kong_udp.jsonl\"\nencoding.codec = \"json\"\n"
        ),
    );
    // rsyslog reads its own Unix socket (as /dev/log, which it leaves alone),
    // the way Kong's syslog plugin reaches the local daemon through syslog(3).
    // Kong's entries (tag `kong`) go to the Kong sources, as plain lines over
    // TCP and one per datagram; the rest in RFC 5424 with octet counting over
    // TCP, and in the traditional format over UDP.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("log.sock");
    let _rsyslog = Rsyslog::start(
        dir.path(),
        &format!(
            "global(workDirectory=\"{work}\" maxMessageSize=\"64k\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{socket}\" CreatePath=\"on\")\n\
             if $programname == \"kong\" then {{\n\
               action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{kong_tcp}\" protocol=\"tcp\")\n\
               action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{kong_udp}\" protocol=\"udp\")\n\
               stop\n\
             }}\n\
             action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{tcp}\" protocol=\"tcp\" TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\")\n\
             action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{udp}\" protocol=\"udp\")\n",
            work = dir.path().display(),
            socket = socket.display(),
        ),
    );
    wait_for("rsyslog's socket", Duration::from_secs(30), || socket.exists());
    let socket = socket.to_str().unwrap();
    logger(&["-u", socket, "-t", "billing", "-p", "local1.warning", "--id=321", "invoice 7 sent"]);
    logger(&["-u", socket, "-t", "cron", "-p", "cron.info", "nightly run done"]);
    let entries = kong_entries();
    for entry in &entries {
        logger(&["-u", socket, "-t", "kong", "-p", "user.info", "--size", "65000", &compact(entry)]);
    }

    let host = hostname();
    for file in ["tcp.jsonl", "udp.jsonl"] {
        let records = wait_records(&pipeline.path(file), 2);
        let by_app = by_appname(&records);
        let common = json!({"hostname": host, "host": host, "source_ip": "127.0.0.1", "source_type": "syslog"});
        let mut billing =
            json!({"appname": "billing", "procid": 321, "facility": "local1", "severity": "warning", "message": "invoice 7 sent"});
        let mut cron = json!({"appname": "cron", "facility": "cron", "severity": "info", "message": "nightly run done"});
        for event in [&mut billing, &mut cron] {
            event.as_object_mut().unwrap().extend(common.as_object().unwrap().clone());
            if file == "tcp.jsonl" {
                // RFC 5424 (rsyslog's SyslogProtocol23 template): a version, no structured data.
                event.as_object_mut().unwrap().insert("version".into(), json!(1));
            }
        }
        assert_eq!(without_timestamp(&by_app["billing"]), billing, "{file}");
        assert_eq!(without_timestamp(&by_app["cron"]), cron, "{file}");
        assert_eq!(records.len(), 2, "{file}: {records:#?}");
    }
    let want = expected_records(&entries);
    for file in ["kong_tcp.jsonl", "kong_udp.jsonl"] {
        let records = wait_records(&pipeline.path(file), entries.len());
        assert_eq!(sorted(&records), want, "{file}");
    }

    let log = pipeline.stop();
    for (source, n) in [("rs_tcp", 2), ("rs_udp", 2), ("kong_tcp", entries.len() as u64), ("kong_udp", entries.len() as u64)] {
        assert_eq!(totals(&log, source, "component_received_events_total"), n, "{source}");
        assert_eq!(totals(&log, source, "component_errors_total"), 0, "{source}");
    }
}

#[test]
fn kong_syslog_entries_from_logger_become_records_and_other_messages_are_counted() {
    if !have("logger") {
        return;
    }
    let (api, tcp, udp) = (free_port(), free_port(), free_udp_port());
    let mut pipeline = start(
        api,
        &format!(
            "[sources.kong_tcp]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\ndecoding.codec = \"kong\"\n\
             [sources.kong_udp]\ntype = \"syslog\"\nmode = \"udp\"\naddress = \"127.0.0.1:{udp}\"\ndecoding.codec = \"kong\"\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"kong_*\"]\npath = \"DIR/out.jsonl\"\nencoding.codec = \"json\"\n"
        ),
    );
    let (tcp_port, udp_port) = (tcp.to_string(), udp.to_string());
    let entries = kong_entries();
    for entry in &entries {
        let line = compact(entry);
        // What Kong's syslog plugin logs: tag `kong`, facility user, the entry as the text.
        logger(&[
            "--server",
            "127.0.0.1",
            "--port",
            &tcp_port,
            "--tcp",
            "--rfc3164",
            "-t",
            "kong",
            "-p",
            "user.info",
            "--size",
            "65000",
            &line,
        ]);
        logger(&[
            "--server",
            "127.0.0.1",
            "--port",
            &udp_port,
            "--udp",
            "--rfc5424",
            "-t",
            "kong",
            "-p",
            "user.err",
            "--size",
            "65000",
            &line,
        ]);
    }
    // Not a Kong entry: counted, dropped, and the next message still read.
    logger(&["--server", "127.0.0.1", "--port", &tcp_port, "--tcp", "-t", "sshd", "session opened"]);
    logger(&["--server", "127.0.0.1", "--port", &tcp_port, "--tcp", "-t", "kong", "--size", "65000", &compact(&entries[0])]);

    let records = wait_records(&pipeline.path("out.jsonl"), 2 * entries.len() + 1);
    let mut want: Vec<String> = [expected_records(&entries), expected_records(&entries), expected_records(&entries[..1])].concat();
    want.sort();
    assert_eq!(sorted(&records), want);
    let log = pipeline.stop();
    assert_eq!(totals(&log, "kong_tcp", "component_received_events_total"), entries.len() as u64 + 1);
    assert_eq!(totals(&log, "kong_udp", "component_received_events_total"), entries.len() as u64);
    assert_eq!(totals(&log, "kong_tcp", "component_errors_total"), 1);
    assert_eq!(totals(&log, "kong_tcp", "component_discarded_events_total"), 1);
    assert_eq!(totals(&log, "kong_tcp", "socket_decode_errors_total"), 1);
}

#[test]
fn kong_tcp_log_and_udp_log_payloads_become_records_and_bad_frames_are_counted() {
    let (api, tcp, udp) = (free_port(), free_port(), free_udp_port());
    let mut pipeline = start(
        api,
        &format!(
            "[sources.tcp_log]\ntype = \"socket\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\ndecoding.codec = \"kong\"\n\
             max_length = 16384\nidle_timeout_secs = 1\n\
             [sources.udp_log]\ntype = \"socket\"\nmode = \"udp\"\naddress = \"127.0.0.1:{udp}\"\ndecoding.codec = \"kong\"\nmax_length = 16384\n\
             [sinks.tcp]\ntype = \"file\"\ninputs = [\"tcp_log\"]\npath = \"DIR/tcp.jsonl\"\nencoding.codec = \"json\"\n\
             [sinks.udp]\ntype = \"file\"\ninputs = [\"udp_log\"]\npath = \"DIR/udp.jsonl\"\nencoding.codec = \"json\"\n"
        ),
    );
    let entries = kong_entries();
    let oversized = format!("{{\"request\":{{\"id\":\"{}\"}}}}", "x".repeat(20_000));

    // tcp-log: one JSON entry and "\n" per request, several on a kept-alive
    // connection; between them, broken lines and one too long. Two connections.
    let (first, second) = entries.split_at(4);
    let mut connection = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    for entry in first {
        connection.write_all(format!("{}\n", compact(entry)).as_bytes()).unwrap();
    }
    connection.write_all(b"{\"request\": {\"method\": \"GET\"\n7\n").unwrap();
    connection.write_all(format!("{oversized}\n").as_bytes()).unwrap();
    let mut other = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    for entry in second {
        other.write_all(format!("{}\n", compact(entry)).as_bytes()).unwrap();
    }
    drop(other);
    connection.write_all(format!("{}\n", compact(&entries[0])).as_bytes()).unwrap();
    drop(connection);

    // udp-log: one entry per datagram, no newline.
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for entry in &entries {
        sender.send_to(compact(entry).as_bytes(), ("127.0.0.1", udp)).unwrap();
    }
    sender.send_to(b"{\"request\": [", ("127.0.0.1", udp)).unwrap();
    sender.send_to(oversized.as_bytes(), ("127.0.0.1", udp)).unwrap();
    sender.send_to(compact(&entries[1]).as_bytes(), ("127.0.0.1", udp)).unwrap();

    let tcp_records = wait_records(&pipeline.path("tcp.jsonl"), entries.len() + 1);
    let udp_records = wait_records(&pipeline.path("udp.jsonl"), entries.len() + 1);
    let mut want = [expected_records(&entries), expected_records(&entries[..1])].concat();
    want.sort();
    assert_eq!(sorted(&tcp_records), want);
    let mut want = [expected_records(&entries), expected_records(&entries[1..2])].concat();
    want.sort();
    assert_eq!(sorted(&udp_records), want);

    // The first entry, field by field, as it came over TCP.
    let first = tcp_records.iter().find(|r| r["request_id"] == "6c4b1f7e2a9d4c3b8e5f0a1b2c3d4e5f").unwrap();
    assert_eq!(
        (&first["service"], &first["method"], &first["path"], &first["status"], &first["signal_source"], &first["host"]),
        (&json!("orders"), &json!("POST"), &json!("/orders/checkout"), &json!(200), &json!("kong"), &json!("api.example.com"))
    );

    // A connection that sends nothing is closed after idle_timeout_secs.
    let mut idle = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(idle.read(&mut byte).unwrap_or(0), 0, "the idle connection must be closed");
    wait_for("the idle timeout to be counted", Duration::from_secs(30), || counter(api, "socket_idle_timeouts_total", "tcp_log") == 1);

    let log = pipeline.stop();
    // Counts in == counts out: every good entry delivered, every bad frame counted.
    assert_eq!(totals(&log, "tcp_log", "component_received_events_total"), entries.len() as u64 + 1);
    assert_eq!(totals(&log, "tcp_log", "component_errors_total"), 3);
    assert_eq!(totals(&log, "tcp_log", "component_discarded_events_total"), 3);
    assert_eq!(totals(&log, "tcp_log", "socket_decode_errors_total"), 2);
    assert_eq!(totals(&log, "tcp_log", "socket_oversized_frames_total"), 1);
    assert_eq!(totals(&log, "udp_log", "component_received_events_total"), entries.len() as u64 + 1);
    assert_eq!(totals(&log, "udp_log", "component_errors_total"), 2);
    assert_eq!(totals(&log, "udp_log", "socket_decode_errors_total"), 1);
    assert_eq!(totals(&log, "udp_log", "socket_oversized_frames_total"), 1);
    assert_eq!(totals(&log, "tcp", "component_sent_events_total"), entries.len() as u64 + 1);
    assert_eq!(totals(&log, "udp", "component_sent_events_total"), entries.len() as u64 + 1);
}

#[test]
fn slow_and_silent_clients_neither_block_others_nor_pass_the_connection_limit() {
    let (api, tcp) = (free_port(), free_port());
    let mut pipeline = start(
        api,
        &format!(
            "[sources.tcp_log]\ntype = \"socket\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\ndecoding.codec = \"kong\"\nconnection_limit = 3\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"tcp_log\"]\npath = \"DIR/out.jsonl\"\nencoding.codec = \"json\"\n"
        ),
    );
    let open = || counter(api, "socket_open_connections", "tcp_log");
    // One client connects and sends nothing; another sends an entry a byte at a time.
    let silent = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let mut slow = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let slow_entry = kong_line(1000);
    let (head, tail) = slow_entry.split_at(60);
    let dribble = {
        let mut slow = slow.try_clone().unwrap();
        let head = head.to_string();
        std::thread::spawn(move || {
            for byte in head.bytes() {
                slow.write_all(&[byte]).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    wait_for("two open connections", Duration::from_secs(30), || open() == 2);

    // A third client's entries all arrive meanwhile.
    let mut fast = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let lines: String = (0..200).map(kong_line).collect();
    fast.write_all(lines.as_bytes()).unwrap();
    drop(fast);
    let out = pipeline.path("out.jsonl");
    wait_for("the fast client's 200 entries", Duration::from_secs(60), || read_lines(&out).len() == 200);
    assert_eq!(id_counts(&out), (0..200).map(|n| (n, 1)).collect());

    // At the limit, one more connection is closed at once, and counted.
    wait_for("the fast client's connection to close", Duration::from_secs(30), || open() == 2);
    let third = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    wait_for("three open connections", Duration::from_secs(30), || open() == 3);
    let mut refused = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    refused.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(refused.read(&mut byte).unwrap_or(0), 0, "a connection past connection_limit must be closed");
    wait_for("the refusal to be counted", Duration::from_secs(30), || counter(api, "socket_connections_refused_total", "tcp_log") == 1);

    // The slow client ends its entry: it arrives too.
    dribble.join().unwrap();
    slow.write_all(tail.as_bytes()).unwrap();
    wait_for("the slow client's entry", Duration::from_secs(30), || read_lines(&out).len() == 201);
    let ids: BTreeSet<usize> = id_counts(&out).into_keys().collect();
    assert!(ids.contains(&1000));
    drop((silent, slow, third));

    let log = pipeline.stop();
    assert_eq!(totals(&log, "tcp_log", "component_received_events_total"), 201);
    assert_eq!(totals(&log, "tcp_log", "component_errors_total"), 0);
    assert_eq!(totals(&log, "tcp_log", "socket_connections_refused_total"), 1);
}

#[test]
fn kong_tcp_log_over_tls() {
    if !have("openssl") {
        return;
    }
    let (api, port) = (free_port(), free_port());
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(certs.path());
    let mut pipeline = start(
        api,
        &format!(
            "[sources.tls_log]\ntype = \"socket\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{port}\"\ndecoding.codec = \"kong\"\n\
             tls.enabled = true\ntls.crt_file = \"{}\"\ntls.key_file = \"{}\"\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"tls_log\"]\npath = \"DIR/out.jsonl\"\nencoding.codec = \"json\"\n",
            cert.display(),
            key.display()
        ),
    );
    // Kong's tcp-log with `tls = true`: a TLS connection, one entry per line.
    let entries = kong_entries();
    let lines: String = entries.iter().map(|e| format!("{}\n", compact(e))).collect();
    let mut client = Command::new("openssl")
        .args(["s_client", "-quiet", "-no_ign_eof", "-verify_return_error", "-CAfile"])
        .arg(&cert)
        .args(["-connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    client.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    let sent = client.wait_with_output().unwrap();
    assert!(sent.status.success(), "openssl s_client: {}", String::from_utf8_lossy(&sent.stderr));
    let records = wait_records(&pipeline.path("out.jsonl"), entries.len());
    assert_eq!(sorted(&records), expected_records(&entries));
    // A client that does not speak TLS gets nothing through.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.write_all(format!("{}\n", compact(&entries[0])).as_bytes()).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = plain.read(&mut [0u8; 64]);
    let log = pipeline.stop();
    assert_eq!(totals(&log, "tls_log", "component_received_events_total"), entries.len() as u64);
    assert_eq!(read_lines(&pipeline.path("out.jsonl")).len(), entries.len());
}
