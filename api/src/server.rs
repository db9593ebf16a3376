//! Assembling and running the server: database, projector, router, graceful shutdown.

use crate::docs::{api_router, docs_router};
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::{HeaderName, Request};
use axum::Router;
use shiplog_application::{Authenticator, Usecases};
use shiplog_infrastructure::db::{connect_and_migrate, DbSetupError};
use shiplog_infrastructure::{PgReadModel, PgTokenStore, PostgresCommandBus, Projector};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::{info, info_span};

/// What `shiplog serve` needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address of the API listener.
    pub listen: SocketAddr,
    /// Postgres URL; the database is created when missing.
    pub database_url: String,
    /// The bootstrap admin token.
    pub admin_token: Option<String>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Database unreachable, or a migration failed.
    #[error(transparent)]
    Database(#[from] DbSetupError),
    /// The listen address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A started server: bound, migrated, projector running; `run` serves until shutdown.
pub struct Server {
    listener: TcpListener,
    router: Router,
    projector: tokio::task::JoinHandle<()>,
}

/// Builds the router over a ready pool (also used by tests that need no listener).
pub fn router(pool: sqlx::PgPool, admin_token: Option<&str>) -> (Router, Arc<Projector>) {
    let projector = Projector::new(pool.clone());
    let read = Arc::new(PgReadModel::new(pool.clone(), projector.clone()));
    let bus = Arc::new(PostgresCommandBus::new(pool.clone()));
    let state = AppState {
        usecases: Arc::new(Usecases::new(bus, read)),
        auth: Arc::new(Authenticator::new(
            Arc::new(PgTokenStore::new(pool.clone())),
            admin_token,
        )),
        pool,
    };
    let (api, spec) = api_router().split_for_parts();
    let x_request_id = HeaderName::from_static("x-request-id");
    let router = api
        .merge(docs_router(spec))
        .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .with_state(state)
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let request_id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                info_span!("request", method = %req.method(), path = %req.uri().path(), request_id)
            }),
        )
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid));
    (router, projector)
}

impl Server {
    /// Connects (creating the database if needed), migrates, starts the projector and binds.
    pub async fn start(settings: &Settings) -> Result<Self, StartError> {
        let pool = connect_and_migrate(&settings.database_url).await?;
        let (router, projector) = router(pool, settings.admin_token.as_deref());
        let projector = tokio::spawn(projector.run());
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: settings.listen,
                    source,
                })?;
        Ok(Self {
            listener,
            router,
            projector,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, std::io::Error> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets requests in progress finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), std::io::Error> {
        if let Ok(addr) = self.listener.local_addr() {
            info!(%addr, "shiplog API listening");
        }
        let result = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        self.projector.abort();
        info!("shiplog stopped");
        result
    }
}
