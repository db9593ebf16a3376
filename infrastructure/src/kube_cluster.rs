//! The `ClusterPort` on kube-rs: server-side apply with deterministic names and
//! labels in one namespace, rollouts observed with watches, idempotent deletes. Every
//! call is bounded and retried through [`KubeCalls`], and every operation is safe to
//! repeat, so an unreliable API server slows shiplog down but does not lead it astray.

use crate::kube_calls::{watch_reason, KubeCalls};
use crate::kube_objects;
use crate::telemetry::ClusterRetries;
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::Client;
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Value};
use shiplog_application::{ClusterError, ClusterPort, IngressSettings, RolloutOutcome, Workload};
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::{debug, instrument, warn};
use uuid::Uuid;

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "shiplog";
pub use crate::kube_objects::{
    deployment_name, service_name, DEPLOYMENT_LABEL, MANAGED_BY, RESTART_ANNOTATION, SERVICE_PORT,
    USECASE_LABEL,
};

/// Where and how shiplog's objects are created.
#[derive(Debug, Clone)]
pub struct KubeSettings {
    /// The one namespace all of shiplog's objects live in.
    pub namespace: String,
    /// Secrets (in that namespace) for pulling images from private registries.
    pub image_pull_secrets: Vec<String>,
    /// Kubernetes' own progress deadline for each Deployment.
    pub progress_deadline: Duration,
    /// Hosts, class and TLS of the Ingresses of public usecases.
    pub ingress: IngressSettings,
    /// How long one API call (not a watch) may wait for its answer before it is tried again.
    pub request_timeout: Duration,
}

/// kube-rs against one namespace.
#[derive(Clone)]
pub struct KubeCluster {
    client: Client,
    settings: KubeSettings,
    service_monitor: ApiResource,
    calls: KubeCalls,
}

/// A value for a generated variable: 32 random letters and digits (190 bits).
fn random_secret() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
}

impl KubeCluster {
    /// An adapter over `client` (kubeconfig, in-cluster config or the simulator), counting
    /// the API calls it tries again in `retries`.
    pub fn new(client: Client, settings: KubeSettings, retries: ClusterRetries) -> Self {
        let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor");
        let calls = KubeCalls::new(settings.request_timeout, retries);
        Self {
            client,
            settings,
            service_monitor: ApiResource::from_gvk(&gvk),
            calls,
        }
    }

    /// How this adapter calls the API (bounded, retried, counted), for its other ports.
    pub(crate) fn calls(&self) -> &KubeCalls {
        &self.calls
    }

    /// The kube client, for the applications proxy.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The namespace every object of shiplog lives in.
    pub fn namespace(&self) -> &str {
        &self.settings.namespace
    }

    /// The API server's proxy path of the usecase's Service (port `http`), no trailing slash:
    /// the applications proxy sends requests there, from inside or outside the cluster.
    pub fn service_proxy_path(&self, usecase_id: Uuid) -> String {
        format!(
            "/api/v1/namespaces/{}/services/{}:http/proxy",
            self.settings.namespace,
            service_name(usecase_id)
        )
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    pub(crate) fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    fn service_monitors(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.settings.namespace,
            &self.service_monitor,
        )
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    fn ingresses(&self) -> Api<Ingress> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    /// The Deployment object, as applied.
    pub fn deployment_object(&self, w: &Workload) -> Value {
        kube_objects::deployment_object(
            &self.settings.namespace,
            &self.settings.image_pull_secrets,
            self.settings.progress_deadline,
            w,
        )
    }

    /// Makes sure the usecase's generated Secret holds a value for every key the
    /// workload expects. Values are created once and never replaced, so a config
    /// change or a restart keeps them; a JSON merge patch adds missing keys only
    /// (server-side apply would drop the keys a later apply no longer names).
    async fn ensure_generated(&self, w: &Workload) -> Result<(), ClusterError> {
        let wanted = kube_objects::generated_keys(w);
        if wanted.is_empty() {
            return Ok(());
        }
        let name = kube_objects::generated_secret_name(w.usecase_id);
        let api = self.secrets();
        // A create can find the Secret created in between: by an earlier try of this very
        // create whose answer was lost, say. Then it is read again, and only what is still
        // missing is added: values once created are never replaced.
        for _ in 0..3 {
            let existing = self.calls.call("apply", || api.get_opt(&name)).await?;
            let have: Vec<String> = existing
                .as_ref()
                .and_then(|s| s.data.as_ref())
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default();
            let missing: BTreeMap<String, String> = wanted
                .iter()
                .filter(|k| !have.contains(k))
                .map(|k| (k.clone(), random_secret()))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if existing.is_some() {
                let patch = json!({"stringData": missing});
                let patch = Patch::Merge(&patch);
                let params = PatchParams::default();
                self.calls
                    .call("apply", || api.patch(&name, &params, &patch))
                    .await?;
                return Ok(());
            }
            let secret: Secret = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": kube_objects::usecase_labels(w.usecase_id)},
                "type": "Opaque",
                "stringData": missing,
            }))
            .map_err(|e| ClusterError::Rejected(format!("generated Secret: {e}")))?;
            let params = PostParams::default();
            match self
                .calls
                .call("apply", || api.create(&params, &secret))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.code() == Some(409) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ClusterError::Unavailable(format!(
            "the Secret {name} keeps being created concurrently; retrying"
        )))
    }

    /// Deletes the usecase's Ingresses except those named in `keep`.
    async fn prune_ingresses(
        &self,
        operation: &'static str,
        usecase_id: Uuid,
        keep: &[String],
    ) -> Result<(), ClusterError> {
        let params = ListParams::default().labels(&format!("{USECASE_LABEL}={usecase_id}"));
        let api = self.ingresses();
        let list = self.calls.call(operation, || api.list(&params)).await?;
        for ingress in list.items {
            let Some(name) = ingress.metadata.name else {
                continue;
            };
            if !keep.contains(&name) {
                self.delete_quietly(operation, &api, &name).await?;
            }
        }
        Ok(())
    }

    /// Deletes an object; one already gone (perhaps by an earlier try whose answer was
    /// lost) is fine.
    async fn delete_quietly<K>(
        &self,
        operation: &'static str,
        api: &Api<K>,
        name: &str,
    ) -> Result<(), ClusterError>
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let params = DeleteParams::background();
        match self
            .calls
            .call(operation, || api.delete(name, &params))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// One last look at a rollout whose watch ran out of time: the watch may have been
    /// starved by an unreliable API server while the rollout finished.
    async fn rollout_now(&self, name: &str) -> Result<Option<RolloutOutcome>, ClusterError> {
        let api = self.deployments();
        // Listed by name, as the watch reads it: the Role grants no `get` of Deployments.
        let params = ListParams::default().fields(&format!("metadata.name={name}"));
        let current = self
            .calls
            .call("await_rollout", || api.list(&params))
            .await?;
        Ok(current.items.first().and_then(deployment_outcome))
    }
}

/// Reasons a container waits that mean the rollout cannot succeed without a new deployment.
const FATAL_WAITING: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Why a pod's container cannot come up, in the user's words, if it cannot.
fn pod_failure(pod: &Pod, image: &str) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|s| {
        let waiting = s.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref()?;
        if !FATAL_WAITING.contains(&reason) {
            return None;
        }
        let detail = waiting.message.clone().unwrap_or_default();
        let what = match reason {
            "CrashLoopBackOff" => format!("the container of image {image} keeps crashing"),
            "CreateContainerConfigError" | "CreateContainerError" => {
                format!("the container of image {image} cannot be created")
            }
            _ => format!("the image {image} cannot be pulled"),
        };
        Some(if detail.is_empty() {
            format!("{what} ({reason})")
        } else {
            format!("{what} ({reason}): {detail}")
        })
    })
}

/// Ready when the current generation is observed and every replica is updated, ready and available.
/// `kube::runtime::wait::conditions::is_deployment_completed` ignores observedGeneration, hence this.
fn deployment_outcome(d: &Deployment) -> Option<RolloutOutcome> {
    let status = d.status.as_ref()?;
    if let Some(c) = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        let detail = c.message.clone().unwrap_or_default();
        return Some(RolloutOutcome::Failed(format!(
            "the rollout exceeded its progress deadline: {detail}"
        )));
    }
    let generation = d.metadata.generation?;
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let current = status.observed_generation.is_some_and(|g| g >= generation);
    let all = |v: Option<i32>| v.unwrap_or(0) == desired;
    (current
        && all(status.updated_replicas)
        && all(status.ready_replicas)
        && all(status.available_replicas)
        && status.replicas.unwrap_or(0) == desired)
        .then_some(RolloutOutcome::Ready)
}

/// What a rollout watch saw: the Deployment (gone when `None`) or one of its pods.
enum Seen {
    Deployment(Option<Box<Deployment>>),
    Pod(Box<Pod>),
}

#[async_trait]
impl ClusterPort for KubeCluster {
    #[instrument(skip(self, w), fields(deployment = %w.deployment_id))]
    async fn apply(&self, w: &Workload) -> Result<(), ClusterError> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let name = deployment_name(w.deployment_id);
        let ns = &self.settings.namespace;
        // The values first: a pod that starts before its Secret exists cannot start.
        let secret = kube_objects::secret_object(ns, w);
        let (secrets, patch) = (self.secrets(), Patch::Apply(&secret));
        self.calls
            .call("apply", || secrets.patch(&name, &params, &patch))
            .await?;
        self.ensure_generated(w).await?;
        let deployment = self.deployment_object(w);
        let (deployments, patch) = (self.deployments(), Patch::Apply(&deployment));
        self.calls
            .call("apply", || deployments.patch(&name, &params, &patch))
            .await?;
        if let Some(monitor) = w.config.service_monitor.as_ref().filter(|m| m.enabled) {
            let object = kube_objects::service_monitor_object(ns, w, &monitor.scraping_interval);
            let (monitors, patch) = (self.service_monitors(), Patch::Apply(&object));
            match self.calls.call("apply", || monitors.patch(&name, &params, &patch)).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {
                    return Err(ClusterError::Rejected("serviceMonitor is enabled but the cluster has no ServiceMonitor resource (monitoring.coreos.com/v1, the Prometheus operator)".to_owned()))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    #[instrument(skip(self, w), fields(deployment = %w.deployment_id))]
    async fn await_rollout(
        &self,
        w: &Workload,
        timeout: Duration,
    ) -> Result<RolloutOutcome, ClusterError> {
        let name = deployment_name(w.deployment_id);
        let image = w.config.image.to_string();
        // A failed list or watch is tried again after a back-off; a watch that ends is
        // resumed from its last version, and one too old to resume lists again.
        let deployments = watcher(
            self.deployments(),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        )
        .backoff(self.calls.watch_backoff())
        .map_ok(|e| match e {
            watcher::Event::Apply(d) | watcher::Event::InitApply(d) => {
                vec![Seen::Deployment(Some(Box::new(d)))]
            }
            watcher::Event::Delete(_) => vec![Seen::Deployment(None)],
            watcher::Event::Init | watcher::Event::InitDone => vec![],
        });
        let pods = watcher(
            self.pods(),
            watcher::Config::default().labels(&format!("{DEPLOYMENT_LABEL}={}", w.deployment_id)),
        )
        .backoff(self.calls.watch_backoff())
        .map_ok(|e| match e {
            watcher::Event::Apply(p) | watcher::Event::InitApply(p) => vec![Seen::Pod(Box::new(p))],
            _ => vec![],
        });
        let mut seen = futures::stream::select(deployments.boxed(), pods.boxed());
        let watch = async {
            while let Some(item) = seen.next().await {
                let items = match item {
                    Ok(items) => items,
                    Err(e) => {
                        // The watcher tries again by itself (after its back-off): count it.
                        let reason = watch_reason(&e);
                        self.calls.retried("await_rollout", reason);
                        debug!(reason, error = %e, "rollout watch failed; resuming");
                        continue;
                    }
                };
                for s in items {
                    let outcome = match s {
                        Seen::Deployment(Some(d)) => deployment_outcome(&d),
                        Seen::Deployment(None) => Some(RolloutOutcome::Failed(format!(
                            "the Deployment {name} was deleted during the rollout"
                        ))),
                        Seen::Pod(p) => pod_failure(&p, &image).map(RolloutOutcome::Failed),
                    };
                    if let Some(outcome) = outcome {
                        debug!(?outcome, "rollout finished");
                        return Ok(outcome);
                    }
                }
            }
            Err(ClusterError::Unavailable("the watch ended".to_owned()))
        };
        match tokio::time::timeout(timeout, watch).await {
            Ok(result) => result,
            Err(_) => match self.rollout_now(&name).await? {
                Some(outcome) => {
                    warn!(
                        ?outcome,
                        "the rollout watch saw no outcome in time; the Deployment tells it"
                    );
                    Ok(outcome)
                }
                None => Ok(RolloutOutcome::Failed(format!(
                    "the rollout was not ready after {} seconds",
                    timeout.as_secs()
                ))),
            },
        }
    }

    #[instrument(skip(self, w), fields(deployment = %w.deployment_id))]
    async fn route(&self, w: &Workload) -> Result<(), ClusterError> {
        let ns = &self.settings.namespace;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let service = kube_objects::service_object(ns, w);
        let (services, patch) = (self.services(), Patch::Apply(&service));
        let name = service_name(w.usecase_id);
        self.calls
            .call("route", || services.patch(&name, &params, &patch))
            .await?;
        let ingresses = kube_objects::ingress_objects(ns, &self.settings.ingress, w);
        let api = self.ingresses();
        for (name, object) in &ingresses {
            let patch = Patch::Apply(object);
            self.calls
                .call("route", || api.patch(name, &params, &patch))
                .await?;
        }
        // Services no longer exposed (or a usecase no longer public) lose theirs.
        let keep: Vec<String> = ingresses.into_iter().map(|(name, _)| name).collect();
        self.prune_ingresses("route", w.usecase_id, &keep).await
    }

    #[instrument(skip(self))]
    async fn remove(&self, _usecase_id: Uuid, deployment_id: Uuid) -> Result<(), ClusterError> {
        let name = deployment_name(deployment_id);
        // The monitor first: `managed()` finds leftovers through their Deployment. Not
        // found is nothing to delete, or no ServiceMonitor CRD at all.
        self.delete_quietly("remove", &self.service_monitors(), &name)
            .await?;
        self.delete_quietly("remove", &self.secrets(), &name)
            .await?;
        self.delete_quietly("remove", &self.deployments(), &name)
            .await
    }

    #[instrument(skip(self))]
    async fn remove_route(&self, usecase_id: Uuid) -> Result<(), ClusterError> {
        self.prune_ingresses("remove_route", usecase_id, &[])
            .await?;
        self.delete_quietly("remove_route", &self.services(), &service_name(usecase_id))
            .await
    }

    #[instrument(skip(self))]
    async fn forget(&self, usecase_id: Uuid) -> Result<(), ClusterError> {
        self.remove_route(usecase_id).await?;
        let generated = kube_objects::generated_secret_name(usecase_id);
        self.delete_quietly("forget", &self.secrets(), &generated)
            .await
    }

    #[instrument(skip(self))]
    async fn present(&self, usecase_id: Uuid) -> Result<Vec<Uuid>, ClusterError> {
        let params = ListParams::default().labels(&format!("{USECASE_LABEL}={usecase_id}"));
        let deployment_of = |labels: Option<&BTreeMap<String, String>>| {
            labels?.get(DEPLOYMENT_LABEL)?.parse::<Uuid>().ok()
        };
        let (deployments, secrets) = (self.deployments(), self.secrets());
        let mut ids: Vec<Uuid> = self
            .calls
            .call("present", || deployments.list(&params))
            .await?
            .items
            .iter()
            .filter_map(|d| deployment_of(d.metadata.labels.as_ref()))
            .collect();
        // A Secret is applied before its Deployment: one may be left without it.
        ids.extend(
            self.calls
                .call("present", || secrets.list(&params))
                .await?
                .items
                .iter()
                .filter_map(|s| deployment_of(s.metadata.labels.as_ref())),
        );
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn managed(&self) -> Result<Vec<Uuid>, ClusterError> {
        let params = ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
        let usecase_of = |labels: Option<&BTreeMap<String, String>>| {
            labels?.get(USECASE_LABEL)?.parse::<Uuid>().ok()
        };
        let (deployments, secrets) = (self.deployments(), self.secrets());
        let mut ids: Vec<Uuid> = self
            .calls
            .call("managed", || deployments.list(&params))
            .await?
            .items
            .iter()
            .filter_map(|d| usecase_of(d.metadata.labels.as_ref()))
            .collect();
        // Secrets outlive a cut-off reconcile on their own: a deleted usecase's generated
        // values (removed by the reconcile after its deletion is recorded), or a
        // deployment's Secret applied just before its Deployment.
        ids.extend(
            self.calls
                .call("managed", || secrets.list(&params))
                .await?
                .items
                .iter()
                .filter_map(|s| usecase_of(s.metadata.labels.as_ref())),
        );
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(value: Value) -> Deployment {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_rollout_is_ready_only_on_the_current_generation_with_every_replica_ready() {
        let status = |observed: i64, ready: i32| {
            deployment(json!({
                "metadata": {"name": "d", "generation": 2},
                "spec": {"replicas": 2, "selector": {}, "template": {}},
                "status": {"observedGeneration": observed, "replicas": 2, "updatedReplicas": 2, "readyReplicas": ready, "availableReplicas": ready}
            }))
        };
        assert_eq!(
            deployment_outcome(&status(2, 2)),
            Some(RolloutOutcome::Ready)
        );
        assert_eq!(
            deployment_outcome(&status(1, 2)),
            None,
            "a stale status of the previous generation"
        );
        assert_eq!(
            deployment_outcome(&status(2, 1)),
            None,
            "one replica not ready"
        );
    }

    #[test]
    fn the_progress_deadline_is_a_failure_with_kubernetes_words() {
        let d = deployment(json!({
            "metadata": {"name": "d", "generation": 1},
            "spec": {"selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"d-1\" has timed out progressing."}]}
        }));
        match deployment_outcome(&d) {
            Some(RolloutOutcome::Failed(m)) => assert!(
                m.contains("progress deadline") && m.contains("timed out progressing"),
                "{m}"
            ),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn pods_that_cannot_pull_or_keep_crashing_say_why() {
        let pod = |reason: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "p"},
                "status": {"containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 3,
                    "state": {"waiting": {"reason": reason, "message": "details"}}}]}
            }))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let pull = pod_failure(&pod("ImagePullBackOff"), "r.example.com/app:1").unwrap_or_default();
        assert_eq!(
            pull,
            "the image r.example.com/app:1 cannot be pulled (ImagePullBackOff): details"
        );
        let crash =
            pod_failure(&pod("CrashLoopBackOff"), "r.example.com/app:1").unwrap_or_default();
        assert!(
            crash.starts_with("the container of image r.example.com/app:1 keeps crashing"),
            "{crash}"
        );
        assert_eq!(
            pod_failure(&pod("ContainerCreating"), "x"),
            None,
            "still starting is not a failure"
        );
    }

    #[test]
    fn object_names_are_deterministic_and_valid_dns_labels() {
        let id = Uuid::from_u128(0xabc);
        assert_eq!(deployment_name(id), "sl-00000000000000000000000000000abc");
        assert!(service_name(id).len() <= 63);
    }
}
