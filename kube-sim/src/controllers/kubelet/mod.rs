//! The simulator's stand-in for the scheduler and the kubelet of its one node: it admits
//! pods onto the node, pulls their images (or fails to) and starts their containers with
//! their environment ([`start`], [`env`](mod@env)), and keeps their logs and heartbeats.

mod env;
mod start;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::deployment::{owner_deployment, owner_deployment_ref};
use super::events::{Event, KUBELET, SCHEDULER};
use super::{Action, Controllers};
use crate::json::str_at;
use crate::resources::PODS;
use crate::store::{now_time, object_key, Store};

pub(crate) use env::Env;

/// The simulated node every pod is scheduled onto.
pub(crate) const NODE_NAME: &str = "kube-sim-node";

/// The simulated node's address, as pods report it in `hostIP`.
const HOST_IP: &str = "10.0.0.10";

/// One container log line.
#[derive(Debug, Clone)]
pub(crate) struct LogLine {
    /// When it was written.
    pub at: DateTime<Utc>,
    /// The line, without its newline.
    pub text: String,
}

/// The logs of one pod (by uid), per container.
#[derive(Debug, Default)]
pub(crate) struct PodLogs {
    /// Each container's lines, by container name.
    pub containers: BTreeMap<String, Vec<LogLine>>,
    /// Set when the pod is deleted: following readers stop.
    pub ended: bool,
}

/// What the kubelet started one container with: the environment its process was given.
#[derive(Debug, Clone)]
pub(crate) struct StartedContainer {
    /// The container's name.
    pub name: String,
    /// Its image.
    pub image: String,
    /// Its environment as resolved at start.
    pub env: Env,
}

/// The started containers of one pod, by their index in the pod spec.
pub(crate) type StartedContainers = BTreeMap<usize, StartedContainer>;

/// Whether a pod's Ready condition is True.
pub(crate) fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True")
        })
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

/// Before a new pod is stored: schedule it onto the node and give it a Pending status.
pub(super) fn admit(pod: &mut Value) {
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

impl Controllers {
    /// After a new pod is stored: scheduling and pulling events, and the start timer.
    pub(super) fn kubelet_started(&mut self, store: &mut Store, pod: &Value) {
        let (ns, name) = object_key(pod);
        let uid = str_at(pod, "/metadata/uid").to_string();
        let message = format!("Successfully assigned {ns}/{name} to {NODE_NAME}");
        self.emit_event(store, pod, Event::normal(SCHEDULER, "Scheduled", &message));
        for c in containers_of(pod) {
            let message = format!("Pulling image \"{}\"", str_at(&c, "/image"));
            self.emit_event(store, pod, Event::normal(KUBELET, "Pulling", &message));
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
    pub(super) fn kubelet_stopped(&mut self, store: &mut Store, pod: &Value) {
        let uid = str_at(pod, "/metadata/uid").to_string();
        if let Some(logs) = self.logs.get_mut(&uid) {
            logs.ended = true;
            self.log_version += 1;
        }
        if str_at(pod, "/status/phase") == "Running" {
            for c in containers_of(pod) {
                let message = format!("Stopping container {}", str_at(&c, "/name"));
                self.emit_event(store, pod, Event::normal(KUBELET, "Killing", &message));
            }
        }
        if let Some(owner) = owner_deployment(pod) {
            let (ns, _) = object_key(pod);
            self.schedule(Duration::ZERO, Action::Reconcile { ns, name: owner });
        }
    }

    /// Appends a line an echo app wrote to the main (first) container's log of one of the
    /// Deployment's pods; lines for other pods, or pods no longer running, are dropped.
    pub(crate) fn append_app_log(
        &mut self,
        store: &Store,
        ns: &str,
        pod: &str,
        deployment_uid: &str,
        text: &str,
    ) {
        let Some(pod) = store.get(&PODS, ns, pod) else {
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
    pub(super) fn heartbeat(&mut self, store: &Store, ns: &str, name: &str, uid: &str, n: u64) {
        let alive = store
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

    /// The next pod IP of the node's pod network.
    fn allocate_pod_ip(&mut self) -> String {
        let n = self.next_pod_ip;
        self.next_pod_ip = self.next_pod_ip.wrapping_add(1);
        format!("10.244.{}.{}", (n / 250) % 256, n % 250 + 2)
    }
}
