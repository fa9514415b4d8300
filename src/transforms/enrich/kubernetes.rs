//! Kubernetes pod metadata for `enrich`: a watch of the API server's pods kept
//! as an index from pod IP and from container id to what an event gets
//! (pod name, namespace, node, workload, labels).
//!
//! The watch is kube-runtime's `watcher` with its default initial-list
//! strategy (a list, then a watch from the list's resourceVersion), the list
//! served from the API server's cache (`resourceVersion=0`), retried with the
//! default backoff. A DaemonSet sets `node_name` so that each node watches
//! only its own pods.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Config};
use rustc_hash::FxHashMap;
use serde::Deserialize;

use super::Table;
use crate::component::with_causes;
use crate::event::FieldPath;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// A kubeconfig file; without it: `KUBECONFIG`, `~/.kube/config`, then
    /// the pod's service account (in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// What the event field holds.
    pub by: By,
    /// The event field holding the pod IP or the container id.
    pub field: String,
    /// Watch only the pods of this node (`spec.nodeName`), as a DaemonSet
    /// does; all pods when absent.
    pub node_name: Option<String>,
    /// Add the pod's labels as `k8s.pod.label.KEY`.
    #[serde(default = "crate::defaults::yes")]
    pub labels: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    PodIp,
    ContainerId,
}

impl KubernetesConfig {
    /// Checks what can be checked before the topology runs: the field, and a
    /// kubeconfig given by path. The watch starts with the topology.
    pub fn build(&self) -> Result<KubernetesTable, String> {
        let field = FieldPath::parse(&self.field).map_err(|e| format!("`field`: {e}"))?;
        if let Some(path) = &self.kubeconfig {
            kube_config(Some(path))?;
        }
        Ok(KubernetesTable { config: self.clone(), field, cache: None, targets: FxHashMap::default() })
    }
}

/// The `kubernetes` table of `enrich`.
pub struct KubernetesTable {
    config: KubernetesConfig,
    field: FieldPath,
    /// Started with the topology.
    cache: Option<PodCache>,
    /// Where each name of `PodMetadata::fields` is written, made once per name.
    targets: FxHashMap<String, FieldPath>,
}

impl Table for KubernetesTable {
    fn enrich(&mut self, event: &mut crate::event::Event) -> bool {
        let Some(cache) = &self.cache else { return false };
        let Some(pod) = self.field.get(event).and_then(|key| cache.lookup(self.config.by, &key)) else { return false };
        for (name, value) in pod.fields() {
            if !self.targets.contains_key(name) {
                self.targets.insert(name.to_string(), FieldPath::literal(name));
            }
            self.targets[name].set_if_absent(event, value);
        }
        true
    }

    fn start(&mut self) {
        match PodCache::spawn(&self.config) {
            Ok(cache) => self.cache = Some(cache),
            // Counted as misses from here on; the events still pass.
            Err(error) => tracing::error!(%error, "enrich: the kubernetes table cannot start; its lookups will miss"),
        }
    }
}

/// What is known of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMetadata {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// `None` while the pod is not scheduled.
    pub node: Option<String>,
    /// The controller the pod belongs to: `Deployment`, `StatefulSet`,
    /// `DaemonSet`, `CronJob`, `Job`, `ReplicaSet`, another owner's kind, or
    /// `Pod` for a pod without owner.
    pub workload_kind: String,
    pub workload_name: String,
    /// Empty when the config's `labels` is false.
    pub labels: BTreeMap<String, String>,
    /// The IPs that identify this pod: none for host-network pods (they share
    /// the node's IP) nor for finished pods (their IPs are free for reuse).
    pub pod_ips: Vec<String>,
    /// Bare container ids (no `containerd://` prefix), init and ephemeral
    /// containers included.
    pub container_ids: Vec<String>,
    /// `k8s.pod.label.KEY` for each label, in the order of `labels`, made
    /// once here rather than per event.
    label_fields: Vec<String>,
    /// Decides which of two pods claiming one IP holds it.
    created: Option<Time>,
}

impl PodMetadata {
    /// `None` for an object without name or uid, which the API server never
    /// sends.
    pub fn from_pod(pod: &Pod, with_labels: bool) -> Option<PodMetadata> {
        let meta = &pod.metadata;
        let name = meta.name.clone()?;
        let uid = meta.uid.clone()?;
        let (workload_kind, workload_name) = workload(meta, &name);
        let labels = match &meta.labels {
            Some(labels) if with_labels => labels.clone(),
            _ => BTreeMap::new(),
        };
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        let finished = matches!(status.and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
        let mut pod_ips = Vec::new();
        if let Some(status) = status.filter(|_| !host_network && !finished) {
            let listed = status.pod_ips.iter().flatten().map(|ip| &ip.ip);
            for ip in status.pod_ip.iter().chain(listed) {
                if !ip.is_empty() && !pod_ips.contains(ip) {
                    pod_ips.push(ip.clone());
                }
            }
        }
        let container_ids = status
            .into_iter()
            .flat_map(|s| [&s.container_statuses, &s.init_container_statuses, &s.ephemeral_container_statuses])
            .flatten()
            .flatten()
            .filter_map(|c| c.container_id.as_deref())
            .map(bare_container_id)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect();
        Some(PodMetadata {
            namespace: meta.namespace.clone().unwrap_or_default(),
            node: spec.and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
            label_fields: labels.keys().map(|key| format!("k8s.pod.label.{key}")).collect(),
            created: meta.creation_timestamp.clone(),
            name,
            uid,
            workload_kind,
            workload_name,
            labels,
            pod_ips,
            container_ids,
        })
    }

    /// The fields to write into an event, named as OpenTelemetry's
    /// `k8s.*` resource attributes, plus `pod` (the request record's own
    /// field, the pod name) and `k8s.workload.kind`/`k8s.workload.name` (the
    /// workload whatever its kind; not OpenTelemetry names).
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        let fixed = [
            Some(("pod", self.name.as_str())),
            Some(("k8s.pod.name", self.name.as_str())),
            Some(("k8s.namespace.name", self.namespace.as_str())),
            Some(("k8s.pod.uid", self.uid.as_str())),
            self.node.as_deref().map(|node| ("k8s.node.name", node)),
            Some(("k8s.workload.kind", self.workload_kind.as_str())),
            Some(("k8s.workload.name", self.workload_name.as_str())),
            workload_field(&self.workload_kind).map(|field| (field, self.workload_name.as_str())),
        ];
        let labels = self.label_fields.iter().map(String::as_str).zip(self.labels.values().map(String::as_str));
        fixed.into_iter().flatten().chain(labels)
    }
}

/// OpenTelemetry's attribute for the name of a workload of this kind.
fn workload_field(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Deployment" => "k8s.deployment.name",
        "StatefulSet" => "k8s.statefulset.name",
        "DaemonSet" => "k8s.daemonset.name",
        "CronJob" => "k8s.cronjob.name",
        "Job" => "k8s.job.name",
        "ReplicaSet" => "k8s.replicaset.name",
        _ => return None,
    })
}

/// The workload from the pod's controlling owner: a ReplicaSet named
/// `<deployment>-<pod-template-hash>` stands for its Deployment, a Job named
/// `<cronjob>-<scheduled minute>` (8+ digits) for its CronJob.
fn workload(meta: &ObjectMeta, pod_name: &str) -> (String, String) {
    let owners = meta.owner_references.as_deref().unwrap_or_default();
    let Some(owner) = owners.iter().find(|o| o.controller == Some(true)).or(owners.first()) else {
        return ("Pod".into(), pod_name.into());
    };
    let (kind, name) = (owner.kind.as_str(), owner.name.as_str());
    let template_hash = meta.labels.as_ref().and_then(|l| l.get("pod-template-hash"));
    let stripped = match kind {
        "ReplicaSet" => template_hash.and_then(|hash| name.strip_suffix(hash.as_str())?.strip_suffix('-')),
        "Job" => name
            .rsplit_once('-')
            .filter(|(_, minute)| minute.len() >= 8 && minute.bytes().all(|b| b.is_ascii_digit()))
            .map(|(cronjob, _)| cronjob),
        _ => None,
    };
    match (kind, stripped) {
        ("ReplicaSet", Some(deployment)) if !deployment.is_empty() => ("Deployment".into(), deployment.into()),
        ("Job", Some(cronjob)) if !cronjob.is_empty() => ("CronJob".into(), cronjob.into()),
        _ => (kind.into(), name.into()),
    }
}

/// `containerd://ID`, `docker://ID`, `cri-o://ID` → `ID`; a bare id as is.
fn bare_container_id(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, bare)| bare)
}

/// Pods by uid, and the lookups into them.
#[derive(Debug, Default)]
struct Index {
    pods: FxHashMap<String, Arc<PodMetadata>>,
    by_ip: FxHashMap<String, Arc<PodMetadata>>,
    by_container: FxHashMap<String, Arc<PodMetadata>>,
}

impl Index {
    fn apply(&mut self, pod: PodMetadata) {
        let pod = Arc::new(pod);
        if let Some(old) = self.pods.insert(pod.uid.clone(), pod.clone()) {
            self.unindex(&old);
        }
        for ip in &pod.pod_ips {
            // Two live pods claim one IP when the old one's status is stale
            // (terminating, its IP already reused): the newer pod holds it.
            match self.by_ip.get(ip) {
                Some(holder) if holder.uid != pod.uid && holder.created > pod.created => {}
                _ => {
                    self.by_ip.insert(ip.clone(), pod.clone());
                }
            }
        }
        for id in &pod.container_ids {
            self.by_container.insert(id.clone(), pod.clone());
        }
    }

    fn delete(&mut self, uid: &str) {
        if let Some(old) = self.pods.remove(uid) {
            self.unindex(&old);
        }
    }

    /// Drop the entries that `pod` holds (not those a newer pod took over).
    fn unindex(&mut self, pod: &PodMetadata) {
        for (map, keys) in [(&mut self.by_ip, &pod.pod_ips), (&mut self.by_container, &pod.container_ids)] {
            for key in keys {
                if map.get(key).is_some_and(|holder| holder.uid == pod.uid) {
                    map.remove(key);
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    index: RwLock<Index>,
    synced: AtomicBool,
}

/// Aborts the watch when the last `PodCache` clone goes.
#[derive(Debug)]
struct WatchTask(tokio::task::JoinHandle<()>);

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The index of the watched pods; clones share it and its watch, which
/// stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct PodCache {
    shared: Arc<Shared>,
    _watch: Arc<WatchTask>,
}

impl PodCache {
    /// Build the client and start watching, on the current Tokio runtime
    /// (panics outside one, as `tokio::spawn` does). Fails on a kubeconfig
    /// or service-account problem only: an unreachable API server is
    /// retried in the background, with a warning, and lookups miss until
    /// the first list arrives (see `synced`).
    pub fn spawn(config: &KubernetesConfig) -> Result<PodCache, String> {
        let kube_config = kube_config(config.kubeconfig.as_deref())?;
        tracing::info!(server = %kube_config.cluster_url, node = ?config.node_name, "kubernetes: watching pods");
        let client = Client::try_from(kube_config).map_err(|e| format!("kubernetes: cannot build the client: {e}"))?;
        // Lists come from the API server's cache (`resourceVersion=0`), not
        // from etcd, which matters when every node of a DaemonSet lists; kube
        // leaves `resourceVersion=0` out of paged lists, hence no page size.
        let mut watch_config = watcher::Config::default().any_semantic();
        watch_config.page_size = None;
        if let Some(node) = &config.node_name {
            watch_config = watch_config.fields(&format!("spec.nodeName={node}"));
        }
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(watch(Api::all(client), watch_config, shared.clone(), config.labels));
        Ok(PodCache { shared, _watch: Arc::new(WatchTask(task)) })
    }

    pub fn lookup(&self, by: By, key: &str) -> Option<Arc<PodMetadata>> {
        match by {
            By::PodIp => self.lookup_ip(key),
            By::ContainerId => self.lookup_container(key),
        }
    }

    pub fn lookup_ip(&self, ip: &str) -> Option<Arc<PodMetadata>> {
        self.read().by_ip.get(ip).cloned()
    }

    /// A bare id or one with its runtime's prefix (`containerd://…`).
    pub fn lookup_container(&self, id: &str) -> Option<Arc<PodMetadata>> {
        self.read().by_container.get(bare_container_id(id)).cloned()
    }

    /// Whether the first full list has arrived; before that lookups miss.
    pub fn synced(&self) -> bool {
        self.shared.synced.load(Ordering::Acquire)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        // A panic while writing leaves a usable index: each write is whole.
        self.shared.index.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn kube_config(path: Option<&Path>) -> Result<Config, String> {
    // kube's loaders are async only in name: they read files and return
    // without waiting, so one poll runs them from this sync function.
    let not_ready = || "kubernetes: loading the kubeconfig did not finish at once".to_string();
    match path {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| format!("kubernetes: kubeconfig {}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .now_or_never()
                .ok_or_else(not_ready)?
                .map_err(|e| format!("kubernetes: kubeconfig {}: {e}", path.display()))
        }
        None => {
            Config::infer().now_or_never().ok_or_else(not_ready)?.map_err(|e| format!("kubernetes: no kubeconfig set and none found: {e}"))
        }
    }
}

async fn watch(api: Api<Pod>, config: watcher::Config, shared: Arc<Shared>, labels: bool) {
    let mut events = pin!(watcher::watcher(api, config).default_backoff());
    // A relist is built aside and swapped in whole at `InitDone`, so that
    // pods deleted while the watch was down disappear and lookups never
    // see a half-built index.
    let mut relist: Option<Index> = None;
    let mut failing = false;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                // 410 Gone: the API server has compacted past our
                // resourceVersion; the watcher lists again, nothing is wrong.
                let expired = matches!(&e, watcher::Error::WatchError(status) if status.code == 410);
                if expired || failing {
                    tracing::debug!(error = %e, "kubernetes: pod watch");
                } else {
                    tracing::warn!(error = %with_causes(&e), "kubernetes: pod watch failed; retrying");
                    failing = true;
                }
                continue;
            }
        };
        // `Init` comes before each list attempt, successful or not.
        if failing && !matches!(event, Event::Init) {
            tracing::info!("kubernetes: pod watch recovered");
            failing = false;
        }
        let write = || shared.index.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        match event {
            Event::Init => relist = Some(Index::default()),
            Event::InitApply(pod) => {
                if let (Some(index), Some(pod)) = (relist.as_mut(), PodMetadata::from_pod(&pod, labels)) {
                    index.apply(pod);
                }
            }
            Event::InitDone => {
                if let Some(index) = relist.take() {
                    let count = index.pods.len();
                    *write() = index;
                    if !shared.synced.swap(true, Ordering::AcqRel) {
                        tracing::info!(pods = count, "kubernetes: pod index ready");
                    }
                }
            }
            Event::Apply(pod) => {
                if let Some(pod) = PodMetadata::from_pod(&pod, labels) {
                    write().apply(pod);
                }
            }
            Event::Delete(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    write().delete(uid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HASH_A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const HASH_B: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    fn pod(name: &str, uid: &str, ip: &str, extra: serde_json::Value) -> Pod {
        let mut pod = json!({
            "metadata": {"name": name, "namespace": "shop", "uid": uid,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": "node-a", "containers": []},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
        });
        merge(&mut pod, extra);
        serde_json::from_value(pod).unwrap()
    }

    fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
        match (into, from) {
            (serde_json::Value::Object(into), serde_json::Value::Object(from)) => {
                for (key, value) in from {
                    merge(into.entry(key).or_insert(serde_json::Value::Null), value);
                }
            }
            (into, from) => *into = from,
        }
    }

    fn meta(pod: &Pod) -> PodMetadata {
        PodMetadata::from_pod(pod, true).unwrap()
    }

    fn name_at(index: &Index, ip: &str) -> Option<String> {
        index.by_ip.get(ip).map(|p| p.name.clone())
    }

    #[test]
    fn add_modify_ip_and_delete() {
        let mut index = Index::default();
        index.apply(meta(&pod("web-1", "u1", "10.0.0.1", json!({}))));
        assert_eq!(name_at(&index, "10.0.0.1").as_deref(), Some("web-1"));

        index.apply(meta(&pod("web-1", "u1", "10.0.0.9", json!({}))));
        assert_eq!(name_at(&index, "10.0.0.1"), None);
        assert_eq!(name_at(&index, "10.0.0.9").as_deref(), Some("web-1"));

        index.delete("u1");
        assert_eq!(name_at(&index, "10.0.0.9"), None);
        assert!(index.pods.is_empty());
    }

    #[test]
    fn a_reused_ip_maps_to_the_new_pod_in_either_event_order() {
        let old = pod("web-1", "u1", "10.0.0.1", json!({}));
        let new = pod("web-2", "u2", "10.0.0.1", json!({"metadata": {"creationTimestamp": "2026-01-02T00:00:00Z"}}));

        let mut index = Index::default();
        index.apply(meta(&old));
        index.delete("u1");
        index.apply(meta(&new));
        assert_eq!(name_at(&index, "10.0.0.1").as_deref(), Some("web-2"));

        // The new pod shows up before the old one's last update and deletion.
        let mut index = Index::default();
        index.apply(meta(&old));
        index.apply(meta(&new));
        index.apply(meta(&old));
        assert_eq!(name_at(&index, "10.0.0.1").as_deref(), Some("web-2"));
        index.delete("u1");
        assert_eq!(name_at(&index, "10.0.0.1").as_deref(), Some("web-2"));
    }

    #[test]
    fn host_network_and_finished_pods_hold_no_ip() {
        let host = meta(&pod("proxy", "u1", "192.0.2.1", json!({"spec": {"hostNetwork": true}})));
        let done = meta(&pod("job", "u2", "10.0.0.2", json!({"status": {"phase": "Succeeded"}})));
        assert!(host.pod_ips.is_empty() && done.pod_ips.is_empty());
    }

    #[test]
    fn dual_stack_ips_are_all_indexed_once() {
        let dual = pod("web-1", "u1", "10.0.0.1", json!({"status": {"podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}}));
        assert_eq!(meta(&dual).pod_ips, ["10.0.0.1", "fd00::1"]);
    }

    #[tokio::test]
    async fn container_ids_are_indexed_bare_and_found_in_any_form() {
        let statuses = json!({"status": {
            "containerStatuses": [
                {"name": "app", "containerID": format!("containerd://{HASH_A}")},
                {"name": "waiting", "containerID": ""},
            ],
            "initContainerStatuses": [{"name": "init", "containerID": format!("cri-o://{HASH_B}")}],
        }});
        let pod = meta(&pod("web-1", "u1", "10.0.0.1", statuses));
        assert_eq!(pod.container_ids, [HASH_A, HASH_B]);

        let shared = Arc::new(Shared::default());
        shared.index.write().unwrap().apply(pod);
        let idle = tokio::spawn(std::future::pending());
        let cache = PodCache { shared, _watch: Arc::new(WatchTask(idle)) };
        for id in [HASH_A.to_string(), format!("containerd://{HASH_A}"), format!("docker://{HASH_B}")] {
            assert_eq!(cache.lookup_container(&id).map(|p| p.name.clone()).as_deref(), Some("web-1"), "{id}");
        }
        assert_eq!(cache.lookup(By::PodIp, "10.0.0.1").map(|p| p.uid.clone()).as_deref(), Some("u1"));
        assert!(cache.lookup_container("0123").is_none());
    }

    fn owned_by(kind: &str, name: &str, labels: serde_json::Value) -> PodMetadata {
        let owner = json!({"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "o1", "controller": true});
        meta(&pod("p", "u1", "10.0.0.1", json!({"metadata": {"ownerReferences": [owner], "labels": labels}})))
    }

    fn workload_of(pod: &PodMetadata) -> (&str, &str) {
        (pod.workload_kind.as_str(), pod.workload_name.as_str())
    }

    #[test]
    fn workloads_come_from_the_owner() {
        let hash = json!({"pod-template-hash": "7d4b9c8f6"});
        assert_eq!(workload_of(&owned_by("ReplicaSet", "checkout-7d4b9c8f6", hash.clone())), ("Deployment", "checkout"));
        // A ReplicaSet of its own: no template hash in its name.
        assert_eq!(workload_of(&owned_by("ReplicaSet", "legacy", hash)), ("ReplicaSet", "legacy"));
        assert_eq!(workload_of(&owned_by("ReplicaSet", "legacy", json!({}))), ("ReplicaSet", "legacy"));
        assert_eq!(workload_of(&owned_by("Job", "report-29460000", json!({}))), ("CronJob", "report"));
        assert_eq!(workload_of(&owned_by("Job", "migrate-2", json!({}))), ("Job", "migrate-2"));
        assert_eq!(workload_of(&owned_by("StatefulSet", "db", json!({}))), ("StatefulSet", "db"));
        assert_eq!(workload_of(&owned_by("Node", "node-a", json!({}))), ("Node", "node-a"));
        assert_eq!(workload_of(&meta(&pod("debug", "u1", "10.0.0.1", json!({})))), ("Pod", "debug"));
    }

    #[test]
    fn fields_use_opentelemetry_names() {
        let checkout = owned_by("ReplicaSet", "checkout-7d4b9c8f6", json!({"pod-template-hash": "7d4b9c8f6", "app": "checkout"}));
        let fields: Vec<_> = checkout.fields().collect();
        assert_eq!(
            fields,
            [
                ("pod", "p"),
                ("k8s.pod.name", "p"),
                ("k8s.namespace.name", "shop"),
                ("k8s.pod.uid", "u1"),
                ("k8s.node.name", "node-a"),
                ("k8s.workload.kind", "Deployment"),
                ("k8s.workload.name", "checkout"),
                ("k8s.deployment.name", "checkout"),
                ("k8s.pod.label.app", "checkout"),
                ("k8s.pod.label.pod-template-hash", "7d4b9c8f6"),
            ]
        );
        let labelled = pod("p", "u1", "10.0.0.1", json!({"metadata": {"labels": {"app": "x"}}}));
        let without_labels = PodMetadata::from_pod(&labelled, false).unwrap();
        assert!(without_labels.fields().all(|(name, _)| !name.starts_with("k8s.pod.label.")));
    }

    #[test]
    fn config_reads_with_defaults() {
        let config: KubernetesConfig = serde_json::from_value(json!({"by": "container_id", "field": "container_id"})).unwrap();
        assert_eq!((config.by, config.labels, config.node_name), (By::ContainerId, true, None));
        assert!(serde_json::from_value::<KubernetesConfig>(json!({"by": "pod_ip", "field": "x", "nmespace": "a"})).is_err());
    }
}
