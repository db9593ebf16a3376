//! How a simulated cluster is configured: its timings, its optional parts (metrics API,
//! ingress controller), the size of its watch history and the API-server faults it injects.

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
    /// API-server faults injected into requests at a rate (none by default), so that clients
    /// can be tested against an unreliable control plane.
    pub faults: Faults,
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
            faults: Faults::default(),
        }
    }
}

/// The default [`SimConfig::watch_history`]: a few seconds to minutes of a busy cluster's
/// changes per type, enough for a watcher that reconnects or resumes from a bookmark.
pub const DEFAULT_WATCH_HISTORY: usize = 4096;

/// The API-server faults a simulator injects: each request (but the simulator's own health
/// endpoints) gets one with probability [`Faults::rate`], its kind drawn at random among
/// those that apply: a 500 `InternalError`, a 429 `TooManyRequests` (with `Retry-After: 1`),
/// a timeout (the request takes effect, its answer is held for [`Faults::hold`] and the
/// connection then dropped), a connection dropped before the request is read, a slow answer
/// (up to [`Faults::delay`] late); and for watches, a stream ended early (within
/// [`Faults::delay`]) or, for a watch that resumes from a resourceVersion, the 410 `Expired`
/// error event a compacted history gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// The probability, from 0 (never, the default) to 1 (always), that a request gets a fault.
    pub rate: f64,
    /// Seeds the random choices: the same seed gives the same sequence of faults (the n-th
    /// request the simulator receives gets the same fault, or none).
    pub seed: u64,
    /// How long a timeout holds the answer before the connection is dropped: longer than a
    /// client's own timeout, so that the client gives up first.
    pub hold: Duration,
    /// The longest delay of a slow answer, and the longest a watch that ends early lasts.
    pub delay: Duration,
}

impl Default for Faults {
    /// No faults; when a rate is set, timeouts hold answers for [`DEFAULT_FAULT_HOLD`] and
    /// slow answers come up to [`DEFAULT_FAULT_DELAY`] late.
    fn default() -> Self {
        Faults {
            rate: 0.0,
            seed: 0,
            hold: DEFAULT_FAULT_HOLD,
            delay: DEFAULT_FAULT_DELAY,
        }
    }
}

/// The default [`Faults::hold`]: past shiplog's own 10-second timeout of an API call.
pub const DEFAULT_FAULT_HOLD: Duration = Duration::from_secs(15);

/// The default [`Faults::delay`]: slow enough to notice, short enough not to time out.
pub const DEFAULT_FAULT_DELAY: Duration = Duration::from_secs(2);
