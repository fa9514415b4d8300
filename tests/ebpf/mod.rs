//! The `ebpf` source on the real kernel, watching real programs: curl,
//! `python3 -m http.server`, a Python HTTP/1.1 and TLS backend
//! (scripts/http_backend.py), nginx as a reverse proxy, wrk for load.
//!
//! Needs root. Outside CI a test without root says why and passes; in CI
//! (`CI` set) it fails. Each test filters the capture to its own ports, so
//! tests running side by side do not see each other's traffic.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

mod databases;
mod stitch;

fn root() -> bool {
    crate::common::root("the eBPF tests need root (CAP_BPF, CAP_PERFMON)")
}

/// A pipeline capturing `ports`: records to `records.json`, TCP metrics to `tcp.json`.
fn capture(ports: &[u16], extra: &str) -> Pipeline {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let pipeline = Pipeline::start(&format!(
        "[sources.capture]\ntype = \"ebpf\"\nports = [{}]\non_start_error = \"fail\"\n{extra}\n\
         [sinks.records]\ntype = \"file\"\ninputs = [\"capture\"]\npath = \"DIR/records.json\"\nencoding.codec = \"json\"\n\
         [sinks.tcp]\ntype = \"file\"\ninputs = [\"capture.tcp\"]\npath = \"DIR/tcp.json\"\nencoding.codec = \"json\"\n",
        ports.join(", ")
    ));
    wait_for("the capture to start", Duration::from_secs(60), || {
        let log = std::fs::read_to_string(&pipeline.stderr).unwrap_or_default();
        assert!(!log.contains("ERROR"), "tapline failed to start:\n{log}");
        log.contains("eBPF capture started")
    });
    pipeline
}

fn records(pipeline: &Pipeline) -> Vec<Value> {
    read_json(&pipeline.path("records.json"))
}

/// Wait until `count` records match, and return them.
fn wait_records(pipeline: &Pipeline, count: usize, what: &str, matches: impl Fn(&Value) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let found: Vec<Value> = records(pipeline).into_iter().filter(|r| matches(r)).collect();
        if found.len() >= count {
            return found;
        }
        if start.elapsed() > Duration::from_secs(30) {
            panic!(
                "{what}: {} of {count} records; all records:\n{:#?}\nlog:\n{}",
                found.len(),
                records(pipeline),
                std::fs::read_to_string(&pipeline.stderr).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn text<'a>(record: &'a Value, field: &str) -> &'a str {
    record[field].as_str().unwrap_or_else(|| panic!("no {field} in {record}"))
}

fn number(record: &Value, field: &str) -> u64 {
    record[field].as_u64().unwrap_or_else(|| panic!("no {field} in {record}"))
}

/// A child process killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start a server and wait until it accepts connections on `port`.
fn serve(command: &mut Command, port: u16) -> Server {
    let server = Server(command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| panic!("{command:?}: {e}")));
    wait_for("the server to listen", Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", port)).is_ok());
    server
}

/// scripts/http_backend.py: HTTP/1.1 with keep-alive, chosen statuses, optionally TLS.
fn backend(port: u16, tls: Option<(&Path, &Path)>) -> Server {
    let mut command = Command::new("python3");
    command.arg(here("scripts/http_backend.py")).arg(port.to_string());
    if let Some((cert, key)) = tls {
        command.arg("--tls").arg(cert).arg(key);
    }
    serve(&mut command, port)
}

/// Python's `http.server` (HTTP/1.0) on a free port, serving one file `name`
/// holding `content` from a directory that lives as long as the last value.
fn python_file_server(name: &str, content: &str) -> (u16, Server, tempfile::TempDir) {
    let port = free_port();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join(name), content).unwrap();
    let server = serve(
        Command::new("python3").args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"]).current_dir(files.path()),
        port,
    );
    (port, server, files)
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-sS", "--max-time", "20"]).args(args).output().expect("curl must be installed");
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a Python script to its end; it must succeed. Its standard output.
fn python(script: &str) -> String {
    let out = Command::new("python3").args(["-c", script]).output().expect("python3 must be installed");
    assert!(out.status.success(), "python3 -c {script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn side<'a>(records: &'a [Value], point: &str) -> &'a Value {
    records.iter().find(|r| r["observation_point"] == point).unwrap_or_else(|| panic!("no {point} record in {records:#?}"))
}

/// Both builds of the kernel programs pass this kernel's verifier and see a
/// request, with either set of hooks: the build for kernels with `bpf_loop`
/// (5.17+, 64 iovecs a call) and the one for 5.8 to 5.16 (8 iovecs, an
/// unrolled loop); the socket tracepoints (6.3+) and the syscall ones. The
/// request is one `sendmsg` of six iovecs, its request line spread over the
/// first five: the first four are copied inline, the rest by the loop, and
/// the record must hold them in order.
#[test]
fn every_build_and_set_of_hooks_loads_and_captures() {
    use tapline::sources::ebpf::loader::{load, KernelHooks, Options};
    if !root() {
        return;
    }
    for (bpf_loop, hooks) in
        [(true, KernelHooks::Sockets), (true, KernelHooks::Syscalls), (false, KernelHooks::Sockets), (false, KernelHooks::Syscalls)]
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let options = Options {
            payload_size: 1024,
            ports: vec![port],
            pids: vec![],
            ring_buffer_bytes: 1 << 20,
            ssl_libraries: vec![],
            bpf_loop,
            hooks,
        };
        let mut capture = load(&options).unwrap_or_else(|e| panic!("bpf_loop = {bpf_loop}, {hooks:?}: {e}"));
        assert_eq!(capture.hooks, hooks);
        // The loading process is never traced: python makes the request.
        let path = format!("/loaded-{bpf_loop}-{hooks:?}");
        let send = format!(
            "import socket; s = socket.create_connection(('127.0.0.1', {port}), timeout=10); \
             s.sendmsg([b'GE', b'T ', b'{}', b'{}', b' HTTP/1.1\\r\\n', b'Host: 127.0.0.1\\r\\n\\r\\n']); s.recv(100)",
            &path[..3],
            &path[3..]
        );
        let mut client = Command::new("python3").args(["-c", &send]).spawn().unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0; 1];
        while !head.ends_with(b"\r\n\r\n") && server.read(&mut byte).unwrap() == 1 {
            head.push(byte[0]);
        }
        server.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(client.wait().unwrap().success());
        let marker = format!("GET {path} HTTP/1.1");
        let mut seen = 0;
        wait_for("the client's request in the ring buffer", Duration::from_secs(10), || {
            while let Some(record) = capture.ring.next() {
                seen += usize::from(record.windows(marker.len()).any(|w| w == marker.as_bytes()));
            }
            seen > 0
        });
        assert_eq!(seen, 1, "bpf_loop = {bpf_loop}, {hooks:?}: the client's one sendmsg");
    }
}

/// The default hooks: the socket tracepoints on a kernel that has them (6.3+).
#[test]
fn curl_to_python_http_server_seen_from_both_ends() {
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").unwrap_or_default();
    let has_socket_tracepoints = btf.windows(26).any(|w| w == b"btf_trace_sock_send_length");
    curl_to_python_http_server("", if has_socket_tracepoints { "Sockets" } else { "Syscalls" });
}

/// The hooks of kernels before 6.3, chosen on this one.
#[test]
fn curl_to_python_http_server_seen_through_the_syscall_hooks() {
    curl_to_python_http_server("kernel_hooks = \"syscalls\"", "Syscalls");
}

fn curl_to_python_http_server(config: &str, hooks: &str) {
    if !root() {
        return;
    }
    let (port, _server, _files) = python_file_server("hello.txt", "hello from the kernel's point of view\n");
    let pipeline = capture(&[port], config);
    let log = std::fs::read_to_string(&pipeline.stderr).unwrap();
    assert!(log.contains(&format!("hooks={hooks}")), "{log}");

    let started = Instant::now();
    let body = curl(&[&format!("http://127.0.0.1:{port}/hello.txt")]);
    let elapsed_us = started.elapsed().as_micros() as u64;
    assert!(body.starts_with("hello from"));

    let found = wait_records(&pipeline, 2, "curl and python records", |r| r["path"] == "/hello.txt");
    let (client, server) = (side(&found, "client_process"), side(&found, "server_process"));
    for record in [client, server] {
        assert_eq!(text(record, "signal_source"), "ebpf");
        assert_eq!(text(record, "protocol"), "http");
        assert_eq!(text(record, "method"), "GET");
        assert_eq!(number(record, "status"), 200);
        assert_eq!(number(record, "server_port"), u64::from(port));
        assert_eq!(text(record, "server_ip"), "127.0.0.1");
        assert!(number(record, "response_size") > 38, "{record}");
    }
    assert_eq!(text(client, "process_name"), "curl");
    assert!(text(server, "process_name").starts_with("python"), "{server}");
    assert!(text(server, "cmdline").contains("http.server"), "{server}");
    assert_eq!(client["client_port"], server["client_port"]);
    // Both ends name the same bytes: the client's write seq is the server's read seq.
    assert_eq!(client["tcp_seq_request"], server["tcp_seq_request"], "{client}\n{server}");
    assert_eq!(client["tcp_seq_response"], server["tcp_seq_response"], "{client}\n{server}");
    assert!(number(client, "tcp_seq_request") != 0);
    // Latency: the server's time is within the client's, the client's within what curl took.
    let (client_us, server_us) = (number(client, "duration_us"), number(server, "duration_us"));
    assert!(server_us <= client_us && client_us <= elapsed_us, "server {server_us} µs, client {client_us} µs, curl {elapsed_us} µs");

    // The connection shows up in the TCP metrics: curl's connect, the server's accept.
    wait_for("a tcp_connects_total metric", Duration::from_secs(10), || {
        read_json(&pipeline.path("tcp.json")).iter().any(|m| {
            m["name"] == "tcp_connects_total"
                && m["tags"]["server_port"] == port.to_string().as_str()
                && m["tags"]["process_name"] == "curl"
        })
    });
    wait_for("python's tcp_accepts_total", Duration::from_secs(10), || {
        read_json(&pipeline.path("tcp.json")).iter().any(|m| {
            m["name"] == "tcp_accepts_total"
                && m["tags"]["server_port"] == port.to_string().as_str()
                && m["tags"]["process_name"].as_str().is_some_and(|name| name.starts_with("python"))
        })
    });
}

/// The kernel records a read's sequence number when the read has ended: a
/// read that took the response and the server's FIN together (the FIN counts
/// one in the sequence) still names the response's first byte, as the server's
/// write does.
#[test]
fn a_response_read_with_the_fin_names_the_same_bytes_at_both_ends() {
    if !root() {
        return;
    }
    // HTTP/1.0: the server closes the connection after its response.
    let (port, _server, _files) = python_file_server("bye.txt", "answered, then closed\n");
    let pipeline = capture(&[port], "");
    // The client waits until the response and the FIN are both queued, then reads once.
    let client = format!(
        "import socket, time\n\
         s = socket.create_connection(('127.0.0.1', {port}))\n\
         s.sendall(b'GET /bye.txt HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')\n\
         time.sleep(0.5)\n\
         first = s.recv(65536)\n\
         print(first.decode().split('\\r\\n')[0])\n"
    );
    let out = python(&client);
    assert!(out.contains("200"), "{out}");

    let found = wait_records(&pipeline, 2, "client and server records", |r| r["path"] == "/bye.txt");
    let (client, server) = (side(&found, "client_process"), side(&found, "server_process"));
    assert!(number(client, "tcp_seq_response") != 0);
    assert_eq!(client["tcp_seq_request"], server["tcp_seq_request"], "{client}\n{server}");
    assert_eq!(client["tcp_seq_response"], server["tcp_seq_response"], "{client}\n{server}");
}

/// A client that shuts its side down before reading: the server's answer and
/// FIN take its socket to CLOSE while it still holds it, unread. The
/// connection ends when the client is done with it, so the response it then
/// reads still pairs with its request.
#[test]
fn a_client_that_shuts_down_its_side_before_reading_still_gets_its_response_paired() {
    if !root() {
        return;
    }
    let (port, _server, _files) = python_file_server("half.txt", "answered to a half-closed client\n");
    let pipeline = capture(&[port], "");
    let client = format!(
        "import socket, time\n\
         s = socket.create_connection(('127.0.0.1', {port}))\n\
         s.sendall(b'GET /half.txt HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')\n\
         s.shutdown(socket.SHUT_WR)\n\
         time.sleep(0.5)\n\
         answer = b''\n\
         while chunk := s.recv(65536):\n\
         \x20   answer += chunk\n\
         time.sleep(0.2)\n\
         s.close()\n\
         print(answer.decode().split('\\r\\n')[0])\n"
    );
    let out = python(&client);
    assert!(out.contains("200"), "{out}");

    let found = wait_records(&pipeline, 2, "client and server records", |r| r["path"] == "/half.txt");
    for record in [side(&found, "client_process"), side(&found, "server_process")] {
        assert_eq!(number(record, "status"), 200, "{record}");
        assert_eq!(record["error"], Value::Null, "{record}");
    }
    let client = side(&found, "client_process");
    assert!(number(client, "duration_us") >= 500_000, "the client read the answer after 0.5 s: {client}");
}

#[test]
fn keep_alive_pipelining_and_error_statuses() {
    if !root() {
        return;
    }
    let port = free_port();
    let _server = backend(port, None);
    let pipeline = capture(&[port], "");

    // Keep-alive: curl reuses one connection for the three URLs.
    let base = format!("http://127.0.0.1:{port}");
    curl(&[&format!("{base}/first"), &format!("{base}/status/404"), &format!("{base}/status/500")]);
    let server_side = |r: &Value| r["observation_point"] == "server_process";
    let found = wait_records(&pipeline, 3, "keep-alive records", |r| {
        server_side(r) && r["pid"].is_u64() && ["/first", "/status/404", "/status/500"].contains(&r["path"].as_str().unwrap_or(""))
    });
    let status_of = |path: &str| found.iter().find(|r| r["path"] == path).map(|r| number(r, "status")).unwrap();
    assert_eq!((status_of("/first"), status_of("/status/404"), status_of("/status/500")), (200, 404, 500));
    let client_ports: Vec<&Value> = found.iter().map(|r| &r["client_port"]).collect();
    assert!(client_ports.windows(2).all(|w| w[0] == w[1]), "one connection: {client_ports:?}");

    // Pipelining: three requests in one write, before any response.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /status/503 HTTP/1.1\r\nHost: a\r\n\r\nGET /p3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
    let mut answers = String::new();
    stream.read_to_string(&mut answers).unwrap();
    assert_eq!(answers.matches("HTTP/1.1 ").count(), 3, "{answers}");
    let pipelined = wait_records(&pipeline, 6, "pipelined records (both ends)", |r| {
        ["/p1", "/status/503", "/p3"].contains(&r["path"].as_str().unwrap_or(""))
    });
    for point in ["client_process", "server_process"] {
        let ends: Vec<&Value> = pipelined.iter().filter(|r| r["observation_point"] == point).collect();
        let pairs: Vec<(&str, u64)> = ends.iter().map(|r| (text(r, "path"), number(r, "status"))).collect();
        assert_eq!(pairs, [("/p1", 200), ("/status/503", 503), ("/p3", 200)], "{point}");
    }
}

#[test]
fn https_through_openssl_is_seen_in_plaintext() {
    if !root() {
        return;
    }
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let _server = backend(port, Some((&cert, &key)));
    let pipeline = capture(&[port], "");

    let body = curl(&["--cacert", cert.to_str().unwrap(), &format!("https://127.0.0.1:{port}/secret/path?q=1")]);
    assert_eq!(body, "hello /secret/path?q=1\n");
    let found = wait_records(&pipeline, 2, "TLS records", |r| r["path"] == "/secret/path");
    for point in ["client_process", "server_process"] {
        let record = side(&found, point);
        assert_eq!(text(record, "method"), "GET", "{record}");
        assert_eq!(text(record, "query"), "q=1");
        assert_eq!(number(record, "status"), 200);
        assert_eq!(record["tls"], true, "{record}");
    }
    assert_eq!(text(side(&found, "client_process"), "process_name"), "curl");
}

/// nginx (one process) with its own config, logs and pid file in `dir`, serving `server` on `port`.
fn nginx(dir: &Path, port: u16, server: &str) -> Server {
    nginx_with(dir, port, "", server)
}

/// nginx as above, with `http` added to its `http` block (upstreams, log formats).
fn nginx_with(dir: &Path, port: u16, http: &str, server: &str) -> Server {
    nginx_listening(dir, port, "", http, server)
}

/// nginx as above, with `options` on its `listen` line (`http2`).
fn nginx_listening(dir: &Path, port: u16, options: &str, http: &str, server: &str) -> Server {
    let config = dir.join("nginx.conf");
    let prefix = dir.display();
    std::fs::write(
        &config,
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log {prefix}/access.log;\n  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n\
             fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n  {http}\n\
             server {{\n    listen 127.0.0.1:{port} {options};\n    {server}\n  }}\n}}\n"
        ),
    )
    .unwrap();
    serve(Command::new("nginx").arg("-c").arg(&config).arg("-p").arg(dir), port)
}

/// nginx's answers to the HTTP/2 tests.
const HTTP2_LOCATIONS: &str = "location /h2/ { return 200 \"hello $uri\\n\"; }\n    location /missing { return 404; }";

/// What the HTTP/2 tests ask: two paths served, one missing; the first with a query.
const HTTP2_PATHS: [&str; 3] = ["/h2/first", "/h2/second", "/missing"];

/// curl's arguments for the HTTP/2 tests: headers the records read, and per transfer
/// a line with the HTTP version, the status, new connections, seconds.
fn http2_curl_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["-H", "x-request-id: h2-req", "-H", "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"];
    args.extend(["-w", "\ncurl: %{http_version} %{response_code} %{num_connects} %{time_total}\n"]);
    args.extend(extra);
    args
}

/// The `curl:` lines of what curl wrote: (HTTP version, status, new connections, µs).
fn curl_reports(out: &str) -> Vec<(String, u64, u64, u64)> {
    out.lines()
        .filter_map(|line| line.strip_prefix("curl: "))
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let seconds: f64 = fields[3].parse().unwrap();
            (fields[0].to_string(), fields[1].parse().unwrap(), fields[2].parse().unwrap(), (seconds * 1e6) as u64)
        })
        .collect()
}

/// Both ends' records of the HTTP/2 tests' requests, checked against what curl
/// reported; the server's end is the process `server_process`.
fn check_http2_records(
    pipeline: &Pipeline,
    port: u16,
    reported: &[(String, u64, u64, u64)],
    tls: bool,
    server_process: &str,
) -> Vec<Value> {
    let found = wait_records(pipeline, 6, "HTTP/2 records of both ends", |r| {
        r["protocol"] == "http2" && HTTP2_PATHS.contains(&r["path"].as_str().unwrap_or(""))
    });
    for (n, path) in HTTP2_PATHS.iter().enumerate() {
        let ends: Vec<Value> = found.iter().filter(|r| r["path"] == *path).cloned().collect();
        let (client, server) = (side(&ends, "client_process"), side(&ends, "server_process"));
        let query = if n == 0 { Value::from("n=1") } else { Value::Null };
        for record in [client, server] {
            assert_eq!(text(record, "method"), "GET", "{record}");
            assert_eq!(number(record, "status"), reported[n].1, "{record}");
            assert_eq!(record["query"], query, "{record}");
            assert_eq!(text(record, "host"), format!("127.0.0.1:{port}"), "{record}");
            assert_eq!(text(record, "request_id"), "h2-req", "{record}");
            assert_eq!(text(record, "trace_id"), "0af7651916cd43dd8448eb211c80319c", "{record}");
            assert_eq!(number(record, "server_port"), u64::from(port));
            assert_eq!(record["tls"], tls, "{record}");
            assert!(number(record, "response_size") > 9, "{record}");
            assert_eq!(record["error"], Value::Null, "{record}");
        }
        assert_eq!(text(client, "process_name"), "curl");
        assert_eq!(text(server, "process_name"), server_process);
        if !tls {
            // Both ends name the first byte of the stream's HEADERS frame.
            assert!(number(client, "tcp_seq_request") != 0);
            assert_eq!(client["tcp_seq_request"], server["tcp_seq_request"], "{client}\n{server}");
            assert_eq!(client["tcp_seq_response"], server["tcp_seq_response"], "{client}\n{server}");
        }
        // Latency: nginx's time within curl's, curl's within what curl reports. Through
        // OpenSSL the times are those of the probes on the calls' returns, which a busy
        // machine can delay after the bytes reached the peer: there nginx's is only positive.
        let (client_us, server_us) = (number(client, "duration_us"), number(server, "duration_us"));
        assert!(
            client_us <= reported[n].3 && server_us > 0 && (tls || server_us <= client_us),
            "{path}: nginx {server_us} µs, curl {client_us} µs, curl -w {} µs",
            reported[n].3
        );
    }
    found
}

#[test]
fn curl_http2_prior_knowledge_to_nginx() {
    if !root() {
        return;
    }
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let _nginx = nginx_listening(dir.path(), port, "http2", "", HTTP2_LOCATIONS);
    let pipeline = capture(&[port], "");

    // One connection per request: Debian 12's curl 7.88.1 fails ("Error in the HTTP2 framing
    // layer") on the second request of a prior-knowledge connection it reuses.
    let base = format!("http://127.0.0.1:{port}");
    let mut reported = Vec::new();
    for url in [format!("{base}{}?n=1", HTTP2_PATHS[0]), format!("{base}{}", HTTP2_PATHS[1]), format!("{base}{}", HTTP2_PATHS[2])] {
        let out = curl(&http2_curl_args(&["--http2-prior-knowledge", &url]));
        reported.extend(curl_reports(&out));
    }
    assert_eq!(
        reported.iter().map(|(version, status, connects, _)| (version.as_str(), *status, *connects)).collect::<Vec<_>>(),
        [("2", 200, 1), ("2", 200, 1), ("2", 404, 1)],
    );
    check_http2_records(&pipeline, port, &reported, false, "nginx");
}

#[test]
fn curl_http2_over_tls_to_nginx_several_requests_on_one_connection() {
    if !root() {
        return;
    }
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let certificates = format!("ssl_certificate {};\n    ssl_certificate_key {};\n    ", cert.display(), key.display());
    let _nginx = nginx_listening(dir.path(), port, "ssl http2", "", &format!("{certificates}{HTTP2_LOCATIONS}"));
    let pipeline = capture(&[port], "");

    // Three requests on one connection (ALPN h2): the later ones name :authority,
    // user-agent and the headers above by their index in the dynamic table.
    let base = format!("https://127.0.0.1:{port}");
    three_requests_on_one_connection(&pipeline, port, &base, &["--cacert", cert.to_str().unwrap()], "nginx");
}

/// curl's three HTTP/2 requests to `base` on one connection (`--http2` and
/// `extra`), both ends' records checked; the server's end is `server_process`.
fn three_requests_on_one_connection(pipeline: &Pipeline, port: u16, base: &str, extra: &[&str], server_process: &str) -> Vec<Value> {
    let urls = [format!("{base}{}?n=1", HTTP2_PATHS[0]), format!("{base}{}", HTTP2_PATHS[1]), format!("{base}{}", HTTP2_PATHS[2])];
    let mut args = vec!["--http2"];
    args.extend(extra);
    args.extend(urls.iter().map(String::as_str));
    let out = curl(&http2_curl_args(&args));
    let reported = curl_reports(&out);
    assert_eq!(
        reported.iter().map(|(version, status, connects, _)| (version.as_str(), *status, *connects)).collect::<Vec<_>>(),
        [("2", 200, 1), ("2", 200, 0), ("2", 404, 0)],
        "{out}"
    );
    let found = check_http2_records(pipeline, port, &reported, base.starts_with("https"), server_process);
    let client_ports: Vec<&Value> =
        found.iter().filter(|r| r["observation_point"] == "client_process").map(|r| &r["client_port"]).collect();
    assert!(client_ports.windows(2).all(|w| w[0] == w[1]), "one connection: {client_ports:?}");
    found
}

/// curl asks for h2c by an HTTP/1.1 upgrade (`--http2` on http://); the
/// server (tests/ebpf/h2c_peer.py, as nginx does not upgrade) answers 101 and
/// then the request in HTTP/2, and curl sends the next ones on the same
/// connection as HTTP/2 streams. The upgraded request is an HTTP/2 record with
/// its HTTP/2 answer, at both ends; no record of the 101.
#[test]
fn curl_upgrades_to_h2c_and_the_upgraded_request_is_answered_in_http2() {
    if !root() || !have_python_module("h2") {
        return;
    }
    let port = free_port();
    let _server = serve(Command::new("python3").arg(here("tests/ebpf/h2c_peer.py")).arg(port.to_string()), port);
    let pipeline = capture(&[port], "");

    three_requests_on_one_connection(&pipeline, port, &format!("http://127.0.0.1:{port}"), &[], "python3");
    // Every record of the port is one of those six: none of the 101, none unmatched.
    std::thread::sleep(Duration::from_millis(500));
    let all: Vec<Value> = records(&pipeline).into_iter().filter(|r| r["server_port"] == port).collect();
    assert_eq!(all.len(), 6, "{all:#?}");
}

#[test]
fn python_grpc_unary_streaming_and_error_calls() {
    if !root() {
        return;
    }
    let port = free_port();
    let peer = here("tests/ebpf/grpc_peer.py");
    let _server = serve(Command::new("python3").arg(&peer).args(["serve", &port.to_string()]), port);
    let pipeline = capture(&[port], "");

    // Three calls on one channel (one connection): the later ones' headers use the dynamic table.
    // ListItems streams 3 messages of 200 bytes, 50 ms apart (grpc_peer.py).
    let (unary, streaming, failing) = ("/shop.Catalog/GetItem", "/shop.Catalog/ListItems", "/shop.Catalog/Missing");
    let out = Command::new("python3").arg(&peer).args(["call", &port.to_string(), unary, streaming, failing]).output().unwrap();
    assert!(out.status.success(), "grpcio must be installed (scripts/install-test-deps.sh): {}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    // Per call, as the client saw it: (method, code, messages received, µs, details).
    let calls: Vec<(&str, &str, u64, u64, &str)> = printed
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.splitn(5, ' ').collect();
            (fields[0], fields[1], fields[2].parse().unwrap(), fields[3].parse().unwrap(), fields[4])
        })
        .collect();
    let seen: Vec<(&str, &str, u64, &str)> =
        calls.iter().map(|&(method, code, messages, _, details)| (method, code, messages, details)).collect();
    assert_eq!(seen, [(unary, "OK", 1, ""), (streaming, "OK", 3, ""), (failing, "NOT_FOUND", 0, "no item 7")], "{printed}");

    let found = wait_records(&pipeline, 6, "gRPC records of both ends", |r| r["protocol"] == "grpc");
    let expected = [(0, Value::Null), (0, Value::Null), (5, Value::from("NOT_FOUND: no item 7"))];
    let mut response_sizes = Vec::new();
    for (&(path, _, _, measured_us, _), (status, error)) in calls.iter().zip(expected) {
        let ends: Vec<Value> = found.iter().filter(|r| r["path"] == path).cloned().collect();
        let (client, server) = (side(&ends, "client_process"), side(&ends, "server_process"));
        for record in [client, server] {
            assert_eq!(text(record, "method"), "POST", "{record}");
            assert_eq!(text(record, "endpoint"), path, "{record}");
            assert_eq!(number(record, "status"), status, "{record}");
            assert_eq!(record["error"], error, "{record}");
            assert_eq!(text(record, "host"), format!("127.0.0.1:{port}"), "{record}");
            // gRPC's own threads move the bytes: the thread name is theirs (`event_engine`).
            assert!(text(record, "cmdline").contains("grpc_peer.py"), "{record}");
        }
        assert_eq!(client["tcp_seq_request"], server["tcp_seq_request"], "{client}\n{server}");
        assert_eq!(client["tcp_seq_response"], server["tcp_seq_response"], "{client}\n{server}");
        // Latency: the server's time within the client's record, that within the client's own measure.
        let (client_us, server_us) = (number(client, "duration_us"), number(server, "duration_us"));
        eprintln!("{path}: client measured {measured_us} µs, client record {client_us} µs, server record {server_us} µs");
        assert!(
            0 < server_us && server_us <= client_us && client_us <= measured_us,
            "{path}: server {server_us} µs, client {client_us} µs, measured by the client {measured_us} µs"
        );
        if path == streaming {
            // The server paused twice between messages: a record ended before its trailers
            // (END_STREAM) would miss the pauses.
            assert!(server_us >= 100_000, "{path}: server {server_us} µs");
        }
        response_sizes.push([client, server].map(|record| number(record, "response_size")));
    }
    // The stream's response holds its three DATA frames (9 + 5 + 200 bytes each), more than a unary call's whole response.
    for (unary_bytes, streaming_bytes) in response_sizes[0].into_iter().zip(response_sizes[1]) {
        assert!(streaming_bytes >= 3 * (9 + 5 + 200) && streaming_bytes > unary_bytes, "{response_sizes:?}");
    }
}

/// A gRPC connection opened before the capture started: its HPACK tables are
/// unknown (a later request names its path by an index into them), so its
/// calls after the start are not parsed: no record with a guessed path or
/// status, nothing taken for HTTP/1. A connection opened after the start is
/// parsed whole.
#[test]
fn grpc_calls_on_a_connection_older_than_the_capture_give_no_guessed_records() {
    if !root() {
        return;
    }
    let port = free_port();
    let peer = here("tests/ebpf/grpc_peer.py");
    let _server = serve(Command::new("python3").arg(&peer).args(["serve", &port.to_string()]), port);
    let methods = ["/shop.Catalog/GetItem", "/shop.Catalog/Missing"];
    let outcome = |line: &str| line.split(' ').take(2).collect::<Vec<_>>().join(" ");
    let expected = ["/shop.Catalog/GetItem OK", "/shop.Catalog/Missing NOT_FOUND"];

    // The old connection: two calls, then a pause while the capture starts.
    let mut old = Server(
        Command::new("python3")
            .arg(&peer)
            .args(["pause", &port.to_string()])
            .args(methods)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut printed = BufReader::new(old.0.stdout.take().unwrap()).lines().map(Result::unwrap);
    let before: Vec<String> = printed.by_ref().take_while(|line| line != "paused").collect();
    assert_eq!(before.iter().map(|line| outcome(line)).collect::<Vec<_>>(), expected, "grpcio must be installed");
    let pipeline = capture(&[port], "");
    writeln!(old.0.stdin.take().unwrap()).unwrap();
    let after: Vec<String> = printed.collect();
    assert_eq!(after.iter().map(|line| outcome(line)).collect::<Vec<_>>(), expected);

    // A new connection, opened after the start.
    let out = Command::new("python3").arg(&peer).args(["call", &port.to_string()]).args(methods).output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().map(outcome).collect::<Vec<_>>(), expected, "{printed}");
    wait_records(&pipeline, 4, "gRPC records of the new connection", |r| r["protocol"] == "grpc");
    // The old connection's calls came first: had they given records, they would be written by now.
    std::thread::sleep(Duration::from_millis(500));
    let all: Vec<Value> = records(&pipeline).into_iter().filter(|r| r["server_port"] == port).collect();
    assert_eq!(all.len(), 4, "only the new connection's calls, at both ends: {all:#?}");
    let client_ports: Vec<&Value> = all.iter().map(|r| &r["client_port"]).collect();
    assert!(client_ports.windows(2).all(|w| w[0] == w[1]), "one connection: {client_ports:?}");
    for (path, status) in [(methods[0], 0), (methods[1], 5)] {
        let ends: Vec<&Value> = all.iter().filter(|r| r["path"] == path).collect();
        assert_eq!(ends.len(), 2, "{path}: {all:#?}");
        assert!(ends.iter().all(|r| r["protocol"] == "grpc" && number(r, "status") == status), "{ends:#?}");
    }
    let log = std::fs::read_to_string(&pipeline.stderr).unwrap();
    assert!(!log.contains("ERROR") && !log.contains("panicked"), "{log}");
}

#[test]
fn a_proxy_hop_shares_the_syscall_trace_id_and_the_request_id() {
    if !root() {
        return;
    }
    let (proxy_port, backend_port) = (free_port(), free_port());
    let _backend = backend(backend_port, None);
    let dir = tempfile::tempdir().unwrap();
    let _nginx = nginx(
        dir.path(),
        proxy_port,
        &format!("location / {{ proxy_set_header X-Request-ID $request_id; proxy_pass http://127.0.0.1:{backend_port}; }}"),
    );
    let pipeline = capture(&[proxy_port, backend_port], "");

    assert_eq!(curl(&[&format!("http://127.0.0.1:{proxy_port}/through/the/proxy")]), "hello /through/the/proxy\n");
    let found = wait_records(&pipeline, 4, "four records of one request", |r| r["path"] == "/through/the/proxy");
    let at = |point: &str, port: u16| {
        found
            .iter()
            .find(|r| r["observation_point"] == point && r["server_port"] == port)
            .unwrap_or_else(|| panic!("no {point} record for port {port} in {found:#?}"))
    };
    let (nginx_in, nginx_out) = (at("server_process", proxy_port), at("client_process", backend_port));
    let (curl_side, backend_side) = (at("client_process", proxy_port), at("server_process", backend_port));
    assert_eq!(text(nginx_in, "process_name"), "nginx");
    assert_eq!(text(nginx_out, "process_name"), "nginx");
    assert_eq!(text(curl_side, "process_name"), "curl");
    // The same nginx thread read the request and wrote it upstream: one syscall trace id.
    assert_eq!(nginx_in["thread_id"], nginx_out["thread_id"]);
    assert!(nginx_in["syscall_trace_id_request"].is_u64(), "{nginx_in}");
    assert_eq!(nginx_in["syscall_trace_id_request"], nginx_out["syscall_trace_id_request"], "{nginx_in}\n{nginx_out}");
    assert_eq!(nginx_in["syscall_trace_id_response"], nginx_out["syscall_trace_id_response"], "{nginx_in}\n{nginx_out}");
    // The id nginx adds upstream is seen by both ends of the upstream hop.
    let request_id = text(nginx_out, "request_id");
    assert_eq!(request_id.len(), 32, "nginx's $request_id: {request_id}");
    assert_eq!(backend_side["request_id"], request_id);
    // Each hop's two ends agree on the bytes.
    assert_eq!(curl_side["tcp_seq_request"], nginx_in["tcp_seq_request"]);
    assert_eq!(nginx_out["tcp_seq_request"], backend_side["tcp_seq_request"]);
    assert!(number(nginx_in, "duration_us") >= number(nginx_out, "duration_us"));
}

#[test]
fn under_wrk_load_every_served_request_is_captured_or_counted_as_dropped() {
    if !root() {
        return;
    }
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let _nginx = nginx(dir.path(), port, "location / { return 200 \"ok\\n\"; }");
    let nginx_pid = std::fs::read_to_string(dir.path().join("nginx.pid")).unwrap().trim().to_string();
    // In-kernel filters on nginx's pid and port: wrk's own reads and writes are not even copied.
    let mut pipeline = capture(&[port], &format!("pids = [{nginx_pid}]\nring_buffer_bytes = 67108864\nrequest_timeout_secs = 5"));

    // A fixed count: wrk's thread stops after 20000 responses (wrk itself waits out `-d`).
    let script = dir.path().join("count.lua");
    std::fs::write(&script, "local n = 0\nfunction response()\n  n = n + 1\n  if n >= 20000 then wrk.thread:stop() end\nend\n").unwrap();
    let out = Command::new("wrk")
        .args(["-t", "1", "-c", "4", "-d", "5s", "-s", script.to_str().unwrap(), &format!("http://127.0.0.1:{port}/load")])
        .output()
        .expect("wrk must be installed (scripts/install-test-deps.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let served = std::fs::read_to_string(dir.path().join("access.log"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"GET /load HTTP/1.1\" 200 "))
        .count();
    assert!(served >= 1000, "nginx served only {served}:\n{}", String::from_utf8_lossy(&out.stdout));
    std::thread::sleep(Duration::from_secs(1));
    let log = pipeline.stop();

    let captured = records(&pipeline)
        .iter()
        .filter(|r| r["path"] == "/load" && r["status"] == 200 && r["observation_point"] == "server_process")
        .count();
    let dropped = totals(&log, "capture", "component_discarded_events_total") as usize;
    eprintln!("served {served}, captured {captured}, dropped {dropped}");
    if dropped == 0 {
        assert_eq!(captured, served);
    } else {
        // Each dropped read or write costs at most one request.
        assert!(captured <= served && served - captured <= dropped, "served {served}, captured {captured}, dropped {dropped}");
    }
}

#[test]
fn without_privileges_the_error_says_what_is_missing_and_the_rest_runs_on() {
    if !root() {
        return;
    }
    // Root without capabilities: what a container without CAP_BPF gets.
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("demo.json");
    let config = |on_error: &str| {
        format!(
            "[api]\nenabled = false\n[sources.capture]\ntype = \"ebpf\"\non_start_error = \"{on_error}\"\n\
             [sources.demo]\ntype = \"demo\"\ncount = 5\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"capture\", \"demo\"]\npath = \"{}\"\nencoding.codec = \"json\"\n",
            records.display()
        )
    };
    let run = |on_error: &str| {
        let path = dir.path().join(format!("{on_error}.toml"));
        std::fs::write(&path, config(on_error)).unwrap();
        Command::new("setpriv")
            .args(["--bounding-set=-all", "--inh-caps=-all", "--"])
            .arg(env!("CARGO_BIN_EXE_tapline"))
            .args(["run", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("setpriv (util-linux) must be installed")
    };

    // `validate` checks the machine too, and says the same.
    std::fs::write(dir.path().join("check.toml"), config("fail")).unwrap();
    let validate = Command::new("setpriv")
        .args(["--bounding-set=-all", "--inh-caps=-all", "--"])
        .arg(env!("CARGO_BIN_EXE_tapline"))
        .args(["validate", "--config"])
        .arg(dir.path().join("check.toml"))
        .output()
        .unwrap();
    assert_eq!(validate.status.code(), Some(78));
    assert!(
        String::from_utf8_lossy(&validate.stderr)
            .contains("source `capture`: the ebpf source needs root, or the capabilities CAP_BPF and CAP_PERFMON"),
        "{}",
        String::from_utf8_lossy(&validate.stderr)
    );

    let failed = wait(run("fail"), Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(stderr.contains("source `capture`") && stderr.contains("CAP_BPF") && stderr.contains("CAP_PERFMON"), "{stderr}");

    let mut child = run("continue");
    wait_for("the demo events", Duration::from_secs(30), || read_lines(&records).len() == 5);
    signal(&child, "TERM");
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");
    assert!(stderr.contains("the eBPF capture cannot start") && stderr.contains("CAP_BPF"), "{stderr}");
}

#[test]
fn a_refused_connection_counts_a_failed_connect_and_a_reset() {
    if !root() {
        return;
    }
    let closed_port = free_port();
    let pipeline = capture(&[closed_port], "");
    let out = Command::new("curl").args(["-sS", "--max-time", "5", &format!("http://127.0.0.1:{closed_port}/")]).output().unwrap();
    assert!(!out.status.success(), "nothing listens on {closed_port}");
    let metric = |name: &str| {
        read_json(&pipeline.path("tcp.json"))
            .into_iter()
            .find(|m| m["name"] == name && m["tags"]["server_port"] == closed_port.to_string().as_str())
    };
    let start = Instant::now();
    while metric("tcp_connect_failures_total").is_none() || metric("tcp_resets_received_total").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no failed connect and reset for port {closed_port} in:\n{:#?}",
            read_json(&pipeline.path("tcp.json"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let failed = metric("tcp_connect_failures_total").unwrap();
    assert_eq!(failed["tags"]["process_name"], "curl", "{failed}");
    assert_eq!(failed["value"]["counter"]["value"], 1.0, "{failed}");
    // The reset comes while the connect is still in progress: it is curl's, and the server is the closed port.
    assert_eq!(metric("tcp_resets_received_total").unwrap()["tags"]["process_name"], "curl");
    assert!(metric("tcp_connects_total").is_none(), "a refused connect is not a connect");
}
