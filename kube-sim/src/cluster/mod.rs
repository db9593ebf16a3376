//! The simulated cluster as its servers share it: the store and the controllers behind one
//! lock (every write goes through the store with the controllers observing it), the running
//! echo apps, the wake-ups of watch and log streams, and the queue of timed actions the
//! scheduler ([`scheduler`]) runs.

mod scheduler;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::SimConfig;
use crate::controllers::{owner_deployment_ref, Action, Controllers};
use crate::echo::{App, Echoes, Host};
use crate::json::str_at;
use crate::resources::{DEPLOYMENTS, PODS};
use crate::store::Store;

pub(crate) use scheduler::run_scheduler;

/// State shared by the HTTP handlers, the watch and log streams, the scheduler and the echo
/// apps.
pub(crate) struct Shared {
    /// The store and the controllers, changed together.
    state: Mutex<State>,
    /// The running echo apps. Lock order: `echoes` before `state`, never the other way round
    /// (`with` holds it while it starts the apps a change asked for, so a reader that saw a
    /// Ready pod and then asks for its app waits for the app rather than missing it).
    echoes: Mutex<Echoes>,
    /// This value itself, for the echo apps it starts (weak: they must not keep it alive).
    me: Weak<Shared>,
    /// The HTTP client the services proxy forwards with (or why it could not be built).
    proxy_client: Result<reqwest::Client, String>,
    /// Round-robin counter for picking a proxy endpoint.
    next_endpoint: AtomicUsize,
    /// Whether metrics.k8s.io is served (fixed at start, so read without the store's lock).
    pub(crate) metrics_api: bool,
    /// The store's resourceVersion, for waking watch streams.
    pub(crate) changes: watch::Sender<u64>,
    /// A counter bumped on every log append, for waking following log streams.
    pub(crate) log_changes: watch::Sender<u64>,
    actions: mpsc::UnboundedSender<(Instant, Action)>,
    /// Cancelled at shutdown: ends streams, timers and the server.
    pub(crate) cancel: CancellationToken,
}

/// What the lock guards: the API machinery and the controllers that act on it.
struct State {
    store: Store,
    controllers: Controllers,
}

impl Shared {
    /// The shared state of a simulator whose ingress controller (if any) serves on `ingress`.
    pub(crate) fn new(
        config: SimConfig,
        ingress: Option<SocketAddr>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<(Instant, Action)>) {
        let (actions, rx) = mpsc::unbounded_channel();
        let metrics_api = config.metrics_api;
        let store = Store::new(config.watch_history);
        // The address Ingresses report: the listener's, or loopback when it listens on all.
        let ingress_address = ingress.map(|addr| reachable_ip(addr.ip()).to_string());
        let controllers = Controllers::new(config, ingress_address);
        // No proxy from the environment: the echo apps are on loopback. No redirects either:
        // the API server's proxy hands them to the client as they are.
        let proxy_client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("kube-sim could not build its proxy HTTP client: {e}"));
        let shared = Arc::new_cyclic(|me| Shared {
            changes: watch::Sender::new(store.rv),
            log_changes: watch::Sender::new(0),
            state: Mutex::new(State { store, controllers }),
            echoes: Mutex::new(Echoes::default()),
            me: me.clone(),
            proxy_client,
            next_endpoint: AtomicUsize::new(0),
            metrics_api,
            actions,
            cancel: CancellationToken::new(),
        });
        (shared, rx)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written object (every write is
        // one map insert), so a poisoned lock is safe to keep using.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_echoes(&self) -> MutexGuard<'_, Echoes> {
        // The registry is one map insert or remove per change: poisoning leaves it whole.
        self.echoes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The address of a Deployment's echo app (by Deployment uid), if it runs.
    pub(crate) fn echo_addr(&self, deployment_uid: &str) -> Option<SocketAddr> {
        self.lock_echoes().addr(deployment_uid)
    }

    /// The client the proxy forwards with.
    pub(crate) fn proxy_client(&self) -> Result<&reqwest::Client, &str> {
        self.proxy_client.as_ref().map_err(String::as_str)
    }

    /// The next value of the round-robin counter.
    pub(crate) fn next_endpoint(&self) -> usize {
        self.next_endpoint.fetch_add(1, AtomicOrdering::Relaxed)
    }

    /// Reads the store.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.lock().store)
    }

    /// Reads the store and what the controllers keep (logs, started containers, routes).
    pub(crate) fn read_all<R>(&self, f: impl FnOnce(&Store, &Controllers) -> R) -> R {
        let state = self.lock();
        f(&state.store, &state.controllers)
    }

    /// Changes the store (with the controllers observing) or the controllers' state, starts
    /// or stops echo apps, then wakes watchers and hands new timers to the scheduler.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Store, &mut Controllers) -> R) -> R {
        let mut echoes = self.lock_echoes();
        let (result, rv, log_version, pending, echo_ops) = {
            let mut state = self.lock();
            let State { store, controllers } = &mut *state;
            let result = f(store, controllers);
            let pending = controllers.take_pending();
            let echo_ops = controllers.take_echo_ops();
            (
                result,
                store.rv,
                controllers.log_version(),
                pending,
                echo_ops,
            )
        };
        // Sockets are bound here, after the store's lock is released.
        if !echo_ops.is_empty() {
            let host: Weak<dyn Host> = self.me.clone();
            echoes.apply(echo_ops, &host, &self.cancel);
        }
        drop(echoes);
        self.changes
            .send_if_modified(|v| std::mem::replace(v, rv) != rv);
        self.log_changes
            .send_if_modified(|v| std::mem::replace(v, log_version) != log_version);
        let now = Instant::now();
        for (delay, action) in pending {
            // The receiver only goes away at shutdown, when dropping the action is right.
            let _ = self.actions.send((later(now, delay), action));
        }
        result
    }
}

/// The echo apps read the cluster through the shared state.
impl Host for Shared {
    fn template_labels(&self, app: &App) -> Option<Value> {
        self.read(|s| s.get(&DEPLOYMENTS, &app.ns, &app.name))
            .filter(|d| str_at(d, "/metadata/uid") == app.uid)
            .and_then(|d| d.pointer("/spec/template/metadata/labels").cloned())
    }

    fn pod_environment(&self, app: &App, pod: &str) -> (Value, Value) {
        let started = self.read_all(|s, c| {
            let pod = s.get(&PODS, &app.ns, pod)?;
            owner_deployment_ref(&pod).filter(|(_, uid)| *uid == app.uid)?;
            c.started(str_at(&pod, "/metadata/uid")).cloned()
        });
        let started = started.unwrap_or_default();
        let env = started.get(&0).map_or_else(|| json!({}), |c| json!(c.env));
        let containers: Vec<Value> = started
            .values()
            .map(|c| json!({ "name": c.name, "image": c.image, "env": c.env }))
            .collect();
        (env, json!(containers))
    }

    fn append_log(&self, app: &App, pod: &str, line: &str) {
        self.with(|s, c| c.append_app_log(s, &app.ns, pod, &app.uid, line));
    }
}

/// Thirty years: tokio's own "far future", safe to add to any `Instant::now()`.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `now + delay`, capped so that no configured or requested duration can overflow.
pub(crate) fn later(now: Instant, delay: Duration) -> Instant {
    now + delay.min(FAR_FUTURE)
}

/// A listening address as clients reach it: an unspecified one (all interfaces) as loopback.
pub(crate) fn reachable_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}
