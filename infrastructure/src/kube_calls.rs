//! How shiplog calls the Kubernetes API: each call bounded by a timeout and, when it fails
//! for a reason that may pass (throttling, a server error, a timeout, a dropped
//! connection), tried again a few times with back-off, waiting at least what the server's
//! `Retry-After` asks; every retry is counted in `shiplog_cluster_retries_total`. Every call
//! made this way must be safe to repeat (a server-side apply, a get, a list, a delete that
//! tolerates 404): a call whose answer was lost may have taken effect.

use crate::telemetry::ClusterRetries;
use backon::{ExponentialBuilder, Retryable};
use kube::runtime::watcher;
use shiplog_application::ClusterError;
use std::future::Future;
use std::time::Duration;
use tracing::debug;

/// The first pause before a retry; it doubles (with jitter) on each failure in a row.
const RETRY_MIN: Duration = Duration::from_millis(100);
/// The longest pause between two tries of a call.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// The pause after a 429 that does not say how long to wait: kube-apiserver's own
/// `Retry-After` when it sheds load.
const THROTTLED_PAUSE: Duration = Duration::from_secs(1);
/// Retries of one call before its failure is handed up (the process manager then retries
/// the whole reconcile on its own, slower back-off).
const RETRIES: usize = 5;

/// Why one call of the Kubernetes API failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The client or the API server said no (a status, or no answer at all).
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// No answer within the call's timeout.
    #[error("no answer from the Kubernetes API within {0:?}")]
    TimedOut(Duration),
}

impl CallError {
    /// The API server's status code, when it answered with one.
    pub(crate) fn code(&self) -> Option<u16> {
        match self {
            Self::Kube(kube::Error::Api(status)) => Some(status.code),
            _ => None,
        }
    }

    /// Whether the object (or the resource) does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// Why trying again may help (the `reason` label of the retry metric); `None` when the
    /// same call would fail the same way (a refusal, an invalid object, a bug).
    fn transient(&self) -> Option<&'static str> {
        match self {
            Self::TimedOut(_) => Some("timeout"),
            Self::Kube(e) => transient(e),
        }
    }

    /// How long the server asked to be left alone: a Status's `retryAfterSeconds`, else for
    /// a 429 the second kube-apiserver's overload answers put in `Retry-After` (a header
    /// kube's error does not keep; their body is plain text).
    fn retry_after(&self) -> Option<Duration> {
        let Self::Kube(kube::Error::Api(status)) = self else {
            return None;
        };
        let asked = status
            .details
            .as_ref()
            .map(|d| Duration::from_secs(u64::from(d.retry_after_seconds)))
            .filter(|d| !d.is_zero());
        match asked {
            Some(asked) => Some(asked),
            None if status.code == 429 => Some(THROTTLED_PAUSE),
            None => None,
        }
    }
}

/// Why a kube error may pass: throttling, a server error, or a connection that failed or
/// was cut (a body that cannot be read or parsed is one cut short). Refusals and errors of
/// the client's own making do not pass.
fn transient(e: &kube::Error) -> Option<&'static str> {
    match e {
        kube::Error::Api(status) if status.code == 429 => Some("throttled"),
        kube::Error::Api(status) if status.code >= 500 => Some("server_error"),
        kube::Error::Api(_)
        | kube::Error::BuildRequest(_)
        | kube::Error::HttpError(_)
        | kube::Error::InferConfig(_)
        | kube::Error::InferKubeconfig(_)
        | kube::Error::Discovery(_)
        | kube::Error::ProxyProtocolUnsupported { .. }
        | kube::Error::ProxyProtocolDisabled { .. }
        | kube::Error::TlsRequired => None,
        _ => Some("connection"),
    }
}

/// Why a rollout watch failed, as the `reason` label of the retry metric: the watcher
/// lists again (a 410 `expired`) or resumes after its back-off.
pub(crate) fn watch_reason(e: &watcher::Error) -> &'static str {
    match e {
        watcher::Error::WatchError(status) if status.code == 410 => "expired",
        watcher::Error::WatchError(status) if status.code == 429 => "throttled",
        watcher::Error::WatchError(status) if status.code >= 500 => "server_error",
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => transient(e).unwrap_or("watch"),
        _ => "watch",
    }
}

impl From<CallError> for ClusterError {
    /// Failures that may pass are outages (the process manager retries); the rest are
    /// refusals (a deployment the cluster cannot take fails).
    fn from(e: CallError) -> Self {
        match &e {
            CallError::Kube(kube::Error::Api(status)) if e.transient().is_none() => {
                ClusterError::Rejected(format!("{} ({})", status.message, status.reason))
            }
            _ => ClusterError::Unavailable(e.to_string()),
        }
    }
}

/// Makes the Kubernetes API calls of one adapter: bounded, retried, counted.
#[derive(Clone, Debug)]
pub struct KubeCalls {
    timeout: Duration,
    retries: ClusterRetries,
    /// The first pause before a retry ([`RETRY_MIN`]; shorter in unit tests).
    first_pause: Duration,
}

impl KubeCalls {
    /// Calls that give up on an answer after `timeout`, counting their retries in `retries`.
    pub fn new(timeout: Duration, retries: ClusterRetries) -> Self {
        Self {
            timeout,
            retries,
            first_pause: RETRY_MIN,
        }
    }

    /// Counts a retry that happened outside [`KubeCalls::call`] (a watch that resumes).
    pub(crate) fn retried(&self, operation: &'static str, reason: &'static str) {
        self.retries.record(operation, reason);
    }

    /// The back-off of the rollout watches: the same pauses as a call's, never giving up
    /// (the rollout's own timeout bounds the watch).
    pub(crate) fn watch_backoff(&self) -> watcher::ExponentialBackoff {
        backoff(self.first_pause).without_max_times().into()
    }

    /// Runs `call` (a fresh request each time) for `operation` (the metric's label), trying
    /// again after a failure that may pass.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        mut call: F,
    ) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let timeout = self.timeout;
        let attempt = || {
            let answer = call();
            async move {
                match tokio::time::timeout(timeout, answer).await {
                    Ok(result) => result.map_err(CallError::Kube),
                    Err(_) => Err(CallError::TimedOut(timeout)),
                }
            }
        };
        attempt
            .retry(backoff(self.first_pause).with_max_times(RETRIES))
            .when(|e| e.transient().is_some())
            .adjust(|e, pause| pause.map(|p| e.retry_after().map_or(p, |asked| p.max(asked))))
            .notify(|e, pause| {
                let reason = e.transient().unwrap_or("connection");
                self.retries.record(operation, reason);
                debug!(operation, reason, error = %e, retry_in = ?pause, "Kubernetes API call failed; retrying");
            })
            .await
    }
}

/// Exponential pauses with jitter from `first` up to [`RETRY_MAX`].
fn backoff(first: Duration) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(RETRY_MAX)
        .with_factor(2.0)
        .with_jitter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn api(code: u16, retry_after_seconds: u32) -> kube::Error {
        let status: Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "message": "m", "reason": "R", "code": code,
            "details": {"retryAfterSeconds": retry_after_seconds},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        kube::Error::Api(Box::new(status))
    }

    /// Calls with a short timeout and short pauses, so that the tests run in moments.
    fn calls() -> (KubeCalls, ClusterRetries) {
        let retries = ClusterRetries::default();
        let calls = KubeCalls {
            first_pause: Duration::from_millis(1),
            ..KubeCalls::new(Duration::from_millis(50), retries.clone())
        };
        (calls, retries)
    }

    #[test]
    fn failures_that_may_pass_are_retried_and_refusals_are_not() {
        // (description, error, reason it is retried for)
        let cases = [
            ("a 429", api(429, 1), Some("throttled")),
            ("a 500", api(500, 0), Some("server_error")),
            ("a 503", api(503, 0), Some("server_error")),
            ("a 404", api(404, 0), None),
            ("a 409", api(409, 0), None),
            ("a 422", api(422, 0), None),
            (
                "a cut body",
                kube::Error::ReadEvents(std::io::Error::other("cut")),
                Some("connection"),
            ),
        ];
        for (description, error, reason) in cases {
            assert_eq!(transient(&error), reason, "{description}");
        }
        assert_eq!(
            CallError::TimedOut(Duration::from_secs(1)).transient(),
            Some("timeout")
        );
    }

    #[test]
    fn outages_and_refusals_reach_the_process_manager_as_such() {
        assert!(matches!(
            ClusterError::from(CallError::Kube(api(500, 0))),
            ClusterError::Unavailable(_)
        ));
        assert!(matches!(
            ClusterError::from(CallError::TimedOut(Duration::from_secs(1))),
            ClusterError::Unavailable(_)
        ));
        assert!(matches!(
            ClusterError::from(CallError::Kube(api(422, 0))),
            ClusterError::Rejected(_)
        ));
    }

    #[tokio::test]
    async fn a_call_is_tried_again_until_it_succeeds_and_each_retry_is_counted() {
        let (calls, retries) = calls();
        let tries = AtomicUsize::new(0);
        let answer = calls
            .call("apply", || async {
                match tries.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(api(500, 0)),
                    1 => Err(kube::Error::ReadEvents(std::io::Error::other("cut"))),
                    _ => Ok("applied"),
                }
            })
            .await;
        assert_eq!(answer.ok(), Some("applied"));
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("cluster_retries", "help", retries.0.clone());
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"cluster_retries_total{operation="apply",reason="server_error"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cluster_retries_total{operation="apply",reason="connection"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_refusal_is_not_retried() {
        let (calls, _) = calls();
        let tries = AtomicUsize::new(0);
        let answer: Result<(), CallError> = calls
            .call("apply", || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(api(422, 0))
            })
            .await;
        assert_eq!(answer.err().and_then(|e| e.code()), Some(422));
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_call_without_an_answer_times_out_and_gives_up_after_its_retries() {
        let (calls, _) = calls();
        let tries = AtomicUsize::new(0);
        let answer: Result<(), CallError> = calls
            .call("present", || async {
                tries.fetch_add(1, Ordering::SeqCst);
                std::future::pending().await
            })
            .await;
        assert!(matches!(answer, Err(CallError::TimedOut(_))), "{answer:?}");
        assert_eq!(tries.load(Ordering::SeqCst), 1 + RETRIES);
    }

    #[test]
    fn a_throttled_call_waits_what_the_server_asks_and_else_a_second() {
        let asked = |e: kube::Error| CallError::Kube(e).retry_after();
        assert_eq!(asked(api(429, 3)), Some(Duration::from_secs(3)));
        let plain = kube::Error::Api(Box::new(
            Status::failure("Too many requests, please try again later.", "").with_code(429),
        ));
        assert_eq!(asked(plain), Some(THROTTLED_PAUSE), "a plain-text 429");
        assert_eq!(asked(api(500, 0)), None);
    }

    #[tokio::test]
    async fn a_throttled_call_waits_at_least_what_the_server_asks() {
        let (calls, _) = calls();
        let tries = AtomicUsize::new(0);
        let started = tokio::time::Instant::now();
        let answer = calls
            .call("route", || async {
                match tries.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(api(429, 1)),
                    _ => Ok(()),
                }
            })
            .await;
        assert!(answer.is_ok());
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}
