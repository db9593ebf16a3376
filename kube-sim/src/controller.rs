//! The simulator's stand-ins for the deployment controller, the scheduler and the kubelet:
//! rollouts, pod start-up (or image pull failure), events, container logs and heartbeats.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::echo::EchoOp;
use crate::json::{random_suffix, str_at, template_hash};
use crate::resources::{DEPLOYMENTS, EVENTS, PODS};
use crate::rollout::{Strategy, Target};
use crate::store::{now_time, object_key, Store};

/// The simulated node every pod is scheduled onto.
pub(crate) const NODE_NAME: &str = "kube-sim-node";
const HOST_IP: &str = "10.0.0.10";

/// Work the scheduler runs at a given time, each re-checked against the store when it fires.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Bring a deployment's pods and status in line with its spec.
    Reconcile { ns: String, name: String },
    /// The kubelet finished pulling: start the containers, or fail the pull.
    PodStart {
        ns: String,
        name: String,
        uid: String,
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
}

/// One container log line.
#[derive(Debug, Clone)]
pub(crate) struct LogLine {
    pub at: DateTime<Utc>,
    pub text: String,
}

/// The logs of one pod (by uid), per container.
#[derive(Debug, Default)]
pub(crate) struct PodLogs {
    pub containers: BTreeMap<String, Vec<LogLine>>,
    /// Set when the pod is deleted: following readers stop.
    pub ended: bool,
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

/// Why an image cannot be pulled, if the simulator treats it as broken.
pub(crate) fn image_pull_error(image: &str) -> Option<String> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let mut parts = without_digest.splitn(2, '/');
    let first = parts.next().unwrap_or("");
    let has_host = parts.next().is_some()
        && (first.contains('.') || first.contains(':') || first == "localhost");
    let host = if has_host {
        first.split(':').next().unwrap_or("")
    } else {
        ""
    };
    let last = without_digest.rsplit('/').next().unwrap_or("");
    let tag = last.split_once(':').map(|(_, t)| t).unwrap_or("");
    if !host.is_empty() && host.ends_with(".invalid") {
        Some(format!(
            "failed to resolve reference \"{image}\": failed to do request: Head \"https://{host}/v2/\": dial tcp: lookup {host}: no such host"
        ))
    } else if tag.ends_with("-broken") {
        Some(format!(
            "failed to resolve reference \"{image}\": {image}: not found"
        ))
    } else {
        None
    }
}

fn condition(kind: &str, status: bool, reason: Option<&str>, message: Option<&str>) -> Value {
    let mut c = json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": now_time(),
    });
    if let Some(map) = c.as_object_mut() {
        if let Some(r) = reason {
            map.insert("reason".into(), json!(r));
        }
        if let Some(m) = message {
            map.insert("message".into(), json!(m));
        }
    }
    c
}

fn containers_of(pod: &Value) -> Vec<Value> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn hex_id(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(n);
    s
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

fn owner_deployment(pod: &Value) -> Option<String> {
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
fn carry_timestamps(new: &mut [Value], old: Option<&Value>) {
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
            Action::PodStart { ns, name, uid } => self.pod_start(&ns, &name, &uid),
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
        let repeat = self.list(&EVENTS, Some(&ns)).into_iter().find(|e| {
            str_at(e, "/involvedObject/uid") == uid
                && str_at(e, "/reason") == reason
                && str_at(e, "/message") == message
        });
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

    // ------------------------------------------------------------------ kubelet

    /// Before a new pod is stored: schedule it onto the node and give it a Pending status.
    pub(crate) fn kubelet_admit(&mut self, pod: &mut Value) {
        let statuses: Vec<Value> = containers_of(pod)
            .iter()
            .map(|c| {
                json!({
                    "name": str_at(c, "/name"),
                    "state": { "waiting": { "reason": "ContainerCreating" } },
                    "lastState": {},
                    "ready": false,
                    "restartCount": 0,
                    "image": str_at(c, "/image"),
                    "imageID": "",
                    "started": false,
                })
            })
            .collect();
        let Some(map) = pod.as_object_mut() else {
            return;
        };
        let spec = crate::json::child_map(map, "spec");
        spec.entry("nodeName").or_insert(json!(NODE_NAME));
        map.insert(
            "status".into(),
            json!({
                "phase": "Pending",
                "conditions": [condition("PodScheduled", true, None, None)],
                "hostIP": HOST_IP,
                "hostIPs": [{ "ip": HOST_IP }],
                "startTime": now_time(),
                "containerStatuses": statuses,
                "qosClass": "BestEffort",
            }),
        );
    }

    /// After a new pod is stored: scheduling and pulling events, and the start timer.
    pub(crate) fn kubelet_started(&mut self, pod: &Arc<Value>) {
        let (ns, name) = object_key(pod);
        let uid = str_at(pod, "/metadata/uid").to_string();
        self.emit_event(
            pod,
            false,
            "Scheduled",
            &format!("Successfully assigned {ns}/{name} to {NODE_NAME}"),
            "default-scheduler",
        );
        for c in containers_of(pod) {
            self.emit_event(
                pod,
                false,
                "Pulling",
                &format!("Pulling image \"{}\"", str_at(&c, "/image")),
                "kubelet",
            );
        }
        let delay = self.config.ready_delay;
        self.schedule(delay, Action::PodStart { ns, name, uid });
    }

    /// After a pod is deleted: its logs end, its owner replaces it.
    pub(crate) fn kubelet_stopped(&mut self, pod: &Arc<Value>) {
        let uid = str_at(pod, "/metadata/uid").to_string();
        if let Some(logs) = self.logs.get_mut(&uid) {
            logs.ended = true;
            self.log_version += 1;
        }
        if str_at(pod, "/status/phase") == "Running" {
            for c in containers_of(pod) {
                self.emit_event(
                    pod,
                    false,
                    "Killing",
                    &format!("Stopping container {}", str_at(&c, "/name")),
                    "kubelet",
                );
            }
        }
        if let Some(owner) = owner_deployment(pod) {
            let (ns, _) = object_key(pod);
            self.schedule(Duration::ZERO, Action::Reconcile { ns, name: owner });
        }
    }

    fn pod_start(&mut self, ns: &str, name: &str, uid: &str) {
        let Some(pod) = self.get(&PODS, ns, name) else {
            return;
        };
        if str_at(&pod, "/metadata/uid") != uid || self.logs.contains_key(uid) {
            return;
        }
        let now = now_time();
        let mut statuses = Vec::new();
        let mut logs = PodLogs::default();
        let mut unready = Vec::new();
        for c in containers_of(&pod) {
            let cname = str_at(&c, "/name").to_string();
            let image = str_at(&c, "/image").to_string();
            if let Some(err) = image_pull_error(&image) {
                self.emit_event(
                    &pod,
                    true,
                    "Failed",
                    &format!("Failed to pull image \"{image}\": {err}"),
                    "kubelet",
                );
                self.emit_event(&pod, true, "Failed", "Error: ErrImagePull", "kubelet");
                self.emit_event(
                    &pod,
                    true,
                    "BackOff",
                    &format!("Back-off pulling image \"{image}\""),
                    "kubelet",
                );
                self.emit_event(&pod, true, "Failed", "Error: ImagePullBackOff", "kubelet");
                statuses.push(json!({
                    "name": cname,
                    "state": { "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": format!("Back-off pulling image \"{image}\": ErrImagePull: {err}"),
                    } },
                    "lastState": {},
                    "ready": false,
                    "restartCount": 0,
                    "image": image,
                    "imageID": "",
                    "started": false,
                }));
                unready.push(cname);
                continue;
            }
            self.emit_event(&pod, false, "Pulled", &format!("Successfully pulled image \"{image}\" in 100ms (100ms including waiting). Image size: 0 bytes."), "kubelet");
            self.emit_event(
                &pod,
                false,
                "Created",
                &format!("Created container: {cname}"),
                "kubelet",
            );
            self.emit_event(
                &pod,
                false,
                "Started",
                &format!("Started container {cname}"),
                "kubelet",
            );
            let at = Utc::now();
            let mut lines = vec![LogLine {
                at,
                text: format!("kube-sim: container {cname} started from image {image}"),
            }];
            for p in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(port) = p.get("containerPort").and_then(Value::as_i64) {
                    lines.push(LogLine {
                        at,
                        text: format!("kube-sim: listening on :{port}"),
                    });
                }
            }
            logs.containers.insert(cname.clone(), lines);
            statuses.push(json!({
                "name": cname,
                "state": { "running": { "startedAt": now } },
                "lastState": {},
                "ready": true,
                "restartCount": 0,
                "image": image,
                "imageID": format!("{}@sha256:{}", image.split(['@']).next().unwrap_or(&image).rsplit_once(':').map(|(r, _)| r).unwrap_or(&image), hex_id(64)),
                "containerID": format!("containerd://{}", hex_id(64)),
                "started": true,
            }));
        }
        let ready = unready.is_empty();
        let why = format!("containers with unready status: [{}]", unready.join(" "));
        let reason = (!ready).then_some("ContainersNotReady");
        let message = (!ready).then_some(why.as_str());
        let mut pod_value = (*pod).clone();
        let ip = self.allocate_pod_ip();
        if let Some(status) = pod_value.get_mut("status").and_then(Value::as_object_mut) {
            status.insert(
                "phase".into(),
                json!(if ready { "Running" } else { "Pending" }),
            );
            status.insert(
                "conditions".into(),
                json!([
                    condition("PodReadyToStartContainers", true, None, None),
                    condition("Initialized", true, None, None),
                    condition("Ready", ready, reason, message),
                    condition("ContainersReady", ready, reason, message),
                    condition("PodScheduled", true, None, None),
                ]),
            );
            status.insert("containerStatuses".into(), json!(statuses));
            status.insert("podIP".into(), json!(ip));
            status.insert("podIPs".into(), json!([{ "ip": ip }]));
        }
        let has_logs = !logs.containers.is_empty();
        self.logs.insert(uid.to_string(), logs);
        self.log_version += 1;
        self.put(&PODS, pod_value);
        if has_logs {
            self.schedule_heartbeat(ns, name, uid, 1);
        }
        if let Some((owner, owner_uid)) = owner_deployment_ref(&pod) {
            let owner_exists = self
                .get(&DEPLOYMENTS, ns, &owner)
                .is_some_and(|d| str_at(&d, "/metadata/uid") == owner_uid);
            if ready && owner_exists {
                // The first Ready pod of a Deployment brings up its echo app (a no-op after);
                // a pod orphaned by its deleted Deployment gets none.
                self.echo_ops.push(EchoOp::Start {
                    uid: owner_uid,
                    ns: ns.to_string(),
                    name: owner.clone(),
                });
            }
            self.reconcile_deployment(ns, &owner);
        }
    }

    /// Appends a line an echo app wrote to the main (first) container's log of one of the
    /// Deployment's pods; lines for other pods, or pods no longer running, are dropped.
    pub(crate) fn append_app_log(&mut self, ns: &str, pod: &str, deployment_uid: &str, text: &str) {
        let Some(pod) = self.get(&PODS, ns, pod) else {
            return;
        };
        if owner_deployment_ref(&pod).is_none_or(|(_, uid)| uid != deployment_uid) {
            return;
        }
        let Some(container) = containers_of(&pod)
            .first()
            .map(|c| str_at(c, "/name").to_string())
        else {
            return;
        };
        let uid = str_at(&pod, "/metadata/uid");
        let Some(lines) = self
            .logs
            .get_mut(uid)
            .filter(|l| !l.ended)
            .and_then(|l| l.containers.get_mut(&container))
        else {
            return;
        };
        lines.push(LogLine {
            at: Utc::now(),
            text: text.to_string(),
        });
        self.log_version += 1;
    }

    fn heartbeat(&mut self, ns: &str, name: &str, uid: &str, n: u64) {
        let alive = self
            .get(&PODS, ns, name)
            .is_some_and(|p| str_at(&p, "/metadata/uid") == uid);
        let Some(logs) = self.logs.get_mut(uid).filter(|l| alive && !l.ended) else {
            return;
        };
        let at = Utc::now();
        for lines in logs.containers.values_mut() {
            lines.push(LogLine {
                at,
                text: format!("kube-sim: heartbeat {n}"),
            });
        }
        self.log_version += 1;
        self.schedule_heartbeat(ns, name, uid, n + 1);
    }

    /// Appends heartbeat `n` to a running pod's logs after one log interval.
    fn schedule_heartbeat(&mut self, ns: &str, name: &str, uid: &str, n: u64) {
        let interval = self.config.log_interval;
        self.schedule(
            interval,
            Action::Heartbeat {
                ns: ns.into(),
                name: name.into(),
                uid: uid.into(),
                n,
            },
        );
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

#[cfg(test)]
mod tests {
    use super::image_pull_error;

    #[test]
    fn broken_images() {
        assert!(image_pull_error("registry.example.com/team/app:1.0-broken").is_some());
        assert!(image_pull_error("nowhere.invalid/app:1").is_some());
        assert!(image_pull_error("nowhere.invalid:5000/app:1").is_some());
        assert!(image_pull_error("registry.example.com/team/app:1.0").is_none());
        assert!(image_pull_error("nginx").is_none());
        assert!(image_pull_error("app.invalid").is_none());
    }
}
