//! The `enrich` transform in whole pipelines, run by the real binary: Kong
//! http-log entries (or plain logs) in, enriched events out to a file.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

/// A Kong http-log entry: `service` and `route` may be absent.
fn entry(service: Option<&str>, route: Option<&str>, client_ip: &str) -> Value {
    let mut entry = json!({
        "request": {"method": "GET", "uri": "/orders/1", "url": "http://api.example.com/orders/1", "size": 80, "headers": {"host": "api.example.com"}},
        "response": {"status": 200, "size": 48, "headers": {}},
        "latencies": {"kong": 1, "proxy": 10, "request": 12, "receive": 1},
        "client_ip": client_ip,
        "started_at": 1732613003000u64,
        "source": "upstream"
    });
    if let Some(service) = service {
        entry["service"] = json!({"name": service, "host": "orders.internal", "port": 8080, "protocol": "http"});
    }
    if let Some(route) = route {
        entry["route"] = json!({"name": route, "paths": ["/orders"]});
    }
    entry
}

fn post_entries(port: u16, entries: &[Value]) {
    let answer = post(port, "/", serde_json::to_string(entries).unwrap().as_bytes(), &["Content-Type: application/json"]);
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
}

fn wait_listening(port: u16) {
    wait_for("the HTTP source to listen", Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
}

fn wait_lines(path: &Path, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} lines in {}", path.display()), Duration::from_secs(30), || read_lines(path).len() >= n);
    read_json(path)
}

/// Replace a file at once (write then rename), as config management tools do.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn tag<'a>(record: &'a Value, name: &str) -> Option<&'a str> {
    record["tags"][name].as_str()
}

/// `[api]` off, a Kong http-log source on `port`, `enrich` as `add_owner`
/// with `tables`, and a file sink `out.jsonl`.
fn kong_pipeline(port: u16, enrich: &str) -> Pipeline {
    Pipeline::start(&format!(
        "[sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{port}\"\n\
         [transforms.add_owner]\ntype = \"enrich\"\ninputs = [\"kong\"]\n{enrich}\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"add_owner\"]\npath = \"DIR/out.jsonl\"\nencoding.codec = \"json\"\n"
    ))
}

#[test]
fn kong_records_get_columns_from_csv_and_json_tables() {
    let tables = tempfile::tempdir().unwrap();
    std::fs::write(tables.path().join("services.csv"), "service,team,tier\norders,payments,1\ncatalog,shop,2\n").unwrap();
    std::fs::write(
        tables.path().join("routes.json"),
        r#"[{"route": "orders-route", "oncall": "alice", "tier": 1, "ignored": "x"}, {"route": "catalog-route", "oncall": null}]"#,
    )
    .unwrap();
    let port = free_port();
    let mut pipeline = kong_pipeline(
        port,
        &format!(
            "[[transforms.add_owner.tables]]\ntype = \"file\"\npath = \"{0}/services.csv\"\nkey = [\"service\"]\n\
             [[transforms.add_owner.tables]]\ntype = \"file\"\npath = \"{0}/routes.json\"\nkey = {{ route = \"route\" }}\ncolumns = [\"oncall\", \"tier\"]\nprefix = \"route_\"\n",
            tables.path().display()
        ),
    );
    wait_listening(port);
    post_entries(
        port,
        &[
            entry(Some("orders"), Some("orders-route"), "203.0.113.7"),
            entry(Some("catalog"), Some("catalog-route"), "203.0.113.8"),
            entry(Some("unknown"), None, "203.0.113.9"),
        ],
    );
    let records = wait_lines(&pipeline.path("out.jsonl"), 3);
    let log = pipeline.stop();

    assert_eq!(records[0]["service"], "orders");
    assert_eq!(records[0]["tags"], json!({"team": "payments", "tier": "1", "route_oncall": "alice", "route_tier": "1"}));
    assert_eq!(records[1]["tags"], json!({"team": "shop", "tier": "2"}), "a null value is not written");
    // The third: no row for `unknown` (a miss), no route at all (a miss).
    assert_eq!(records[2]["service"], "unknown");
    assert!(records[2].get("tags").is_none(), "{}", records[2]);
    assert_eq!(totals(&log, "add_owner", "enrich_misses_total"), 2);
    assert_eq!(totals(&log, "add_owner", "component_errors_total"), 0);
}

#[test]
fn the_longest_cidr_prefix_wins() {
    let tables = tempfile::tempdir().unwrap();
    let networks = "cidr,zone\n10.0.0.0/8,corp\n10.1.0.0/16,eu-west\n10.1.2.0/24,eu-west-1a\n10.1.2.3,edge-host\n2001:db8::/32,v6-corp\n2001:db8:1::/48,v6-eu\n";
    std::fs::write(tables.path().join("networks.csv"), networks).unwrap();
    let port = free_port();
    let mut pipeline = kong_pipeline(
        port,
        &format!(
            "[[transforms.add_owner.tables]]\ntype = \"cidr\"\npath = \"{}/networks.csv\"\nfield = \"client_ip\"\n",
            tables.path().display()
        ),
    );
    wait_listening(port);
    let ips = ["10.1.2.3", "10.1.2.200", "10.1.77.1", "10.200.0.1", "2001:db8:1::9", "2001:db8:ffff::1", "192.0.2.1"];
    post_entries(port, &ips.iter().map(|ip| entry(Some("orders"), None, ip)).collect::<Vec<_>>());
    let records = wait_lines(&pipeline.path("out.jsonl"), ips.len());
    let log = pipeline.stop();
    let zones: Vec<Option<&str>> = records.iter().map(|r| tag(r, "zone")).collect();
    assert_eq!(zones, [Some("edge-host"), Some("eu-west-1a"), Some("eu-west"), Some("corp"), Some("v6-eu"), Some("v6-corp"), None]);
    assert_eq!(totals(&log, "add_owner", "enrich_misses_total"), 1);
}

#[test]
fn tables_reload_while_running_and_a_broken_file_keeps_the_old_one() {
    let tables = tempfile::tempdir().unwrap();
    let csv = tables.path().join("services.csv");
    std::fs::write(&csv, "service,team\norders,payments\n").unwrap();
    let port = free_port();
    let mut pipeline = kong_pipeline(
        port,
        &format!(
            "reload_interval_secs = 1\n[[transforms.add_owner.tables]]\ntype = \"file\"\npath = \"{}\"\nkey = [\"service\"]\n",
            csv.display()
        ),
    );
    wait_listening(port);
    let out = pipeline.path("out.jsonl");
    let orders = entry(Some("orders"), None, "203.0.113.7");
    post_entries(port, std::slice::from_ref(&orders));
    assert_eq!(tag(&wait_lines(&out, 1)[0], "team"), Some("payments"));

    // A new version: seen within a second or two, without a restart.
    replace(&csv, "service,team\norders,checkout\ncart,shop\n");
    let mut sent = 1;
    wait_for("the new table", Duration::from_secs(20), || {
        post_entries(port, std::slice::from_ref(&orders));
        sent += 1;
        let records = wait_lines(&out, sent);
        tag(&records[sent - 1], "team") == Some("checkout")
    });

    // A broken version: the old table stays, one error counted.
    replace(&csv, "service,team\norders\n");
    std::thread::sleep(Duration::from_millis(3000));
    post_entries(port, &[orders.clone(), entry(Some("cart"), None, "203.0.113.7")]);
    sent += 2;
    let records = wait_lines(&out, sent);
    let log = pipeline.stop();
    assert_eq!(tag(&records[sent - 2], "team"), Some("checkout"));
    assert_eq!(tag(&records[sent - 1], "team"), Some("shop"));
    assert_eq!(totals(&log, "add_owner", "enrich_reloads_total"), 1);
    assert_eq!(totals(&log, "add_owner", "component_errors_total"), 1);
    assert!(
        log.contains("table not reloaded") && log.contains(&format!("{}: line 2: 1 fields where the header row has 2", csv.display())),
        "{log}"
    );
}

#[test]
fn process_table_adds_the_command_line_of_a_pid() {
    let mut sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let pid = sleeper.id();
    // Right after the spawn, /proc may still show the parent: wait for `sleep` itself.
    wait_for("sleep to start", Duration::from_secs(10), || {
        std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default() == b"sleep\x0030\x00"
    });
    let port = free_port();
    let mut pipeline = Pipeline::start(&format!(
        "[sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{port}\"\ndecoding.codec = \"json\"\n\
         [transforms.procs]\ntype = \"enrich\"\ninputs = [\"in\"]\n[[transforms.procs.tables]]\ntype = \"process\"\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"procs\"]\npath = \"DIR/out.jsonl\"\nencoding.codec = \"json\"\n"
    ));
    wait_listening(port);
    let body = json!([{"pid": pid}, {"pid": 999_999_999u32}, {"pid": pid, "cmdline": "kept"}]).to_string();
    assert_eq!(post(port, "/", body.as_bytes(), &["Content-Type: application/json"]).status, 200);
    let logs = wait_lines(&pipeline.path("out.jsonl"), 3);
    let log = pipeline.stop();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(logs[0]["cmdline"], "sleep 30");
    assert_eq!(logs[0]["process_name"], "sleep");
    assert!(logs[1].get("cmdline").is_none() && logs[1].get("process_name").is_none(), "{}", logs[1]);
    assert_eq!(logs[2]["cmdline"], "kept", "adds, never replaces");
    assert_eq!(logs[2]["process_name"], "sleep");
    assert_eq!(totals(&log, "procs", "enrich_misses_total"), 1);
}

#[test]
fn events_without_the_key_pass_untouched_and_are_counted() {
    let tables = tempfile::tempdir().unwrap();
    std::fs::write(tables.path().join("services.csv"), "service,team\norders,payments\n").unwrap();
    std::fs::write(tables.path().join("networks.csv"), "cidr,zone\n0.0.0.0/0,anywhere\n").unwrap();
    let port = free_port();
    // The same records, straight from the source and through `enrich`.
    let mut pipeline = Pipeline::start(&format!(
        "[sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{port}\"\n\
         [transforms.add_owner]\ntype = \"enrich\"\ninputs = [\"kong\"]\n\
         [[transforms.add_owner.tables]]\ntype = \"file\"\npath = \"{0}/services.csv\"\nkey = [\"service\"]\n\
         [[transforms.add_owner.tables]]\ntype = \"cidr\"\npath = \"{0}/networks.csv\"\nfield = \"server_ip\"\n\
         [sinks.enriched]\ntype = \"file\"\ninputs = [\"add_owner\"]\npath = \"DIR/enriched.jsonl\"\nencoding.codec = \"json\"\n\
         [sinks.raw]\ntype = \"file\"\ninputs = [\"kong\"]\npath = \"DIR/raw.jsonl\"\nencoding.codec = \"json\"\n",
        tables.path().display()
    ));
    wait_listening(port);
    // No service, no upstream try (so no server_ip): a miss in each table.
    let entries: Vec<Value> = (0..3).map(|i| entry(None, None, &format!("203.0.113.{i}"))).collect();
    post_entries(port, &entries);
    let enriched = wait_lines(&pipeline.path("enriched.jsonl"), 3);
    let raw = wait_lines(&pipeline.path("raw.jsonl"), 3);
    let log = pipeline.stop();
    assert_eq!(enriched, raw);
    assert!(enriched.iter().all(|r| r.get("tags").is_none()));
    assert_eq!(totals(&log, "add_owner", "enrich_misses_total"), 6);
}

/// Vector's `[enrichment_tables]` with the two VRL functions, in a YAML config
/// run by the binary: Kong entries get their service's owner from a CSV file;
/// a reload after the file changed compiles the program against the new rows;
/// a table that cannot load is a config error at its name.
#[test]
fn vector_enrichment_table_in_a_yaml_config() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("services.csv");
    std::fs::write(&table, "service,team,tier\ncatalog,shop,2\ncart,checkout,1\n").unwrap();
    let port = free_port();
    let out = dir.path().join("out.jsonl");
    let config = dir.path().join("vector.yaml");
    let yaml = format!(
        r#"api: {{enabled: false}}
enrichment_tables:
  services:
    type: file
    file:
      path: {table}
      encoding: {{type: csv}}
    schema: {{tier: integer}}
sources:
  kong: {{type: http_server, address: "127.0.0.1:{port}", decoding: {{codec: json}}}}
transforms:
  owners:
    type: remap
    inputs: [kong]
    source: |
      row, err = get_enrichment_table_record("services", {{"service": .service.name}}, select: ["team", "tier"])
      if err == null {{ .team = row.team; .tier = row.tier }} else {{ .team = "unknown" }}
      . = {{"service": .service.name, "team": .team, "tier": .tier}}
sinks:
  out: {{type: file, inputs: [owners], path: "{out}", encoding: {{codec: json}}}}
"#,
        table = table.display(),
        out = out.display()
    );
    std::fs::write(&config, yaml).unwrap();
    let stderr_path = dir.path().join("stderr.log");
    let child = bin().args(["run", "--config"]).arg(&config).stderr(std::fs::File::create(&stderr_path).unwrap()).spawn().unwrap();
    wait_listening(port);
    let entries: Vec<Value> = serde_json::from_slice(&std::fs::read(here("tests/fixtures/kong/kong3_array5.json")).unwrap()).unwrap();
    post_entries(port, &entries);
    let first = wait_lines(&out, 5);
    assert_eq!(
        first,
        [
            json!({"service": "catalog", "team": "shop", "tier": 2}),
            json!({"service": "catalog", "team": "shop", "tier": 2}),
            json!({"service": "cart", "team": "checkout", "tier": 1}),
            json!({"service": "cart", "team": "checkout", "tier": 1}),
            json!({"service": "health", "team": "unknown", "tier": null}),
        ]
    );
    // The file changes; SIGHUP reloads the config and, the table being new, the program.
    std::fs::write(&table, "service,team,tier\ncatalog,storefront,3\ncart,checkout,1\nhealth,platform,0\n").unwrap();
    signal(&child, "HUP");
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap();
    wait_for("the reload", Duration::from_secs(30), || stderr().contains("reloaded"));
    post_entries(port, &entries[..1]);
    post_entries(port, &entries[4..]);
    let all = wait_lines(&out, 7);
    assert_eq!(
        all[5..],
        [json!({"service": "catalog", "team": "storefront", "tier": 3}), json!({"service": "health", "team": "platform", "tier": 0})]
    );
    signal(&child, "TERM");
    assert!(wait(child, Duration::from_secs(60)).status.success(), "{}", stderr());

    // A bad cell or a missing file: a config error naming the table's place.
    std::fs::write(&table, "service,team,tier\ncatalog,shop,high\n").unwrap();
    let validate = || bin().args(["validate", "--no-environment", "--config"]).arg(&config).output().unwrap();
    let failed = validate();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(78), "{stderr}");
    let wanted = format!(
        "{}:3:3: error: enrichment table `services`: {}: line 2, column `tier`: `high` is not of type integer",
        config.display(),
        table.display()
    );
    assert!(stderr.contains(&wanted), "wanted {wanted}\ngot {stderr}");
    std::fs::remove_file(&table).unwrap();
    let stderr = String::from_utf8_lossy(&validate().stderr).to_string();
    assert!(stderr.contains("enrichment table `services`: cannot read"), "{stderr}");
}
