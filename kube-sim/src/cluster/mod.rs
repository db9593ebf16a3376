//! The simulated cluster as its servers share it: the store behind one lock, the running
//! echo apps, the wake-ups of watch and log streams, and the queue of timed actions the
//! scheduler ([`scheduler`]) runs.

mod scheduler;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::SimConfig;
use crate::controller::Action;
use crate::echo::Echoes;
use crate::store::Store;

pub(crate) use scheduler::run_scheduler;

/// State shared by the HTTP handlers, the watch and log streams, the scheduler and the echo
/// apps.
pub(crate) struct Shared {
    store: Mutex<Store>,
    /// The running echo apps. Lock order: `echoes` before `store`, never the other way round
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

impl Shared {
    /// The shared state of a simulator whose ingress controller (if any) serves on `ingress`.
    pub(crate) fn new(
        config: SimConfig,
        ingress: Option<SocketAddr>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<(Instant, Action)>) {
        let (actions, rx) = mpsc::unbounded_channel();
        let metrics_api = config.metrics_api;
        let mut store = Store::new(config);
        // The address Ingresses report: the listener's, or loopback when it listens on all.
        store.ingress_address = ingress.map(|addr| reachable_ip(addr.ip()).to_string());
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
            store: Mutex::new(store),
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

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave a half-written object (every write is
        // one map insert), so a poisoned lock is safe to keep using.
        self.store
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
        f(&self.lock())
    }

    /// Changes the store, starts or stops echo apps, then wakes watchers and hands new timers
    /// to the scheduler.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut echoes = self.lock_echoes();
        let (result, rv, log_version, pending, echo_ops) = {
            let mut store = self.lock();
            let result = f(&mut store);
            let pending = std::mem::take(&mut store.pending);
            let echo_ops = std::mem::take(&mut store.echo_ops);
            (result, store.rv, store.log_version, pending, echo_ops)
        };
        // Sockets are bound here, after the store's lock is released.
        if !echo_ops.is_empty() {
            echoes.apply(echo_ops, &self.me, &self.cancel);
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
