//! The `kafka` sink against a real Kafka-compatible broker on loopback (Tansu,
//! started through scripts/kafka.sh), read back by an independent consumer
//! (confluent-kafka, scripts/kafka_consume.py). In CI a missing broker or
//! consumer fails the tests; elsewhere they are skipped with a message.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

/// A Tansu broker of this test's own, killed when dropped. Clients reach it
/// on `port` through a plain TCP relay, so that a restarted broker (Tansu
/// keeps topics in memory) is reachable only once its topics exist again, as
/// a broker with disks would be; the broker advertises `port`.
struct Broker {
    port: u16,
    internal: u16,
    child: Child,
    relay: Option<Relay>,
}

impl Broker {
    fn start() -> Option<Broker> {
        let tansu = Command::new("bash").args(["-c", "PATH=$HOME/.cargo/bin:$PATH tansu --version"]).output();
        let consumer = Command::new("python3").args(["-c", "import confluent_kafka"]).output();
        let missing = match (tansu, consumer) {
            (Ok(t), _) if !t.status.success() => Some("tansu (scripts/install-test-deps.sh installs it)"),
            (Err(_), _) => Some("tansu"),
            (_, Ok(c)) if !c.status.success() => Some("python3's confluent_kafka (scripts/install-test-deps.sh installs it)"),
            (_, Err(_)) => Some("python3"),
            _ => None,
        };
        if let Some(missing) = missing {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("the Kafka tests need {missing}");
            }
            eprintln!("skipped: {missing} is missing");
            return None;
        }
        Some(Broker::restart(free_port(), &[]))
    }

    /// A new broker for clients of `port`, reachable once `topics` exist.
    fn restart(port: u16, topics: &[(&str, u32)]) -> Broker {
        let internal = free_port();
        let child = Command::new(here("scripts/kafka.sh"))
            .args(["broker", &internal.to_string(), &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the broker to listen", Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", internal)).is_ok());
        let mut broker = Broker { port, internal, child, relay: None };
        for (name, partitions) in topics {
            broker.topic(name, *partitions);
        }
        broker.relay = Some(Relay::start(port, internal));
        broker
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn topic(&self, name: &str, partitions: u32) {
        let status = Command::new(here("scripts/kafka.sh"))
            .args(["topic", &self.internal.to_string(), name, &partitions.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "cannot create topic {name}");
    }

    /// Read up to `count` messages from `topics` with the independent consumer,
    /// waiting at most `wait_secs` for them.
    fn consume_within(&self, wait_secs: u32, count: usize, topics: &[&str]) -> Vec<Value> {
        let output = Command::new("python3")
            .arg(here("scripts/kafka_consume.py"))
            .arg(self.address())
            .arg(count.to_string())
            .args(topics)
            .env("KAFKA_CONSUME_TIMEOUT", wait_secs.to_string())
            .output()
            .unwrap();
        assert!(output.status.success(), "consumer failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn consume(&self, count: usize, topics: &[&str]) -> Vec<Value> {
        self.consume_within(60, count, topics)
    }

    fn stop(mut self) -> u16 {
        self.kill();
        self.port
    }

    fn kill(&mut self) {
        self.relay = None;
        // scripts/kafka.sh execs tansu, so this is the broker itself.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Relays loopback TCP connections from one port to another; dropping it
/// closes the port and every relayed connection.
struct Relay {
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(port: u16, target: u16) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (stopping, open) = (stop.clone(), connections.clone());
        let accepting = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                client.set_nonblocking(false).unwrap();
                for (mut from, mut to) in
                    [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server.try_clone().unwrap(), client.try_clone().unwrap())]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
                open.lock().unwrap().extend([client, server]);
            }
        });
        Relay { stop, connections, accepting: Some(accepting) }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
        for connection in self.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run a pipeline to its end with `input` on stdin; returns stderr.
fn run(config: &str, input: &str, dir: &Path) -> (bool, String) {
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, config).unwrap();
    let mut child =
        bin().args(["run", "--config"]).arg(&path).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = wait(child, Duration::from_secs(120));
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn lines(n: usize, shape: impl Fn(usize) -> Value) -> String {
    (0..n).map(|i| format!("{}\n", shape(i))).collect()
}

/// The `id` field of each message's JSON value.
fn ids(messages: &[Value]) -> Vec<u64> {
    messages.iter().map(|m| serde_json::from_str::<Value>(m["value"].as_str().unwrap()).unwrap()["id"].as_u64().unwrap()).collect()
}

#[test]
fn every_compression_delivers_intact_messages() {
    let Some(broker) = Broker::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    let mut config = String::from("[api]\nenabled = false\n[sources.in]\ntype = \"stdin\"\ndecoding.codec = \"json\"\n");
    for codec in codecs {
        broker.topic(&format!("c-{codec}"), 2);
        config += &format!(
            "[sinks.{codec}]\ntype = \"kafka\"\ninputs = [\"in\"]\nbootstrap_servers = \"{}\"\ntopic = \"c-{codec}\"\ncompression = \"{codec}\"\n",
            broker.address()
        );
    }
    // Repetitive text compresses: every codec really has something to do.
    let input = lines(300, |i| json!({"id": i, "path": format!("/orders/{i}"), "body": "abcdefgh".repeat(40)}));
    let (ok, stderr) = run(&config, &input, dir.path());
    assert!(ok, "{stderr}");
    for codec in codecs {
        assert_eq!(totals(&stderr, codec, "component_sent_events_total"), 300, "{codec}");
        assert_eq!(totals(&stderr, codec, "component_discarded_events_total"), 0, "{codec}");
        let messages = broker.consume(300, &[&format!("c-{codec}")]);
        let got: BTreeSet<u64> = ids(&messages).into_iter().collect();
        assert_eq!(messages.len(), 300, "{codec}");
        assert_eq!(got, (0..300).collect(), "{codec}: every message once");
        let first: Value = serde_json::from_str(messages[0]["value"].as_str().unwrap()).unwrap();
        assert_eq!(first["body"].as_str().unwrap().len(), 320, "{codec}");
        assert!(first["path"].as_str().unwrap().starts_with("/orders/"));
    }
}

#[test]
fn key_topic_template_and_headers() {
    let Some(broker) = Broker::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    broker.topic("kong-orders", 3);
    broker.topic("kong-users", 3);
    let config = format!(
        "[api]\nenabled = false\n[sources.in]\ntype = \"stdin\"\ndecoding.codec = \"json\"\n\
         [sinks.k]\ntype = \"kafka\"\ninputs = [\"in\"]\nbootstrap_servers = \"{}\"\ntopic = \"kong-{{{{ service }}}}\"\n\
         key_field = \"consumer\"\nheaders_key = \"meta\"\nheaders = {{ pipeline = \"tapline\", route = \"{{{{ route }}}}\" }}\n",
        broker.address()
    );
    let services = ["orders", "users"];
    let consumers = ["alice", "bob", "carol", "dave"];
    let mut input = lines(
        200,
        |i| json!({"id": i, "service": services[i % 2], "consumer": consumers[i % 4], "route": format!("r{}", i % 3), "meta": {"tenant": format!("t{}", i % 5)}}),
    );
    // No `service`: the topic cannot be rendered; refused and counted.
    input += "{\"id\": 1000, \"consumer\": \"alice\"}\n";
    let (ok, stderr) = run(&config, &input, dir.path());
    assert!(ok, "{stderr}");
    assert_eq!(totals(&stderr, "k", "component_sent_events_total"), 200);
    assert_eq!(totals(&stderr, "k", "component_discarded_events_total"), 1);
    assert!(stderr.contains("cannot render `topic`: field `service` is missing"), "{stderr}");

    let messages = broker.consume(200, &["kong-orders", "kong-users"]);
    assert_eq!(messages.len(), 200);
    let mut partition_of_key: BTreeMap<(String, String), BTreeSet<i64>> = BTreeMap::new();
    for m in &messages {
        let value: Value = serde_json::from_str(m["value"].as_str().unwrap()).unwrap();
        let i = value["id"].as_u64().unwrap() as usize;
        assert_eq!(m["topic"], format!("kong-{}", services[i % 2]));
        assert_eq!(m["key"], consumers[i % 4]);
        assert_eq!(m["headers"], json!({"pipeline": "tapline", "route": format!("r{}", i % 3), "tenant": format!("t{}", i % 5)}));
        partition_of_key
            .entry((m["topic"].as_str().unwrap().into(), m["key"].as_str().unwrap().into()))
            .or_default()
            .insert(m["partition"].as_i64().unwrap());
    }
    // The key decides the partition: one partition per (topic, key).
    assert!(partition_of_key.values().all(|p| p.len() == 1), "{partition_of_key:?}");
    assert_eq!(ids(&messages).into_iter().collect::<BTreeSet<_>>(), (0..200).collect());
}

#[test]
fn request_records_go_as_json_with_their_time() {
    let Some(broker) = Broker::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    broker.topic("records", 1);
    let kong_line = std::fs::read_to_string(here("tests/fixtures/kong/kong3_single.json")).unwrap();
    let entry: Value = serde_json::from_str(&kong_line).unwrap();
    let log = dir.path().join("kong.log");
    std::fs::write(&log, format!("{}\n", serde_json::to_string(&entry).unwrap())).unwrap();
    let config = format!(
        "data_dir = \"{}\"\n[api]\nenabled = false\n[sources.kong]\ntype = \"kong_file_log\"\ninclude = [\"{}\"]\nread_from = \"beginning\"\n\
         [sinks.k]\ntype = \"kafka\"\ninputs = [\"kong\"]\nbootstrap_servers = \"{}\"\ntopic = \"records\"\nkey_field = \"request_id\"\n",
        dir.path().display(),
        log.display(),
        broker.address()
    );
    let path = dir.path().join("pipeline.toml");
    std::fs::write(&path, config).unwrap();
    let child = bin().args(["run", "--config"]).arg(&path).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let messages = broker.consume(1, &["records"]);
    signal(&child, "TERM");
    let output = wait(child, Duration::from_secs(60));
    assert!(output.status.success());
    assert_eq!(messages.len(), 1);
    let record: Value = serde_json::from_str(messages[0]["value"].as_str().unwrap()).unwrap();
    assert_eq!(record["signal_source"], "kong");
    assert_eq!(messages[0]["key"], record["request_id"]);
    assert!(record["request_id"].is_string() && record["service"].is_string() && record["status"].is_u64(), "{record}");
    let time = chrono::DateTime::parse_from_rfc3339(record["time"].as_str().unwrap()).unwrap();
    assert_eq!(messages[0]["timestamp"].as_i64().unwrap(), time.timestamp_millis(), "message timestamp = request time");
}

/// The broker goes away mid-run and comes back (empty: Tansu keeps topics in
/// memory). Events sent meanwhile wait, are produced again, and all arrive once.
#[test]
fn broker_stopped_and_restarted_loses_nothing() {
    let Some(broker) = Broker::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    broker.topic("events", 2);
    let api = free_port();
    let config = format!(
        "[api]\nenabled = true\naddress = \"127.0.0.1:{api}\"\n[sources.in]\ntype = \"stdin\"\ndecoding.codec = \"json\"\n\
         [sinks.k]\ntype = \"kafka\"\ninputs = [\"in\"]\nbootstrap_servers = \"{}\"\ntopic = \"events\"\n\
         message_timeout_ms = 2000\nlibrdkafka_options = {{ \"reconnect.backoff.max.ms\" = \"500\" }}\n",
        broker.address()
    );
    let (mut child, stderr_path) = spawn_logged(&config, dir.path());
    let mut stdin = child.stdin.take().unwrap();
    let sent = || metric(api, "component_sent_events_total", "k").unwrap_or(0);

    // Before: 500 events delivered and read back.
    stdin.write_all(lines(500, |i| json!({"id": i})).as_bytes()).unwrap();
    wait_for("the first 500 deliveries", Duration::from_secs(60), || sent() == 500);
    let before = broker.consume(500, &["events"]);

    // Down: 700 more events; none can be delivered.
    let port = broker.stop();
    stdin.write_all(lines(700, |i| json!({"id": 500 + i})).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sent(), 500, "nothing is delivered while the broker is down");

    // Back: every waiting event is delivered.
    let broker = Broker::restart(port, &[("events", 2)]);
    wait_for("the 700 waiting deliveries", Duration::from_secs(90), || sent() == 1200);
    drop(stdin);
    let output = wait(child, Duration::from_secs(60));
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert_eq!(totals(&stderr, "k", "component_discarded_events_total"), 0, "{stderr}");
    assert!(totals(&stderr, "k", "component_errors_total") > 0, "the outage is visible in the error counter");
    assert!(stderr.contains("Kafka delivery failed; producing again"), "{stderr}");

    let after = broker.consume(700, &["events"]);
    let mut all = ids(&before);
    all.extend(ids(&after));
    all.sort();
    assert_eq!(all, (0..1200).collect::<Vec<_>>(), "every event once");
    assert!(broker.consume_within(8, 701, &["events"]).len() == 700, "no duplicates");
}

#[test]
fn unknown_topic_is_refused_counted_and_explained() {
    let Some(broker) = Broker::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    broker.topic("known", 1);
    // Tansu, like most production brokers, does not create topics on first use.
    let config = format!(
        "[api]\nenabled = false\n[sources.in]\ntype = \"stdin\"\ndecoding.codec = \"json\"\n\
         [sinks.k]\ntype = \"kafka\"\ninputs = [\"in\"]\nbootstrap_servers = \"{}\"\ntopic = \"{{{{ topic }}}}\"\n\
         librdkafka_options = {{ \"topic.metadata.propagation.max.ms\" = \"1000\" }}\n",
        broker.address()
    );
    let input = lines(10, |i| json!({"id": i, "topic": if i % 2 == 0 { "known" } else { "missing" }}));
    let (ok, stderr) = run(&config, &input, dir.path());
    assert!(ok, "{stderr}");
    assert_eq!(totals(&stderr, "k", "component_sent_events_total"), 5);
    assert_eq!(totals(&stderr, "k", "component_discarded_events_total"), 5);
    assert!(stderr.contains("Kafka refused a message for topic `missing`"), "{stderr}");
    assert!(stderr.contains("the topic does not exist"), "{stderr}");
    assert_eq!(ids(&broker.consume(5, &["known"])), vec![0, 2, 4, 6, 8]);
}

#[test]
fn unreachable_broker_fails_the_healthcheck_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "[api]\nenabled = false\n[sources.in]\ntype = \"stdin\"\n\
         [sinks.k]\ntype = \"kafka\"\ninputs = [\"in\"]\nbootstrap_servers = \"127.0.0.1:{port}\"\ntopic = \"t\"\nsocket_timeout_ms = 1000\n"
    );
    let (ok, stderr) = run(&config, "x\n", dir.path());
    assert!(!ok);
    assert!(stderr.contains(&format!("Kafka at 127.0.0.1:{port} is unreachable")), "{stderr}");
    assert!(stderr.contains("healthcheck.enabled = false"), "{stderr}");
}

/// With acknowledgements, Kong's http-log gets its 200 only once the broker has
/// the entries: while the broker is down the answer does not come (Kong times
/// out and keeps the batch to send again).
#[test]
fn kong_gets_its_answer_only_after_delivery() {
    let Some(broker) = Broker::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    broker.topic("kong", 1);
    let http = free_port();
    let config = format!(
        "[api]\nenabled = false\n[sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{http}\"\n\
         [sinks.k]\ntype = \"kafka\"\ninputs = [\"kong\"]\nacknowledgements.enabled = true\nbootstrap_servers = \"{}\"\ntopic = \"kong\"\n\
         message_timeout_ms = 1000\nlibrdkafka_options = {{ \"reconnect.backoff.max.ms\" = \"500\" }}\n",
        broker.address()
    );
    let path = dir.path().join("pipeline.toml");
    std::fs::write(&path, config).unwrap();
    let child = bin().args(["run", "--config"]).arg(&path).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("the HTTP source", Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", http)).is_ok());
    let post = |max_secs: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                max_secs,
                "-H",
                "Content-Type: application/json",
                "--data-binary",
            ])
            .arg(format!("@{}", here("tests/fixtures/kong/kong3_array5.json").display()))
            .arg(format!("http://127.0.0.1:{http}/"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(post("30"), "200");
    assert_eq!(broker.consume(5, &["kong"]).len(), 5);

    let port = broker.stop();
    assert_eq!(post("3"), "000", "no answer while the broker is down");
    let broker = Broker::restart(port, &[("kong", 1)]);
    // The entries of the unanswered post still arrive (Kong's retry would send them again:
    // delivery is at least once).
    assert_eq!(broker.consume(5, &["kong"]).len(), 5);
    assert_eq!(post("30"), "200");
    signal(&child, "TERM");
    assert!(wait(child, Duration::from_secs(60)).status.success());
}
