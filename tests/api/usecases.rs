//! Registering, listing, showing and deleting usecases.

use crate::helpers::{uuid, TestApp};
use futures::future::join_all;
use serde_json::json;
use std::collections::BTreeSet;

#[tokio::test]
async fn register_answers_201_with_the_phariaos_shape() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post("/api/usecases", json!({"description": "description of your usecase application", "name": "name of your usecase application"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let keys: BTreeSet<&str> = body
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        BTreeSet::from(["id", "name", "description", "createdAt", "deployment"])
    );
    assert_eq!(body["name"], "name of your usecase application");
    assert_eq!(body["deployment"], serde_json::Value::Null);
    // Whole seconds with a Z, as in the seed's "2025-02-05T11:26:11Z".
    let created = body["createdAt"].as_str().unwrap_or_default();
    assert!(
        created.len() == 20 && created.ends_with('Z'),
        "createdAt {created}"
    );
}

#[tokio::test]
async fn a_get_right_after_a_write_sees_it() {
    let app = TestApp::spawn().await;
    for i in 0..10 {
        let id = app.create_usecase(&format!("ryw-{i}")).await;
        let (status, body) = app.get(&format!("/api/usecases/{id}")).await;
        assert_eq!(
            status, 200,
            "usecase {i} not readable right after 201: {body}"
        );
        let deployment = app.deploy(id, "1.0.0").await;
        let (status, body) = app
            .get(&format!("/api/usecases/{id}/deployments/{deployment}"))
            .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("pending")),
            "deployment {i} right after 202: {body}"
        );
    }
}

#[tokio::test]
async fn a_duplicate_name_is_a_409() {
    let app = TestApp::spawn().await;
    app.create_usecase("chat").await;
    let (status, body) = app
        .post(
            "/api/usecases",
            json!({"name": "chat", "description": "again"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["status"], 409);
}

#[tokio::test]
async fn parallel_registrations_of_one_name_give_exactly_one_201() {
    let app = TestApp::spawn().await;
    let attempts = (0..24).map(|_| {
        app.post(
            "/api/usecases",
            json!({"name": "contested", "description": ""}),
        )
    });
    let results = join_all(attempts).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    // Each refusal is a taken name, whether the early check or the reservation's
    // constraint (a registration committed meanwhile) caught it.
    let name_taken = crate::problem_types::problem_type("name-taken");
    let conflicts = results
        .iter()
        .filter(|(s, problem)| *s == 409 && problem["type"] == name_taken)
        .count();
    assert_eq!(
        (created, conflicts),
        (1, 23),
        "statuses: {:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    let (_, page) = app.get("/api/usecases?name=contested").await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
}

#[tokio::test]
async fn list_filters_by_name_and_pages() {
    let app = TestApp::spawn().await;
    for name in ["alpha-one", "alpha-two", "beta", "alpha_three", "100%"] {
        app.create_usecase(name).await;
    }
    let (_, page) = app.get("/api/usecases?name=ALPHA").await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(names, ["alpha-one", "alpha-two", "alpha_three"]);
    // LIKE wildcards in the filter are matched literally.
    let (_, page) = app.get("/api/usecases?name=a_t").await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    let (_, page) = app.get("/api/usecases?name=%25").await;
    assert_eq!(page["items"][0]["name"], "100%");

    let mut seen = Vec::new();
    let mut path = "/api/usecases?limit=2".to_owned();
    loop {
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|u| uuid(&u["id"])),
        );
        match page["nextCursor"].as_str() {
            Some(next) => path = format!("/api/usecases?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "paging must return every usecase once");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 5);
}

#[tokio::test]
async fn unknown_usecases_are_404() {
    let app = TestApp::spawn().await;
    let unknown = uuid::Uuid::new_v4();
    for (description, path) in [
        ("get", format!("/api/usecases/{unknown}")),
        (
            "deployments",
            format!("/api/usecases/{unknown}/deployments"),
        ),
        ("a malformed id", "/api/usecases/not-a-uuid".to_owned()),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 404, "{description}: {body}");
    }
    let (status, _) = app.delete(&format!("/api/usecases/{unknown}")).await;
    assert_eq!(status, 404, "delete of an unknown usecase");
    let (status, _) = app
        .post(
            &format!("/api/usecases/{unknown}/deployments"),
            crate::helpers::deploy_body("1"),
        )
        .await;
    assert_eq!(status, 404, "deploy to an unknown usecase");
}

#[tokio::test]
async fn a_deleted_usecase_is_gone_and_its_name_is_free() {
    let app = TestApp::spawn().await;
    let id = app.create_usecase("short-lived").await;
    let (status, _) = app.delete(&format!("/api/usecases/{id}")).await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&format!("/api/usecases/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = app.delete(&format!("/api/usecases/{id}")).await;
    assert_eq!(status, 404, "a second delete");
    let (status, _) = app
        .post(
            &format!("/api/usecases/{id}/deployments"),
            crate::helpers::deploy_body("1"),
        )
        .await;
    assert_eq!(status, 404, "deploying a deleted usecase");
    let again = app.create_usecase("short-lived").await;
    assert_ne!(again, id);
}
