//! Owners, teams and tier limits: who may see and change which deployments, the
//! team a request acts for, the tier limit under concurrency, usage from the
//! ledger, and team and ownership changes in the audit trail.

use crate::helpers::{uuid, TestApp, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use uuid::Uuid;

/// A token of `subject` with every scope but admin, in `teams`.
async fn token(app: &TestApp, subject: &str, teams: &[Uuid]) -> String {
    let (status, body) = app
        .post(
            "/api/tokens",
            json!({
                "name": format!("{subject}-{}", Uuid::new_v4().simple()),
                "subject": subject,
                "teams": teams,
                "scopes": ["usecases:read", "usecases:write", "deployments:read", "deployments:write"],
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap_or_default().to_owned()
}

/// Creates a team and returns its id.
async fn team(app: &TestApp, name: &str, tier: &str) -> Uuid {
    let (status, body) = app
        .post("/api/teams", json!({"name": name, "tier": tier}))
        .await;
    assert_eq!(status, 201, "{body}");
    uuid(&body["id"])
}

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    app.send(method, path, Some(token), body).await
}

/// Creates a platform deployment as `token` (in `team` when given); returns (status, body).
async fn create(app: &TestApp, token: &str, team: Option<Uuid>) -> (u16, Value) {
    let path = match team {
        Some(team) => format!("/api/deployments?team_id={team}"),
        None => "/api/deployments".to_owned(),
    };
    call(
        app,
        token,
        Method::POST,
        &path,
        Some(json!({"template": "nginx"})),
    )
    .await
}

/// The names `token` sees in `GET /api/deployments` (with `query`).
async fn names(app: &TestApp, token: &str, query: &str) -> BTreeSet<String> {
    let (status, list) = call(
        app,
        token,
        Method::GET,
        &format!("/api/deployments{query}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["name"].as_str().map(str::to_owned))
        .collect()
}

fn refused_for_ownership(status: u16, body: &Value, description: &str) {
    assert_eq!(status, 403, "{description}: {body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("ownership verification failed")),
        "{description}: {body}"
    );
}

#[tokio::test]
async fn two_subjects_cannot_see_or_change_each_others_deployments_while_an_admin_can() {
    let app = TestApp::spawn().await;
    let alice = token(&app, "alice", &[]).await;
    let bob = token(&app, "bob", &[]).await;
    let (status, created) = create(&app, &alice, None).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["owner"], "alice");
    assert_eq!(created["teamId"], Value::Null, "personal");
    let name = created["name"].as_str().unwrap_or_default().to_owned();
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let (status, pharia) = call(
        &app,
        &alice,
        Method::POST,
        "/api/usecases",
        Some(json!({"name": "alice's usecase"})),
    )
    .await;
    assert_eq!(status, 201, "{pharia}");
    let pharia = pharia["id"].as_str().unwrap_or_default().to_owned();

    assert!(names(&app, &alice, "").await.contains(&name));
    assert!(
        !names(&app, &bob, "").await.contains(&name),
        "bob does not see it"
    );
    let (_, usecases) = call(&app, &bob, Method::GET, "/api/usecases", None).await;
    assert_eq!(usecases["items"], json!([]), "nor in the PhariaOS listing");

    let by_name = |path: &str| path.replace("NAME", &name).replace("ID", &id);
    let cases = [
        (
            "status",
            Method::GET,
            by_name("/api/deployments/status?name=NAME"),
            None,
        ),
        (
            "config",
            Method::GET,
            by_name("/api/deployments/config?name=NAME"),
            None,
        ),
        (
            "history",
            Method::GET,
            by_name("/api/deployments/NAME/history"),
            None,
        ),
        (
            "auto-update",
            Method::GET,
            by_name("/api/deployments/auto-update?name=NAME"),
            None,
        ),
        (
            "delete",
            Method::POST,
            "/api/deployments/delete".to_owned(),
            Some(json!({"deployment_name": name})),
        ),
        (
            "restart",
            Method::POST,
            "/api/deployments/restart".to_owned(),
            Some(json!({"deployment_name": name})),
        ),
        (
            "config change",
            Method::PUT,
            "/api/deployments/config".to_owned(),
            Some(json!({"deployment_name": name, "configData": {}})),
        ),
        (
            "PhariaOS read",
            Method::GET,
            by_name("/api/usecases/ID"),
            None,
        ),
        (
            "PhariaOS deploy",
            Method::POST,
            by_name("/api/usecases/ID/deployments"),
            Some(crate::helpers::deploy_body("2")),
        ),
        (
            "PhariaOS deployments",
            Method::GET,
            by_name("/api/usecases/ID/deployments"),
            None,
        ),
        (
            "PhariaOS undeploy",
            Method::DELETE,
            by_name("/api/usecases/ID/deployments"),
            None,
        ),
        (
            "PhariaOS delete",
            Method::DELETE,
            by_name("/api/usecases/ID"),
            None,
        ),
        (
            "PhariaOS history",
            Method::GET,
            by_name("/api/usecases/ID/history"),
            None,
        ),
        (
            "a PhariaOS usecase",
            Method::GET,
            format!("/api/usecases/{pharia}"),
            None,
        ),
    ];
    for (description, method, path, body) in cases {
        let (status, answer) = call(&app, &bob, method.clone(), &path, body.clone()).await;
        refused_for_ownership(status, &answer, &format!("bob: {description}"));
        // The owner and an admin are let through (whatever the operation then says).
        let (status, answer) = call(
            &app,
            &alice,
            Method::GET,
            &by_name("/api/deployments/status?name=NAME"),
            None,
        )
        .await;
        assert_eq!(status, 200, "alice reads her own: {answer}");
        let (status, answer) = call(&app, ADMIN_TOKEN, method, &path, body).await;
        assert_ne!(status, 403, "admin: {description}: {answer}");
    }
    assert!(
        names(&app, ADMIN_TOKEN, "").await.contains(&name),
        "an admin sees all"
    );
}

#[tokio::test]
async fn team_members_share_deployments_and_team_id_filters() {
    let app = TestApp::spawn().await;
    let acme = team(&app, "acme", "enterprise").await;
    let globex = team(&app, "globex", "enterprise").await;
    let carol = token(&app, "carol", &[acme]).await;
    let dave = token(&app, "dave", &[acme, globex]).await;
    let erin = token(&app, "erin", &[globex]).await;

    // Carol's only team owns what she creates.
    let (_, by_carol) = create(&app, &carol, None).await;
    assert_eq!(by_carol["teamId"], acme.to_string());
    let carols = by_carol["name"].as_str().unwrap_or_default().to_owned();
    // Dave has two teams: without team_id his creation is personal.
    let (_, personal) = create(&app, &dave, None).await;
    assert_eq!(personal["teamId"], Value::Null);
    let (status, for_globex) = create(&app, &dave, Some(globex)).await;
    assert_eq!(status, 201, "{for_globex}");
    let globexs = for_globex["name"].as_str().unwrap_or_default().to_owned();

    let (status, _) = call(
        &app,
        &dave,
        Method::GET,
        &format!("/api/deployments/status?name={carols}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "a member of acme reads acme's");
    let (status, answer) = call(
        &app,
        &erin,
        Method::GET,
        &format!("/api/deployments/status?name={carols}"),
        None,
    )
    .await;
    refused_for_ownership(status, &answer, "erin is not in acme");
    let (status, _) = call(
        &app,
        &erin,
        Method::GET,
        &format!("/api/deployments/status?name={globexs}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "erin reads globex's, created by dave");

    assert_eq!(
        names(&app, &dave, &format!("?team_id={acme}")).await,
        BTreeSet::from([carols.clone()]),
        "team_id keeps acme's only"
    );
    assert_eq!(
        names(&app, ADMIN_TOKEN, &format!("?team_id={globex}")).await,
        BTreeSet::from([globexs.clone()])
    );
    let (status, answer) = call(
        &app,
        &erin,
        Method::GET,
        &format!("/api/deployments?team_id={acme}"),
        None,
    )
    .await;
    refused_for_ownership(status, &answer, "a non-member filtering by acme");
    let (status, answer) = create(&app, &erin, Some(acme)).await;
    refused_for_ownership(status, &answer, "a non-member creating for acme");
    let (status, answer) = call(
        &app,
        &dave,
        Method::GET,
        &format!("/api/deployments?team_id={}", Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(status, 404, "an unknown team: {answer}");
    let (status, answer) = call(
        &app,
        &dave,
        Method::GET,
        "/api/deployments?team_id=acme",
        None,
    )
    .await;
    assert_eq!(status, 400, "team_id is an id: {answer}");

    // The PhariaOS API: the same rules.
    let (status, usecase) = call(
        &app,
        &carol,
        Method::POST,
        "/api/usecases",
        Some(json!({"name": "acme usecase"})),
    )
    .await;
    assert_eq!(status, 201, "{usecase}");
    let id = usecase["id"].as_str().unwrap_or_default();
    let (status, _) = call(
        &app,
        &dave,
        Method::GET,
        &format!("/api/usecases/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = call(
        &app,
        &erin,
        Method::GET,
        &format!("/api/usecases/{id}"),
        None,
    )
    .await;
    refused_for_ownership(status, &answer, "PhariaOS read by a non-member");
    let (_, listed) = call(
        &app,
        &dave,
        Method::GET,
        &format!("/api/usecases?team_id={acme}"),
        None,
    )
    .await;
    let listed: Vec<&str> = listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert!(
        listed.contains(&"acme usecase") && listed.contains(&carols.as_str()),
        "{listed:?}"
    );

    // Teams as their members see them.
    let (_, teams) = call(&app, &erin, Method::GET, "/api/teams", None).await;
    let visible: Vec<&str> = teams
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(visible, ["globex"]);
    let (status, _) = call(
        &app,
        &erin,
        Method::GET,
        &format!("/api/teams/{acme}"),
        None,
    )
    .await;
    assert_eq!(status, 403);

    // A token's teams must exist.
    let (status, problem) = app
        .post(
            "/api/tokens",
            json!({"name": "ghost", "scopes": ["usecases:read"], "teams": [Uuid::new_v4()]}),
        )
        .await;
    assert_eq!(status, 404, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("teams[0]")),
        "{problem}"
    );
}

#[tokio::test]
async fn with_billing_a_free_team_gets_one_deployment_and_twenty_parallel_creates_give_one() {
    let app = TestApp::spawn_configured(|s| s.billing.enabled = true).await;
    let small = team(&app, "small", "free").await;
    let member = token(&app, "frank", &[small]).await;
    let (status, first) = create(&app, &member, None).await;
    assert_eq!(status, 201, "{first}");
    let (status, second) = create(&app, &member, None).await;
    assert_eq!(status, 403, "{second}");
    assert!(
        second["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Deployment limit reached")),
        "the seed's words: {second}"
    );
    // The PhariaOS API counts against the same limit: a usecase is a deployment.
    let (status, pharia) = call(
        &app,
        &member,
        Method::POST,
        "/api/usecases",
        Some(json!({"name": "one too many"})),
    )
    .await;
    assert_eq!(status, 403, "{pharia}");

    let crowded = team(&app, "crowded", "free").await;
    let racer = token(&app, "racer", &[crowded]).await;
    let racers = (0..20).map(|_| {
        let app = &app;
        let racer = racer.clone();
        async move { create(app, &racer, None).await }
    });
    let outcomes = futures::future::join_all(racers).await;
    let created = outcomes.iter().filter(|(s, _)| *s == 201).count();
    let limited = outcomes
        .iter()
        .filter(|(s, b)| {
            *s == 403
                && b["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("Deployment limit reached"))
        })
        .count();
    assert_eq!((created, limited), (1, 19), "{outcomes:?}");
    let (_, usage) = call(
        &app,
        ADMIN_TOKEN,
        Method::GET,
        &format!("/api/teams/{crowded}/usage"),
        None,
    )
    .await;
    assert_eq!(
        (
            usage["created"].as_u64(),
            usage["running"].as_u64(),
            usage["limit"].as_u64(),
            usage["billing"].as_bool()
        ),
        (Some(1), Some(1), Some(1), Some(true)),
        "{usage}"
    );

    // Personal deployments share --personal-tier's limit (free: one).
    let solo = token(&app, "solo", &[]).await;
    let (status, _) = create(&app, &solo, None).await;
    assert_eq!(status, 201);
    let (status, answer) = create(&app, &solo, None).await;
    assert_eq!(status, 403, "{answer}");
}

#[tokio::test]
async fn a_tier_change_takes_effect_at_once_and_a_deletion_frees_room() {
    let app = TestApp::spawn_configured(|s| s.billing.enabled = true).await;
    let growing = team(&app, "growing", "free").await;
    let member = token(&app, "gina", &[growing]).await;
    let register = |name: &'static str| {
        let app = &app;
        let member = member.clone();
        async move {
            call(
                app,
                &member,
                Method::POST,
                "/api/usecases",
                Some(json!({"name": name})),
            )
            .await
        }
    };
    let (status, first) = register("first").await;
    assert_eq!(status, 201, "{first}");
    let (status, _) = register("second").await;
    assert_eq!(status, 403, "free: one");

    let (status, upgraded) = app
        .send(
            Method::PUT,
            &format!("/api/teams/{growing}"),
            Some(ADMIN_TOKEN),
            Some(json!({"tier": "business"})),
        )
        .await;
    assert_eq!(
        (status, upgraded["tier"].as_str()),
        (200, Some("business")),
        "{upgraded}"
    );
    let (status, second) = register("second").await;
    assert_eq!(status, 201, "business at once: {second}");

    let (status, _) = app
        .send(
            Method::PUT,
            &format!("/api/teams/{growing}"),
            Some(ADMIN_TOKEN),
            Some(json!({"tier": "free"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = register("third").await;
    assert_eq!(status, 403, "back on free, with two");
    for usecase in [&first, &second] {
        let (status, _) = call(
            &app,
            &member,
            Method::DELETE,
            &format!(
                "/api/usecases/{}",
                usecase["id"].as_str().unwrap_or_default()
            ),
            None,
        )
        .await;
        assert_eq!(status, 204);
    }
    let (status, third) = register("third").await;
    assert_eq!(status, 201, "deleted ones count no more: {third}");
}

#[tokio::test]
async fn usage_over_a_range_matches_the_ledger() {
    let app = TestApp::spawn().await;
    let books = team(&app, "books", "business").await;
    let member = token(&app, "hank", &[books]).await;
    let mut ids = Vec::new();
    for name in ["u1", "u2", "u3", "u4"] {
        let (status, body) = call(
            &app,
            &member,
            Method::POST,
            "/api/usecases",
            Some(json!({"name": name})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap_or_default().to_owned());
    }
    // Someone else's usecase is not the team's.
    let other = token(&app, "ivy", &[]).await;
    let (status, _) = call(
        &app,
        &other,
        Method::POST,
        "/api/usecases",
        Some(json!({"name": "elsewhere"})),
    )
    .await;
    assert_eq!(status, 201);
    for id in &ids[..2] {
        let (status, _) = call(
            &app,
            &member,
            Method::DELETE,
            &format!("/api/usecases/{id}"),
            None,
        )
        .await;
        assert_eq!(status, 204);
    }

    // What the ledger says, from the audit trail.
    let (_, page) = app
        .get("/api/events?types=UsecaseRegistered,UsecaseDeleted&limit=200")
        .await;
    let events: Vec<Value> = page["items"].as_array().cloned().unwrap_or_default();
    let team_usecases: BTreeSet<String> = events
        .iter()
        .filter(|e| e["payload"]["UsecaseRegistered"]["team"] == books.to_string())
        .filter_map(|e| e["usecaseId"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(team_usecases.len(), 4);
    let times: Vec<String> = events
        .iter()
        .filter_map(|e| e["recordedAt"].as_str().map(str::to_owned))
        .collect();
    let at = |i: usize| times[i].clone();
    let count = |kind: &str, from: &str, to: &str| {
        events
            .iter()
            .filter(|e| {
                e["type"] == kind
                    && team_usecases.contains(e["usecaseId"].as_str().unwrap_or_default())
            })
            .filter(|e| {
                let t = e["recordedAt"].as_str().unwrap_or_default();
                t >= from && t < to
            })
            .count() as u64
    };
    let running = |to: &str| {
        let created = count("UsecaseRegistered", "0000", to);
        created - count("UsecaseDeleted", "0000", to)
    };
    // Ranges: everything; up to the third creation; from the second creation to the first deletion.
    let ranges = [
        (
            "0000-01-01T00:00:00Z".to_owned(),
            "9999-01-01T00:00:00Z".to_owned(),
        ),
        ("0000-01-01T00:00:00Z".to_owned(), at(2)),
        (at(1), at(5)),
        (at(5), "9999-01-01T00:00:00Z".to_owned()),
    ];
    for (from, to) in ranges {
        let path = format!(
            "/api/teams/{books}/usage?from={}&to={}",
            from.replace('+', "%2B"),
            to.replace('+', "%2B")
        );
        let (status, usage) = call(&app, &member, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {usage}");
        assert_eq!(
            (
                usage["created"].as_u64(),
                usage["deleted"].as_u64(),
                usage["running"].as_u64()
            ),
            (
                Some(count("UsecaseRegistered", &from, &to)),
                Some(count("UsecaseDeleted", &from, &to)),
                Some(running(&to))
            ),
            "[{from}, {to}): {usage}"
        );
    }
    let (status, usage) = call(
        &app,
        &member,
        Method::GET,
        &format!("/api/teams/{books}/usage"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            usage["created"].as_u64(),
            usage["deleted"].as_u64(),
            usage["running"].as_u64()
        ),
        (Some(4), Some(2), Some(2)),
        "{usage}"
    );
    let (status, answer) = call(
        &app,
        &other,
        Method::GET,
        &format!("/api/teams/{books}/usage"),
        None,
    )
    .await;
    refused_for_ownership(status, &answer, "usage for a non-member");
}

#[tokio::test]
async fn every_team_and_ownership_change_is_an_event_in_the_audit_trail() {
    let app = TestApp::spawn().await;
    let id = team(&app, "audited", "free").await;
    let (status, _) = app
        .send(
            Method::PUT,
            &format!("/api/teams/{id}"),
            Some(ADMIN_TOKEN),
            Some(json!({"name": "audited corp", "tier": "enterprise"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, again) = app
        .send(
            Method::PUT,
            &format!("/api/teams/{id}"),
            Some(ADMIN_TOKEN),
            Some(json!({"name": "audited corp", "tier": "enterprise"})),
        )
        .await;
    assert_eq!(status, 200, "unchanged is fine: {again}");
    let (_, page) = app.get(&format!("/api/events?usecase={id}")).await;
    let trail: Vec<(String, String, Value)> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["actor"].as_str().unwrap_or_default().to_owned(),
                e["payload"].clone(),
            )
        })
        .collect();
    let kinds: Vec<&str> = trail.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(
        kinds,
        ["TeamCreated", "TeamRenamed", "TeamTierChanged"],
        "nothing for the unchanged update"
    );
    assert!(trail.iter().all(|(_, actor, _)| actor == "admin"));
    assert_eq!(trail[1].2["TeamRenamed"]["from"], "audited");
    assert_eq!(
        trail[2].2["TeamTierChanged"],
        json!({"from": "free", "tier": "enterprise", "at": trail[2].2["TeamTierChanged"]["at"]})
    );
    let (_, page) = app.get("/api/events?types=TeamTierChanged").await;
    assert_eq!(page["items"][0]["aggregateType"], "Team");

    // Ownership is part of the usecase's first event, for both APIs.
    let member = token(&app, "jill", &[id]).await;
    let (_, usecase) = call(
        &app,
        &member,
        Method::POST,
        "/api/usecases",
        Some(json!({"name": "owned"})),
    )
    .await;
    let (_, history) = app
        .get(&format!(
            "/api/usecases/{}/history",
            usecase["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(
        history["items"][0]["payload"]["UsecaseRegistered"]["owner"],
        "jill"
    );
    assert_eq!(
        history["items"][0]["payload"]["UsecaseRegistered"]["team"],
        id.to_string()
    );

    // Duplicate names and bad input.
    let (status, _) = app
        .post("/api/teams", json!({"name": "audited corp"}))
        .await;
    assert_eq!(status, 409, "team names are unique");
    let (status, problem) = app
        .post("/api/teams", json!({"name": "x", "tier": "gold"}))
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (422, Some("tier")),
        "{problem}"
    );
    let (status, _) = call(
        &app,
        &member,
        Method::POST,
        "/api/teams",
        Some(json!({"name": "mine"})),
    )
    .await;
    assert_eq!(status, 403, "teams are an admin's to create");
}

#[tokio::test]
async fn the_applications_proxy_lets_only_owners_reach_an_application() {
    let sim = crate::cluster::sim_with(std::time::Duration::from_millis(100), true).await;
    let app = crate::platform::platform_app(&sim, |_| {}).await;
    let alice = token(&app, "alice", &[]).await;
    let bob = token(&app, "bob", &[]).await;
    let (status, created) = create(&app, &alice, None).await;
    assert_eq!(status, 201, "{created}");
    let name = created["name"].as_str().unwrap_or_default();
    crate::platform::wait_for(&app, name, "Ready").await;
    let url = format!(
        "{}/{}/hello",
        app.proxy_base,
        created["id"].as_str().unwrap_or_default()
    );
    for (who, token, status) in [
        ("the owner", &alice, 200),
        ("another subject", &bob, 403),
        ("an admin", &ADMIN_TOKEN.to_owned(), 200),
    ] {
        let response = app
            .client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status().as_u16(), status, "{who}");
    }
    let response = app
        .client
        .get(format!("{}/{}/hello", app.proxy_base, Uuid::new_v4()))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        response.status().as_u16(),
        502,
        "an unknown usecase is no application"
    );
}
