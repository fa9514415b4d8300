//! The `socket` sink against real listeners on loopback (std::net and
//! std::os::unix::net in the test): exactly the events, newline-framed on
//! streams, one per datagram; and a TCP listener killed and started again
//! while the pipeline runs.

use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

fn events(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"id": i, "message": format!("event {i}")})).collect()
}

/// Run a `socket` sink named `out` with `options` on `input` to the end; returns tapline's log.
fn run(options: &str, input: &[Value]) -> String {
    crate::http_sink::run(&format!("[sinks.out]\ntype = \"socket\"\ninputs = [\"shape\"]\n{options}\n"), input)
}

fn count(log: &str, counter: &str) -> u64 {
    crate::http_sink::count(log, "out", counter)
}

fn parse_lines(text: &[u8]) -> Vec<Value> {
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert!(text.ends_with('\n'), "the last event has its newline");
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn tcp_carries_each_event_on_its_line() {
    // The kernel queues the connection and its bytes until the test reads them.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let input = events(50);
    let address = listener.local_addr().unwrap();
    let log = run(&format!("mode = \"tcp\"\naddress = \"{address}\"\nencoding.codec = \"json\""), &input);
    let (mut stream, _) = listener.accept().unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).unwrap();
    assert_eq!(parse_lines(&received), input);
    assert_eq!(count(&log, "component_sent_events_total"), 50);
}

#[test]
fn udp_carries_one_event_per_datagram() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let input = events(20);
    let log = run(&format!("mode = \"udp\"\naddress = \"{}\"\nencoding.codec = \"json\"", socket.local_addr().unwrap()), &input);
    socket.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = socket.recv(&mut buf) {
        assert!(!buf[..n].ends_with(b"\n"), "a datagram needs no framing");
        got.push(serde_json::from_slice::<Value>(&buf[..n]).unwrap());
    }
    assert_eq!(got, input);
    assert_eq!(count(&log, "component_sent_events_total"), 20);
}

#[test]
fn unix_sockets_carry_lines_and_datagrams() {
    let dir = tempfile::tempdir().unwrap();
    let input = events(10);
    let messages: Vec<String> = input.iter().map(|e| e["message"].as_str().unwrap().to_string()).collect();

    let stream_path = dir.path().join("stream.sock");
    let listener = UnixListener::bind(&stream_path).unwrap();
    // `unix` is Vector's older name for `unix_stream`.
    run(&format!("mode = \"unix\"\npath = \"{}\"\nencoding.codec = \"text\"", stream_path.display()), &input);
    let (mut stream, _) = listener.accept().unwrap();
    let mut received = String::new();
    stream.read_to_string(&mut received).unwrap();
    assert_eq!(received, messages.iter().map(|m| format!("{m}\n")).collect::<String>());

    let datagram_path = dir.path().join("datagram.sock");
    let socket = UnixDatagram::bind(&datagram_path).unwrap();
    run(&format!("mode = \"unix_datagram\"\npath = \"{}\"\nencoding.codec = \"text\"", datagram_path.display()), &input);
    socket.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = socket.recv(&mut buf) {
        got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    assert_eq!(got, messages);
}

/// A line-reading TCP listener on `port`. Killing it closes the listening
/// socket and every connection, as the kernel does when a process dies.
struct LineListener {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LineListener {
    fn start(port: u16, lines: Arc<Mutex<Vec<String>>>) -> LineListener {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut connections: Vec<(TcpStream, Vec<u8>)> = Vec::new();
            let mut buf = [0u8; 65536];
            while !stopped.load(Ordering::Acquire) {
                if let Ok((stream, _)) = listener.accept() {
                    stream.set_nonblocking(true).unwrap();
                    connections.push((stream, Vec::new()));
                }
                for (stream, pending) in &mut connections {
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        pending.extend_from_slice(&buf[..n]);
                    }
                    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        lines.lock().unwrap().push(String::from_utf8_lossy(&line[..end]).into_owned());
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        LineListener { stop, thread: Some(thread) }
    }
}

impl Drop for LineListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The listener dies between two batches and comes back: the sink notices the
/// closed connection, connects again with backoff, and writes the batch.
#[test]
fn tcp_reconnects_when_the_listener_comes_back() {
    let (port, http) = (free_port(), free_port());
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = LineListener::start(port, lines.clone());
    let pipeline = Pipeline::start(&format!(
        "[sources.in]\ntype = \"http_server\"\naddress = \"127.0.0.1:{http}\"\ndecoding.codec = \"json\"\n\
         [transforms.shape]\ntype = \"remap\"\ninputs = [\"in\"]\nsource = '. = {{\"id\": .id}}'\n\
         [sinks.out]\ntype = \"socket\"\ninputs = [\"shape\"]\nmode = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nencoding.codec = \"json\"\nacknowledgements = true\n"
    ));
    let mut pipeline = pipeline;
    wait_for("the http_server source", Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", http)).is_ok());
    let batch = |ids: std::ops::Range<usize>| serde_json::to_vec(&ids.map(|id| json!({"id": id})).collect::<Vec<_>>()).unwrap();
    let json = ["Content-Type: application/json"];
    // With acknowledgements, the 200 comes once the batch is written.
    assert_eq!(post(http, "/", &batch(0..10), &json).status, 200);
    wait_for("10 lines", Duration::from_secs(30), || lines.lock().unwrap().len() == 10);

    drop(listener);
    let posted = std::thread::spawn(move || post(http, "/", &batch(10..20), &json).status);
    let stderr = pipeline.stderr.clone();
    wait_for("the sink to try to reconnect", Duration::from_secs(30), || {
        std::fs::read_to_string(&stderr).unwrap_or_default().contains("cannot connect; retrying")
    });
    let _listener = LineListener::start(port, lines.clone());
    assert_eq!(posted.join().unwrap(), 200);
    wait_for("20 lines", Duration::from_secs(30), || lines.lock().unwrap().len() == 20);

    let log = pipeline.stop();
    let mut ids: Vec<u64> =
        lines.lock().unwrap().iter().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_u64().unwrap()).collect();
    ids.sort();
    let (sent, received) = (count(&log, "component_sent_events_total"), ids.len() as u64);
    eprintln!("tcp listener killed and restarted: sent {sent}, received {received}, lost as reported {}", sent - received);
    assert_eq!(ids, (0..20).collect::<Vec<u64>>(), "each event exactly once");
    assert_eq!((sent, received, sent - received), (20, 20, 0));
    assert_eq!(count(&log, "socket_reconnects_total"), 1);
    assert!(log.contains("the peer closed the connection; connecting again"), "{log}");
}
