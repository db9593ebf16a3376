//! Assembling and running the server: database, projector, router, graceful shutdown.

use crate::docs::{api_router, docs_router};
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::{header, HeaderName, HeaderValue, Method, Request};
use axum::Router;
use kube::Client;
use kube_sim::{KubeSim, SimConfig};
use shiplog_application::ProcessManager;
use shiplog_application::{Audit, Authenticator, Usecases};
use shiplog_infrastructure::audit::ChainSealer;
use shiplog_infrastructure::db::{connect_and_migrate, DbSetupError};
use shiplog_infrastructure::kube_cluster::{KubeCluster, KubeSettings};
use shiplog_infrastructure::process_manager::ProcessManagerRunner;
use shiplog_infrastructure::usecase_loader::PgUsecaseLoader;
use shiplog_infrastructure::{
    LiveFeed, PgLedger, PgReadModel, PgTokenStore, PostgresCommandBus, Projector,
};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::{info, info_span, warn};

/// What `shiplog serve` needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address of the API listener.
    pub listen: SocketAddr,
    /// Postgres URL; the database is created when missing.
    pub database_url: String,
    /// The bootstrap admin token.
    pub admin_token: Option<String>,
    /// Which Kubernetes the process manager drives, if any.
    pub cluster: ClusterMode,
    /// Namespace, pull secrets and deadlines for the cluster's objects.
    pub kube: KubeSettings,
    /// A rollout not ready after this long fails the deployment.
    pub rollout_timeout: Duration,
    /// Keep-alives and buffering of the event streams.
    pub streams: StreamSettings,
    /// Browser origins allowed to call the API (CORS); `*` allows any; empty: no CORS headers.
    pub cors_origins: Vec<String>,
}

/// How the Server-Sent Event streams behave.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// An idle stream sends a keep-alive comment this often, so proxies keep it open.
    pub keep_alive: Duration,
    /// How many events a subscriber may fall behind before it is cut off (it can resume).
    pub buffer: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(15),
            buffer: 4096,
        }
    }
}

/// Where deployments go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterMode {
    /// `kube` inside a pod (KUBERNETES_SERVICE_HOST is set), `simulated` elsewhere.
    Auto,
    /// The cluster of the kubeconfig (KUBECONFIG, ~/.kube/config) or the in-cluster config.
    Kube,
    /// The Kubernetes API simulator, started inside this process.
    Simulated,
    /// API only: this process never acts on a cluster (another shiplog process on the same database does).
    None,
}

impl ClusterMode {
    /// What `auto` means here.
    pub fn resolve(self) -> Self {
        match self {
            Self::Auto if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => Self::Kube,
            Self::Auto => Self::Simulated,
            other => other,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Database unreachable, or a migration failed.
    #[error(transparent)]
    Database(#[from] DbSetupError),
    /// The cluster configuration could not be loaded or the simulator not started.
    #[error("cannot set up the cluster connection: {0}")]
    Cluster(String),
    /// A CORS origin is not a valid origin.
    #[error("invalid CORS origin {0:?}: expected scheme://host[:port] or *")]
    CorsOrigin(String),
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
    background: Vec<tokio::task::JoinHandle<()>>,
    /// The in-process simulator, kept alive as long as the server.
    sim: Option<KubeSim>,
    /// Fired at shutdown: ends the event streams.
    stopping: CancellationToken,
}

/// A kube client for `mode`, and the simulator when it runs in-process.
async fn cluster_client(
    mode: ClusterMode,
) -> Result<Option<(Client, Option<KubeSim>)>, StartError> {
    match mode.resolve() {
        ClusterMode::None => {
            warn!("cluster: none; this process does not run the process manager, deployments only move when another shiplog process on this database does");
            Ok(None)
        }
        ClusterMode::Kube => {
            let client = Client::try_default()
                .await
                .map_err(|e| StartError::Cluster(e.to_string()))?;
            warn!("cluster: kube; deploying to the cluster of the kubeconfig or in-cluster configuration");
            Ok(Some((client, None)))
        }
        ClusterMode::Simulated | ClusterMode::Auto => {
            let sim = KubeSim::start(SimConfig::default())
                .await
                .map_err(|e| StartError::Cluster(e.to_string()))?;
            let url = sim
                .url()
                .parse()
                .map_err(|e: axum::http::uri::InvalidUri| StartError::Cluster(e.to_string()))?;
            let client = Client::try_from(kube::Config::new(url))
                .map_err(|e| StartError::Cluster(e.to_string()))?;
            warn!(url = %sim.url(), "cluster: simulated; deployments go to the built-in Kubernetes API simulator, not to a real cluster");
            Ok(Some((client, Some(sim))))
        }
    }
}

/// The parts `router` starts that must run in the background.
pub struct Background {
    /// Feeds the read models.
    pub projector: Arc<Projector>,
    /// Reads the log once and fans new events out to every stream subscriber.
    pub feed: Arc<LiveFeed>,
}

/// The CORS layer for `origins` (`*`: any origin; empty: none, so browsers on other origins are refused).
fn cors(origins: &[String]) -> Result<Option<CorsLayer>, StartError> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| {
                let trimmed = o.trim().trim_end_matches('/');
                if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
                    return Err(StartError::CorsOrigin(o.clone()));
                }
                HeaderValue::from_str(trimmed).map_err(|_| StartError::CorsOrigin(o.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                header::RETRY_AFTER,
                header::LOCATION,
            ])
            .max_age(Duration::from_secs(600)),
    ))
}

/// Builds the router over a ready pool (also used by tests that need no listener).
/// Event streams end when `stopping` fires, so a graceful shutdown is not held up by them.
pub fn router(
    pool: sqlx::PgPool,
    settings: &Settings,
    stopping: CancellationToken,
) -> Result<(Router, Background), StartError> {
    let projector = Projector::new(pool.clone());
    let feed = LiveFeed::new(pool.clone(), settings.streams.buffer);
    let read = Arc::new(PgReadModel::new(pool.clone(), projector.clone()));
    let bus = Arc::new(PostgresCommandBus::new(pool.clone()));
    let state = AppState {
        usecases: Arc::new(Usecases::new(bus, read)),
        audit: Arc::new(Audit::new(Arc::new(PgLedger::new(
            pool.clone(),
            feed.clone(),
        )))),
        auth: Arc::new(Authenticator::new(
            Arc::new(PgTokenStore::new(pool.clone())),
            settings.admin_token.as_deref(),
        )),
        pool,
        keep_alive: settings.streams.keep_alive,
        stopping,
    };
    let (api, spec) = api_router().split_for_parts();
    let x_request_id = HeaderName::from_static("x-request-id");
    let mut router = api
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
    if let Some(cors) = cors(&settings.cors_origins)? {
        // Outermost, so that preflights are answered before authentication.
        router = router.layer(cors);
    }
    Ok((router, Background { projector, feed }))
}

impl Server {
    /// Connects (creating the database if needed), migrates, connects to the
    /// cluster `settings.cluster` names, starts the projector and the process manager, and binds.
    pub async fn start(settings: &Settings) -> Result<Self, StartError> {
        let cluster = cluster_client(settings.cluster).await?;
        Self::start_with(settings, cluster).await
    }

    /// As `start`, with a kube client of the caller's (tests point it at their own simulator).
    pub async fn start_with_client(
        settings: &Settings,
        client: Client,
    ) -> Result<Self, StartError> {
        Self::start_with(settings, Some((client, None))).await
    }

    async fn start_with(
        settings: &Settings,
        cluster: Option<(Client, Option<KubeSim>)>,
    ) -> Result<Self, StartError> {
        let pool = connect_and_migrate(&settings.database_url).await?;
        let stopping = CancellationToken::new();
        let (router, parts) = router(pool.clone(), settings, stopping.clone())?;
        let mut background = vec![
            tokio::spawn(parts.projector.run()),
            tokio::spawn(parts.feed.run()),
            tokio::spawn(ChainSealer::new(pool.clone()).run()),
        ];
        let mut sim = None;
        if let Some((client, simulator)) = cluster {
            sim = simulator;
            let cluster = Arc::new(KubeCluster::new(client, settings.kube.clone()));
            let pm = ProcessManager::new(
                Arc::new(PostgresCommandBus::new(pool.clone())),
                Arc::new(PgUsecaseLoader::new(pool.clone())),
                cluster,
                settings.rollout_timeout,
            );
            background.push(tokio::spawn(
                ProcessManagerRunner::new(pool, Arc::new(pm)).run(),
            ));
        }
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
            background,
            sim,
            stopping,
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
        let stopping = self.stopping.clone();
        let result = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                // Streams never end by themselves; end them so that shutdown can finish.
                stopping.cancel();
            })
            .await;
        for task in self.background {
            task.abort();
        }
        if let Some(sim) = self.sim {
            sim.shutdown().await;
        }
        info!("shiplog stopped");
        result
    }
}
