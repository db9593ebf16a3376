//! How a simulated cluster is configured: its timings, its optional parts (metrics API,
//! ingress controller) and the size of its watch history.

use std::net::SocketAddr;
use std::time::Duration;

/// Timing of the simulated cluster, so tests can run rollouts in milliseconds.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// How long a new pod takes to pull its image and become Running and Ready.
    pub ready_delay: Duration,
    /// How long a rollout may go without progress before `ProgressDeadlineExceeded`
    /// (a deployment's own `spec.progressDeadlineSeconds` wins when smaller).
    pub progress_deadline: Duration,
    /// How often a running container writes a `kube-sim: heartbeat <n>` log line.
    pub log_interval: Duration,
    /// Whether `metrics.k8s.io/v1beta1` is served (as when metrics-server is installed), so
    /// both a cluster with and one without resource metrics can be simulated.
    pub metrics_api: bool,
    /// Where the ingress controller listens for plain HTTP (port 0 picks a free one, see
    /// [`KubeSim::ingress_addr`](crate::KubeSim::ingress_addr)), as a cluster with
    /// ingress-nginx installed; `None` (the default): no ingress controller, Ingresses are
    /// stored and never served.
    pub ingress_listen: Option<SocketAddr>,
    /// How many recent changes of each resource type are kept for watches (at least one), as
    /// kube-apiserver's watch cache keeps a window: a watch from an older resourceVersion gets
    /// a 410 `Expired` error event and the client lists again. Bounds the memory a long-running
    /// simulator holds for history.
    pub watch_history: usize,
}

impl Default for SimConfig {
    /// One-second start-up and heartbeat, a ten-second progress deadline, metrics served, no
    /// ingress controller, a watch history of [`DEFAULT_WATCH_HISTORY`] changes per type.
    fn default() -> Self {
        SimConfig {
            ready_delay: Duration::from_secs(1),
            progress_deadline: Duration::from_secs(10),
            log_interval: Duration::from_secs(1),
            metrics_api: true,
            ingress_listen: None,
            watch_history: DEFAULT_WATCH_HISTORY,
        }
    }
}

/// The default [`SimConfig::watch_history`]: a few seconds to minutes of a busy cluster's
/// changes per type, enough for a watcher that reconnects or resumes from a bookmark.
pub const DEFAULT_WATCH_HISTORY: usize = 4096;
