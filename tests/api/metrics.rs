//! `GET /metrics`: shiplog's own metrics, unauthenticated, in the OpenMetrics text
//! format, with values that follow what the server did.

use crate::helpers::{TestApp, TestDb, ADMIN_TOKEN};
use crate::outage::PgProxy;
use crate::sse::SseStream;
use chrono::Utc;
use openmetrics_parser::openmetrics::parse_openmetrics;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use serde_json::json;
use shiplog_application::{CommandBus, CommandContext, Cursor};
use shiplog_domain::{UsecaseCommand, UsecaseName};
use shiplog_infrastructure::telemetry::subscription_lag;
use shiplog_infrastructure::PostgresCommandBus;
use shiplog_testkit::eventually;
use sqlx::PgPool;
use uuid::Uuid;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One scrape, parsed by a strict OpenMetrics parser (a malformed line fails the test).
pub(crate) struct Scrape {
    text: String,
    parsed: MetricsExposition<OpenMetricsType, OpenMetricsValue>,
}

impl Scrape {
    /// The value of the sample of `family` whose labels include `labels`: a counter's
    /// total, a gauge's value, a histogram's count. `None` when there is no such sample.
    fn value(&self, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let family = self.parsed.families.get(family)?;
        let sample = family.iter_samples().find(|sample| {
            let set = sample
                .get_labelset()
                .unwrap_or_else(|e| panic!("labels of {}: {e:?}", family.family_name));
            labels
                .iter()
                .all(|(name, value)| set.get_label_value(name) == Some(*value))
        })?;
        Some(match &sample.value {
            OpenMetricsValue::Counter(counter) => counter.value.as_f64(),
            OpenMetricsValue::Gauge(gauge) => gauge.as_f64(),
            OpenMetricsValue::Histogram(histogram) => histogram
                .count
                .unwrap_or_else(|| panic!("{} has no _count", family.family_name))
                as f64,
            other => panic!("{}: unexpected value {other:?}", family.family_name),
        })
    }

    /// The sum of the counters of `family` over all its label sets (0 when it has none).
    pub(crate) fn total(&self, family: &str) -> f64 {
        self.parsed.families.get(family).map_or(0.0, |f| {
            f.iter_samples()
                .map(|sample| match &sample.value {
                    OpenMetricsValue::Counter(counter) => counter.value.as_f64(),
                    other => panic!("{}: not a counter: {other:?}", f.family_name),
                })
                .sum()
        })
    }

    /// How many samples `family` has (0 when it is declared without any).
    fn samples(&self, family: &str) -> usize {
        self.parsed
            .families
            .get(family)
            .map_or(0, |f| f.iter_samples().count())
    }
}

/// Scrapes `/metrics` without a token; it must answer 200 with OpenMetrics text.
pub(crate) async fn scrape(app: &TestApp) -> Scrape {
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/metrics: {e}"));
    assert_eq!(response.status().as_u16(), 200, "/metrics without a token");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, OPENMETRICS);
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("/metrics body: {e}"));
    let parsed = parse_openmetrics(&text)
        .unwrap_or_else(|e| panic!("not valid OpenMetrics ({e:?}):\n{text}"));
    Scrape { text, parsed }
}

/// Scrapes until `done` holds for a scrape, or fails after 10 s with the last one.
async fn scrape_until(app: &TestApp, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    eventually(what, || async {
        let scrape = scrape(app).await;
        if done(&scrape) {
            Ok(scrape)
        } else {
            Err(scrape.text)
        }
    })
    .await
}

/// A description, a family, labels its sample has, and the value it must have.
type Expected<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], f64);

#[tokio::test]
async fn metrics_follow_requests_commands_events_and_projections() {
    let app = TestApp::spawn().await;
    app.create_usecase("metered").await;
    let (status, body) = app
        .post(
            "/api/usecases",
            json!({"name": "metered", "description": "again"}),
        )
        .await;
    assert_eq!(status, 409, "a duplicate name: {body}");
    let (status, body) = app.post("/api/usecases", json!({"name": "  "})).await;
    assert_eq!(status, 422, "an empty name: {body}");
    let (status, _) = app.get(&format!("/api/usecases/{}", Uuid::new_v4())).await;
    assert_eq!(status, 404, "an unknown usecase");
    let (status, _) = app.get(&format!("/no/such/route/{}", Uuid::new_v4())).await;
    assert_eq!(status, 404, "an unknown route");

    let scrape = scrape(&app).await;
    let requests = "shiplog_http_requests";
    let register = [("method", "POST"), ("route", "/api/usecases")];
    let cases: [Expected; 9] = [
        (
            "the registration",
            requests,
            &[register[0], register[1], ("status", "201")],
            1.0,
        ),
        (
            "the duplicate",
            requests,
            &[register[0], register[1], ("status", "409")],
            1.0,
        ),
        (
            "the invalid body",
            requests,
            &[register[0], register[1], ("status", "422")],
            1.0,
        ),
        (
            "the unknown usecase, under its route",
            requests,
            &[
                ("method", "GET"),
                ("route", "/api/usecases/{id}"),
                ("status", "404"),
            ],
            1.0,
        ),
        (
            "the unknown route, as unmatched",
            requests,
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")],
            1.0,
        ),
        (
            "the timings of the three POSTs",
            "shiplog_http_request_duration_seconds",
            &register,
            3.0,
        ),
        (
            "the one registered event",
            "shiplog_events_appended",
            &[("type", "UsecaseRegistered")],
            1.0,
        ),
        (
            "the registration command",
            "shiplog_command_duration_seconds",
            &[("command", "register"), ("outcome", "ok")],
            1.0,
        ),
        (
            "the refused duplicate",
            "shiplog_command_duration_seconds",
            &[("command", "register"), ("outcome", "rejected")],
            1.0,
        ),
    ];
    for (description, family, labels, expected) in cases {
        assert_eq!(
            scrape.value(family, labels),
            Some(expected),
            "{description}: {family}{labels:?} in\n{}",
            scrape.text
        );
    }
    assert_eq!(
        scrape.value(
            "shiplog_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0),
        "{}",
        scrape.text
    );
    assert_eq!(scrape.value("shiplog_sse_subscribers", &[]), Some(0.0));
    // The names as Prometheus stores them.
    for series in [
        "shiplog_http_requests_total{",
        "shiplog_events_appended_total{type=\"UsecaseRegistered\"} 1\n",
        "shiplog_command_duration_seconds_count{command=\"register\",outcome=\"ok\"} 1\n",
        "shiplog_scrape_errors_total 0\n",
    ] {
        assert!(scrape.text.contains(series), "{series} in\n{}", scrape.text);
    }
    assert!(
        !scrape.text.contains("/no/such/route"),
        "raw paths must not become labels"
    );

    // Both read models keep a checkpoint; once the projector caught up, neither lags.
    let lag = "shiplog_projection_lag_events";
    scrape_until(&app, "projections caught up", |s| {
        ["usecase_view", "deployment_view"]
            .iter()
            .all(|name| s.value(lag, &[("subscription", name)]) == Some(0.0))
    })
    .await;
}

#[tokio::test]
async fn sse_subscribers_count_open_event_streams() {
    let app = TestApp::spawn().await;
    assert_eq!(
        scrape(&app).await.value("shiplog_sse_subscribers", &[]),
        Some(0.0)
    );

    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let stream = SseStream::open(
        &app.url("/api/events/stream"),
        &[("authorization", bearer.as_str())],
    )
    .await;
    assert_eq!(stream.status, 200, "opening the stream");
    scrape_until(&app, "one subscriber", |s| {
        s.value("shiplog_sse_subscribers", &[]) == Some(1.0)
    })
    .await;

    drop(stream);
    scrape_until(&app, "no subscriber after the client left", |s| {
        s.value("shiplog_sse_subscribers", &[]) == Some(0.0)
    })
    .await;
}

#[tokio::test]
async fn a_scrape_during_a_database_outage_answers_without_the_lag() {
    let db = TestDb::create().await;
    let proxy = PgProxy::start().await;
    let via_proxy = format!("postgres://postgres@127.0.0.1:{}/{}", proxy.port, db.name);
    let app = TestApp::spawn_with_url(db, &via_proxy).await;
    app.create_usecase("before-the-outage").await;
    let lag = "shiplog_projection_lag_events";
    scrape_until(&app, "a lag series", |s| s.samples(lag) > 0).await;

    proxy.cut();
    let scrape = scrape(&app).await;
    assert_eq!(scrape.samples(lag), 0, "{}", scrape.text);
    assert_eq!(
        scrape.value("shiplog_scrape_errors", &[]),
        Some(1.0),
        "{}",
        scrape.text
    );
    assert_eq!(
        scrape.value("shiplog_events_appended", &[("type", "UsecaseRegistered")]),
        Some(1.0),
        "the other metrics are still there: {}",
        scrape.text
    );
}

async fn register(bus: &PostgresCommandBus, name: &str) -> Cursor {
    let usecase_id = Uuid::new_v4();
    let command = UsecaseCommand::Register {
        usecase_id,
        name: UsecaseName::parse(name).unwrap_or_else(|e| panic!("{name}: {e}")),
        description: String::new(),
        at: Utc::now(),
        owner: "test".to_owned(),
        team: None,
    };
    let ctx = CommandContext {
        actor: "test".to_owned(),
        request_id: "test".to_owned(),
        causation: None,
        reason: None,
    };
    bus.execute(usecase_id, command, &ctx)
        .await
        .unwrap_or_else(|e| panic!("registering {name}: {e}"))
}

async fn checkpoint(pool: &PgPool, name: &str, at: Cursor) {
    sqlx::query(
        "INSERT INTO subscription_checkpoints (name, transaction_id, position)
         VALUES ($1, $2::text::xid8, $3)",
    )
    .bind(name)
    .bind(at.transaction_id.to_string())
    .bind(at.position)
    .execute(pool)
    .await
    .unwrap_or_else(|e| panic!("checkpoint {name}: {e}"));
}

async fn lag(pool: &PgPool, cap: i64) -> Vec<(String, i64)> {
    subscription_lag(pool, cap)
        .await
        .unwrap_or_else(|e| panic!("lag: {e}"))
}

fn rows(expected: &[(&str, i64)]) -> Vec<(String, i64)> {
    expected.iter().map(|(n, l)| (n.to_string(), *l)).collect()
}

/// Polls the lag until it is `expected`, or fails after 10 s: visibility is
/// server-wide, so a transaction of another test's database can hold our events back.
async fn lag_becomes(pool: &PgPool, cap: i64, expected: &[(&str, i64)], what: &str) {
    let expected = rows(expected);
    eventually(&format!("{what}: lag becomes {expected:?}"), || async {
        let now = lag(pool, cap).await;
        if now == expected {
            Ok(())
        } else {
            Err(now)
        }
    })
    .await;
}

/// The lag query alone, without a server (so no projector moves the checkpoints).
#[tokio::test]
async fn lag_counts_visible_events_past_each_checkpoint_up_to_the_cap() {
    let db = TestDb::create().await;
    let bus = PostgresCommandBus::new(db.pool.clone());
    let first = register(&bus, "first").await;
    let second = register(&bus, "second").await;
    checkpoint(&db.pool, "at_end", second).await;
    checkpoint(&db.pool, "behind_by_one", first).await;
    checkpoint(&db.pool, "from_start", Cursor::START).await;
    let all = [("at_end", 0), ("behind_by_one", 1), ("from_start", 2)];
    lag_becomes(&db.pool, 100, &all, "both events visible").await;
    assert_eq!(
        lag(&db.pool, 1).await,
        rows(&[("at_end", 0), ("behind_by_one", 1), ("from_start", 1)]),
        "capped at 1"
    );

    // An older transaction still running hides what commits after it, as it
    // does from the subscriptions: the lag must not count what they cannot read yet.
    let mut older = db
        .pool
        .begin()
        .await
        .unwrap_or_else(|e| panic!("begin: {e}"));
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *older)
        .await
        .unwrap_or_else(|e| panic!("xid: {e}"));
    register(&bus, "third").await;
    assert_eq!(
        lag(&db.pool, 100).await,
        rows(&all),
        "while the older one runs"
    );
    older
        .rollback()
        .await
        .unwrap_or_else(|e| panic!("rollback: {e}"));
    lag_becomes(
        &db.pool,
        100,
        &[("at_end", 1), ("behind_by_one", 2), ("from_start", 3)],
        "once the older one ended",
    )
    .await;
}
