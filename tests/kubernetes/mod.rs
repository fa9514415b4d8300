//! `enrich`'s Kubernetes pod index against a stand-in API server
//! (`scripts/k8s_api_standin.py`): the first list, watch events, a relist
//! after missed events, the node filter, an API server that is not there,
//! and the `enrich` transform in a running pipeline.
//!
//! Tests that need python3 skip with a message when it is missing, except
//! in CI (`CI` set), where they fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tapline::transforms::enrich::kubernetes::{By, KubernetesConfig, PodCache, PodMetadata};

const HASH_A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const HASH_B: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
const HASH_C: &str = "c0ffee0000000000c0ffee0000000000c0ffee0000000000c0ffee0000000000";

/// The stand-in, killed on drop; its log is printed when a test fails.
struct StandIn {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl StandIn {
    fn start() -> Option<StandIn> {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/k8s_api_standin.py");
        let spawned = Command::new("python3")
            .arg(script)
            .args(["--port", "0", "--token", "test", "--bookmark-seconds", "1"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("standin.log")).unwrap())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: cannot run python3 for the stand-in API server: {e}");
                return None;
            }
            Err(e) => panic!("cannot run python3 for the stand-in API server: {e}"),
        };
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok());
        let port = port.unwrap_or_else(|| panic!("unexpected first line from the stand-in: {line:?}"));
        Some(StandIn { child, port, dir })
    }

    fn kubeconfig(&self) -> PathBuf {
        write_kubeconfig(self.dir.path(), self.port)
    }

    fn put(&self, pod: Value) {
        self.control("POST", "/control/pods", &pod.to_string());
    }

    fn delete(&self, namespace: &str, name: &str) {
        self.control("DELETE", &format!("/control/pods/{namespace}/{name}"), "");
    }

    /// Delete without a watch event, as if while the client was
    /// disconnected: the stand-in drops its history and ends open watches.
    fn delete_unseen(&self, namespace: &str, name: &str) {
        self.control("DELETE", &format!("/control/pods/{namespace}/{name}?silent=1"), "");
    }

    fn control(&self, method: &str, path: &str, body: &str) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(stream, "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{method} {path}: {response}");
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("standin.log")).unwrap_or_default();
            eprintln!("stand-in log:\n{log}");
        }
    }
}

fn write_kubeconfig(dir: &Path, port: u16) -> PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\n\
         clusters: [{{name: standin, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n\
         users: [{{name: u, user: {{token: test}}}}]\n\
         contexts: [{{name: c, context: {{cluster: standin, user: u}}}}]\n\
         current-context: c\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn config(kubeconfig: PathBuf, node_name: Option<&str>) -> KubernetesConfig {
    KubernetesConfig {
        kubeconfig: Some(kubeconfig),
        by: By::PodIp,
        field: "server_ip".into(),
        node_name: node_name.map(str::to_string),
        labels: true,
    }
}

/// A running pod of Deployment `deployment`, as the API server shows it.
fn pod(namespace: &str, name: &str, deployment: &str, node: &str, ip: &str, container: &str) -> Value {
    json!({
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": deployment, "pod-template-hash": "5d8f7c9b4"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{deployment}-5d8f7c9b4"),
                                 "uid": format!("rs-{deployment}"), "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": format!("{deployment}:1")}]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "containerStatuses": [{"name": "app", "containerID": format!("containerd://{container}"), "image": "x",
                                   "imageID": "", "ready": true, "restartCount": 0}],
        },
    })
}

async fn spawn_synced(config: &KubernetesConfig) -> PodCache {
    let cache = PodCache::spawn(config).unwrap();
    assert!(eventually(|| cache.synced()).await, "the pod index did not sync");
    cache
}

/// Poll for up to 10 s.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

fn name(found: Option<Arc<PodMetadata>>) -> Option<String> {
    found.map(|pod| pod.name.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_list_indexes_pods_by_ip_and_container_id() {
    let Some(server) = StandIn::start() else { return };
    server.put(pod("shop", "checkout-5d8f7c9b4-x2k9q", "checkout", "node-a", "10.1.0.1", HASH_A));
    server.put(pod("shop", "cart-5d8f7c9b4-7hj2m", "cart", "node-b", "10.1.0.2", HASH_B));
    let cache = spawn_synced(&config(server.kubeconfig(), None)).await;

    let checkout = cache.lookup_ip("10.1.0.1").expect("checkout by IP");
    assert_eq!(
        (checkout.name.as_str(), checkout.namespace.as_str(), checkout.node.as_deref()),
        ("checkout-5d8f7c9b4-x2k9q", "shop", Some("node-a"))
    );
    assert_eq!((checkout.workload_kind.as_str(), checkout.workload_name.as_str()), ("Deployment", "checkout"));
    assert_eq!(checkout.labels.get("app").map(String::as_str), Some("checkout"));
    let fields: Vec<_> = checkout.fields().collect();
    assert!(fields.contains(&("k8s.deployment.name", "checkout")), "{fields:?}");
    assert!(fields.contains(&("k8s.pod.label.app", "checkout")), "{fields:?}");

    let cart = cache.lookup(By::ContainerId, HASH_B).expect("cart by container id");
    assert_eq!((cart.name.as_str(), cart.node.as_deref()), ("cart-5d8f7c9b4-7hj2m", Some("node-b")));
    assert_eq!(name(cache.lookup_container(&format!("containerd://{HASH_A}"))).as_deref(), Some("checkout-5d8f7c9b4-x2k9q"));
    assert!(cache.lookup_ip("10.1.0.3").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_add_delete_and_reuse_ips() {
    let Some(server) = StandIn::start() else { return };
    let cache = spawn_synced(&config(server.kubeconfig(), None)).await;

    server.put(pod("shop", "web-1", "web", "node-a", "10.1.0.7", HASH_A));
    assert!(eventually(|| name(cache.lookup_ip("10.1.0.7")).as_deref() == Some("web-1")).await, "added pod");
    assert_eq!(name(cache.lookup_container(HASH_A)).as_deref(), Some("web-1"));

    server.delete("shop", "web-1");
    assert!(eventually(|| cache.lookup_ip("10.1.0.7").is_none()).await, "deleted pod");
    assert!(cache.lookup_container(HASH_A).is_none());

    server.put(pod("shop", "web-2", "web", "node-a", "10.1.0.7", HASH_B));
    assert!(eventually(|| name(cache.lookup_ip("10.1.0.7")).as_deref() == Some("web-2")).await, "reused IP");
    assert!(cache.lookup_container(HASH_A).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_drops_pods_deleted_while_disconnected() {
    let Some(server) = StandIn::start() else { return };
    server.put(pod("shop", "web-1", "web", "node-a", "10.1.0.1", HASH_A));
    server.put(pod("shop", "web-2", "web", "node-a", "10.1.0.2", HASH_B));
    let cache = spawn_synced(&config(server.kubeconfig(), None)).await;
    assert!(cache.lookup_ip("10.1.0.1").is_some());

    // The watch resumes from a resourceVersion the server no longer has
    // (410 Expired), so the watcher lists again.
    server.delete_unseen("shop", "web-1");
    assert!(eventually(|| cache.lookup_ip("10.1.0.1").is_none()).await, "pod deleted unseen is still indexed");
    assert!(cache.lookup_container(HASH_A).is_none());
    assert_eq!(name(cache.lookup_ip("10.1.0.2")).as_deref(), Some("web-2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_name_indexes_only_that_nodes_pods() {
    let Some(server) = StandIn::start() else { return };
    server.put(pod("shop", "web-a", "web", "node-a", "10.1.0.1", HASH_A));
    server.put(pod("shop", "web-b", "web", "node-b", "10.2.0.1", HASH_B));
    let cache = spawn_synced(&config(server.kubeconfig(), Some("node-a"))).await;
    assert_eq!(name(cache.lookup_ip("10.1.0.1")).as_deref(), Some("web-a"));
    assert!(cache.lookup_ip("10.2.0.1").is_none());
    assert!(cache.lookup_container(HASH_B).is_none());

    // A pod scheduled onto the node later comes in; events of other nodes do not.
    let mut pending = pod("shop", "web-c", "web", "", "", HASH_C);
    pending["status"] = json!({"phase": "Pending"});
    server.put(pending);
    server.put(pod("shop", "web-d", "web", "node-b", "10.2.0.2", HASH_B));
    server.put(pod("shop", "web-c", "web", "node-a", "10.1.0.3", HASH_C));
    assert!(eventually(|| name(cache.lookup_ip("10.1.0.3")).as_deref() == Some("web-c")).await, "scheduled pod");
    assert!(cache.lookup_ip("10.2.0.2").is_none());
}

/// Spawning does not wait for the API server: it succeeds, warns in the
/// background and retries, and lookups miss meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_leaves_lookups_empty() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cache = PodCache::spawn(&config(write_kubeconfig(dir.path(), closed), None)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!cache.synced());
    assert!(cache.lookup_ip("10.1.0.1").is_none());
    assert!(cache.lookup_container(HASH_A).is_none());
}

#[tokio::test]
async fn a_bad_kubeconfig_fails_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = PodCache::spawn(&config(missing.clone(), None)).unwrap_err();
    assert!(err.contains(&missing.display().to_string()), "{err}");

    let no_context = dir.path().join("no-context");
    std::fs::write(&no_context, "apiVersion: v1\nkind: Config\nclusters: []\n").unwrap();
    let err = PodCache::spawn(&config(no_context.clone(), None)).unwrap_err();
    assert!(err.contains(&no_context.display().to_string()) && err.contains("context"), "{err}");
}

/// Kong records through a running `enrich` with a `kubernetes` table keyed by
/// the upstream's IP: the pod's metadata lands on the record; a pod added
/// during the watch is found, a deleted one no longer is (a counted miss).
#[test]
fn a_pipeline_enriches_kong_records_with_the_upstream_pod() {
    let Some(server) = StandIn::start() else { return };
    server.put(pod("shop", "checkout-5d8f7c9b4-x2k9q", "checkout", "node-a", "10.1.0.1", HASH_A));
    let port = crate::common::free_port();
    let mut pipeline = crate::common::Pipeline::start(&format!(
        "[sources.kong]\ntype = \"kong_http_log\"\naddress = \"127.0.0.1:{port}\"\n\
         [transforms.k8s]\ntype = \"enrich\"\ninputs = [\"kong\"]\n\
         [[transforms.k8s.tables]]\ntype = \"kubernetes\"\nkubeconfig = \"{}\"\nby = \"pod_ip\"\nfield = \"server_ip\"\n\
         [sinks.out]\ntype = \"file\"\ninputs = [\"k8s\"]\npath = \"DIR/out.jsonl\"\nencoding.codec = \"json\"\n",
        server.kubeconfig().display()
    ));
    crate::common::wait_for("the source to listen", Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", port)).is_ok());
    let out = pipeline.path("out.jsonl");
    let base: Value =
        serde_json::from_slice(&std::fs::read(crate::common::here("tests/fixtures/kong/kong3_single.json")).unwrap()).unwrap();
    // Post one entry whose upstream is `ip`; the record written for it.
    let mut sent = 0;
    let mut send = |ip: &str| -> Value {
        sent += 1;
        let mut entry = base.clone();
        entry["request"]["id"] = json!(format!("req-{sent}"));
        entry["tries"] = json!([{"ip": ip, "port": 8080}]);
        assert_eq!(crate::common::post(port, "/", entry.to_string().as_bytes(), &["Content-Type: application/json"]).status, 200);
        let id = format!("req-{sent}");
        crate::common::wait_for("the record", Duration::from_secs(30), || {
            crate::common::read_json(&out).iter().any(|r| r["request_id"] == id.as_str())
        });
        crate::common::read_json(&out).into_iter().find(|r| r["request_id"] == id.as_str()).unwrap()
    };
    // The first list may still be on its way: the first records can miss.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut record = send("10.1.0.1");
    while record["pod"].is_null() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        record = send("10.1.0.1");
    }
    assert_eq!(record["pod"], "checkout-5d8f7c9b4-x2k9q");
    assert_eq!(record["tags"]["k8s.namespace.name"], "shop");
    assert_eq!(record["tags"]["k8s.node.name"], "node-a");
    assert_eq!(record["tags"]["k8s.deployment.name"], "checkout");
    assert_eq!(record["tags"]["k8s.pod.label.app"], "checkout");

    server.put(pod("shop", "cart-5d8f7c9b4-7hj2m", "cart", "node-b", "10.1.0.2", HASH_B));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut record = send("10.1.0.2");
    while record["pod"].is_null() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        record = send("10.1.0.2");
    }
    assert_eq!(
        (record["pod"].as_str(), record["tags"]["k8s.deployment.name"].as_str()),
        (Some("cart-5d8f7c9b4-7hj2m"), Some("cart")),
        "a pod added during the watch"
    );

    server.delete("shop", "cart-5d8f7c9b4-7hj2m");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut record = send("10.1.0.2");
    while !record["pod"].is_null() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        record = send("10.1.0.2");
    }
    assert!(record["pod"].is_null() && record.get("tags").is_none(), "a deleted pod is gone: {record}");
    let log = pipeline.stop();
    assert!(crate::common::totals(&log, "k8s", "enrich_misses_total") >= 1, "{log}");
}
