//! Helpers shared by the integration tests: run the real binary, wait, read back.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tapline"));
    cmd.env("TAPLINE_LOG", "info").env_remove("TAPLINE_TEST_UNSET");
    cmd
}

pub fn here(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Wait for a child with a deadline; kill it and fail past that.
pub fn wait(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("tapline did not exit within {limit:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Start `tapline run` on `config` (written in `dir`) with stdin piped and
/// stderr to a file, for long runs whose log could fill a pipe. Returns the
/// child and the stderr file.
pub fn spawn_logged(config: &str, dir: &Path) -> (Child, PathBuf) {
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, config).unwrap();
    let stderr_path = dir.join("stderr.log");
    let child = bin()
        .args(["run", "--config"])
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    (child, stderr_path)
}

/// The complete lines of a file another process may be writing: a last line
/// without its newline is still being written, and left out.
pub fn read_lines(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            text.split_inclusive('\n').filter(|l| l.ends_with('\n')).map(|l| l.trim_end_matches(['\n', '\r']).to_string()).collect()
        }
        Err(_) => Vec::new(),
    }
}

pub fn read_json(path: &Path) -> Vec<Value> {
    read_lines(path).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A free loopback port for the admin API.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// A counter from `/metrics` for one component.
pub fn metric(port: u16, name: &str, component: &str) -> Option<u64> {
    let text = http_get(port, "/metrics")?;
    let prefix = format!("tapline_{name}{{component_id=\"{component}\",");
    text.lines().find(|l| l.starts_with(&prefix))?.rsplit(' ').next()?.parse().ok()
}

pub fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// The totals tapline logs on exit: `<kind> <id> (<type>): name=value …`.
pub fn totals(stderr: &str, component: &str, counter: &str) -> u64 {
    let line = stderr
        .lines()
        .rfind(|l| l.contains("totals:") && l.contains(&format!(" {component} (")))
        .unwrap_or_else(|| panic!("no totals for {component} in:\n{stderr}"));
    let field = line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{counter}="))).unwrap();
    field.parse().unwrap()
}

/// A self-signed certificate for `localhost` and 127.0.0.1 (not a CA, so
/// that rustls takes it as a server's own), and its key: (cert, key) in `dir`.
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed (scripts/install-test-deps.sh)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    (cert, key)
}

/// A running `tapline run` whose config and output files live in a temp dir.
pub struct Pipeline {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub stderr: PathBuf,
}

impl Pipeline {
    pub fn start(config: &str) -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let config = config.replace("DIR", dir.path().to_str().unwrap());
        let (child, stderr) = spawn_logged(&format!("[api]\nenabled = false\n{config}"), dir.path());
        Pipeline { child: Some(child), dir, stderr }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Stop (SIGTERM), expect a clean exit, return the log. The files stay.
    pub fn stop(&mut self) -> String {
        let child = self.child.take().expect("stopped once");
        signal(&child, "TERM");
        let status = wait(child, Duration::from_secs(60)).status;
        let log = std::fs::read_to_string(&self.stderr).unwrap();
        assert!(status.success(), "tapline failed:\n{log}");
        log
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What an HTTP request got back.
pub struct Answer {
    pub status: u16,
    /// Lowercased, as curl wrote them.
    pub headers: String,
    pub body: Vec<u8>,
}

pub fn post(port: u16, path: &str, body: &[u8], headers: &[&str]) -> Answer {
    request(port, "POST", path, body, headers)
}

pub fn request(port: u16, method: &str, path: &str, body: &[u8], headers: &[&str]) -> Answer {
    let dir = tempfile::tempdir().unwrap();
    let (body_file, head_file, out_file) = (dir.path().join("body"), dir.path().join("head"), dir.path().join("out"));
    std::fs::write(&body_file, body).unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-X", method, "--max-time", "30", "-w", "%{http_code}", "--data-binary"]).arg(format!("@{}", body_file.display()));
    cmd.arg("-D").arg(&head_file).arg("-o").arg(&out_file);
    for header in headers {
        cmd.args(["-H", header]);
    }
    let out = cmd.arg(format!("http://127.0.0.1:{port}{path}")).output().expect("curl must be installed (scripts/install-test-deps.sh)");
    Answer {
        status: String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0),
        headers: std::fs::read_to_string(&head_file).unwrap_or_default().to_ascii_lowercase(),
        body: std::fs::read(&out_file).unwrap_or_default(),
    }
}

/// Whether `tool` is installed; in CI a missing one fails the test.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "{tool} is not installed: run scripts/install-test-deps.sh");
        eprintln!("skipped: {tool} is not installed (scripts/install-test-deps.sh)");
    }
    found
}

/// Whether the Python module `module` imports; in CI a missing one fails the test.
pub fn have_python_module(module: &str) -> bool {
    let found = Command::new("python3").args(["-c", &format!("import {module}")]).status().is_ok_and(|s| s.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "the Python module {module} is not installed: run scripts/install-test-deps.sh");
        eprintln!("skipped: the Python module {module} is not installed (scripts/install-test-deps.sh)");
    }
    found
}

/// Whether this test can run as root (to mount, trace, load eBPF); `why`
/// says what for. In CI, which runs as root, not being root is a failure.
pub fn root(why: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    if !is_root {
        assert!(std::env::var_os("CI").is_none(), "{why}, and CI runs as root: run the tests as root");
        eprintln!("skipped: {why}");
    }
    is_root
}

/// A Kong file-log / http-log entry whose request id is `line-{n}`, as one line.
pub fn kong_line(n: usize) -> String {
    format!("{{\"request\":{{\"id\":\"line-{n}\",\"method\":\"GET\",\"uri\":\"/orders/{n}\",\"size\":\"120\"}},\"response\":{{\"status\":200,\"size\":900}},\"latencies\":{{\"kong\":1,\"proxy\":5,\"request\":6}},\"service\":{{\"name\":\"orders\"}},\"started_at\":1732613000000}}\n")
}

/// Append the entries `lines` to a file, as Kong's file-log would.
pub fn append(path: &Path, lines: std::ops::Range<usize>) {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    for chunk in lines.collect::<Vec<_>>().chunks(500) {
        let text: String = chunk.iter().map(|n| kong_line(*n)).collect();
        file.write_all(text.as_bytes()).unwrap();
    }
}

/// How many times each `line-N` request id was written to `out` (complete lines only).
pub fn id_counts(out: &Path) -> std::collections::BTreeMap<usize, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for record in read_json(out) {
        let id = record["request_id"]
            .as_str()
            .and_then(|id| id.strip_prefix("line-"))
            .and_then(|n| n.parse().ok())
            .expect("a line-N request id");
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}
