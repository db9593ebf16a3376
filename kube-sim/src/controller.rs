//! The simulator's stand-in for the deployment controller, and what every controller shares:
//! the timed actions the scheduler runs and the events they record. The kubelet's side (pod
//! start-up, logs, heartbeats) is in [`crate::kubelet`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use crate::echo::EchoOp;
use crate::json::{random_suffix, str_at, template_hash};
use crate::resources::{DEPLOYMENTS, EVENTS, PODS};
use crate::rollout::{Strategy, Target};
use crate::store::{now_time, object_key, Store};

/// The simulated node every pod is scheduled onto.
pub(crate) const NODE_NAME: &str = "kube-sim-node";

/// Work the scheduler runs at a given time, each re-checked against the store when it fires.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Bring a deployment's pods and status in line with its spec.
    Reconcile { ns: String, name: String },
    /// The kubelet finished pulling: start the containers, or fail the pull. A later
    /// `attempt` retries the containers whose configuration could not be built.
    PodStart {
        ns: String,
        name: String,
        uid: String,
        attempt: u32,
    },
    /// Append the n-th heartbeat line to a running pod's logs.
    Heartbeat {
        ns: String,
        name: String,
        uid: String,
        n: u64,
    },
    /// The progress deadline of a rollout (identified by its epoch) ran out.
    ProgressDeadline {
        ns: String,
        name: String,
        uid: String,
        epoch: u64,
    },
    /// The echo app of a deleted Deployment (by uid) has drained: stop it.
    StopEcho { uid: String },
    /// The ingress controller writes its address into an Ingress's status.
    IngressStatus { ns: String, name: String },
}

/// Controller memory of one deployment's current rollout.
#[derive(Debug, Default)]
pub(crate) struct Rollout {
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

/// Whether a pod's Ready condition is True.
pub(crate) fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True")
        })
}

pub(crate) fn owner_deployment(pod: &Value) -> Option<String> {
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

/// Keeps the timestamps of an unchanged condition, so rewriting status is a no-op.
pub(crate) fn carry_timestamps(new: &mut [Value], old: Option<&Value>) {
    let old: Vec<Value> = old.and_then(Value::as_array).cloned().unwrap_or_default();
    for c in new.iter_mut() {
        let Some(prev) = old.iter().find(|o| o.get("type") == c.get("type")) else {
            continue;
        };
        let same_status = prev.get("status") == c.get("status");
        let same_all = same_status
            && prev.get("reason") == c.get("reason")
            && prev.get("message") == c.get("message");
        if let Some(map) = c.as_object_mut() {
            for field in ["lastTransitionTime", "lastUpdateTime", "lastProbeTime"] {
                let keep = if field == "lastTransitionTime" {
                    same_status
                } else {
                    same_all
                };
                if keep {
                    if let Some(v) = prev.get(field) {
                        map.insert(field.into(), v.clone());
                    }
                }
            }
        }
    }
}

impl Store {
    /// Runs one scheduled action.
    pub(crate) fn run_action(&mut self, action: Action) {
        match action {
            Action::Reconcile { ns, name } => self.reconcile_deployment(&ns, &name),
            Action::PodStart {
                ns,
                name,
                uid,
                attempt,
            } => self.pod_start(&ns, &name, &uid, attempt),
            Action::Heartbeat { ns, name, uid, n } => self.heartbeat(&ns, &name, &uid, n),
            Action::ProgressDeadline {
                ns,
                name,
                uid,
                epoch,
            } => {
                let Some(dep) = self.get(&DEPLOYMENTS, &ns, &name) else {
                    return;
                };
                if str_at(&dep, "/metadata/uid") != uid {
                    return;
                }
                if let Some(r) = self.rollouts.get_mut(&uid) {
                    if r.epoch == epoch {
                        r.exceeded = true;
                        self.reconcile_deployment(&ns, &name);
                    }
                }
            }
            Action::StopEcho { uid } => self.echo_ops.push(EchoOp::Stop { uid }),
            Action::IngressStatus { ns, name } => self.sync_ingress_status(&ns, &name),
        }
    }

    // ------------------------------------------------------------------ events

    /// Records a core v1 Event about `involved`, folding repeats into `count`.
    pub(crate) fn emit_event(
        &mut self,
        involved: &Value,
        warning: bool,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let (ns, name) = object_key(involved);
        let uid = str_at(involved, "/metadata/uid").to_string();
        let now = now_time();
        let is_repeat = |e: &Arc<Value>| {
            str_at(e, "/involvedObject/uid") == uid
                && str_at(e, "/reason") == reason
                && str_at(e, "/message") == message
        };
        // The index of involved objects has no entry for an object without a uid.
        let candidates = if uid.is_empty() {
            self.list(&EVENTS, Some(&ns))
        } else {
            self.referring(&EVENTS, &ns, &uid)
        };
        let repeat = candidates.into_iter().find(is_repeat);
        if let Some(prev) = repeat {
            let mut ev = (*prev).clone();
            let count = ev.get("count").and_then(Value::as_i64).unwrap_or(1) + 1;
            if let Some(map) = ev.as_object_mut() {
                map.insert("count".into(), json!(count));
                map.insert("lastTimestamp".into(), json!(now));
            }
            self.put(&EVENTS, ev);
            return;
        }
        self.event_seq += 1;
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or(0).unsigned_abs();
        let event = json!({
            "metadata": { "name": format!("{name}.{:x}", nanos.wrapping_add(self.event_seq)), "namespace": ns },
            "involvedObject": {
                "kind": str_at(involved, "/kind"),
                "namespace": ns,
                "name": name,
                "uid": uid,
                "apiVersion": str_at(involved, "/apiVersion"),
                "resourceVersion": str_at(involved, "/metadata/resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "source": { "component": component, "host": if component == "kubelet" { NODE_NAME } else { "" } },
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": if warning { "Warning" } else { "Normal" },
            "eventTime": null,
            "reportingComponent": component,
            "reportingInstance": if component == "kubelet" { NODE_NAME } else { "" },
        });
        self.insert_new(&EVENTS, event);
    }

    // ------------------------------------------------------------------ deployment controller

    /// Creates one pod of a deployment's current template (labelled with its hash).
    pub(crate) fn create_deployment_pod(&mut self, dep: &Value, hash: &str) {
        let (ns, dep_name) = object_key(dep);
        let generate = format!("{dep_name}-{hash}-");
        let mut name = format!("{generate}{}", random_suffix(5));
        while self.get(&PODS, &ns, &name).is_some() {
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
        self.insert_new(&PODS, pod);
    }

    /// Brings a deployment's pods toward its template and replica count as far as its
    /// strategy allows now (see [`crate::rollout`]), then writes its status.
    pub(crate) fn reconcile_deployment(&mut self, ns: &str, name: &str) {
        let Some(dep) = self.get(&DEPLOYMENTS, ns, name) else {
            return;
        };
        let uid = str_at(&dep, "/metadata/uid").to_string();
        let spec = dep.get("spec").cloned().unwrap_or(json!({}));
        let desired = spec
            .get("replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0);
        let mut template = spec.get("template").cloned().unwrap_or(json!({}));
        if let Some(Value::Object(labels)) = template.pointer_mut("/metadata/labels") {
            labels.remove("pod-template-hash");
        }
        let hash = template_hash(&template);
        let rs_name = format!("{name}-{hash}");
        let strategy = Strategy::of(&spec, desired);
        let mut progressed = false;
        let revisions = {
            let r = self.rollouts.entry(uid.clone()).or_default();
            if r.hash != hash {
                r.hash = hash.clone();
                r.revision += 1;
                r.revisions.insert(hash.clone(), r.revision);
                progressed = true;
            }
            if r.last_desired != desired {
                r.last_desired = desired;
                progressed = true;
            }
            r.revisions.clone()
        };

        self.roll(&Target {
            dep: &dep,
            uid: &uid,
            hash: &hash,
            desired,
            strategy,
            revisions: &revisions,
        });

        // Status.
        let pods: Vec<Arc<Value>> = self.owned_pods(ns, &uid);
        let total = i64::try_from(pods.len()).unwrap_or(i64::MAX);
        let updated = i64::try_from(
            pods.iter()
                .filter(|p| str_at(p, "/metadata/labels/pod-template-hash") == hash)
                .count(),
        )
        .unwrap_or(0);
        let ready = i64::try_from(pods.iter().filter(|p| pod_ready(p)).count()).unwrap_or(0);
        let old = total - updated;
        // Done only once every pod is of the current template: old pods still serving mean a
        // rollout in progress, even when the new ones are all Ready.
        let complete = updated == desired && total == desired && ready == desired;
        let deadline = {
            let spec_secs = spec
                .get("progressDeadlineSeconds")
                .and_then(Value::as_u64)
                .map(Duration::from_secs);
            spec_secs.map_or(self.config.progress_deadline, |s| {
                s.min(self.config.progress_deadline)
            })
        };
        let (exceeded, revision, schedule_epoch) = {
            let r = self.rollouts.entry(uid.clone()).or_default();
            // Progress as `DeploymentProgressing` sees it: more new pods, fewer old ones, or
            // more Ready ones.
            if ready > r.last_ready || updated > r.last_updated || old < r.last_old {
                progressed = true;
            }
            r.last_ready = ready;
            r.last_updated = updated;
            r.last_old = old;
            let mut schedule_epoch = None;
            if progressed {
                r.epoch += 1;
                r.exceeded = false;
                if !complete {
                    schedule_epoch = Some(r.epoch);
                }
            }
            (r.exceeded && !complete, r.revision, schedule_epoch)
        };
        if let Some(epoch) = schedule_epoch {
            self.schedule(
                deadline,
                Action::ProgressDeadline {
                    ns: ns.into(),
                    name: name.into(),
                    uid: uid.clone(),
                    epoch,
                },
            );
        }
        let available = ready >= desired - strategy.max_unavailable();
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
        let mut conditions = vec![available_cond, progressing_cond];
        carry_timestamps(&mut conditions, dep.pointer("/status/conditions"));
        let status = json!({
            "observedGeneration": dep.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            // As the controller counts it: pods (old and new) that are not available.
            "unavailableReplicas": (total - ready).max(0),
            "conditions": conditions,
        });
        let revision = revision.to_string();
        let same_revision = str_at(
            &dep,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        ) == revision;
        if dep.get("status") == Some(&status) && same_revision {
            return;
        }
        let mut new = (*dep).clone();
        if let Some(map) = new.as_object_mut() {
            map.insert("status".into(), status);
        }
        if let Some(meta) = new.get_mut("metadata") {
            crate::json::obj_mut(meta, "annotations")
                .insert("deployment.kubernetes.io/revision".into(), json!(revision));
        }
        self.put(&DEPLOYMENTS, new);
    }
}
