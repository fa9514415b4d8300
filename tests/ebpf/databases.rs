//! The databases behind the gateway, seen by the `ebpf` source: a real
//! `redis-server` with `redis-cli` and redis-py, a PostgreSQL cluster of the
//! test's own with `psql`, and a MariaDB of its own with the `mysql` client,
//! on loopback, both ends captured; each call's latency checked against the
//! client's own measure of it where the client gives one. In CI a missing server
//! or client fails the test; elsewhere it skips and says why.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::*;

/// A redis-server of the test's own on a free port, keeping nothing on disk; and its port.
fn redis_server(dir: &Path) -> (Server, u16) {
    let port = free_port();
    let mut command = Command::new("redis-server");
    command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]).arg("--dir").arg(dir);
    (serve(&mut command, port), port)
}

#[test]
fn redis_cli_to_redis_server_seen_from_both_ends() {
    if !root() || !have("redis-server") || !have("redis-cli") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = redis_server(dir.path());
    let pipeline = capture(&[port], "");

    // One connection, one call at a time; LPUSH and INCR on a string fail. redis-cli
    // times nothing: the run's own time bounds each call's.
    let started = Instant::now();
    let mut cli = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    cli.stdin.take().unwrap().write_all(b"SET greeting hello\nGET greeting\nLPUSH greeting x\nINCR greeting\n").unwrap();
    let out = cli.wait_with_output().unwrap();
    let run_us = started.elapsed().as_micros() as u64;
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("WRONGTYPE") && printed.contains("ERR value is not an integer"), "{printed}");

    let calls = ["SET", "GET", "LPUSH", "INCR"];
    let found = wait_records(&pipeline, 8, "redis records of both ends", |r| {
        r["protocol"] == "redis" && calls.contains(&r["method"].as_str().unwrap_or(""))
    });
    // (method, error, request size, response size), in order, at each end.
    let expected = [
        ("SET", Value::Null, 38, 5),
        ("GET", Value::Null, 27, 11),
        ("LPUSH", Value::from("WRONGTYPE Operation against a key holding the wrong kind of value"), 36, 68),
        ("INCR", Value::from("ERR value is not an integer or out of range"), 28, 46),
    ];
    for (point, process) in [("client_process", "redis-cli"), ("server_process", "redis-server")] {
        let ends: Vec<&Value> = found.iter().filter(|r| r["observation_point"] == point).collect();
        let seen: Vec<(&str, Value, u64, u64)> =
            ends.iter().map(|r| (text(r, "method"), r["error"].clone(), number(r, "request_size"), number(r, "response_size"))).collect();
        assert_eq!(seen, expected, "{point}: {ends:#?}");
        for record in ends {
            assert_eq!(text(record, "endpoint"), text(record, "method"), "{record}");
            assert_eq!(record["status"], Value::Null, "{record}");
            assert_eq!(number(record, "server_port"), u64::from(port), "{record}");
            assert!(number(record, "duration_us") > 0, "{record}");
            assert!(text(record, "process_name").starts_with(process), "{record}");
        }
    }
    // Both ends name the same bytes.
    for method in calls {
        let ends: Vec<Value> = found.iter().filter(|r| r["method"] == method).cloned().collect();
        let (client, server) = (side(&ends, "client_process"), side(&ends, "server_process"));
        assert!(number(client, "tcp_seq_request") != 0);
        assert_eq!(client["tcp_seq_request"], server["tcp_seq_request"], "{client}\n{server}");
        assert_eq!(client["tcp_seq_response"], server["tcp_seq_response"], "{client}\n{server}");
    }
    check_latencies(&found, &[Some(run_us); 4]);
}

/// A Python client (redis-py, which speaks RESP3 after `HELLO 3`) sending
/// three commands in one write (a pipeline): each is paired with its own
/// reply, in order, at both ends. (redis-py's `incr` is `INCRBY`.)
#[test]
fn a_python_redis_client_pipelining_is_seen_call_by_call() {
    if !root() || !have("redis-server") || !have_python_module("redis") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = redis_server(dir.path());
    let pipeline = capture(&[port], "");
    // The client times the SET, and the pipeline as a whole (µs), after connecting.
    let script = "import sys, time, redis\n\
                  r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]))\n\
                  r.ping()\n\
                  t = time.monotonic(); r.set('count', '1'); print(int((time.monotonic() - t) * 1e6))\n\
                  p = r.pipeline(transaction=False)\n\
                  p.incr('count'); p.get('count'); p.lpush('count', 'x')\n\
                  t = time.monotonic(); replies = p.execute(raise_on_error=False); print(int((time.monotonic() - t) * 1e6))\n\
                  print([str(x) for x in replies])\n";
    let out = Command::new("python3").args(["-c", script, &port.to_string()]).output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && printed.contains("WRONGTYPE"), "{printed}{}", String::from_utf8_lossy(&out.stderr));
    let times: Vec<u64> = printed.lines().take(2).map(|line| line.parse().unwrap()).collect();

    let calls = ["SET", "INCRBY", "GET", "LPUSH"];
    let found = wait_records(&pipeline, 8, "redis-py's records at both ends", |r| {
        r["protocol"] == "redis" && calls.contains(&r["method"].as_str().unwrap_or(""))
    });
    let wrongtype = Value::from("WRONGTYPE Operation against a key holding the wrong kind of value");
    for point in ["client_process", "server_process"] {
        let ends: Vec<&Value> = found.iter().filter(|r| r["observation_point"] == point).collect();
        let seen: Vec<(&str, Value)> = ends.iter().map(|r| (text(r, "method"), r["error"].clone())).collect();
        assert_eq!(seen, [("SET", Value::Null), ("INCRBY", Value::Null), ("GET", Value::Null), ("LPUSH", wrongtype.clone())], "{point}");
    }
    // Each pipelined call within the pipeline's time.
    check_latencies(&found, &[Some(times[0]), Some(times[1]), Some(times[1]), Some(times[1])]);
    for method in calls {
        let ends: Vec<Value> = found.iter().filter(|r| r["method"] == method).cloned().collect();
        let (client, server) = (side(&ends, "client_process"), side(&ends, "server_process"));
        assert!(text(client, "process_name").starts_with("python"), "{client}");
        assert_eq!(client["tcp_seq_request"], server["tcp_seq_request"], "{client}\n{server}");
    }
}

/// Each call's latency against the client's own measure of it (µs, in the
/// order of the calls; `None` where the client gave none): the client's
/// record within that measure, the server's within the client's.
fn check_latencies(found: &[Value], measured_us: &[Option<u64>]) {
    let at = |point: &str| found.iter().filter(|r| r["observation_point"] == point).collect::<Vec<_>>();
    let (clients, servers) = (at("client_process"), at("server_process"));
    assert!(clients.len() == measured_us.len() && servers.len() == measured_us.len(), "{measured_us:?}: {found:#?}");
    for ((client, server), measured) in clients.iter().zip(&servers).zip(measured_us) {
        let (client_us, server_us) = (number(client, "duration_us"), number(server, "duration_us"));
        eprintln!("{}: measured {measured:?} µs, client {client_us} µs, server {server_us} µs", text(client, "method"));
        assert!(0 < server_us && server_us <= client_us, "{client}\n{server}");
        assert!(measured.is_none_or(|measured| client_us <= measured), "measured by the client {measured:?} µs: {client}");
    }
}

/// Each end's SQL records, in order, are `expected` (method, endpoint, error,
/// request size); every one has no status, the server's port, a latency, a
/// response larger than `min_response` bytes and its end's process name.
fn check_statements(found: &[Value], expected: &[(&str, &str, Value, u64)], processes: [&str; 2], port: u16, min_response: u64) {
    for (point, process) in ["client_process", "server_process"].into_iter().zip(processes) {
        let ends: Vec<&Value> = found.iter().filter(|r| r["observation_point"] == point).collect();
        let seen: Vec<(&str, &str, Value, u64)> =
            ends.iter().map(|r| (text(r, "method"), text(r, "endpoint"), r["error"].clone(), number(r, "request_size"))).collect();
        assert_eq!(seen, expected, "{point}: {ends:#?}");
        for record in ends {
            assert_eq!(record["status"], Value::Null, "{record}");
            assert_eq!(number(record, "server_port"), u64::from(port), "{record}");
            assert!(number(record, "duration_us") > 0 && number(record, "response_size") > min_response, "{record}");
            assert_eq!(text(record, "process_name"), process, "{record}");
        }
    }
}

/// The directory of PostgreSQL's server programs (initdb, postgres), newest first.
fn postgres_bin() -> Option<std::path::PathBuf> {
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    let bin = found.pop();
    if bin.is_none() {
        assert!(std::env::var_os("CI").is_none(), "PostgreSQL is not installed: run scripts/install-test-deps.sh");
        eprintln!("skipped: PostgreSQL is not installed (scripts/install-test-deps.sh)");
    }
    bin
}

/// `program` run as the `postgres` user (the server refuses root); setpriv execs it, so
/// killing the child kills the server itself.
fn as_postgres(program: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--reuid=postgres", "--regid=postgres", "--clear-groups", "--"]).arg(program);
    command
}

/// A PostgreSQL cluster of the test's own in `dir` (trusting every local
/// user), serving on a free port; None (skipped) when PostgreSQL is missing.
fn postgres_server(dir: &Path) -> Option<(Server, u16)> {
    let bin = postgres_bin()?;
    let port = free_port();
    let status = Command::new("chown").arg("postgres:postgres").arg(dir).status().unwrap();
    assert!(status.success(), "chown the cluster's directory to postgres");
    let data = dir.join("data");
    let out =
        as_postgres(&bin.join("initdb")).args(["--auth=trust", "--username=postgres", "--no-sync", "-D"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
    let server = serve(
        as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-k"])
            .arg(dir),
        port,
    );
    Some((server, port))
}

/// psql's arguments to reach the test's cluster on `port`.
fn psql_args(port: u16) -> Vec<String> {
    ["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", "postgres", "-X"].map(String::from).to_vec()
}

#[test]
fn psql_to_postgres_seen_from_both_ends() {
    if !root() || !have("psql") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, port)) = postgres_server(dir.path()) else { return };
    let pipeline = capture(&[port], "");

    let statements = [
        "CREATE TABLE items (id int PRIMARY KEY, name text)",
        "INSERT INTO items VALUES (1, 'one')",
        "SELECT name FROM items WHERE id = 1",
        "SELECT * FROM nope",
    ];
    let mut psql = Command::new("psql");
    psql.args(psql_args(port)).args(["-c", "\\timing on"]);
    for statement in statements {
        psql.args(["-c", statement]);
    }
    let out = psql.output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("relation \"nope\" does not exist"), "{out:?}");
    // psql's own time of each statement, error included ("Time: 0.354 ms").
    let measured: Vec<Option<u64>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("Time: ")?.strip_suffix(" ms")?.parse::<f64>().ok())
        .map(|ms| Some((ms * 1000.0).round() as u64))
        .collect();

    let found = wait_records(&pipeline, 8, "postgresql records of both ends", |r| r["protocol"] == "postgresql");
    // (method, endpoint, error, request size), in order, at each end.
    let expected: Vec<(&str, &str, Value, u64)> = vec![
        ("CREATE", statements[0], Value::Null, 56),
        ("INSERT", "INSERT INTO items VALUES (?, ?)", Value::Null, 41),
        ("SELECT", "SELECT name FROM items WHERE id = ?", Value::Null, 41),
        ("SELECT", "SELECT * FROM nope", Value::from("42P01 relation \"nope\" does not exist"), 24),
    ];
    check_statements(&found, &expected, ["psql", "postgres"], port, 5);
    check_latencies(&found, &measured);
    // Both ends name the same bytes.
    for statement in ["CREATE", "INSERT"] {
        let ends: Vec<Value> = found.iter().filter(|r| r["method"] == statement).cloned().collect();
        let (client, server) = (side(&ends, "client_process"), side(&ends, "server_process"));
        assert!(number(client, "tcp_seq_request") != 0);
        assert_eq!(client["tcp_seq_request"], server["tcp_seq_request"], "{client}\n{server}");
        assert_eq!(client["tcp_seq_response"], server["tcp_seq_response"], "{client}\n{server}");
    }
}

/// A client session (`program` reading statements on stdin) connected and in
/// use before the capture starts, as a pool's connections are: `first` is
/// sent, and `done` (asked from another connection) says when it has run.
fn session_open_before(program: &str, args: Vec<String>, first: &[u8], done: impl Fn() -> bool) -> (Child, std::process::ChildStdin) {
    let mut client =
        Command::new(program).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect(program);
    let mut input = client.stdin.take().unwrap();
    input.write_all(first).unwrap();
    wait_for(&format!("{program}'s connection"), Duration::from_secs(30), done);
    (client, input)
}

/// A psql session connected before the capture started (as a pool's
/// connections are): its later queries are seen, at both ends, though its
/// startup was not.
#[test]
fn a_postgres_connection_open_before_the_capture_is_seen_from_its_next_query() {
    if !root() || !have("psql") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, port)) = postgres_server(dir.path()) else { return };
    let (psql, mut input) = session_open_before("psql", psql_args(port), b"CREATE TABLE items (id int PRIMARY KEY, name text);\n", || {
        let out =
            Command::new("psql").args(psql_args(port)).args(["-Atc", "SELECT count(*) FROM pg_tables WHERE tablename = 'items'"]).output();
        out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
    });
    let pipeline = capture(&[port], "");
    input.write_all(b"INSERT INTO items VALUES (1, 'one');\nSELECT * FROM nope;\n").unwrap();
    drop(input);
    let out = psql.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("relation \"nope\" does not exist"), "{out:?}");

    let wanted = |r: &Value| r["protocol"] == "postgresql" && r["client_port"] != Value::Null;
    let found: Vec<Value> = wait_records(&pipeline, 4, "the open connection's queries at both ends", wanted);
    // psql sends the semicolons typed (the sizes count them; the statements drop them).
    let expected: Vec<(&str, &str, Value, u64)> = vec![
        ("INSERT", "INSERT INTO items VALUES (?, ?)", Value::Null, 42),
        ("SELECT", "SELECT * FROM nope", Value::from("42P01 relation \"nope\" does not exist"), 25),
    ];
    // Only the session's own: the probe above was its own connection, before the capture.
    let ports: std::collections::BTreeSet<u64> = found.iter().map(|r| number(r, "client_port")).collect();
    assert_eq!(ports.len(), 1, "{found:#?}");
    check_statements(&found, &expected, ["psql", "postgres"], port, 5);
}

/// A MariaDB server of the test's own in `dir` (root without a password,
/// packets up to 64 MiB), serving on a free port; None (skipped) when missing.
fn mariadb_server(dir: &Path) -> Option<(Server, u16)> {
    if !have("mariadb-install-db") || !have("mariadbd") || !have("mysql") {
        return None;
    }
    let port = free_port();
    let data = dir.join("data");
    let out = Command::new("mariadb-install-db")
        .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
        .arg(format!("--datadir={}", data.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
    let server = serve(
        Command::new("mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1", "--skip-log-bin", "--innodb-buffer-pool-size=16M"])
            .arg("--max-allowed-packet=64M")
            .arg(format!("--port={port}"))
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.join("socket").display())),
        port,
    );
    Some((server, port))
}

/// The mysql client's arguments to reach the test's server on `port`.
fn mysql_args(port: u16) -> Vec<String> {
    ["--no-defaults", "--max-allowed-packet=64M", "-h", "127.0.0.1", "-P", &port.to_string(), "-u", "root"].map(String::from).to_vec()
}

/// A mysql client session connected before the capture started (as a
/// pool's connections are): its later statements are seen, at both ends,
/// though its handshake was not; result sets read from the first one.
#[test]
fn a_mysql_connection_open_before_the_capture_is_seen_from_its_next_query() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, port)) = mariadb_server(dir.path()) else { return };
    let (client, mut input) = session_open_before("mysql", mysql_args(port), b"CREATE DATABASE shop;\n", || {
        let out = Command::new("mysql").args(mysql_args(port)).args(["-N", "-e", "SHOW DATABASES LIKE 'shop'"]).output();
        out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "shop")
    });
    let pipeline = capture(&[port], "");
    let statements = [
        "CREATE TABLE shop.items (id int PRIMARY KEY, name text)",
        "INSERT INTO shop.items VALUES (1, 'one')",
        "SELECT name FROM shop.items WHERE id = 1",
        "SELECT id, name FROM shop.items",
        "SELECT * FROM shop.nope",
    ];
    input.write_all((statements.join(";\n") + ";\n").as_bytes()).unwrap();
    drop(input);
    let out = client.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("Table 'shop.nope' doesn't exist"), "{out:?}");

    let wanted = |r: &Value| r["protocol"] == "mysql" && r["endpoint"].as_str().is_some_and(|e| e.contains("shop"));
    let found = wait_records(&pipeline, 10, "the open connection's statements at both ends", wanted);
    let expected: Vec<(&str, &str, Value, u64)> = vec![
        ("CREATE", statements[0], Value::Null, 60),
        ("INSERT", "INSERT INTO shop.items VALUES (?, ?)", Value::Null, 45),
        ("SELECT", "SELECT name FROM shop.items WHERE id = ?", Value::Null, 45),
        ("SELECT", statements[3], Value::Null, 36),
        ("SELECT", statements[4], Value::from("1146 (42S02): Table 'shop.nope' doesn't exist"), 28),
    ];
    let ports: std::collections::BTreeSet<u64> = found.iter().map(|r| number(r, "client_port")).collect();
    assert_eq!(ports.len(), 1, "only the session's own: {found:#?}");
    check_statements(&found, &expected, ["mysql", "mariadbd"], port, 4);
}

#[test]
fn mysql_client_to_mariadb_seen_from_both_ends() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, port)) = mariadb_server(dir.path()) else { return };
    let pipeline = capture(&[port], "");

    // A value of 17 MiB: its INSERT and the row that returns it are packets of 2^24 - 1
    // bytes continued by the next (the row's starts 0xfe, as the OK ending rows does).
    let big = "x".repeat(17 << 20);
    let statements = [
        "CREATE DATABASE shop".to_string(),
        "CREATE TABLE shop.items (id int PRIMARY KEY, name longtext)".into(),
        "INSERT INTO shop.items VALUES (1, 'one')".into(),
        format!("INSERT INTO shop.items VALUES (2, '{big}')"),
        "SELECT name FROM shop.items WHERE id = 1".into(),
        "SELECT length(name), name FROM shop.items WHERE id = 2".into(),
        "SELECT * FROM shop.nope".into(),
    ];
    let script = dir.path().join("statements.sql");
    std::fs::write(&script, statements.join(";\n") + ";\n").unwrap();
    let out = Command::new("mysql").args(mysql_args(port)).arg("-vvv").stdin(std::fs::File::open(&script).unwrap()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("Table 'shop.nope' doesn't exist"), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains(&big), "the big value came back");
    // The client's own time of each statement but the failing one ("(0.002 sec)", `-vvv`),
    // printed to the millisecond: a millisecond more is its bound.
    let mut measured: Vec<Option<u64>> = printed
        .lines()
        .filter_map(|line| line.strip_suffix(" sec)")?.rsplit_once('(')?.1.parse::<f64>().ok())
        .map(|secs| Some((secs * 1e6).round() as u64 + 1000))
        .collect();
    assert_eq!(measured.len(), statements.len() - 1, "{}", printed.len());
    measured.push(None);

    let wanted = |r: &Value| r["protocol"] == "mysql" && r["endpoint"].as_str().is_some_and(|e| e.contains("shop"));
    let found = wait_records(&pipeline, 14, "mysql records of both ends", wanted);
    // A command's bytes: the statement and its command byte, in packets of at most
    // 2^24 - 1 payload bytes (one more, empty, when the last is full), each with its 4-byte header.
    let size = |statement: &str| {
        let payload = 1 + statement.len() as u64;
        payload + 4 * (payload / 0xff_ffff + 1)
    };
    // (method, endpoint, error, request size), in order, at each end.
    let expected: Vec<(&str, &str, Value, u64)> = vec![
        ("CREATE", &statements[0], Value::Null, size(&statements[0])),
        ("CREATE", &statements[1], Value::Null, size(&statements[1])),
        ("INSERT", "INSERT INTO shop.items VALUES (?, ?)", Value::Null, size(&statements[2])),
        // The statement as far as its text is kept (its value cut off).
        ("INSERT", "INSERT INTO shop.items VALUES (?, ?", Value::Null, size(&statements[3])),
        ("SELECT", "SELECT name FROM shop.items WHERE id = ?", Value::Null, size(&statements[4])),
        ("SELECT", "SELECT length(name), name FROM shop.items WHERE id = ?", Value::Null, size(&statements[5])),
        ("SELECT", "SELECT * FROM shop.nope", Value::from("1146 (42S02): Table 'shop.nope' doesn't exist"), size(&statements[6])),
    ];
    // The big row's second packet header sits 16 MiB into the response: when one write
    // or read moves it past the 4 KiB a call's capture copies, that response is not
    // parsed (and counted); the next command is, from its own start.
    let (big_reads, found): (Vec<Value>, Vec<Value>) = found.into_iter().partition(|r| r["endpoint"] == expected[5].1);
    assert_eq!(big_reads.len(), 2, "{big_reads:#?}");
    for record in &big_reads {
        assert_eq!(number(record, "request_size"), expected[5].3, "{record}");
        if record["error"] == "response not parsed" {
            eprintln!("the 17 MiB row's response not parsed at the {} end", text(record, "observation_point"));
        } else {
            assert_eq!(record["error"], Value::Null, "{record}");
            assert!(number(record, "response_size") > big.len() as u64, "{record}");
        }
    }
    let expected: Vec<_> = expected.into_iter().enumerate().filter(|(i, _)| *i != 5).map(|(_, e)| e).collect();
    check_statements(&found, &expected, ["mysql", "mariadbd"], port, 4);
    measured.remove(5);
    check_latencies(&found, &measured);
    // Both ends name the same bytes.
    let ends: Vec<Value> = found.iter().filter(|r| r["method"] == "INSERT").cloned().collect();
    let (client, server) = (side(&ends, "client_process"), side(&ends, "server_process"));
    assert!(number(client, "tcp_seq_request") != 0);
    assert_eq!(client["tcp_seq_request"], server["tcp_seq_request"], "{client}\n{server}");
    assert_eq!(client["tcp_seq_response"], server["tcp_seq_response"], "{client}\n{server}");
}
