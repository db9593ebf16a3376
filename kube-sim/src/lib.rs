//! kube-sim: a Kubernetes API server simulator that speaks the HTTP wire protocol the kube-rs
//! client and kubectl use, for what shiplog needs.
//!
//! It serves discovery, pods, services, events, namespaces, secrets, apps/v1 deployments,
//! networking.k8s.io/v1 ingresses and monitoring.coreos.com/v1 service monitors: list (label
//! and field selectors, pagination), get, create, replace, merge patch, server-side apply,
//! delete, delete collection, watch (resuming from any resourceVersion its bounded history
//! still covers), the `status` subresource of pods, services, namespaces, deployments and ingresses,
//! and pod logs (with follow). It plays the deployment controller, scheduler and kubelet, and
//! optionally an ingress controller: deployments roll out pods that become ready after
//! [`SimConfig::ready_delay`], images tagged `*-broken` or hosted on `*.invalid` never pull
//! (ImagePullBackOff, then ProgressDeadlineExceeded), and core/v1 events are recorded
//! (Scheduled, Pulling, Pulled, Created, Started, Failed, BackOff and Killing for pods,
//! ScalingReplicaSet for deployments).
//!
//! It also stores service accounts, `rbac.authorization.k8s.io/v1` roles and role bindings and
//! `policy/v1` pod disruption budgets, with no behaviour behind them (what shiplog's own
//! manifests in `deploy/` apply besides the kinds above).
//!
//! Server-side apply tracks field ownership as kube-apiserver does, in each object's
//! `metadata.managedFields` (`manager`, `operation` `Apply` or `Update`, `apiVersion`, `time`,
//! `fieldsType: FieldsV1` and `fieldsV1` in the `f:` notation). An apply by a field manager
//! makes its `Apply` entry exactly the fields it applied; a create, replace, merge patch or
//! scale makes the fields it added or changed (server defaults included) its manager's
//! (`fieldManager`, else the User-Agent up to its `/`, else `unknown`), and every write takes
//! what it changed away from the other managers. An apply removes the fields its manager's
//! previous apply set and the new one leaves out, unless another entry owns them; a map it
//! owned goes too once it is empty. So a label a manager stops applying is removed, a label a
//! merge patch or another manager's apply set stays, and shiplog's switch from
//! `{"type": "RollingUpdate", "rollingUpdate": {...}}` to `{"type": "Recreate"}` drops the
//! `rollingUpdate` it applied. A `rollingUpdate` the server defaulted is nobody's and stays: a
//! Deployment applied without a strategy, then with `{"type": "Recreate"}`, gets a 422, as on
//! a real cluster (here an applied `"rollingUpdate": null` removes it). A write that changes
//! nothing keeps the entries and the resourceVersion as they were.
//!
//! Secrets are stored as kube-apiserver stores them: `stringData` is base64-encoded into
//! `data` (over a `data` entry of the same key) and never stored, `type` defaults to
//! `Opaque`, a `data` value that is not base64 is a 400 (the server's decoding error), and a
//! data key outside `[-._a-zA-Z0-9]+`, a missing key a built-in type requires (`tls.crt` and
//! `tls.key` for `kubernetes.io/tls`, ...), a changed `type` or a change to an `immutable`
//! Secret is a 422. `kubectl get secrets` shows NAME, TYPE, DATA, AGE.
//!
//! The kubelet resolves a container's environment when it starts the container: `envFrom`
//! `secretRef`s (with their `prefix`), then `env` entries (`value`, `valueFrom.secretKeyRef`,
//! and `fieldRef` to the pod's name, namespace, uid, labels, annotations, node and IPs), later
//! ones overriding earlier ones, optional references skipped when missing. A missing Secret or
//! key leaves the container Waiting in `CreateContainerConfigError` (message
//! `secret "db" not found` or `couldn't find key password in Secret shop/db`), the pod Pending
//! and not Ready, and a Warning `Failed` event (`Error: secret "db" not found`, counted up on
//! every retry); the kubelet retries after `ready_delay`, doubling up to ten `ready_delay`s
//! (at most 10 s, or one `ready_delay` if that is longer), so the pod starts once the Secret
//! or key exists. Values are captured at
//! container start: changing a Secret does not change a running pod, a new pod (a restart)
//! gets the new values. The environment is checked at write time as the API server checks it
//! (names, one source per `valueFrom`, a `name` and `key` per `secretKeyRef`). Values appear
//! in no log of the simulator's; the echo app shows them (below).
//!
//! A changed pod template (a new image, a restart annotation) rolls out as the Deployment's
//! `spec.strategy` says. `RollingUpdate` (the default; `maxSurge` and `maxUnavailable`
//! integers or percentages, 25% each by default, surge rounded up and unavailable down)
//! creates new pods up to `replicas + maxSurge` and deletes old ones (unready first) only as
//! long as `replicas - maxUnavailable` pods stay Ready, so the old pods keep serving until
//! new ones are Ready; a new template that never becomes Ready leaves that many old pods
//! serving and the rollout in ProgressDeadlineExceeded. `Recreate` deletes every old pod,
//! then creates the new ones. Throughout, the status counts old and new pods as Kubernetes does
//! (`replicas` is all of them, `updatedReplicas` the new ones), so a rollout never looks
//! complete while old pods are left. The strategy is defaulted and validated as the API
//! server does (422 for `maxSurge` and `maxUnavailable` both 0, a malformed percentage,
//! `maxUnavailable` over 100%, or `rollingUpdate` with `Recreate`).
//!
//! Applications answer for real. When the first pod of a Deployment becomes Ready, an *echo
//! app* starts for it: an HTTP server on 127.0.0.1 (port chosen by the system, see
//! [`KubeSim::echo_addr`]) shared by all the Deployment's pods, old and new template alike,
//! so it answers through a rollout. It runs until half a second after the Deployment is
//! deleted (requests routed to it just before the delete are still answered, as a
//! terminating pod's container finishes its work) or until the simulator stops.
//! It answers any method and path with a JSON description of the request (`deployment`,
//! `namespace`, `pod` from the `X-Kube-Sim-Pod` header, the pod template `labels`, `method`,
//! `path`, `query`, `headers`, `bodyBytes`, `body` when UTF-8 and at most 64 KiB, `env`: the
//! environment the kubelet gave that pod's first container, and `containers`: `name`, `image`
//! and `env` of each of the pod's containers; `{}` and `[]` when no pod of the Deployment is
//! named, as in a direct call);
//! `GET /stream?chunks=N&intervalMs=M` streams N lines `chunk <i> from <deployment>`, one every
//! M ms; `/status/<code>` answers that status. Every answer carries the app's own
//! `Access-Control-Allow-Origin: *` and `Access-Control-Allow-Headers: *` (an app that wrongly
//! does CORS itself), and every request adds `echo: <METHOD> <path> -> <status>` to the log of
//! the pod it was routed to. The apps are reached as kube-apiserver reaches pods, through the
//! `proxy` subresource of services and pods
//! (`/api/v1/namespaces/{ns}/services/{name[:port]}/proxy/{path}`): a round-robin pick among
//! the Ready pods the Service selects, all methods, bodies streamed both ways, hop-by-hop
//! headers dropped, kube-apiserver's 503s when there is no endpoint or the app is unreachable.
//!
//! With [`SimConfig::ingress_listen`] it also plays an ingress controller (ingress-nginx) on
//! that address ([`KubeSim::ingress_addr`]; plain HTTP). Each request is routed by its `Host`
//! (port stripped, case ignored) and path over the Ingresses of all namespaces, through an
//! index by host the ingress controller keeps as Ingresses change: an exact host before a
//! `*.` wildcard (one label) before the rules without a host; among that host's paths the longest match,
//! `Exact` before `Prefix` at equal length, then the oldest Ingress; `Prefix` (and
//! `ImplementationSpecific`) match whole path elements. A request no path matches goes to the
//! `defaultBackend` of the host's first Ingress (or, for an unknown host, of the first
//! Ingress with a default backend and no rules), else gets ingress-nginx's default backend:
//! 404 `404 page not found`. The backend Service's port (by name or number) is resolved and a
//! Ready pod picked exactly as the services proxy does, and the request forwarded the same
//! way (any method, bodies streamed, hop-by-hop headers dropped), keeping its `Host` and
//! adding ingress-nginx's `X-Forwarded-For` and `X-Real-IP` (the client's address; a client's
//! own `X-Forwarded-For` moves to `X-Original-Forwarded-For`), `X-Forwarded-Host`,
//! `X-Forwarded-Port`, `X-Forwarded-Proto`/`X-Forwarded-Scheme`/`X-Scheme: http` and
//! `X-Request-ID` (the client's, or a new one). A missing Service or one without a Ready pod
//! is nginx's 503 page, an app that cannot be reached its 502. The controller writes its
//! address into `status.loadBalancer.ingress` (`[{"ip": "127.0.0.1"}]` for a listener on
//! loopback or all interfaces) of every Ingress created or changed while it runs. Ingresses
//! are validated as the API server does (lower-case DNS-1123 hosts, a leading `*.` allowed,
//! not IP addresses; a `pathType` of `Exact`, `Prefix` or `ImplementationSpecific`; absolute
//! clean paths; a backend Service with a name and exactly one of a port name or number; TLS
//! hosts and secret names; 422 with causes), and `ingressClassName` and `tls` are kept as
//! given. `kubectl get ingress` shows NAME, CLASS, HOSTS, ADDRESS, PORTS, AGE.
//!
//! With [`SimConfig::metrics_api`] (the default) it also serves `metrics.k8s.io/v1beta1` as
//! metrics-server does: PodMetrics for Running and Ready pods with usage made up from the pod
//! uid (stable across reads), and NodeMetrics for the one node.
//!
//! Watches read a bounded history, as kube-apiserver's watch cache does: the last
//! [`SimConfig::watch_history`] changes of each resource type ([`DEFAULT_WATCH_HISTORY`] by
//! default). A watch from a resourceVersion the history still covers gets every change after
//! it; from an older one (or a watch stream left unread while its type's window rolled past
//! it) it gets what kube-apiserver answers: HTTP 200 and one `ERROR` event whose object is a
//! `Status` with `reason: Expired`, `code: 410` and the message
//! `too old resource version: X (Y)`, Y being the oldest version it could start from, then
//! the end of the stream. kube-rs's `watcher` (and client-go's reflector) then list again.
//! A watch without a resourceVersion, with `0`, or with `sendInitialEvents=true` starts from
//! the current objects. So memory stays bounded however long the simulator runs, and a watch
//! reads only its own type's changes after its version (a binary search, no scan).
//!
//! With a [`Faults::rate`] in [`SimConfig::faults`] it plays an unreliable API server: every
//! request but the health endpoints (`/healthz`, `/livez`, `/readyz`, which report the
//! simulator itself) gets a fault with that probability, drawn from a seeded sequence (the
//! same seed, the same faults for the n-th request): a 500 `InternalError`, a 429
//! `TooManyRequests` with `Retry-After: 1` (and `details.retryAfterSeconds`), a timeout (the
//! request takes effect, its answer is held for [`Faults::hold`], then the connection is
//! dropped), a connection dropped before the request is handled, a slow answer; and for
//! watches, a stream ended early, or, when the watch resumes from a resourceVersion, the 410
//! `Expired` error event. Every verb and resource is subject to it, the `proxy` subresource
//! included. [`KubeSim::injected_faults`] counts them by kind.
//!
//! Objects are plain `serde_json::Value`s; the library has no k8s-openapi types.
//!
//! # Layout
//!
//! The modules are rooms that import only the rooms below them (`tests/rooms.rs` checks it):
//!
//! - `ingress_listener`: the ingress controller's listener (ingress-nginx's proxy).
//! - `http/`: the API server's HTTP side: the router and the parsed request (`mod.rs`), list,
//!   watch, logs, table, writes (patch, scale), the `proxy` subresource, metrics.k8s.io.
//! - `cluster/`: the store and the controllers behind one lock, the scheduler running timed
//!   actions, and the running echo apps.
//! - `controllers/`: the deployment controller (`deployment`, `rollout`), the scheduler and
//!   kubelet of the one node (`kubelet/`: admission, start-up, environment, logs), the
//!   ingress controller's control loop (`ingress/`: status, routing table) and `events`. They
//!   act on the store through its verbs and are told of its writes through
//!   `store::Observer`; none of them is a method of the store.
//! - `store/`: the API machinery: objects, their watch history and indexes, the verbs, and
//!   what they apply (defaults, validation, field ownership, Secrets' encoding).
//! - `echo`: the apps standing in for containers; they reach the cluster through a trait it
//!   implements.
//! - `config`, `json`, `resources`, `selector`, `status`: data and helpers for all.
//!
//! # What real Kubernetes does that the simulator does not
//!
//! - Server-side apply has no conflicts: an apply always takes the fields it sets from their
//!   other owners (`force` is accepted and moot). Lists are atomic: replaced whole and owned as
//!   one field (no ownership of list items by key, such as one container or env entry), and
//!   every owned map is marked `.` (Kubernetes tells structs from maps by schema). Status
//!   writes and the controllers' own writes (status, the revision annotation, pods) record
//!   nothing, a `scale` write counts as an `Update` of the object (no `subresource: scale`
//!   entry), and the `managedFields` a client sends are ignored (no reset with `[{}]`).
//!   `kubectl apply --server-side` over a client-side applied object tries to migrate its
//!   managers with a JSON patch, which is refused; kubectl warns and carries on.
//! - Strategic merge patch is a plain JSON merge patch (lists replaced, not merged by key; no
//!   `retainKeys`, so a patch switching a Deployment to Recreate must say
//!   `"rollingUpdate": null`); JSON patch (RFC 6902) answers 415.
//! - No ReplicaSets: pods are owned by the Deployment directly, and the pods of one template
//!   (one `pod-template-hash`) stand for its ReplicaSet, their number for its replica count.
//!   So a deleted pod of an old template is not replaced during a rolling update (a real old
//!   ReplicaSet would recreate it), a replica change during a rollout is not spread over the
//!   ReplicaSets proportionally, and `revisionHistoryLimit` keeps nothing to roll back to
//!   (`kubectl rollout undo` has no ReplicaSets to read). `minReadySeconds` and `paused` are
//!   ignored: a pod is available as soon as it is Ready. Pods are deleted immediately (no
//!   Terminating phase, grace period or finalizers); no restarts, probes, resources,
//!   scheduling constraints or nodes beyond one fixed `kube-sim-node`.
//! - Validation covers names, labels, annotation keys, deployment selector/template/containers/
//!   strategy, container env, ports, Secret keys and types and Ingress specs, not the full
//!   schema; unknown fields are kept, not pruned. No admission webhooks, RBAC,
//!   authentication, quotas or `dryRun` (400). At most 1000 replicas.
//! - No ConfigMaps: a `configMapRef` or `configMapKeyRef` is `configmap "x" not found` unless
//!   optional. No volumes (Secret volumes included), `resourceFieldRef` (left unset) or
//!   `$(VAR)` expansion (kept verbatim). The kubelet retries a config error on its own
//!   back-off, not on Secret change events.
//! - The ingress controller serves every Ingress whatever its `ingressClassName` (there are
//!   no IngressClass objects), reads no annotations (no rewrites, redirects, auth, CORS or
//!   canaries), terminates no TLS (`tls` is stored; nothing listens on 443), serves no
//!   `resource` backends (503), and routes on the raw request path (no normalisation or
//!   percent-decoding). Its status sync runs on Ingress changes, not periodically: a status
//!   overwritten through the `status` subresource stays until the next spec change. Without
//!   [`SimConfig::ingress_listen`] Ingresses are stored and never served.
//! - Namespaces always exist (first use creates them); deleting one deletes its objects at once.
//! - Lists and continue pages are read from the current state (not a snapshot at the first
//!   page's resourceVersion), which is right for what kube-rs asks (no resourceVersion, or `0`
//!   with `resourceVersionMatch=NotOlderThan`); `resourceVersionMatch=Exact` is not honoured
//!   and an old continue token never expires. The watch window is a count per type (the real
//!   watch cache sizes itself by time and etcd compacts every 5 minutes), a too-new
//!   resourceVersion is not waited for, and a slow watcher is not closed (its events queue
//!   up); bookmarks come every 5 seconds. Field
//!   selectors accept any dotted path (the real server allows a fixed list per resource and
//!   answers 400 for others).
//! - No Endpoints or EndpointSlice objects, and no events for Services (a real ClusterIP
//!   Service has none either in normal operation). A container is one echo app per
//!   Deployment, shared by its pods (it reports the environment of the pod a request was
//!   routed to) and reachable on every port: `targetPort` and the pod's `containerPort`s are
//!   not checked, only the Service port named or numbered in the proxy path or Ingress
//!   backend. The proxy speaks http only (`https:` answers 503), does not follow or rewrite
//!   redirects, does not redirect `/proxy` to `/proxy/` (it forwards `/`), and neither it nor
//!   the ingress controller upgrades connections (no websockets). A missing Service is `services "x" not found`
//!   (kube-apiserver says `endpoints "x" not found` when the port is given by name). Pods not
//!   owned by a Deployment have no app (503).
//! - Metrics are made up, not measured; no `watch` on them (405), no Table form for them.
//! - Only JSON (no protobuf, no YAML bodies: kubectl's `create secret` sends protobuf and is
//!   refused, `kubectl apply` works); the OpenAPI document is empty; no aggregated discovery;
//!   no `exec`, `attach`, `port-forward` or `previous` logs.

mod cluster;
mod config;
mod controllers;
mod echo;
mod http;
mod ingress_listener;
mod json;
pub mod recorder;
mod resources;
mod selector;
mod status;
mod store;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use crate::config::{
    Faults, SimConfig, DEFAULT_FAULT_DELAY, DEFAULT_FAULT_HOLD, DEFAULT_WATCH_HISTORY,
};
pub use crate::recorder::{RecordedRequest, RecordingProxy};

use crate::cluster::{reachable_ip, run_scheduler, Shared};
use crate::controllers::Action;
use crate::http::faults::Injector;

/// Binds the ingress controller's listener, if the configuration asks for one.
async fn bind_ingress(config: &SimConfig) -> std::io::Result<Option<(TcpListener, SocketAddr)>> {
    let Some(addr) = config.ingress_listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    Ok(Some((listener, addr)))
}

async fn run(
    listener: TcpListener,
    ingress: Option<TcpListener>,
    shared: Arc<Shared>,
    faults: Option<Arc<Injector>>,
    actions: mpsc::UnboundedReceiver<(Instant, Action)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let scheduler = tokio::spawn(run_scheduler(shared.clone(), actions));
    let ingress = ingress.map(|l| tokio::spawn(ingress_listener::serve(l, shared.clone())));
    let cancel = shared.cancel.clone();
    let app = http::router(shared.clone(), faults);
    // Without TCP_NODELAY a watch event written after a small chunk waits for the client's
    // delayed ACK (40 ms on Linux); Go's net package, which kube-apiserver uses, sets it on
    // every connection.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "kube-sim could not set TCP_NODELAY");
        }
    });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown => {}
                _ = cancel.cancelled() => {}
            }
            // Ends watch and log streams, so the graceful shutdown does not wait on them.
            cancel.cancel();
        })
        .await;
    shared.cancel.cancel();
    let _ = scheduler.await;
    if let Some(ingress) = ingress {
        let _ = ingress.await;
    }
    result
}

/// Serves a simulated cluster on `listener` until `shutdown` completes; for a standalone
/// `shiplog sim` command.
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ingress = bind_ingress(&config).await?;
    let faults = config.faults.clone();
    let (shared, actions) = Shared::new(config, ingress.as_ref().map(|(_, addr)| *addr));
    let injector = Injector::new(&faults, shared.clone());
    run(
        listener,
        ingress.map(|(l, _)| l),
        shared,
        injector,
        actions,
        shutdown,
    )
    .await
}

/// A simulated cluster serving in a background task, for tests and the embedded default.
pub struct KubeSim {
    addr: SocketAddr,
    ingress_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    faults: Option<Arc<Injector>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl KubeSim {
    /// Starts a simulator on a free port of 127.0.0.1.
    pub async fn start(config: SimConfig) -> std::io::Result<KubeSim> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts a simulator on the given address (port 0 picks a free one).
    pub async fn start_on(addr: SocketAddr, config: SimConfig) -> std::io::Result<KubeSim> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let ingress = bind_ingress(&config).await?;
        let ingress_addr = ingress.as_ref().map(|(_, addr)| *addr);
        let faults = config.faults.clone();
        let (shared, actions) = Shared::new(config, ingress_addr);
        let injector = Injector::new(&faults, shared.clone());
        let task = tokio::spawn(run(
            listener,
            ingress.map(|(l, _)| l),
            shared.clone(),
            injector.clone(),
            actions,
            std::future::pending(),
        ));
        Ok(KubeSim {
            addr,
            ingress_addr,
            shared,
            faults: injector,
            task: Some(task),
        })
    }

    /// The address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL clients use, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        let ip = reachable_ip(self.addr.ip());
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The address the ingress controller listens on (see [`SimConfig::ingress_listen`]), with
    /// the port the system picked for port 0; `None` when it does not run. Requests to it are
    /// routed by their `Host` header, e.g. `curl -H 'Host: myapp.localhost' http://{addr}/`.
    pub fn ingress_addr(&self) -> Option<SocketAddr> {
        self.ingress_addr
    }

    /// A kubeconfig for this simulator (context `kube-sim`, namespace `default`, no
    /// credentials) that kube-rs and kubectl accept.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: kube-sim
  cluster:
    server: {url}
    insecure-skip-tls-verify: true
users:
- name: kube-sim
  user: {{}}
contexts:
- name: kube-sim
  context:
    cluster: kube-sim
    user: kube-sim
    namespace: default
current-context: kube-sim
preferences: {{}}
",
            url = self.url()
        )
    }

    /// Writes [`KubeSim::kubeconfig_yaml`] to a file, for kubectl or a child process.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// A snapshot of the stored objects of one resource type (plural, e.g. `"deployments"`),
    /// in one namespace or all, for test assertions.
    pub fn objects(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(def) = resources::by_plural(resource) else {
            return Vec::new();
        };
        self.shared
            .read(|s| s.list(def, namespace))
            .into_iter()
            .map(|o| (*o).clone())
            .collect()
    }

    /// How many changes the watch history holds now, over all resource types: at most
    /// [`SimConfig::watch_history`] per type, so tests can check it stays bounded.
    pub fn watch_history_len(&self) -> usize {
        self.shared.read(|s| s.history.len())
    }

    /// The address of a Deployment's echo app (the stand-in for its containers, started when
    /// its first pod becomes Ready), for calling an app directly instead of through the proxy.
    /// `None` when the Deployment does not exist or has never had a Ready pod.
    pub fn echo_addr(&self, namespace: &str, deployment: &str) -> Option<SocketAddr> {
        let uid = self.shared.read(|s| {
            s.get(&resources::DEPLOYMENTS, namespace, deployment)
                .map(|d| json::str_at(&d, "/metadata/uid").to_string())
        })?;
        self.shared.echo_addr(&uid)
    }

    /// How many API-server faults of each kind (`server_error`, `throttled`, `timeout`,
    /// `dropped`, `slow`, `watch_ended`, `watch_expired`) were injected so far (see
    /// [`SimConfig::faults`]); empty when no fault rate is configured.
    pub fn injected_faults(&self) -> BTreeMap<&'static str, u64> {
        self.faults
            .as_ref()
            .map(|injector| injector.injected())
            .unwrap_or_default()
    }

    /// Stops serving, ends open watches and log streams and stops every timer.
    pub async fn shutdown(mut self) {
        self.shared.cancel.cancel();
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for KubeSim {
    /// Dropping the simulator stops it, as `shutdown` does, without waiting.
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}
