//! The OpenAPI document is generated from the code, checked in, and rendered by an offline Redoc.

use crate::helpers::TestApp;
use std::path::PathBuf;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json")
}

/// Fails when openapi/openapi.json differs from what the code generates.
/// Regenerate with `SHIPLOG_UPDATE_OPENAPI=1 cargo nextest run -E 'test(openapi_is_fresh)'`.
#[test]
fn openapi_is_fresh() {
    let generated = shiplog_api::docs::spec()
        .to_pretty_json()
        .unwrap_or_else(|e| panic!("{e}"))
        + "\n";
    if std::env::var_os("SHIPLOG_UPDATE_OPENAPI").is_some() {
        std::fs::write(checked_in(), &generated).unwrap_or_else(|e| panic!("{e}"));
    }
    let on_disk = std::fs::read_to_string(checked_in()).unwrap_or_default();
    assert!(on_disk == generated, "openapi/openapi.json is stale: run SHIPLOG_UPDATE_OPENAPI=1 cargo nextest run -E 'test(openapi_is_fresh)' and commit it");
}

#[tokio::test]
async fn the_spec_and_redoc_are_served_without_any_cdn() {
    let app = TestApp::spawn().await;
    let spec: serde_json::Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["paths"]["/api/usecases/{id}/deployments/{deploymentId}"]["get"].is_object());
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let page = app
        .client
        .get(app.url("/redocs"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap_or_default();
    assert!(
        html.contains(r#"<script src="/redocs/redoc.standalone.js">"#),
        "{html}"
    );
    // The spec is inlined in the page: its problem type URIs are names, not loads.
    let problem_types = crate::problem_types::problem_type("");
    let external = ["https://", "http://"]
        .into_iter()
        .flat_map(|scheme| html.match_indices(scheme))
        .find(|(at, _)| !html[*at..].starts_with(&problem_types));
    assert!(
        external.is_none(),
        "no external script or font may be loaded: {html}"
    );

    let js = app
        .client
        .get(app.url("/redocs/redoc.standalone.js"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(js.status().as_u16(), 200);
    assert!(
        js.text().await.unwrap_or_default().len() > 500_000,
        "the vendored Redoc bundle is served"
    );
}

#[test]
fn every_operation_documents_its_errors_as_problems() {
    let spec = serde_json::to_value(shiplog_api::docs::spec()).unwrap_or_default();
    for (path, operations) in spec["paths"].as_object().into_iter().flatten() {
        for (method, operation) in operations.as_object().into_iter().flatten() {
            let responses = operation["responses"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            // A route any authenticated caller may use (no scope named) cannot answer 403.
            let scoped = operation["security"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|requirement| requirement.as_object().into_iter().flatten())
                .any(|(_, scopes)| scopes.as_array().is_some_and(|s| !s.is_empty()));
            if path.starts_with("/api") {
                for code in ["401", "403", "503"] {
                    if code == "403" && !scoped {
                        continue;
                    }
                    assert!(
                        responses.contains_key(code),
                        "{method} {path} does not document {code}"
                    );
                }
            }
            for (code, response) in responses
                .iter()
                .filter(|(c, _)| c.starts_with('4') || c.starts_with('5'))
            {
                assert!(
                    response["content"]["application/problem+json"].is_object(),
                    "{method} {path} {code} is not documented as problem+json"
                );
            }
        }
    }
}
