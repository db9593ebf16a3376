//! The OpenAPI document (generated from the handlers by utoipa) and Redoc,
//! served from a vendored bundle so it renders without internet access.

use crate::routes::{
    audit, deployments, events, health, hooks, metrics, operations, platform, platform_ops,
    stream_tickets, teams, tokens, usecases,
};
use crate::state::AppState;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use shiplog_application::Catalog;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Spec, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_redoc::{Redoc, Servable};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "shiplog",
        description = "Deploys containerised usecases to Kubernetes and keeps every action as an immutable, auditable event. Speaks the PhariaOS usecase API and, on the same usecases, the platform API of named deployments (templates, raw images, ingresses). The applications proxy (any method on `/{usecaseId}/{path…}`, bearer token with usecases:read, 502 problem+json when nothing is deployed) listens on its own address (`--proxy-listen`, default 127.0.0.1:8081) and is therefore not part of this document.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    // Named by the `types` parameters, which utoipa does not collect from.
    components(schemas(
        shiplog_wire::limits::EventTypeName,
        shiplog_wire::secrets::MaskedSecret
    )),
    tags(
        (name = "usecases", description = "Register, list and delete usecases"),
        (name = "deployments", description = "Deploy and undeploy usecases, follow their status"),
        (name = "audit", description = "The ledger: every event, filtered and paged, a usecase's history, live streams (SSE) and the single-use tickets that open them from a browser, and the hash chain"),
        (name = "tokens", description = "API tokens: their scopes, their subject (who owns what they create), teams and expiry (admin). Creating, changing and revoking a token are ledger events (TokenCreated, TokenScopesChanged, TokenRevoked); the secret never is"),
        (name = "teams", description = "Teams own deployments together; their tier bounds how many with billing on. Team changes are ledger events"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "operations", description = "Operate a deployed usecase (restart, config, rollback, auto-update, logs, Kubernetes events, resource usage) and scrape shiplog's own metrics"),
        (name = "hooks", description = "Webhooks other systems call: a registry's push notifications trigger auto-update checks"),
        (name = "platform", description = "The platform API (seed 002) on the same usecases and ledger: named deployments of templates and raw images, their status, ingresses, config, logs, metrics, history, auto-update and Kubernetes events. Invalid input is a 400 here; every problem carries `error`."),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Spec) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("shiplog API token, or OIDC JWT")
                    .description(Some(
                        "A shiplog API token (`POST /api/tokens`; the bootstrap admin token), or, \
                         when `serve` runs with `--oidc-issuer`, a JWT of that identity provider \
                         (RS256 or ES256, checked against its JWKS: issuer, audience, expiry; \
                         `sub` is the actor and owner, the configured claims give teams and \
                         scopes). A JWT whose provider's keys cannot be fetched is answered \
                         503 `identity-provider-unavailable` with Retry-After.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Documents the two answers every route with a body can give, since the body limit
/// and deadline wrap every route (limits.rs): 413 and 408. Added to the finished
/// document rather than named on each route, so that no route with a body can be
/// without them.
struct BodyLimits;

impl Modify for BodyLimits {
    fn modify(&self, openapi: &mut Spec) {
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.post, &mut item.put].into_iter().flatten() {
                if operation.request_body.is_none() {
                    continue;
                }
                let responses = &mut operation.responses.responses;
                responses.entry("408".to_owned()).or_insert_with(|| {
                    problem("The body did not arrive within --body-read-timeout").into()
                });
                responses.entry("413".to_owned()).or_insert_with(|| {
                    problem("The body is larger than --max-body-size allows").into()
                });
            }
        }
    }
}

/// Every documented route, in one router; the spec is derived from the same list,
/// so no route can exist undocumented.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(usecases::create_usecase, usecases::list_usecases))
        .routes(routes!(usecases::get_usecase, usecases::delete_usecase))
        .routes(routes!(
            deployments::request_deployment,
            deployments::list_deployments,
            deployments::undeploy
        ))
        .routes(routes!(deployments::get_deployment))
        .routes(routes!(operations::restart))
        .routes(routes!(operations::get_config, operations::put_config))
        .routes(routes!(
            operations::get_auto_update,
            operations::put_auto_update
        ))
        .routes(routes!(hooks::registry))
        .routes(routes!(operations::rollback))
        .routes(routes!(operations::logs))
        .routes(routes!(operations::stream_logs))
        .routes(routes!(operations::kube_events))
        .routes(routes!(operations::usage))
        .routes(routes!(events::list_events))
        .routes(routes!(events::stream_events))
        .routes(routes!(events::usecase_history))
        .routes(routes!(events::stream_usecase_events))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::export))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::update_token, tokens::revoke_token))
        .routes(routes!(stream_tickets::create_stream_ticket))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(platform::list, platform::create))
        .routes(routes!(platform::deploy_image))
        .routes(routes!(platform::status))
        .routes(routes!(platform::delete))
        .routes(routes!(platform::templates))
        .routes(routes!(platform_ops::restart))
        .routes(routes!(platform_ops::get_config, platform_ops::put_config))
        .routes(routes!(platform_ops::logs))
        .routes(routes!(platform_ops::stream_logs))
        .routes(routes!(platform_ops::metrics))
        .routes(routes!(platform_ops::history))
        .routes(routes!(
            platform_ops::get_auto_update,
            platform_ops::put_auto_update
        ))
        .routes(routes!(platform_ops::events))
        .routes(routes!(teams::create_team, teams::list_teams))
        .routes(routes!(teams::get_team, teams::update_team))
        .routes(routes!(teams::team_usage))
}

/// The router of every documented route and its OpenAPI document, with the answers
/// the layers around every route add ([`BodyLimits`]).
pub fn api_with_spec() -> (Router<AppState>, Spec) {
    let (router, mut spec) = api_router().split_for_parts();
    BodyLimits.modify(&mut spec);
    (router, spec)
}

/// The OpenAPI document as the code defines it, with the built-in templates (checked
/// in as `openapi/openapi.json`).
pub fn spec() -> Spec {
    with_templates(api_with_spec().1, &Catalog::builtin())
}

/// `spec` naming the templates of `catalog` as the only values of
/// `POST /api/deployments`' `template`: the catalog is this installation's
/// (`--templates`), so the served document says which names it accepts.
pub fn with_templates(mut spec: Spec, catalog: &Catalog) -> Spec {
    let body = spec
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("CreateFromTemplateBody"));
    if let Some(RefOr::T(Schema::Object(body))) = body {
        if let Some(RefOr::T(Schema::Object(template))) = body.properties.get_mut("template") {
            template.enum_values = Some(catalog.names().into_iter().map(Into::into).collect());
        }
    }
    spec
}

const REDOC_JS: &[u8] = include_bytes!("../assets/redoc.standalone.js");

/// Redoc's page: the vendored script and system fonts only, no CDN.
const REDOC_HTML: &str = r#"<!DOCTYPE html>
<html>
  <head>
    <title>shiplog API</title>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <style>body { margin: 0; padding: 0; }</style>
  </head>
  <body>
    <div id="redoc-container"></div>
    <script src="/redocs/redoc.standalone.js"></script>
    <script>
      Redoc.init($spec, Object.assign({
        theme: { typography: {
          fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
          headings: { fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" },
          code: { fontFamily: "ui-monospace, 'SFMono-Regular', Menlo, Consolas, monospace" } } }
      }, $config), document.getElementById("redoc-container"));
    </script>
  </body>
</html>
"#;

/// `/openapi.json`, `/redocs` and Redoc's script.
pub fn docs_router(spec: Spec) -> Router<AppState> {
    let json = spec.clone();
    Router::new()
        .route("/openapi.json", get(move || async move { Json(json) }))
        .route(
            "/redocs/redoc.standalone.js",
            get(|| async {
                (
                    [
                        (
                            header::CONTENT_TYPE,
                            "application/javascript; charset=utf-8",
                        ),
                        (header::CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    REDOC_JS,
                )
                    .into_response()
            }),
        )
        .merge(Redoc::with_url("/redocs", spec).custom_html(REDOC_HTML))
}
