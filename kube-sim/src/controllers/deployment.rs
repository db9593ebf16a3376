//! The simulator's stand-in for the deployment controller: it notes each new template as a
//! new revision, scales the pods toward it as the strategy allows ([`super::rollout`]),
//! watches the rollout's progress against its deadline, and writes the Deployment's status
//! (replica counts and the `Available` and `Progressing` conditions) and revision annotation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::rollout::{Strategy, Target};
use super::{carry_timestamps, pod_ready, Action, Controllers};
use crate::json::{random_suffix, str_at, template_hash};
use crate::resources::{DEPLOYMENTS, PODS};
use crate::store::{now_time, object_key, Store};

/// Controller memory of one deployment's current rollout.
#[derive(Debug, Default)]
pub(super) struct Rollout {
    hash: String,
    revision: u64,
    /// The revision each template hash last had, to scale old ReplicaSets down oldest first.
    revisions: BTreeMap<String, u64>,
    epoch: u64,
    exceeded: bool,
    last_ready: i64,
    last_desired: i64,
    /// Pods of the current template at the last reconcile.
    last_updated: i64,
    /// Pods of older templates at the last reconcile.
    last_old: i64,
}

/// The name of the Deployment that owns a pod, if one does.
pub(super) fn owner_deployment(pod: &Value) -> Option<String> {
    owner_deployment_ref(pod).map(|(name, _)| name)
}

/// The `(name, uid)` of the Deployment that owns a pod, if one does.
pub(crate) fn owner_deployment_ref(pod: &Value) -> Option<(String, String)> {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| str_at(r, "/kind") == "Deployment")
        .map(|r| {
            (
                str_at(r, "/name").to_string(),
                str_at(r, "/uid").to_string(),
            )
        })
}

/// How a Deployment's pods stand after a reconcile's scaling.
#[derive(Debug, Clone, Copy)]
struct PodCounts {
    /// All its pods, old and new template.
    total: i64,
    /// Its pods of the current template.
    updated: i64,
    /// Its Ready pods.
    ready: i64,
}

impl PodCounts {
    /// Counts `pods` against the current template `hash`.
    fn of(pods: &[Arc<Value>], hash: &str) -> Self {
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        PodCounts {
            total: count(pods.len()),
            updated: count(
                pods.iter()
                    .filter(|p| str_at(p, "/metadata/labels/pod-template-hash") == hash)
                    .count(),
            ),
            ready: count(pods.iter().filter(|p| pod_ready(p)).count()),
        }
    }

    /// Pods of older templates.
    fn old(self) -> i64 {
        self.total - self.updated
    }

    /// Done only once every pod is of the current template: old pods still serving mean a
    /// rollout in progress, even when the new ones are all Ready.
    fn complete(self, desired: i64) -> bool {
        self.updated == desired && self.total == desired && self.ready == desired
    }
}

/// What the progress tracking concluded: whether the deadline has run out, the current
/// revision, and the epoch of a new deadline to set.
struct Progress {
    exceeded: bool,
    revision: u64,
    new_deadline: Option<u64>,
}

impl Controllers {
    /// Brings a deployment's pods toward its template and replica count as far as its
    /// strategy allows now (see [`super::rollout`]), then writes its status.
    pub(super) fn reconcile_deployment(&mut self, store: &mut Store, ns: &str, name: &str) {
        let Some(dep) = store.get(&DEPLOYMENTS, ns, name) else {
            return;
        };
        let uid = str_at(&dep, "/metadata/uid").to_string();
        let spec = dep.get("spec").cloned().unwrap_or(json!({}));
        let desired = spec
            .get("replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0);
        let hash = current_template_hash(&spec);
        let strategy = Strategy::of(&spec, desired);
        let (revisions, template_changed) = self.note_template(&uid, &hash, desired);
        self.roll(
            store,
            &Target {
                dep: &dep,
                uid: &uid,
                hash: &hash,
                desired,
                strategy,
                revisions: &revisions,
            },
        );
        let counts = PodCounts::of(&store.owned_pods(ns, &uid), &hash);
        let complete = counts.complete(desired);
        let progress = self.track_progress(&uid, counts, complete, template_changed);
        if let Some(epoch) = progress.new_deadline {
            let deadline = self.progress_deadline_of(&spec);
            let (ns, name, uid) = (ns.into(), name.into(), uid.clone());
            let action = Action::ProgressDeadline {
                ns,
                name,
                uid,
                epoch,
            };
            self.schedule(deadline, action);
        }
        let available = counts.ready >= desired - strategy.max_unavailable();
        let rs_name = format!("{name}-{hash}");
        let mut conditions = conditions(available, complete, progress.exceeded, &rs_name);
        carry_timestamps(&mut conditions, dep.pointer("/status/conditions"));
        let status = json!({
            "observedGeneration": dep.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "replicas": counts.total,
            "updatedReplicas": counts.updated,
            "readyReplicas": counts.ready,
            "availableReplicas": counts.ready,
            // As the controller counts it: pods (old and new) that are not available.
            "unavailableReplicas": (counts.total - counts.ready).max(0),
            "conditions": conditions,
        });
        self.write_status(store, &dep, status, progress.revision);
    }

    /// Notes the template and replica count a reconcile works toward: a new template is a new
    /// revision. Returns the revision of every template hash seen, and whether either changed
    /// (which counts as progress).
    fn note_template(
        &mut self,
        uid: &str,
        hash: &str,
        desired: i64,
    ) -> (BTreeMap<String, u64>, bool) {
        let r = self.rollouts.entry(uid.to_string()).or_default();
        let mut changed = false;
        if r.hash != hash {
            r.hash = hash.to_string();
            r.revision += 1;
            r.revisions.insert(hash.to_string(), r.revision);
            changed = true;
        }
        if r.last_desired != desired {
            r.last_desired = desired;
            changed = true;
        }
        (r.revisions.clone(), changed)
    }

    /// Progress as `DeploymentProgressing` sees it (more new pods, fewer old ones, or more
    /// Ready ones, or a new template or replica count): progress restarts the deadline, which
    /// is set again unless the rollout is complete.
    fn track_progress(
        &mut self,
        uid: &str,
        counts: PodCounts,
        complete: bool,
        mut progressed: bool,
    ) -> Progress {
        let r = self.rollouts.entry(uid.to_string()).or_default();
        if counts.ready > r.last_ready
            || counts.updated > r.last_updated
            || counts.old() < r.last_old
        {
            progressed = true;
        }
        r.last_ready = counts.ready;
        r.last_updated = counts.updated;
        r.last_old = counts.old();
        let mut new_deadline = None;
        if progressed {
            r.epoch += 1;
            r.exceeded = false;
            if !complete {
                new_deadline = Some(r.epoch);
            }
        }
        Progress {
            exceeded: r.exceeded && !complete,
            revision: r.revision,
            new_deadline,
        }
    }

    /// How long a rollout may go without progress: the Deployment's own
    /// `progressDeadlineSeconds` when it is shorter than the simulator's.
    fn progress_deadline_of(&self, spec: &Value) -> Duration {
        let spec_secs = spec
            .get("progressDeadlineSeconds")
            .and_then(Value::as_u64)
            .map(Duration::from_secs);
        spec_secs.map_or(self.config.progress_deadline, |s| {
            s.min(self.config.progress_deadline)
        })
    }

    /// Writes a Deployment's status and revision annotation, unless both are as they were.
    fn write_status(&mut self, store: &mut Store, dep: &Value, status: Value, revision: u64) {
        let revision = revision.to_string();
        let same_revision = str_at(
            dep,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        ) == revision;
        if dep.get("status") == Some(&status) && same_revision {
            return;
        }
        let mut new = dep.clone();
        if let Some(map) = new.as_object_mut() {
            map.insert("status".into(), status);
        }
        if let Some(meta) = new.get_mut("metadata") {
            crate::json::obj_mut(meta, "annotations")
                .insert("deployment.kubernetes.io/revision".into(), json!(revision));
        }
        store.put(&DEPLOYMENTS, new, self);
    }

    /// The progress deadline of a rollout ran out: unless the Deployment was replaced or made
    /// progress since (a newer epoch), it is marked exceeded and reconciled.
    pub(super) fn progress_deadline(
        &mut self,
        store: &mut Store,
        ns: &str,
        name: &str,
        uid: &str,
        epoch: u64,
    ) {
        let Some(dep) = store.get(&DEPLOYMENTS, ns, name) else {
            return;
        };
        if str_at(&dep, "/metadata/uid") != uid {
            return;
        }
        if let Some(r) = self.rollouts.get_mut(uid) {
            if r.epoch == epoch {
                r.exceeded = true;
                self.reconcile_deployment(store, ns, name);
            }
        }
    }

    /// Creates one pod of a deployment's current template (labelled with its hash).
    pub(super) fn create_deployment_pod(&mut self, store: &mut Store, dep: &Value, hash: &str) {
        let (ns, dep_name) = object_key(dep);
        let generate = format!("{dep_name}-{hash}-");
        let mut name = format!("{generate}{}", random_suffix(5));
        while store.get(&PODS, &ns, &name).is_some() {
            name = format!("{generate}{}", random_suffix(5));
        }
        let mut labels = dep
            .pointer("/spec/template/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        if let Some(map) = labels.as_object_mut() {
            map.insert("pod-template-hash".into(), json!(hash));
        }
        let mut meta = json!({
            "name": name,
            "generateName": generate,
            "namespace": ns,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": dep_name,
                "uid": str_at(dep, "/metadata/uid"),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        });
        if let (Some(ann), Some(map)) = (
            dep.pointer("/spec/template/metadata/annotations"),
            meta.as_object_mut(),
        ) {
            map.insert("annotations".into(), ann.clone());
        }
        let pod = json!({
            "metadata": meta,
            "spec": dep.pointer("/spec/template/spec").cloned().unwrap_or(json!({})),
        });
        store.insert_new(&PODS, pod, self);
    }
}

/// The hash of a Deployment's pod template (its `pod-template-hash` label left out), which
/// names the template's ReplicaSet.
fn current_template_hash(spec: &Value) -> String {
    let mut template = spec.get("template").cloned().unwrap_or(json!({}));
    if let Some(Value::Object(labels)) = template.pointer_mut("/metadata/labels") {
        labels.remove("pod-template-hash");
    }
    template_hash(&template)
}

/// The `Available` and `Progressing` conditions, stamped now, of a Deployment whose current
/// ReplicaSet is `rs_name`.
fn conditions(available: bool, complete: bool, exceeded: bool, rs_name: &str) -> Vec<Value> {
    let now = now_time();
    let available_cond = json!({
        "type": "Available",
        "status": if available { "True" } else { "False" },
        "lastUpdateTime": now, "lastTransitionTime": now,
        "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
        "message": if available { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
    });
    let (p_status, p_reason, p_message) = if complete {
        (
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        )
    } else if exceeded {
        (
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
        )
    } else {
        (
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs_name}\" is progressing."),
        )
    };
    let progressing_cond = json!({
        "type": "Progressing", "status": p_status,
        "lastUpdateTime": now, "lastTransitionTime": now,
        "reason": p_reason, "message": p_message,
    });
    vec![available_cond, progressing_cond]
}
