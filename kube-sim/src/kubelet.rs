//! The simulator's stand-in for the kubelet: it admits pods onto the one node, pulls their
//! images (or fails to), starts their containers, and keeps their logs and heartbeats.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::controller::{
    carry_timestamps, owner_deployment, owner_deployment_ref, Action, NODE_NAME,
};
use crate::echo::EchoOp;
use crate::json::str_at;
use crate::pod_env::Env;
use crate::resources::{DEPLOYMENTS, PODS};
use crate::store::{now_time, object_key, Store};

/// The simulated node's address, as pods report it in `hostIP`.
const HOST_IP: &str = "10.0.0.10";

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

/// A pod condition as the kubelet writes it, stamped now.
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

/// The containers of a pod's spec (none when it has no list).
fn containers_of(pod: &Value) -> Vec<Value> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `n` random hex digits, for container and image ids.
fn hex_id(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(n);
    s
}

/// The waiting reason of a container whose image never pulls.
const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
/// The waiting reason of a container whose configuration (its environment) cannot be built.
const CONFIG_ERROR: &str = "CreateContainerConfigError";
/// Longest pause between two attempts to start a container that could not be configured.
const MAX_CONFIG_RETRY: Duration = Duration::from_secs(10);

/// What the kubelet started one container with: the environment its process was given.
#[derive(Debug, Clone)]
pub(crate) struct StartedContainer {
    pub name: String,
    pub image: String,
    pub env: Env,
}

/// The started containers of one pod, by their index in the pod spec.
pub(crate) type StartedContainers = BTreeMap<usize, StartedContainer>;

/// The pause before attempt `attempt + 1` to configure a container: `ready_delay` doubled
/// per attempt, up to ten `ready_delay`s and at most [`MAX_CONFIG_RETRY`].
fn config_retry_delay(ready_delay: Duration, attempt: u32) -> Duration {
    let base = ready_delay.max(Duration::from_millis(10));
    let cap = base.saturating_mul(10).min(MAX_CONFIG_RETRY).max(base);
    base.saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(cap)
}

/// The status of a container that waits for `reason`.
fn waiting_status(container: &str, image: &str, reason: &str, message: &str) -> Value {
    json!({
        "name": container,
        "state": { "waiting": { "reason": reason, "message": message } },
        "lastState": {},
        "ready": false,
        "restartCount": 0,
        "image": image,
        "imageID": "",
        "started": false,
    })
}

impl Store {
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
        self.schedule(
            delay,
            Action::PodStart {
                ns,
                name,
                uid,
                attempt: 0,
            },
        );
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

    /// The image pull is over (attempt 0), or a retry is due: start the pod's containers that
    /// are not running yet, or record why they cannot start, and report the pod's readiness.
    /// Images are pulled once: a broken image stays in ImagePullBackOff. A container whose
    /// environment cannot be built (a missing Secret or key) waits in
    /// CreateContainerConfigError and is retried with a back-off, as the kubelet's pod worker
    /// retries it, until it starts or the pod is deleted.
    pub(crate) fn pod_start(&mut self, ns: &str, name: &str, uid: &str, attempt: u32) {
        let Some(pod) = self.get(&PODS, ns, name) else {
            return;
        };
        let first = !self.logs.contains_key(uid);
        let stopped = self.logs.get(uid).is_some_and(|l| l.ended);
        if str_at(&pod, "/metadata/uid") != uid || stopped || (!first && attempt == 0) {
            return;
        }
        let mut pod_value = (*pod).clone();
        // The sandbox gets its address once, before any container starts (the downward API
        // can hand it to them).
        if str_at(&pod_value, "/status/podIP").is_empty() {
            let ip = self.allocate_pod_ip();
            if let Some(status) = pod_value.get_mut("status").and_then(Value::as_object_mut) {
                status.insert("podIP".into(), json!(ip));
                status.insert("podIPs".into(), json!([{ "ip": ip }]));
            }
        }
        let previous: Vec<Value> = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut logs = self.logs.remove(uid).unwrap_or_default();
        let had_logs = !logs.containers.is_empty();
        let mut statuses = Vec::new();
        let mut unready = Vec::new();
        let mut retry = false;
        for (index, c) in containers_of(&pod).iter().enumerate() {
            let cname = str_at(c, "/name").to_string();
            let image = str_at(c, "/image").to_string();
            let before = previous
                .iter()
                .find(|s| str_at(s, "/name") == cname)
                .filter(|_| !first);
            let running = before.is_some_and(|s| s.pointer("/state/running").is_some());
            let pull_failed =
                before.is_some_and(|s| str_at(s, "/state/waiting/reason") == IMAGE_PULL_BACK_OFF);
            if let Some(before) = before.filter(|_| running || pull_failed) {
                statuses.push(before.clone());
                if !running {
                    unready.push(cname);
                }
                continue;
            }
            if !first {
                let message = format!("Container image \"{image}\" already present on machine");
                self.emit_event(&pod, false, "Pulled", &message, "kubelet");
            } else if let Some(err) = image_pull_error(&image) {
                statuses.push(self.fail_pull(&pod, &cname, &image, &err));
                unready.push(cname);
                continue;
            } else {
                self.emit_event(&pod, false, "Pulled", &format!("Successfully pulled image \"{image}\" in 100ms (100ms including waiting). Image size: 0 bytes."), "kubelet");
            }
            let env = match crate::pod_env::resolve(self, &pod_value, c) {
                Ok(env) => env,
                Err(message) => {
                    self.emit_event(
                        &pod,
                        true,
                        "Failed",
                        &format!("Error: {message}"),
                        "kubelet",
                    );
                    statuses.push(waiting_status(&cname, &image, CONFIG_ERROR, &message));
                    unready.push(cname);
                    retry = true;
                    continue;
                }
            };
            self.started.entry(uid.to_string()).or_default().insert(
                index,
                StartedContainer {
                    name: cname.clone(),
                    image: image.clone(),
                    env,
                },
            );
            logs.containers
                .insert(cname.clone(), self.start_container(&pod, c));
            statuses.push(json!({
                "name": cname,
                "state": { "running": { "startedAt": now_time() } },
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
        let mut conditions = vec![
            condition("PodReadyToStartContainers", true, None, None),
            condition("Initialized", true, None, None),
            condition("Ready", ready, reason, message),
            condition("ContainersReady", ready, reason, message),
            condition("PodScheduled", true, None, None),
        ];
        // A retry that changes nothing rewrites nothing.
        carry_timestamps(&mut conditions, pod.pointer("/status/conditions"));
        if let Some(status) = pod_value.get_mut("status").and_then(Value::as_object_mut) {
            status.insert(
                "phase".into(),
                json!(if ready { "Running" } else { "Pending" }),
            );
            status.insert("conditions".into(), json!(conditions));
            status.insert("containerStatuses".into(), json!(statuses));
        }
        let has_logs = !logs.containers.is_empty();
        self.logs.insert(uid.to_string(), logs);
        self.log_version += 1;
        if pod_value != *pod {
            self.put(&PODS, pod_value);
        }
        if has_logs && !had_logs {
            self.schedule_heartbeat(ns, name, uid, 1);
        }
        if retry {
            let delay = config_retry_delay(self.config.ready_delay, attempt);
            let (ns, name, uid) = (ns.to_string(), name.to_string(), uid.to_string());
            let attempt = attempt.saturating_add(1);
            self.schedule(
                delay,
                Action::PodStart {
                    ns,
                    name,
                    uid,
                    attempt,
                },
            );
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

    /// Records a failed image pull (the kubelet's events) and returns the container's status.
    fn fail_pull(&mut self, pod: &Value, container: &str, image: &str, err: &str) -> Value {
        self.emit_event(
            pod,
            true,
            "Failed",
            &format!("Failed to pull image \"{image}\": {err}"),
            "kubelet",
        );
        self.emit_event(pod, true, "Failed", "Error: ErrImagePull", "kubelet");
        self.emit_event(
            pod,
            true,
            "BackOff",
            &format!("Back-off pulling image \"{image}\""),
            "kubelet",
        );
        self.emit_event(pod, true, "Failed", "Error: ImagePullBackOff", "kubelet");
        let message = format!("Back-off pulling image \"{image}\": ErrImagePull: {err}");
        waiting_status(container, image, IMAGE_PULL_BACK_OFF, &message)
    }

    /// Starts one container: its Created and Started events, and its first log lines.
    fn start_container(&mut self, pod: &Value, container: &Value) -> Vec<LogLine> {
        let cname = str_at(container, "/name");
        let image = str_at(container, "/image");
        self.emit_event(
            pod,
            false,
            "Created",
            &format!("Created container: {cname}"),
            "kubelet",
        );
        self.emit_event(
            pod,
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
        let ports = container.get("ports").and_then(Value::as_array);
        for p in ports.into_iter().flatten() {
            if let Some(port) = p.get("containerPort").and_then(Value::as_i64) {
                lines.push(LogLine {
                    at,
                    text: format!("kube-sim: listening on :{port}"),
                });
            }
        }
        lines
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

    /// Appends heartbeat `n` to every container log of a running pod and schedules the next.
    pub(crate) fn heartbeat(&mut self, ns: &str, name: &str, uid: &str, n: u64) {
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
