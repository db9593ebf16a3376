//! Config and rollback: a config change rolls out a new deployment, a rollback
//! restores an earlier one.

use super::{deployed, event_of, event_types, sim};
use crate::cluster::app_on;
use crate::helpers::{uuid, ADMIN_TOKEN};
use serde_json::{json, Value};
use uuid::Uuid;

#[tokio::test]
async fn a_config_change_rolls_out_a_new_deployment_and_a_rollback_restores_the_earlier_one() {
    let sim = sim(true).await;
    let app = app_on(&sim).await;
    let (usecase, d1) = deployed(&app, "configurable", "1.0.0", json!({"MODE": "prod"})).await;

    let (status, config) = app.get(&format!("/api/usecases/{usecase}/config")).await;
    assert_eq!(status, 200);
    assert_eq!(
        config,
        json!({"deploymentId": d1.to_string(), "env": {"MODE": "prod"}})
    );

    let (status, problem) = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/usecases/{usecase}/config"),
            Some(ADMIN_TOKEN),
            Some(json!({"env": {"1BAD": "x"}})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "env.1BAD");

    let (status, accepted) = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/usecases/{usecase}/config"),
            Some(ADMIN_TOKEN),
            Some(json!({"env": {"MODE": "debug", "LOG": "trace"}})),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["basedOn"], d1.to_string());
    let d2 = uuid(&accepted["id"]);
    let view = app.wait_for_status(usecase, d2, "deployed").await;
    assert_eq!(view.config.image.tag, "1.0.0", "same image");
    app.wait_for_status(usecase, d1, "superseded").await;
    let (_, config) = app.get(&format!("/api/usecases/{usecase}/config")).await;
    assert_eq!(config["deploymentId"], d2.to_string());
    assert_eq!(config["env"], json!({"LOG": "trace", "MODE": "debug"}));
    assert_eq!(
        crate::cluster::secret_values(&sim, &format!("sl-{}", d2.simple())),
        [
            ("app.LOG".to_owned(), "trace".to_owned()),
            ("app.MODE".to_owned(), "debug".to_owned())
        ]
        .into(),
        "the new environment is in the new deployment's Secret"
    );
    let change = event_of(&app, usecase, "ConfigChangeRequested").await;
    assert_eq!(
        change["payload"]["ConfigChangeRequested"]["basedOn"],
        d1.to_string()
    );
    assert_eq!(
        change["payload"]["ConfigChangeRequested"]["deploymentId"],
        d2.to_string()
    );

    // Roll back (empty body): the deployment before the current, d1, comes back as d3.
    let response = app
        .client
        .post(app.url(&format!("/api/usecases/{usecase}/rollback")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(accepted["rollbackOf"], d1.to_string());
    let d3 = uuid(&accepted["id"]);
    app.wait_for_status(usecase, d3, "deployed").await;
    let (_, config) = app.get(&format!("/api/usecases/{usecase}/config")).await;
    assert_eq!(config["env"], json!({"MODE": "prod"}));
    let rollback = event_of(&app, usecase, "RollbackRequested").await;
    assert_eq!(
        rollback["payload"]["RollbackRequested"]["rollbackOf"],
        d1.to_string()
    );
    assert_eq!(
        rollback["payload"]["RollbackRequested"]["deploymentId"],
        d3.to_string()
    );

    // Naming a target: back to d2's config.
    let (status, accepted) = app
        .post(
            &format!("/api/usecases/{usecase}/rollback"),
            json!({"deploymentId": d2.to_string()}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["rollbackOf"], d2.to_string());
    app.wait_for_status(usecase, uuid(&accepted["id"]), "deployed")
        .await;

    let pages = app
        .get_pages(&format!("/api/usecases/{usecase}/history?limit=200"))
        .await;
    let types = event_types(&pages);
    let requested_then = |t: &str| {
        types
            .windows(2)
            .any(|w| w[0] == "DeploymentRequested" && w[1] == t)
    };
    assert!(requested_then("ConfigChangeRequested"), "{types:?}");
    assert!(requested_then("RollbackRequested"), "{types:?}");

    // The serving deployment is no rollback target, nor is an unknown one (409: the
    // usecase exists; a 404 would say it does not).
    let (status, _) = app
        .post(
            &format!("/api/usecases/{usecase}/rollback"),
            json!({"deploymentId": accepted["id"]}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = app
        .post(
            &format!("/api/usecases/{usecase}/rollback"),
            json!({"deploymentId": Uuid::new_v4().to_string()}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, problem) = app
        .post(
            &format!("/api/usecases/{usecase}/rollback"),
            json!({"deployment": "x"}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["field"], "deployment");
}
