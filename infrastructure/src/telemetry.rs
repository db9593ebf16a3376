//! shiplog's own Prometheus metrics: HTTP requests, commands, appended events,
//! projection lag, process-manager steps, retried Kubernetes API calls and event-stream
//! followers, kept in one registry per server and encoded in the OpenMetrics text format
//! on each scrape.

use crate::event_log::VISIBLE;
use crate::live_feed::LiveFeed;
use async_trait::async_trait;
use cqrs_es::{EventEnvelope, Query};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use shiplog_application::{AppError, CommandBus, CommandContext, Cursor, StepObserver};
use shiplog_domain::{Usecase, UsecaseCommand};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::warn;
use uuid::Uuid;

/// The media type of what [`Telemetry::encode`] produces (prometheus-client writes
/// OpenMetrics text: counters end in `_total` and the body in `# EOF`).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A subscription's lag is counted up to this many events, so that a scrape stays
/// cheap however far a projection has fallen behind.
pub const LAG_CAP: i64 = 100_000;

/// How long a scrape waits for the database before it answers without the lag.
const LAG_TIMEOUT: Duration = Duration::from_secs(2);

/// Upper bounds (seconds) of the duration histograms: Prometheus' usual ones.
const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of a request that matched no route, so that random paths
/// cannot create new series.
const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubscriptionLabels {
    subscription: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RetryLabels {
    operation: &'static str,
    reason: &'static str,
}

/// Kubernetes API calls tried again, by the cluster operation they were part of and why
/// (`shiplog_cluster_retries_total{operation, reason}`): how unreliable the cluster is
/// being, seen from shiplog. Cheap to clone; every clone counts into the same series.
#[derive(Clone, Debug, Default)]
pub struct ClusterRetries(pub(crate) Family<RetryLabels, Counter>);

impl ClusterRetries {
    /// Counts one retry of a call made for `operation` that failed for `reason`.
    pub fn record(&self, operation: &'static str, reason: &'static str) {
        self.0
            .get_or_create(&RetryLabels { operation, reason })
            .inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Why a scrape could not be encoded (a bug: writing to a `String` does not fail).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the metrics")]
pub struct EncodeError(#[from] std::fmt::Error);

/// How a command ended, as the `outcome` label of `shiplog_command_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Its events were appended.
    Ok,
    /// The caller's fault (a 4xx: invalid, unknown, conflicting, forbidden).
    Rejected,
    /// Ours or a dependency's (a 5xx: database down, a bug).
    Error,
}

impl CommandOutcome {
    /// The outcome of a command that returned `result`.
    pub fn of<T>(result: &Result<T, AppError>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(
                AppError::Invalid(_)
                | AppError::NotFound { .. }
                | AppError::Conflict { .. }
                | AppError::Forbidden(_)
                | AppError::Unauthenticated(_)
                | AppError::Denied { .. },
            ) => Self::Rejected,
            Err(
                AppError::Unavailable(_)
                | AppError::ClusterUnavailable(_)
                | AppError::IdentityProviderUnavailable(_)
                | AppError::SecretsUnavailable(_)
                | AppError::Internal(_),
            ) => Self::Error,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Rejected => "rejected",
            Self::Error => "error",
        }
    }
}

/// The metrics of one shiplog server: recorded by the HTTP layer, the command bus
/// and the process manager, completed at scrape time from the database and the live feed.
pub struct Telemetry {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
    command_duration: Histograms<CommandLabels>,
    events_appended: Family<EventLabels, Counter>,
    projection_lag: Family<SubscriptionLabels, Gauge>,
    scrape_errors: Counter,
    pm_actions: Family<ActionLabels, Counter>,
    pm_failures: Family<ActionLabels, Counter>,
    sse_subscribers: Gauge,
    pool: PgPool,
    feed: Arc<LiveFeed>,
    /// One scrape at a time: a scrape clears and refills the lag gauges.
    scraping: tokio::sync::Mutex<()>,
}

impl Telemetry {
    /// A fresh registry (names prefixed `shiplog_`) reading the lag from `pool` and
    /// the number of stream followers from `feed` at scrape time, and showing the
    /// retries the cluster adapter counts in `cluster_retries`.
    pub fn new(pool: PgPool, feed: Arc<LiveFeed>, cluster_retries: ClusterRetries) -> Arc<Self> {
        let mut registry = Registry::with_prefix("shiplog");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, matched route and status",
            http_requests.clone(),
        );
        let http_duration: Histograms<RouteLabels> =
            Family::new_with_constructor(duration_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (until the response headers), by method and matched route",
            http_duration.clone(),
        );
        let command_duration: Histograms<CommandLabels> =
            Family::new_with_constructor(duration_histogram);
        registry.register(
            "command_duration_seconds",
            "Time to execute a command on a usecase, by command and outcome (ok, rejected, error)",
            command_duration.clone(),
        );
        let events_appended = Family::<EventLabels, Counter>::default();
        registry.register(
            "events_appended",
            "Events this process appended to the ledger, by type",
            events_appended.clone(),
        );
        let projection_lag = Family::<SubscriptionLabels, Gauge>::default();
        registry.register(
            "projection_lag_events",
            "Visible events past a subscription's checkpoint (counted up to 100000); absent when the database cannot be read",
            projection_lag.clone(),
        );
        let scrape_errors = Counter::default();
        registry.register(
            "scrape_errors",
            "Scrapes that could not read the projection lag from the database",
            scrape_errors.clone(),
        );
        let pm_actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "process_manager_actions",
            "Cluster steps the process manager began (also those that failed or were cut off by a re-plan), by action",
            pm_actions.clone(),
        );
        let pm_failures = Family::<ActionLabels, Counter>::default();
        registry.register(
            "process_manager_failures",
            "Cluster steps of the process manager that failed, by action",
            pm_failures.clone(),
        );
        registry.register(
            "cluster_retries",
            "Kubernetes API calls tried again after a failure that may pass, by cluster operation and reason (throttled, server_error, timeout, connection, expired, watch)",
            cluster_retries.0,
        );
        let sse_subscribers = Gauge::default();
        registry.register(
            "sse_subscribers",
            "Event-stream (SSE) followers connected now",
            sse_subscribers.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the version label says which shiplog runs",
            build_info,
        );
        Arc::new(Self {
            registry,
            http_requests,
            http_duration,
            command_duration,
            events_appended,
            projection_lag,
            scrape_errors,
            pm_actions,
            pm_failures,
            sse_subscribers,
            pool,
            feed,
            scraping: tokio::sync::Mutex::new(()),
        })
    }

    /// Records one answered request; `route` is the matched route template, `None` when none matched.
    pub fn record_http(&self, method: &str, route: Option<&str>, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let route = route.unwrap_or(UNMATCHED).to_owned();
        self.http_requests
            .get_or_create(&RequestLabels {
                method,
                route: route.clone(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels { method, route })
            .observe(elapsed.as_secs_f64());
    }

    /// Records one executed command (`command` is [`UsecaseCommand::kind`]).
    pub fn record_command(
        &self,
        command: &'static str,
        outcome: CommandOutcome,
        elapsed: Duration,
    ) {
        self.command_duration
            .get_or_create(&CommandLabels {
                command,
                outcome: outcome.label(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records one event appended by this process.
    pub fn record_appended(&self, event_type: &'static str) {
        self.events_appended
            .get_or_create(&EventLabels { r#type: event_type })
            .inc();
    }

    /// Refreshes the scrape-time gauges and encodes every metric as OpenMetrics text
    /// (see [`CONTENT_TYPE`]). A database that cannot be read leaves the lag out and
    /// counts a scrape error; the rest is answered all the same.
    pub async fn encode(&self) -> Result<String, EncodeError> {
        let _scraping = self.scraping.lock().await;
        self.sse_subscribers
            .set(i64::try_from(self.feed.followers()).unwrap_or(i64::MAX));
        let lag = tokio::time::timeout(LAG_TIMEOUT, subscription_lag(&self.pool, LAG_CAP)).await;
        self.projection_lag.clear();
        match lag {
            Ok(Ok(rows)) => {
                for (subscription, events) in rows {
                    self.projection_lag
                        .get_or_create(&SubscriptionLabels { subscription })
                        .set(events);
                }
            }
            Ok(Err(e)) => {
                self.scrape_errors.inc();
                warn!(error = %e, "metrics: cannot read the projection lag");
            }
            Err(_) => {
                self.scrape_errors.inc();
                warn!("metrics: reading the projection lag timed out");
            }
        }
        let mut body = String::new();
        encode(&mut body, &self.registry)?;
        Ok(body)
    }

    /// The cqrs-es query that counts the events of each committed command.
    pub fn appended_events_query(self: &Arc<Self>) -> Box<dyn Query<Usecase>> {
        Box::new(AppendedEvents(self.clone()))
    }
}

impl StepObserver for Telemetry {
    fn started(&self, step: &'static str) {
        self.pm_actions
            .get_or_create(&ActionLabels { action: step })
            .inc();
    }

    fn failed(&self, step: &'static str) {
        self.pm_failures
            .get_or_create(&ActionLabels { action: step })
            .inc();
    }
}

/// Standard methods keep their name; anything else is `other`, so that invented
/// methods cannot create new series.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

/// For each row of `subscription_checkpoints`, how many events past its checkpoint
/// are visible (by the rule the subscriptions themselves read with), counted up to `cap`.
pub async fn subscription_lag(pool: &PgPool, cap: i64) -> Result<Vec<(String, i64)>, sqlx::Error> {
    // Inside the subquery an unqualified `transaction_id` (as in VISIBLE) is the event's.
    sqlx::query_as(&format!(
        "SELECT c.name,
                (SELECT count(*) FROM (
                    SELECT 1 FROM events
                     WHERE (events.transaction_id, events.position) > (c.transaction_id, c.position)
                       AND {VISIBLE}
                     LIMIT $1) AS pending) AS lag
           FROM subscription_checkpoints c
          ORDER BY c.name"
    ))
    .bind(cap)
    .fetch_all(pool)
    .await
}

/// Counts the events of each committed command by type (cqrs-es dispatches them after the commit).
struct AppendedEvents(Arc<Telemetry>);

#[async_trait]
impl Query<Usecase> for AppendedEvents {
    async fn dispatch(&self, _aggregate_id: &str, events: &[EventEnvelope<Usecase>]) {
        for event in events {
            self.0.record_appended(event.payload.type_name());
        }
    }
}

/// A [`CommandBus`] that times every command of the bus it wraps in
/// `shiplog_command_duration_seconds`, by command and outcome.
pub struct MeteredCommandBus<B> {
    inner: B,
    telemetry: Arc<Telemetry>,
}

impl<B: CommandBus> MeteredCommandBus<B> {
    /// Wraps `inner`, recording into `telemetry`.
    pub fn new(inner: B, telemetry: Arc<Telemetry>) -> Self {
        Self { inner, telemetry }
    }
}

#[async_trait]
impl<B: CommandBus> CommandBus for MeteredCommandBus<B> {
    async fn execute(
        &self,
        usecase_id: Uuid,
        command: UsecaseCommand,
        ctx: &CommandContext,
    ) -> Result<Cursor, AppError> {
        let kind = command.kind();
        let started = Instant::now();
        let result = self.inner.execute(usecase_id, command, ctx).await;
        self.telemetry
            .record_command(kind, CommandOutcome::of(&result), started.elapsed());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_status_the_error_becomes() {
        let cases: [(&str, Result<(), AppError>, CommandOutcome); 6] = [
            ("success", Ok(()), CommandOutcome::Ok),
            (
                "404",
                Err(AppError::not_found(
                    shiplog_application::Missing::Usecase,
                    "x",
                )),
                CommandOutcome::Rejected,
            ),
            (
                "409",
                Err(AppError::conflict(
                    shiplog_application::Conflict::NameTaken,
                    "x",
                )),
                CommandOutcome::Rejected,
            ),
            (
                "403",
                Err(AppError::Forbidden("x".into())),
                CommandOutcome::Rejected,
            ),
            (
                "503",
                Err(AppError::Unavailable("x".into())),
                CommandOutcome::Error,
            ),
            (
                "500",
                Err(AppError::Internal("x".into())),
                CommandOutcome::Error,
            ),
        ];
        for (description, result, expected) in cases {
            assert_eq!(CommandOutcome::of(&result), expected, "{description}");
        }
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("DELETE"), "DELETE");
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(method_label("get"), "other");
    }
}
