//! The `ClusterInsight` port on kube-rs: container logs, Kubernetes events and
//! metrics.k8s.io usage of a usecase's objects, read-only.

use crate::kube_calls::{watch_reason, KubeCalls};
use crate::kube_cluster::{deployment_name, service_name, KubeCluster, DEPLOYMENT_LABEL};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, LogParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use shiplog_application::{ClusterError, ClusterInsight, KubeEvent, LogLine, PodUsage};
use std::collections::BTreeSet;
use tokio::sync::mpsc;
use uuid::Uuid;

fn instant(t: &k8s_openapi::jiff::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.as_second(), u32::try_from(t.subsec_nanosecond()).ok()?)
}

fn chrono_time(t: &Time) -> Option<DateTime<Utc>> {
    instant(&t.0)
}

/// CPU quantity (`250m`, `1`, `12345n`, `3u`) in cores.
fn cpu_cores(q: &str) -> Option<f64> {
    let (number, scale) = match q.char_indices().last()? {
        (i, 'n') => (&q[..i], 1e-9),
        (i, 'u') => (&q[..i], 1e-6),
        (i, 'm') => (&q[..i], 1e-3),
        (i, 'k') => (&q[..i], 1e3),
        _ => (q, 1.0),
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

/// Memory quantity (`128Mi`, `1Gi`, `1000k`, `512`) in bytes.
fn memory_bytes(q: &str) -> Option<u64> {
    const UNITS: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (number, scale) = UNITS
        .iter()
        .find_map(|(suffix, scale)| q.strip_suffix(suffix).map(|n| (n, *scale)))
        .unwrap_or((q, 1.0));
    let bytes = number.parse::<f64>().ok()? * scale;
    // Saturating: a quantity above u64::MAX bytes is not a real sample anyway.
    (bytes.is_finite() && bytes >= 0.0).then(|| bytes.round() as u64)
}

/// PodMetrics of metrics.k8s.io, the resource metrics-server serves.
fn pod_metrics() -> ApiResource {
    let gvk = GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics");
    ApiResource::from_gvk_with_plural(&gvk, "pods")
}

/// A pod's usage: of `container` alone, or of all its containers summed.
fn usage_of(object: &DynamicObject, container: Option<&str>) -> PodUsage {
    let containers: Vec<serde_json::Value> = object.data["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| container.is_none_or(|name| c["name"] == name))
        .collect();
    let usage = |key: &'static str| {
        containers
            .iter()
            .filter_map(move |c| c["usage"][key].as_str())
    };
    PodUsage {
        pod: object.metadata.name.clone().unwrap_or_default(),
        cpu_cores: usage("cpu").filter_map(cpu_cores).sum(),
        memory_bytes: usage("memory").filter_map(memory_bytes).sum(),
        timestamp: object.data["timestamp"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        window: object.data["window"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// One container's log, from `tail` lines back (`None`: from its first line).
fn log_params(container: &str, tail: Option<u32>, follow: bool) -> LogParams {
    LogParams {
        container: Some(container.to_owned()),
        tail_lines: tail.map(i64::from),
        follow,
        ..LogParams::default()
    }
}

/// Log lines a follower may hold before the pods' streams wait for the client.
const LOG_BUFFER: usize = 1024;

/// Whether the pod's `container` has started, so that its log can be read.
fn container_started(pod: &Pod, container: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|statuses| {
            statuses.iter().any(|c| {
                c.name == container
                    && c.state
                        .as_ref()
                        .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
            })
        })
}

/// Follows the logs of every pod of the deployment: those running now from `tail`
/// lines back, and pods that start later (a restart rolls new ones) from their
/// first line. Ends when the deployment has no pod left, or when the client is gone
/// (`tx` closed).
async fn follow_pods(
    pods: Api<Pod>,
    calls: KubeCalls,
    deployment_id: Uuid,
    container: String,
    tail: u32,
    tx: mpsc::Sender<Result<LogLine, ClusterError>>,
) {
    let config = watcher::Config::default().labels(&format!("{DEPLOYMENT_LABEL}={deployment_id}"));
    let mut events = watcher(pods.clone(), config)
        .backoff(calls.watch_backoff())
        .boxed();
    let mut followed = BTreeSet::new();
    let mut live = BTreeSet::new();
    let mut initial = true;
    loop {
        let event = tokio::select! {
            _ = tx.closed() => return,
            event = events.next() => event,
        };
        let pod = match event {
            None => return,
            // The watcher tries again by itself (after its back-off): count it.
            Some(Err(e)) => {
                calls.retried("follow_logs", watch_reason(&e));
                continue;
            }
            Some(Ok(watcher::Event::InitDone)) => {
                initial = false;
                if live.is_empty() {
                    return;
                }
                continue;
            }
            Some(Ok(watcher::Event::Init)) => continue,
            Some(Ok(watcher::Event::Delete(pod))) => {
                live.remove(&pod.metadata.name.unwrap_or_default());
                if live.is_empty() && !initial {
                    return;
                }
                continue;
            }
            Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => pod,
        };
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        live.insert(name.clone());
        if !container_started(&pod, &container) || !followed.insert(name.clone()) {
            continue;
        }
        // Pods there from the start show their last `tail` lines; newer ones all of theirs.
        let params = log_params(&container, initial.then_some(tail), true);
        tokio::spawn(forward_log(
            pods.clone(),
            calls.clone(),
            name,
            params,
            tx.clone(),
        ));
    }
}

/// Sends one pod's log lines to the follower until the log or the follower ends.
async fn forward_log(
    pods: Api<Pod>,
    calls: KubeCalls,
    name: String,
    params: LogParams,
    tx: mpsc::Sender<Result<LogLine, ClusterError>>,
) {
    let opened = calls
        .call("follow_logs", || pods.log_stream(&name, &params))
        .await;
    let reader = match opened {
        Ok(reader) => reader,
        // Gone again (a rollout) before its log could be read.
        Err(e) if matches!(e.code(), Some(404 | 400)) => return,
        Err(e) => {
            let _ = tx.send(Err(e.into())).await;
            return;
        }
    };
    let mut lines = reader.lines();
    while let Some(line) = lines.next().await {
        let item = line
            .map(|line| LogLine {
                pod: name.clone(),
                line,
            })
            .map_err(|e| ClusterError::Unavailable(format!("log stream broke: {e}")));
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

impl KubeCluster {
    /// The deployment's pods, by name (listed for `operation`).
    async fn pod_names(
        &self,
        operation: &'static str,
        deployment_id: Uuid,
    ) -> Result<Vec<String>, ClusterError> {
        let params = ListParams::default().labels(&format!("{DEPLOYMENT_LABEL}={deployment_id}"));
        let api = self.pods();
        let pods: Vec<Pod> = self
            .calls()
            .call(operation, || api.list(&params))
            .await?
            .items;
        let mut names: Vec<String> = pods.into_iter().filter_map(|p| p.metadata.name).collect();
        names.sort();
        Ok(names)
    }
}

#[async_trait]
impl ClusterInsight for KubeCluster {
    async fn logs(
        &self,
        deployment_id: Uuid,
        container: &str,
        tail: u32,
    ) -> Result<Vec<LogLine>, ClusterError> {
        let mut lines = Vec::new();
        let params = log_params(container, Some(tail), false);
        let api = self.pods();
        for pod in self.pod_names("logs", deployment_id).await? {
            let text = match self.calls().call("logs", || api.logs(&pod, &params)).await {
                Ok(text) => text,
                // The pod went away (a rollout) or its container has not started yet.
                Err(e) if matches!(e.code(), Some(404 | 400)) => continue,
                Err(e) => return Err(e.into()),
            };
            lines.extend(text.lines().map(|line| LogLine {
                pod: pod.clone(),
                line: line.to_owned(),
            }));
        }
        Ok(lines)
    }

    async fn follow_logs(
        &self,
        deployment_id: Uuid,
        container: &str,
        tail: u32,
    ) -> Result<BoxStream<'static, Result<LogLine, ClusterError>>, ClusterError> {
        // Fail now (not inside the stream) when the cluster cannot be reached.
        self.pod_names("follow_logs", deployment_id).await?;
        let (tx, rx) = mpsc::channel(LOG_BUFFER);
        tokio::spawn(follow_pods(
            self.pods(),
            self.calls().clone(),
            deployment_id,
            container.to_owned(),
            tail,
            tx,
        ));
        Ok(stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|line| (line, rx))
        })
        .boxed())
    }

    async fn events(
        &self,
        usecase_id: Uuid,
        deployment_ids: &[Uuid],
    ) -> Result<Vec<KubeEvent>, ClusterError> {
        let names: BTreeSet<String> = deployment_ids.iter().map(|d| deployment_name(*d)).collect();
        let service = service_name(usecase_id);
        // ReplicaSets and pods are named `<deployment>-…` (deployment names have one
        // length); events carry no labels to select by.
        let prefix = deployment_name(Uuid::nil()).len();
        let ours = |name: &str| {
            name == service
                || names.contains(name)
                || (name.as_bytes().get(prefix) == Some(&b'-')
                    && name
                        .get(..prefix)
                        .is_some_and(|owner| names.contains(owner)))
        };
        let api: Api<Event> = Api::namespaced(self.client().clone(), self.namespace());
        let mut params = ListParams::default().limit(500);
        let mut events = Vec::new();
        loop {
            let page = self
                .calls()
                .call("kube_events", || api.list(&params))
                .await?;
            for e in page.items {
                let object = e.involved_object;
                let Some(name) = object.name.filter(|n| ours(n)) else {
                    continue;
                };
                let event_time = e.event_time.as_ref().and_then(|t| instant(&t.0));
                events.push(KubeEvent {
                    kind: e.type_.unwrap_or_else(|| "Normal".to_owned()),
                    reason: e.reason.unwrap_or_default(),
                    message: e.message.unwrap_or_default(),
                    object_kind: object.kind.unwrap_or_default(),
                    object_name: name,
                    count: e.count.unwrap_or(1),
                    first_seen: e
                        .first_timestamp
                        .as_ref()
                        .and_then(chrono_time)
                        .or(event_time),
                    last_seen: e
                        .last_timestamp
                        .as_ref()
                        .and_then(chrono_time)
                        .or(event_time),
                });
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        events.sort_by_key(|e| e.last_seen);
        Ok(events)
    }

    async fn usage(
        &self,
        deployment_id: Uuid,
        container: Option<&str>,
    ) -> Result<Option<Vec<PodUsage>>, ClusterError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client().clone(), self.namespace(), &pod_metrics());
        let params = ListParams::default().labels(&format!("{DEPLOYMENT_LABEL}={deployment_id}"));
        match self.calls().call("usage", || api.list(&params)).await {
            Ok(list) => {
                let mut pods: Vec<PodUsage> =
                    list.items.iter().map(|p| usage_of(p, container)).collect();
                pods.sort_by(|a, b| a.pod.cmp(&b.pod));
                Ok(Some(pods))
            }
            // No metrics.k8s.io (no metrics-server): the API server does not know the path.
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(cpu_cores("250m"), Some(0.25));
        assert_eq!(cpu_cores("2"), Some(2.0));
        assert_eq!(cpu_cores("1500000n"), Some(0.0015));
        assert_eq!(memory_bytes("128Mi"), Some(134_217_728));
        assert_eq!(memory_bytes("1000k"), Some(1_000_000));
        assert_eq!(memory_bytes("512"), Some(512));
        assert_eq!(memory_bytes("lots"), None);
    }

    #[test]
    fn pod_usage_sums_its_containers_or_reads_one() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
            "metadata": {"name": "p-1"},
            "timestamp": "2026-11-23T10:00:00Z", "window": "30s",
            "containers": [
                {"name": "app", "usage": {"cpu": "100m", "memory": "64Mi"}},
                {"name": "sidecar", "usage": {"cpu": "50m", "memory": "1Mi"}}
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let usage = usage_of(&object, None);
        assert_eq!(usage.pod, "p-1");
        assert!((usage.cpu_cores - 0.15).abs() < 1e-9, "{}", usage.cpu_cores);
        assert_eq!(usage.memory_bytes, 65 * 1_048_576);
        assert_eq!(usage.window, "30s");
        let sidecar = usage_of(&object, Some("sidecar"));
        assert!(
            (sidecar.cpu_cores - 0.05).abs() < 1e-9,
            "{}",
            sidecar.cpu_cores
        );
        assert_eq!(sidecar.memory_bytes, 1_048_576);
    }
}
