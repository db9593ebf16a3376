//! The simulator's controllers: what a cluster runs besides its API server. The deployment
//! controller ([`deployment`], rolling pods by a Deployment's strategy with [`rollout`]), the
//! scheduler and kubelet of the one node ([`kubelet`]: admission, image pulls, container
//! start-up with their environment, logs and heartbeats), the ingress controller's control
//! loop ([`ingress`]: its routing table and the Ingress status), and the Kubernetes Events
//! they all record ([`events`]).
//!
//! They act on the store only through its verbs (`get`, `list`, `insert_new`, `put`,
//! `remove`, ...), and the store tells them of its writes through [`Observer`], which
//! [`Controllers`] implements: no controller is a method of the store. What they want done
//! later or outside the store's lock ([`Action`]s for the scheduler, echo apps to start or
//! stop) they queue here, for `cluster::Shared` to hand on once the lock is released.

mod deployment;
mod events;
mod ingress;
mod kubelet;
mod rollout;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::config::SimConfig;
use crate::echo::EchoOp;
use crate::resources::{ResourceDef, DEPLOYMENTS, INGRESSES, PODS};
use crate::store::{object_key, Change, ChangeType, Observer, Store};

pub(crate) use deployment::owner_deployment_ref;
pub(crate) use ingress::routes::{host_of, Backend};
pub(crate) use kubelet::{pod_ready, LogLine, PodLogs, StartedContainers, NODE_NAME};

use deployment::Rollout;
use ingress::routes::IngressRoutes;

/// How long the echo app of a deleted Deployment keeps answering before it stops.
const ECHO_DRAIN: Duration = Duration::from_millis(500);

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

/// What the controllers remember between two writes: each Deployment's rollout, each pod's
/// logs and started containers, the ingress routing table, and the work queued for after the
/// store's lock.
pub(crate) struct Controllers {
    /// The timings: start-up, heartbeats, progress deadline.
    config: SimConfig,
    /// The deployment controller's memory of each Deployment's rollout, by Deployment uid.
    rollouts: HashMap<String, Rollout>,
    /// The logs of each pod the kubelet started, by pod uid.
    logs: HashMap<String, PodLogs>,
    /// The containers the kubelet started, by pod uid (what their processes were given).
    started: HashMap<String, StartedContainers>,
    /// Bumped on every log append, for waking following log streams.
    log_version: u64,
    /// The next pod IP the node hands out.
    next_pod_ip: u32,
    /// Makes the names of Events recorded within one nanosecond differ.
    event_seq: u64,
    /// Every Ingress rule by host, kept current on every Ingress change, for the ingress
    /// controller to route a request without scanning the Ingresses.
    ingress_routes: IngressRoutes,
    /// The address the ingress controller serves on, when it runs (for Ingress statuses).
    ingress_address: Option<String>,
    /// Timed actions to hand to the scheduler once the lock is released.
    pending: Vec<(Duration, Action)>,
    /// Echo apps to start or stop once the lock is released.
    echo_ops: Vec<EchoOp>,
}

impl Controllers {
    /// The controllers of a cluster with these timings, whose ingress controller (if any)
    /// reports `ingress_address` in Ingress statuses.
    pub(crate) fn new(config: SimConfig, ingress_address: Option<String>) -> Self {
        Controllers {
            config,
            rollouts: HashMap::new(),
            logs: HashMap::new(),
            started: HashMap::new(),
            log_version: 0,
            next_pod_ip: 2,
            event_seq: 0,
            ingress_routes: IngressRoutes::default(),
            ingress_address,
            pending: Vec::new(),
            echo_ops: Vec::new(),
        }
    }

    /// Queues `action` to run after `delay`.
    fn schedule(&mut self, delay: Duration, action: Action) {
        self.pending.push((delay, action));
    }

    /// The timed actions queued since the last call, for the scheduler.
    pub(crate) fn take_pending(&mut self) -> Vec<(Duration, Action)> {
        std::mem::take(&mut self.pending)
    }

    /// The echo apps to start or stop, queued since the last call.
    pub(crate) fn take_echo_ops(&mut self) -> Vec<EchoOp> {
        std::mem::take(&mut self.echo_ops)
    }

    /// The version of the logs: it changes whenever a line is appended or a pod's logs end.
    pub(crate) fn log_version(&self) -> u64 {
        self.log_version
    }

    /// The logs of a pod (by uid), once the kubelet has started it.
    pub(crate) fn pod_logs(&self, uid: &str) -> Option<&PodLogs> {
        self.logs.get(uid)
    }

    /// The containers the kubelet started for a pod (by uid), with their environment.
    pub(crate) fn started(&self, uid: &str) -> Option<&StartedContainers> {
        self.started.get(uid)
    }

    /// Where the ingress controller sends a request for `host` and `path`.
    pub(crate) fn route(&self, host: &str, path: &str) -> Option<Backend> {
        self.ingress_routes.route(host, path)
    }

    /// Runs one scheduled action.
    pub(crate) fn run_action(&mut self, store: &mut Store, action: Action) {
        match action {
            Action::Reconcile { ns, name } => self.reconcile_deployment(store, &ns, &name),
            Action::PodStart {
                ns,
                name,
                uid,
                attempt,
            } => self.pod_start(store, &ns, &name, &uid, attempt),
            Action::Heartbeat { ns, name, uid, n } => self.heartbeat(store, &ns, &name, &uid, n),
            Action::ProgressDeadline {
                ns,
                name,
                uid,
                epoch,
            } => self.progress_deadline(store, &ns, &name, &uid, epoch),
            Action::StopEcho { uid } => self.echo_ops.push(EchoOp::Stop { uid }),
            Action::IngressStatus { ns, name } => self.sync_ingress_status(store, &ns, &name),
        }
    }

    /// A Deployment was deleted: its rollout is forgotten, and its app stops once it has
    /// drained.
    fn deployment_deleted(&mut self, deployment: &Value) {
        let uid = crate::json::str_at(deployment, "/metadata/uid").to_string();
        self.rollouts.remove(&uid);
        // Its app drains first, as a terminating pod's container finishes what it was
        // sent: a request routed just before the delete is still answered.
        self.schedule(ECHO_DRAIN, Action::StopEcho { uid });
    }
}

impl Observer for Controllers {
    /// A new pod is bound to the node and given its Pending status by the kubelet.
    fn admit(&mut self, def: &ResourceDef, obj: &mut Value) {
        if def.plural == PODS.plural {
            kubelet::admit(obj);
        }
    }

    /// Each controller reacts to the kinds it watches: the deployment controller to a new
    /// Deployment or a changed spec, the kubelet to pods it must start or stop, the ingress
    /// controller to every Ingress change (its routes) and to a new or changed spec (its
    /// status).
    fn changed(&mut self, store: &mut Store, change: &Change) {
        let spec_changed = change.kind == ChangeType::Modified
            && change.old.as_ref().map(|o| o.get("spec")) != Some(change.object.get("spec"));
        let (ns, name) = object_key(&change.object);
        let plural = change.def.plural;
        if plural == DEPLOYMENTS.plural {
            match change.kind {
                ChangeType::Added => self.schedule(Duration::ZERO, Action::Reconcile { ns, name }),
                ChangeType::Modified if spec_changed => {
                    self.schedule(Duration::ZERO, Action::Reconcile { ns, name });
                }
                ChangeType::Modified => {}
                ChangeType::Deleted => self.deployment_deleted(&change.object),
            }
        } else if plural == PODS.plural {
            match change.kind {
                ChangeType::Added => self.kubelet_started(store, &change.object),
                ChangeType::Modified => {}
                ChangeType::Deleted => self.kubelet_stopped(store, &change.object),
            }
        } else if plural == INGRESSES.plural {
            let current = (change.kind != ChangeType::Deleted).then_some(&*change.object);
            self.ingress_routes
                .update((ns.clone(), name.clone()), current);
            let new_spec = change.kind == ChangeType::Added || spec_changed;
            if new_spec && self.ingress_address.is_some() {
                self.schedule(Duration::ZERO, Action::IngressStatus { ns, name });
            }
        }
    }
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
