//! How the kubelet starts a pod once its images are pulled: a pod IP for the sandbox, then each
//! container that is not running yet (pulled, configured with its environment, started), and
//! the pod's readiness from what came of them. Images tagged `*-broken` or hosted on
//! `*.invalid` never pull; a container whose environment cannot be built is retried with a
//! back-off.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use super::super::deployment::owner_deployment_ref;
use super::super::events::{Event, KUBELET};
use super::super::{carry_timestamps, Action, Controllers};
use super::{condition, containers_of, env, LogLine, PodLogs, StartedContainer};
use crate::echo::EchoOp;
use crate::json::str_at;
use crate::resources::{DEPLOYMENTS, PODS};
use crate::store::{now_time, Store};

/// The waiting reason of a container whose image never pulls.
const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
/// The waiting reason of a container whose configuration (its environment) cannot be built.
const CONFIG_ERROR: &str = "CreateContainerConfigError";
/// Longest pause between two attempts to start a container that could not be configured.
const MAX_CONFIG_RETRY: Duration = Duration::from_secs(10);

/// Why an image cannot be pulled, if the simulator treats it as broken.
fn image_pull_error(image: &str) -> Option<String> {
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

/// `n` random hex digits, for container and image ids.
fn hex_id(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(n);
    s
}

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

/// The status of a container started now from `image`.
fn running_status(container: &str, image: &str) -> Value {
    let repository = image
        .split(['@'])
        .next()
        .unwrap_or(image)
        .rsplit_once(':')
        .map(|(r, _)| r)
        .unwrap_or(image);
    json!({
        "name": container,
        "state": { "running": { "startedAt": now_time() } },
        "lastState": {},
        "ready": true,
        "restartCount": 0,
        "image": image,
        "imageID": format!("{repository}@sha256:{}", hex_id(64)),
        "containerID": format!("containerd://{}", hex_id(64)),
        "started": true,
    })
}

/// One start attempt of a pod: the pod as stored, the copy its new status goes into, and what
/// its containers were before.
struct Attempt<'a> {
    /// The pod as stored.
    pod: &'a Value,
    /// The pod as it will be stored (its IP assigned; its status is filled in last).
    updated: Value,
    /// Its uid.
    uid: &'a str,
    /// Whether this is the first attempt (the image pull).
    first: bool,
    /// The container statuses before this attempt.
    previous: Vec<Value>,
}

/// What became of the pod's containers on one attempt.
#[derive(Default)]
struct Outcome {
    /// Each container's status, in spec order.
    statuses: Vec<Value>,
    /// The containers that are not running.
    unready: Vec<String>,
    /// Whether a container waits for its configuration and is to be tried again.
    retry: bool,
}

impl Controllers {
    /// The image pull is over (attempt 0), or a retry is due: start the pod's containers that
    /// are not running yet, or record why they cannot start, and report the pod's readiness.
    /// Images are pulled once: a broken image stays in ImagePullBackOff. A container whose
    /// environment cannot be built (a missing Secret or key) waits in
    /// CreateContainerConfigError and is retried with a back-off, as the kubelet's pod worker
    /// retries it, until it starts or the pod is deleted.
    pub(in crate::controllers) fn pod_start(
        &mut self,
        store: &mut Store,
        ns: &str,
        name: &str,
        uid: &str,
        attempt: u32,
    ) {
        let Some(pod) = store.get(&PODS, ns, name) else {
            return;
        };
        let first = !self.logs.contains_key(uid);
        let stopped = self.logs.get(uid).is_some_and(|l| l.ended);
        if str_at(&pod, "/metadata/uid") != uid || stopped || (!first && attempt == 0) {
            return;
        }
        let mut at = Attempt {
            pod: &pod,
            updated: (*pod).clone(),
            uid,
            first,
            previous: pod
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        };
        self.assign_pod_ip(&mut at.updated);
        let mut logs = self.logs.remove(uid).unwrap_or_default();
        let had_logs = !logs.containers.is_empty();
        let mut outcome = Outcome::default();
        for (index, container) in containers_of(&pod).iter().enumerate() {
            self.start_one(store, &at, index, container, &mut logs, &mut outcome);
        }
        let ready = outcome.unready.is_empty();
        set_pod_status(&mut at.updated, &pod, outcome.statuses, &outcome.unready);
        let has_logs = !logs.containers.is_empty();
        self.logs.insert(uid.to_string(), logs);
        self.log_version += 1;
        if at.updated != *pod {
            store.put(&PODS, at.updated, self);
        }
        if has_logs && !had_logs {
            self.schedule_heartbeat(ns, name, uid, 1);
        }
        if outcome.retry {
            self.retry_start(ns, name, uid, attempt);
        }
        if let Some((owner, owner_uid)) = owner_deployment_ref(&pod) {
            self.tell_owner(store, ns, &owner, owner_uid, ready);
        }
    }

    /// The sandbox gets its address once, before any container starts (the downward API can
    /// hand it to them).
    fn assign_pod_ip(&mut self, pod: &mut Value) {
        if !str_at(pod, "/status/podIP").is_empty() {
            return;
        }
        let ip = self.allocate_pod_ip();
        if let Some(status) = pod.get_mut("status").and_then(Value::as_object_mut) {
            status.insert("podIP".into(), json!(ip));
            status.insert("podIPs".into(), json!([{ "ip": ip }]));
        }
    }

    /// One container on one attempt: kept as it is when it runs (or never pulls), else pulled
    /// (on the first attempt), configured and started; its status goes into `outcome`.
    fn start_one(
        &mut self,
        store: &mut Store,
        at: &Attempt<'_>,
        index: usize,
        container: &Value,
        logs: &mut PodLogs,
        outcome: &mut Outcome,
    ) {
        let cname = str_at(container, "/name").to_string();
        let image = str_at(container, "/image").to_string();
        let before = at
            .previous
            .iter()
            .find(|s| str_at(s, "/name") == cname)
            .filter(|_| !at.first);
        let running = before.is_some_and(|s| s.pointer("/state/running").is_some());
        let pull_failed =
            before.is_some_and(|s| str_at(s, "/state/waiting/reason") == IMAGE_PULL_BACK_OFF);
        if let Some(before) = before.filter(|_| running || pull_failed) {
            outcome.statuses.push(before.clone());
            if !running {
                outcome.unready.push(cname);
            }
            return;
        }
        if !at.first {
            let message = format!("Container image \"{image}\" already present on machine");
            self.emit_event(store, at.pod, Event::normal(KUBELET, "Pulled", &message));
        } else if let Some(err) = image_pull_error(&image) {
            let status = self.fail_pull(store, at.pod, &cname, &image, &err);
            outcome.statuses.push(status);
            outcome.unready.push(cname);
            return;
        } else {
            let message = format!("Successfully pulled image \"{image}\" in 100ms (100ms including waiting). Image size: 0 bytes.");
            self.emit_event(store, at.pod, Event::normal(KUBELET, "Pulled", &message));
        }
        let env = match env::resolve(store, &at.updated, container) {
            Ok(env) => env,
            Err(message) => {
                let text = format!("Error: {message}");
                self.emit_event(store, at.pod, Event::warning(KUBELET, "Failed", &text));
                let status = waiting_status(&cname, &image, CONFIG_ERROR, &message);
                outcome.statuses.push(status);
                outcome.unready.push(cname);
                outcome.retry = true;
                return;
            }
        };
        let started = StartedContainer {
            name: cname.clone(),
            image: image.clone(),
            env,
        };
        let uid = at.uid.to_string();
        self.started.entry(uid).or_default().insert(index, started);
        let lines = self.start_container(store, at.pod, container);
        logs.containers.insert(cname.clone(), lines);
        outcome.statuses.push(running_status(&cname, &image));
    }

    /// Records a failed image pull (the kubelet's events) and returns the container's status.
    fn fail_pull(
        &mut self,
        store: &mut Store,
        pod: &Value,
        container: &str,
        image: &str,
        err: &str,
    ) -> Value {
        let failed = format!("Failed to pull image \"{image}\": {err}");
        self.emit_event(store, pod, Event::warning(KUBELET, "Failed", &failed));
        let event = Event::warning(KUBELET, "Failed", "Error: ErrImagePull");
        self.emit_event(store, pod, event);
        let back_off = format!("Back-off pulling image \"{image}\"");
        self.emit_event(store, pod, Event::warning(KUBELET, "BackOff", &back_off));
        let event = Event::warning(KUBELET, "Failed", "Error: ImagePullBackOff");
        self.emit_event(store, pod, event);
        let message = format!("Back-off pulling image \"{image}\": ErrImagePull: {err}");
        waiting_status(container, image, IMAGE_PULL_BACK_OFF, &message)
    }

    /// Starts one container: its Created and Started events, and its first log lines.
    fn start_container(
        &mut self,
        store: &mut Store,
        pod: &Value,
        container: &Value,
    ) -> Vec<LogLine> {
        let cname = str_at(container, "/name");
        let image = str_at(container, "/image");
        let created = format!("Created container: {cname}");
        self.emit_event(store, pod, Event::normal(KUBELET, "Created", &created));
        let started = format!("Started container {cname}");
        self.emit_event(store, pod, Event::normal(KUBELET, "Started", &started));
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

    /// Tries the containers that could not be configured again, after the back-off of
    /// `attempt`.
    fn retry_start(&mut self, ns: &str, name: &str, uid: &str, attempt: u32) {
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

    /// Tells a pod's Deployment of its pod's readiness: the first Ready pod of a Deployment
    /// brings up its echo app (a no-op after; a pod orphaned by its deleted Deployment gets
    /// none), and the Deployment is reconciled at once.
    fn tell_owner(
        &mut self,
        store: &mut Store,
        ns: &str,
        owner: &str,
        owner_uid: String,
        ready: bool,
    ) {
        let owner_exists = store
            .get(&DEPLOYMENTS, ns, owner)
            .is_some_and(|d| str_at(&d, "/metadata/uid") == owner_uid);
        if ready && owner_exists {
            self.echo_ops.push(EchoOp::Start {
                uid: owner_uid,
                ns: ns.to_string(),
                name: owner.to_string(),
            });
        }
        self.reconcile_deployment(store, ns, owner);
    }
}

/// Writes a pod's phase, conditions and container statuses after a start attempt; a retry
/// that changes nothing rewrites nothing (the conditions keep their timestamps).
fn set_pod_status(pod: &mut Value, before: &Value, statuses: Vec<Value>, unready: &[String]) {
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
    carry_timestamps(&mut conditions, before.pointer("/status/conditions"));
    if let Some(status) = pod.get_mut("status").and_then(Value::as_object_mut) {
        status.insert(
            "phase".into(),
            json!(if ready { "Running" } else { "Pending" }),
        );
        status.insert("conditions".into(), json!(conditions));
        status.insert("containerStatuses".into(), json!(statuses));
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
