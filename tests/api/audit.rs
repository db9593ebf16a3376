//! The audit trail: a usecase's history, the filtered ledger, the state at an
//! earlier instant, and the hash chain (verify, export, an outside script).

use crate::helpers::{TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};
use shiplog_testkit::eventually;
use uuid::Uuid;

fn types(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A token with only `scopes`, for authorisation checks.
async fn token_with(app: &TestApp, name: &str, scopes: &[&str]) -> String {
    let (status, body) = app
        .post("/api/tokens", json!({"name": name, "scopes": scopes}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_usecases_history_lists_every_event_with_actor_and_pages_by_cursor() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("audited").await;
    let other = app.create_usecase("unrelated").await;
    let deployment = app.deploy(usecase, "v1").await;
    app.mark_deployed(usecase, deployment).await;
    app.deploy(other, "v1").await;
    let (status, _) = app
        .delete(&format!("/api/usecases/{usecase}/deployments"))
        .await;
    assert_eq!(status, 202);

    let (status, page) = app.get(&format!("/api/usecases/{usecase}/history")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        types(&page),
        [
            "UsecaseRegistered",
            "DeploymentRequested",
            "DeploymentStarted",
            "DeploymentSucceeded",
            "UndeployRequested"
        ]
    );
    let actors: Vec<&str> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["actor"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        actors,
        [
            "admin",
            "admin",
            "process-manager",
            "process-manager",
            "admin"
        ]
    );
    let first = &page["items"][0];
    assert_eq!(first["sequence"], 1);
    assert_eq!(first["usecaseId"], json!(usecase.to_string()));
    assert_eq!(first["payload"]["UsecaseRegistered"]["name"], "audited");
    assert!(first["recordedAt"]
        .as_str()
        .unwrap_or_default()
        .ends_with('Z'));

    // Paging: two at a time gives the same events.
    let mut paged = Vec::new();
    for page in app
        .get_pages(&format!("/api/usecases/{usecase}/history?limit=2"))
        .await
    {
        assert!(page["items"].as_array().map_or(0, Vec::len) <= 2);
        paged.extend(types(&page));
    }
    assert_eq!(
        paged,
        types(&app.get(&format!("/api/usecases/{usecase}/history")).await.1)
    );

    // The filter, and a usecase that never existed.
    let (_, succeeded) = app
        .get(&format!(
            "/api/usecases/{usecase}/history?types=DeploymentSucceeded"
        ))
        .await;
    assert_eq!(types(&succeeded), ["DeploymentSucceeded"]);
    let (status, body) = app
        .get(&format!("/api/usecases/{}/history", Uuid::new_v4()))
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn the_history_of_a_deleted_usecase_stays_readable() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("gone").await;
    let (status, _) = app.delete(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(status, 204);
    let (status, page) = app.get(&format!("/api/usecases/{usecase}/history")).await;
    assert_eq!(status, 200);
    assert_eq!(types(&page), ["UsecaseRegistered", "UsecaseDeleted"]);
}

#[tokio::test]
async fn the_ledger_filters_by_usecase_type_actor_and_time() {
    let app = TestApp::spawn().await;
    let a = app.create_usecase("alpha").await;
    let b = app.create_usecase("beta").await;
    let deployment = app.deploy(a, "v1").await;
    app.mark_deployed(a, deployment).await;
    app.deploy(b, "v1").await;

    let (status, all) = app.get("/api/events?limit=200").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["items"].as_array().map_or(0, Vec::len), 6);
    let (_, only_b) = app.get(&format!("/api/events?usecase={b}")).await;
    assert_eq!(types(&only_b), ["UsecaseRegistered", "DeploymentRequested"]);
    let (_, requested) = app.get("/api/events?types=DeploymentRequested").await;
    assert_eq!(
        types(&requested),
        ["DeploymentRequested", "DeploymentRequested"]
    );
    let (_, by_pm) = app.get("/api/events?actor=process-manager").await;
    assert_eq!(types(&by_pm), ["DeploymentStarted", "DeploymentSucceeded"]);
    let (_, combined) = app
        .get(&format!(
            "/api/events?usecase={a}&types=DeploymentRequested,DeploymentSucceeded&actor=admin"
        ))
        .await;
    assert_eq!(types(&combined), ["DeploymentRequested"]);

    // Time range: from the fourth event's recording time on, before the sixth's.
    let at = |i: usize| {
        all["items"][i]["recordedAt"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (status, window) = app
        .get(&format!(
            "/api/events?from={}&to={}",
            encode(&at(3)),
            encode(&at(5))
        ))
        .await;
    assert_eq!(status, 200, "{window}");
    let expected: Vec<String> = all["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            let t = e["recordedAt"].as_str().unwrap_or_default();
            t >= at(3).as_str() && t < at(5).as_str()
        })
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(types(&window), expected);

    // Paging the whole ledger one by one visits every event once.
    let mut seen = Vec::new();
    for page in app.get_pages("/api/events?limit=1").await {
        seen.extend(
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["cursor"].clone()),
        );
    }
    let every: Vec<Value> = all["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["cursor"].clone())
        .collect();
    assert_eq!(seen, every);
}

fn encode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test]
async fn ledger_queries_refuse_bad_input_naming_the_field() {
    let app = TestApp::spawn().await;
    for (description, path, status, field) in [
        (
            "unknown type",
            "/api/events?types=DeploymentExploded",
            422,
            Some("types"),
        ),
        (
            "cursor not from shiplog",
            "/api/events?after=abc",
            422,
            Some("after"),
        ),
        (
            "limit too large",
            "/api/events?limit=100000",
            422,
            Some("limit"),
        ),
        (
            "from not a time",
            "/api/events?from=yesterday",
            400,
            Some("from"),
        ),
        (
            "usecase not a uuid",
            "/api/events?usecase=42",
            400,
            Some("usecase"),
        ),
        ("unknown parameter", "/api/events?colour=red", 400, None),
        (
            "at not a time",
            "/api/usecases/00000000-0000-0000-0000-000000000000?at=noon",
            400,
            Some("at"),
        ),
    ] {
        let (code, body) = app.get(path).await;
        assert_eq!(code, status, "{description}: {body}");
        if let Some(field) = field {
            assert_eq!(body["field"], field, "{description}: {body}");
        }
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{description}: {body}"
        );
    }
}

#[tokio::test]
async fn reading_the_audit_trail_needs_audit_read_or_usecases_read_for_a_usecase() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("guarded").await;
    // The reader speaks for the usecase's owner (the admin that created it).
    let (status, body) = app
        .post(
            "/api/tokens",
            json!({"name": "reader", "scopes": ["usecases:read"], "subject": "admin"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let reader = body["token"].as_str().unwrap_or_default().to_owned();
    let auditor = token_with(&app, "auditor", &["audit:read"]).await;
    let deployer = token_with(&app, "deployer", &["deployments:write"]).await;
    let history = format!("/api/usecases/{usecase}/history");
    for (description, token, path, status) in [
        (
            "usecases:read reads a usecase's history",
            &reader,
            history.as_str(),
            200,
        ),
        (
            "audit:read reads a usecase's history",
            &auditor,
            history.as_str(),
            200,
        ),
        (
            "deployments:write alone does not",
            &deployer,
            history.as_str(),
            403,
        ),
        (
            "usecases:read does not read the whole ledger",
            &reader,
            "/api/events",
            403,
        ),
        (
            "audit:read reads the whole ledger",
            &auditor,
            "/api/events",
            200,
        ),
        (
            "usecases:read does not verify",
            &reader,
            "/api/audit/verify",
            403,
        ),
        ("audit:read verifies", &auditor, "/api/audit/verify", 200),
        (
            "usecases:read does not export",
            &reader,
            "/api/audit/export",
            403,
        ),
    ] {
        let (code, body) = app
            .send(reqwest::Method::GET, path, Some(token), None)
            .await;
        assert_eq!(code, status, "{description}: {body}");
    }
}

#[tokio::test]
async fn at_an_earlier_instant_the_usecase_shows_its_earlier_state() {
    let app = TestApp::spawn().await;
    let before_registration = chrono::Utc::now();
    let usecase = app.create_usecase("travelled").await;
    let first = app.deploy(usecase, "v1").await;
    app.mark_deployed(usecase, first).await;
    let between = chrono::Utc::now();
    let second = app.deploy(usecase, "v2").await;
    app.mark_deployed(usecase, second).await;
    let at = |t: chrono::DateTime<chrono::Utc>| {
        encode(&t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    };

    let (status, then) = app
        .get(&format!("/api/usecases/{usecase}?at={}", at(between)))
        .await;
    assert_eq!(status, 200, "{then}");
    assert_eq!(then["deployment"]["id"], json!(first.to_string()));
    assert_eq!(then["deployment"]["status"], "deployed");
    assert_eq!(then["deployment"]["config"]["image"]["tag"], "v1");
    let (status, now) = app.get(&format!("/api/usecases/{usecase}")).await;
    assert_eq!(status, 200);
    assert_eq!(now["deployment"]["id"], json!(second.to_string()));

    // The first deployment was deployed then, superseded now; the second did not exist yet.
    let (_, first_then) = app
        .get(&format!(
            "/api/usecases/{usecase}/deployments/{first}?at={}",
            at(between)
        ))
        .await;
    assert_eq!(first_then["status"], "deployed");
    let (_, first_now) = app
        .get(&format!("/api/usecases/{usecase}/deployments/{first}"))
        .await;
    assert_eq!(first_now["status"], "superseded");
    let (status, _) = app
        .get(&format!(
            "/api/usecases/{usecase}/deployments/{second}?at={}",
            at(between)
        ))
        .await;
    assert_eq!(status, 404);
    let (status, body) = app
        .get(&format!(
            "/api/usecases/{usecase}?at={}",
            at(before_registration)
        ))
        .await;
    assert_eq!(status, 404, "{body}");

    // Rebuilt from the events, the present looks exactly as the read models show it.
    let (_, rebuilt) = app
        .get(&format!(
            "/api/usecases/{usecase}?at={}",
            at(chrono::Utc::now())
        ))
        .await;
    assert_eq!(rebuilt, now);
    let (_, listed) = app
        .get(&format!("/api/usecases/{usecase}/deployments"))
        .await;
    for deployment in listed["items"].as_array().into_iter().flatten() {
        let id = deployment["id"].as_str().unwrap_or_default();
        let (_, rebuilt) = app
            .get(&format!(
                "/api/usecases/{usecase}/deployments/{id}?at={}",
                at(chrono::Utc::now())
            ))
            .await;
        assert_eq!(&rebuilt, deployment);
    }
}

/// Polls `/api/audit/verify` until every event is sealed.
async fn sealed_report(app: &TestApp) -> Value {
    eventually("every event is sealed", || async {
        let (status, report) = app.get("/api/audit/verify").await;
        assert_eq!(status, 200, "{report}");
        if report["unsealed"] == 0 {
            Ok(report)
        } else {
            Err(report)
        }
    })
    .await
}

#[tokio::test]
async fn verify_reports_the_event_a_superuser_altered_behind_the_triggers_back() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("tamper-target").await;
    let deployment = app.deploy(usecase, "v1").await;
    app.mark_deployed(usecase, deployment).await;
    let report = sealed_report(&app).await;
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["events"], 4);
    assert!(
        report["head"].as_str().is_some_and(|h| h.len() == 64),
        "{report}"
    );
    assert!(report["brokenAt"].is_null());

    // Someone with superuser rights rewrites who deployed what.
    let (_, history) = app.get(&format!("/api/usecases/{usecase}/history")).await;
    let target = &history["items"][1];
    assert_eq!(target["type"], "DeploymentRequested");
    let mut conn = app
        .db
        .pool
        .acquire()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for sql in [
        "ALTER TABLE events DISABLE TRIGGER events_append_only",
        "UPDATE events SET metadata = json_build_object('actor', 'someone-else') WHERE aggregate_id = $1 AND sequence = 2",
        "ALTER TABLE events ENABLE TRIGGER events_append_only",
    ] {
        sqlx::query(sql)
            .bind(usecase.to_string())
            .execute(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let (status, report) = app.get("/api/audit/verify").await;
    assert_eq!(status, 200);
    assert_eq!(report["verified"], false, "{report}");
    assert_eq!(report["brokenAt"]["cursor"], target["cursor"], "{report}");
    assert_eq!(report["brokenAt"]["sequence"], 2);
    assert_eq!(report["brokenAt"]["usecaseId"], json!(usecase.to_string()));
    assert!(report["brokenAt"]["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
}

#[tokio::test]
async fn an_export_verifies_with_the_readme_script_and_fails_once_altered() {
    let app = TestApp::spawn().await;
    let usecase = app.create_usecase("exported \"ünïcode\" name").await;
    let deployment = app.deploy(usecase, "v1").await;
    app.mark_deployed(usecase, deployment).await;
    let report = sealed_report(&app).await;

    let response = app
        .client
        .get(app.url("/api/audit/export"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-ndjson")
    );
    let export = response.text().await.unwrap_or_default();
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        lines.len() as u64,
        report["events"].as_u64().unwrap_or_default()
    );
    assert_eq!(
        lines.last().map(|l| l["hash"].clone()),
        Some(report["head"].clone())
    );

    let dir = std::env::temp_dir().join(format!("shiplog-export-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/verify-export.py");
    let run = |file: &std::path::Path| {
        std::process::Command::new("python3")
            .arg(script)
            .arg(file)
            .output()
            .unwrap_or_else(|e| panic!("python3: {e}"))
    };
    let good = dir.join("export.ndjson");
    std::fs::write(&good, &export).unwrap_or_else(|e| panic!("{e}"));
    let output = run(&good);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(report["head"].as_str().unwrap_or("?")),
        "{stdout}"
    );

    // One changed character in the second line's payload breaks the chain there.
    let altered = export.replacen("\"v1\"", "\"v2\"", 1);
    assert_ne!(altered, export);
    let bad = dir.join("altered.ndjson");
    std::fs::write(&bad, altered).unwrap_or_else(|e| panic!("{e}"));
    let output = run(&bad);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("chainIndex 2"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_time_filter_finds_an_event_whose_transaction_started_early_but_committed_late() {
    let app = TestApp::spawn().await;
    // `recorded_at` is the transaction's start: this one starts first and writes last.
    let mut early = app.db.pool.begin().await.unwrap_or_else(|e| panic!("{e}"));
    let started: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *early)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let later = app.create_usecase("committed-first").await;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('Usecase', $1, 1, 'UsecaseDeleted', '1.0', '{\"UsecaseDeleted\": {\"at\": \"2026-01-01T00:00:00Z\"}}', '{\"actor\": \"slow-writer\"}')",
    )
    .bind(Uuid::new_v4().to_string())
    .execute(&mut *early)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    early.commit().await.unwrap_or_else(|e| panic!("{e}"));
    sealed_report(&app).await;

    let from = encode(&started.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    let (status, page) = app.get(&format!("/api/events?from={from}")).await;
    assert_eq!(status, 200, "{page}");
    let actors: Vec<&str> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["actor"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        actors,
        ["admin", "slow-writer"],
        "both, in the global order: {page}"
    );
    assert_eq!(page["items"][0]["usecaseId"], json!(later.to_string()));
    assert!(
        page["items"][1]["recordedAt"].as_str() < page["items"][0]["recordedAt"].as_str(),
        "the late writer's recordedAt is the earlier one: {page}"
    );
}

#[tokio::test]
async fn the_chain_table_refuses_update_delete_and_truncate() {
    let app = TestApp::spawn().await;
    app.create_usecase("sealed").await;
    sealed_report(&app).await;
    for (description, sql) in [
        ("update", "UPDATE event_chain SET hash = sha256('x')"),
        ("delete", "DELETE FROM event_chain"),
        ("truncate", "TRUNCATE event_chain"),
    ] {
        let message = sqlx::query(sql)
            .execute(&app.db.pool)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("event_chain table is append-only"),
            "{description} must be refused, got {message:?}"
        );
    }
}
