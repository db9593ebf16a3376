//! Injected API-server faults (see [`Faults`]): a middleware in front of every route draws,
//! for each request, whether it fails and how, from one seeded random sequence, so a run can
//! be repeated with the same faults. Only the simulator's own health endpoints are spared.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::watch::event_line;
use crate::cluster::Shared;
use crate::config::Faults;
use crate::status::ApiError;

/// What a 429 asks the client to wait, in seconds (kube-apiserver's own answer under load).
const RETRY_AFTER_SECONDS: u32 = 1;

/// The paths that report the simulator's own health: tests and scripts wait on them to know
/// it is up, and a server injecting faults on purpose is healthy. Nothing else is spared.
const HEALTH: [&str; 3] = ["healthz", "livez", "readyz"];

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fault {
    /// 500 `InternalError`; the request does not take effect.
    ServerError,
    /// 429 `TooManyRequests` with `Retry-After`; the request does not take effect.
    Throttled,
    /// The request takes effect, its answer is held for [`Faults::hold`], then the
    /// connection is dropped: a client with a shorter timeout gives up first.
    Timeout,
    /// The connection is dropped before the request is handled.
    Dropped,
    /// The answer comes this much late.
    Slow(Duration),
    /// A watch that ends (cleanly, as when an API server restarts) after this long.
    WatchEnded(Duration),
    /// A watch resuming from a resourceVersion gets the 410 `Expired` error event a compacted
    /// history gives, then the end of the stream.
    WatchExpired,
}

impl Fault {
    /// A short name, for logs and counts.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::ServerError => "server_error",
            Self::Throttled => "throttled",
            Self::Timeout => "timeout",
            Self::Dropped => "dropped",
            Self::Slow(_) => "slow",
            Self::WatchEnded(_) => "watch_ended",
            Self::WatchExpired => "watch_expired",
        }
    }
}

/// The kinds of fault, before their delays are drawn.
#[derive(Clone, Copy)]
enum Kind {
    ServerError,
    Throttled,
    Timeout,
    Dropped,
    Slow,
    WatchEnded,
    WatchExpired,
}

/// What any request may get.
const KINDS: [Kind; 5] = [
    Kind::ServerError,
    Kind::Throttled,
    Kind::Timeout,
    Kind::Dropped,
    Kind::Slow,
];

/// What a watch may get: the same, and the two ways a watch stream fails.
const WATCH_KINDS: [Kind; 7] = [
    Kind::ServerError,
    Kind::Throttled,
    Kind::Timeout,
    Kind::Dropped,
    Kind::Slow,
    Kind::WatchEnded,
    Kind::WatchExpired,
];

/// What the injector needs to know of a request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Shape {
    /// Whether it is a watch.
    pub watch: bool,
    /// The resourceVersion a watch resumes from (not `0` or empty), if any.
    pub resumes_from: Option<String>,
}

impl Shape {
    /// The shape of a request to `uri`; `None` for the health endpoints, which get no fault.
    pub(crate) fn of(uri: &Uri) -> Option<Shape> {
        let segs: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
        if segs.len() == 1 && HEALTH.contains(&segs[0]) {
            return None;
        }
        let query = url_pairs(uri.query().unwrap_or_default());
        let param = |key: &str| query.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        // The legacy `watch/` prefix follows the group version: /api/v1/watch/..., /apis/g/v/watch/...
        let watch_prefix = matches!(segs.as_slice(), ["api", _, "watch", ..])
            || matches!(segs.as_slice(), ["apis", _, _, "watch", ..]);
        let watch = watch_prefix || matches!(param("watch"), Some("true" | "1"));
        let resumes_from = param("resourceVersion")
            .filter(|rv| watch && !rv.is_empty() && *rv != "0")
            .map(str::to_string);
        Some(Shape {
            watch,
            resumes_from,
        })
    }
}

/// The `key=value` pairs of a query string (no percent-decoding: the keys looked at here and
/// resourceVersions never need it).
fn url_pairs(query: &str) -> Vec<(&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

/// The random sequence and what it has injected so far, behind one lock.
struct Draws {
    rng: StdRng,
    injected: BTreeMap<&'static str, u64>,
}

/// Draws and injects faults at a configured rate.
pub(crate) struct Injector {
    rate: f64,
    hold: Duration,
    delay: Duration,
    draws: Mutex<Draws>,
    shared: Arc<Shared>,
}

impl Injector {
    /// An injector for `faults` in front of `shared`; `None` when the rate is 0 (or not a
    /// number), so a simulator without faults has no middleware at all.
    pub(crate) fn new(faults: &Faults, shared: Arc<Shared>) -> Option<Arc<Injector>> {
        let rate = if faults.rate.is_nan() {
            0.0
        } else {
            faults.rate.clamp(0.0, 1.0)
        };
        (rate > 0.0).then(|| {
            Arc::new(Injector {
                rate,
                hold: faults.hold,
                delay: faults.delay,
                draws: Mutex::new(Draws {
                    rng: StdRng::seed_from_u64(faults.seed),
                    injected: BTreeMap::new(),
                }),
                shared,
            })
        })
    }

    fn draws(&self) -> MutexGuard<'_, Draws> {
        // Drawing three numbers and counting cannot leave the state half-changed.
        self.draws
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the next request, of shape `shape`, gets a fault, and which. Every call takes
    /// the same three numbers from the sequence, so the n-th request gets the same answer
    /// for the same seed whatever the requests before it were.
    pub(crate) fn draw(&self, shape: &Shape) -> Option<Fault> {
        let mut draws = self.draws();
        let hit = draws.rng.gen::<f64>() < self.rate;
        let pick = draws.rng.gen::<u32>() as usize;
        let late = self.delay.mul_f64(draws.rng.gen::<f64>());
        if !hit {
            return None;
        }
        let kinds: &[Kind] = if shape.watch { &WATCH_KINDS } else { &KINDS };
        let fault = match kinds[pick % kinds.len()] {
            Kind::ServerError => Fault::ServerError,
            Kind::Throttled => Fault::Throttled,
            Kind::Timeout => Fault::Timeout,
            Kind::Dropped => Fault::Dropped,
            Kind::Slow => Fault::Slow(late),
            Kind::WatchEnded => Fault::WatchEnded(late),
            // A watch from now has no old version to be refused: it ends early instead.
            Kind::WatchExpired if shape.resumes_from.is_none() => Fault::WatchEnded(late),
            Kind::WatchExpired => Fault::WatchExpired,
        };
        *draws.injected.entry(fault.name()).or_default() += 1;
        Some(fault)
    }

    /// How many faults of each kind (see [`Fault::name`]) were injected so far.
    pub(crate) fn injected(&self) -> BTreeMap<&'static str, u64> {
        self.draws().injected.clone()
    }

    /// Waits `how_long`, or until the simulator stops.
    async fn wait(&self, how_long: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(how_long) => {}
            _ = self.shared.cancel.cancelled() => {}
        }
    }

    /// The 410 `Expired` error event of a watch from `rv`, as kube-apiserver words it.
    fn expired(&self, rv: &str) -> Response {
        let current = self.shared.read(|s| s.rv);
        let status = ApiError::expired(format!("too old resource version: {rv} ({current})"));
        let line = event_line("ERROR", &status.to_value());
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(line),
        )
            .into_response()
    }
}

/// An answer that is never given: its body fails at once, so the server drops the connection
/// without a complete response, as a crashed or partitioned API server does.
fn dropped_connection() -> Response {
    let failure = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "kube-sim: injected fault: connection dropped",
        ))
    });
    Response::new(Body::from_stream(failure))
}

/// `response` with its body cut off (cleanly) after `after`: a watch the server ends early.
fn ended_after(response: Response, after: Duration) -> Response {
    let (parts, body) = response.into_parts();
    let cut = body
        .into_data_stream()
        .take_until(tokio::time::sleep(after));
    Response::from_parts(parts, Body::from_stream(cut))
}

/// The middleware: passes the request on, or injects the fault the injector draws for it.
pub(crate) async fn inject(
    State(injector): State<Arc<Injector>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(shape) = Shape::of(request.uri()) else {
        return next.run(request).await;
    };
    let Some(fault) = injector.draw(&shape) else {
        return next.run(request).await;
    };
    tracing::debug!(
        fault = fault.name(),
        method = %request.method(),
        path = %request.uri().path(),
        "kube-sim injects a fault"
    );
    match fault {
        Fault::ServerError => {
            ApiError::internal_error("kube-sim injected a server error").into_response()
        }
        Fault::Throttled => {
            let mut response = ApiError::too_many_requests(RETRY_AFTER_SECONDS).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            response
        }
        Fault::Dropped => dropped_connection(),
        Fault::Timeout => {
            // The request takes effect; only its answer is lost.
            drop(next.run(request).await);
            injector.wait(injector.hold).await;
            dropped_connection()
        }
        Fault::Slow(late) => {
            injector.wait(late).await;
            next.run(request).await
        }
        Fault::WatchEnded(after) => ended_after(next.run(request).await, after),
        Fault::WatchExpired => {
            let rv = shape.resumes_from.unwrap_or_default();
            injector.expired(&rv)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;

    fn injector(rate: f64, seed: u64) -> Arc<Injector> {
        let (shared, _actions) = Shared::new(SimConfig::default(), None);
        let faults = Faults {
            rate,
            seed,
            ..Faults::default()
        };
        Injector::new(&faults, shared).unwrap()
    }

    fn plain() -> Shape {
        Shape {
            watch: false,
            resumes_from: None,
        }
    }

    fn resuming_watch() -> Shape {
        Shape {
            watch: true,
            resumes_from: Some("42".into()),
        }
    }

    #[test]
    fn the_rate_is_respected_over_many_requests() {
        for rate in [0.02, 0.1, 0.5] {
            let injector = injector(rate, 7);
            let n = 20_000;
            let hits = (0..n).filter(|_| injector.draw(&plain()).is_some()).count();
            let observed = hits as f64 / n as f64;
            // Four standard deviations of a binomial proportion: a seed that fails this is
            // one in fifteen thousand, and the seed is fixed.
            let tolerance = 4.0 * (rate * (1.0 - rate) / n as f64).sqrt();
            assert!(
                (observed - rate).abs() < tolerance,
                "rate {rate}: observed {observed} over {n} requests"
            );
            let counted: u64 = injector.injected().values().sum();
            assert_eq!(counted, hits as u64, "every fault injected is counted");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_faults_and_another_seed_others() {
        let sequence = |seed: u64| {
            let injector = injector(0.3, seed);
            (0..2_000)
                .map(|i| {
                    let shape = if i % 3 == 0 {
                        resuming_watch()
                    } else {
                        plain()
                    };
                    injector.draw(&shape)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(sequence(11), sequence(11));
        assert_ne!(sequence(11), sequence(12));
    }

    #[test]
    fn rate_zero_injects_nothing_and_rate_one_everything() {
        let (shared, _actions) = Shared::new(SimConfig::default(), None);
        assert!(
            Injector::new(&Faults::default(), shared.clone()).is_none(),
            "no injector (and no middleware) without a rate"
        );
        let nan = Faults {
            rate: f64::NAN,
            ..Faults::default()
        };
        assert!(Injector::new(&nan, shared).is_none());
        let always = injector(1.0, 3);
        assert!((0..1_000).all(|_| always.draw(&plain()).is_some()));
    }

    #[test]
    fn every_kind_occurs_and_watch_faults_only_on_watches() {
        let injector = injector(1.0, 5);
        for _ in 0..2_000 {
            let fault = injector.draw(&plain());
            assert!(
                !matches!(
                    fault,
                    Some(Fault::WatchEnded(_) | Fault::WatchExpired) | None
                ),
                "{fault:?} for a request that is no watch"
            );
        }
        let from_now = Shape {
            watch: true,
            resumes_from: None,
        };
        for _ in 0..2_000 {
            let fault = injector.draw(&from_now);
            assert_ne!(
                fault,
                Some(Fault::WatchExpired),
                "a watch from now has no old version to be refused"
            );
        }
        for _ in 0..2_000 {
            injector.draw(&resuming_watch());
        }
        let injected = injector.injected();
        let kinds: Vec<&str> = injected.keys().copied().collect();
        assert_eq!(
            kinds,
            [
                "dropped",
                "server_error",
                "slow",
                "throttled",
                "timeout",
                "watch_ended",
                "watch_expired"
            ]
        );
    }

    #[test]
    fn delays_stay_within_the_configured_delay() {
        let injector = injector(1.0, 9);
        for _ in 0..2_000 {
            if let Some(Fault::Slow(late) | Fault::WatchEnded(late)) =
                injector.draw(&resuming_watch())
            {
                assert!(late <= Faults::default().delay, "{late:?}");
            }
        }
    }

    #[test]
    fn the_shape_of_a_request_says_whether_it_is_a_watch_and_from_where() {
        let shape = |uri: &str| Shape::of(&uri.parse::<Uri>().unwrap());
        // (description, uri, expected shape)
        let cases = [
            ("the readiness endpoint is spared", "/readyz", None),
            ("the liveness endpoint is spared", "/livez", None),
            ("the health endpoint is spared", "/healthz", None),
            (
                "a list",
                "/api/v1/namespaces/a/pods?labelSelector=x%3Dy",
                Some(plain()),
            ),
            ("discovery", "/apis", Some(plain())),
            (
                "a watch from now",
                "/apis/apps/v1/namespaces/a/deployments?watch=true&resourceVersion=0",
                Some(Shape {
                    watch: true,
                    resumes_from: None,
                }),
            ),
            (
                "a watch resuming",
                "/api/v1/pods?watch=1&resourceVersion=17&allowWatchBookmarks=true",
                Some(Shape {
                    watch: true,
                    resumes_from: Some("17".into()),
                }),
            ),
            (
                "the legacy watch prefix",
                "/apis/apps/v1/watch/namespaces/a/deployments/d?resourceVersion=5",
                Some(Shape {
                    watch: true,
                    resumes_from: Some("5".into()),
                }),
            ),
            (
                "a get at a resourceVersion is no watch",
                "/api/v1/namespaces/a/pods/p?resourceVersion=5",
                Some(plain()),
            ),
        ];
        for (description, uri, expected) in cases {
            assert_eq!(shape(uri), expected, "{description}: {uri}");
        }
    }
}
