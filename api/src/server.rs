//! Assembling and running the server: database, projector, router, graceful shutdown.

use crate::console::session::{resolve_session, ConsoleSettings};
use crate::docs::{api_with_spec, docs_router};
use crate::error::ApiError;
use crate::http_server::{serve, ConnectionSettings};
use crate::limits::{checked, RequestLimits};
use crate::proxy::{proxy_router, ProxyState, Upstream};
use crate::state::AppState;
use crate::stream_slots::StreamSlots;
use crate::telemetry::{record_http, record_proxy};
use axum::http::{header, HeaderName, HeaderValue, Method, Request};
use axum::middleware;
use axum::Router;
use kube::Client;
#[cfg(feature = "sim")]
use kube_sim::{Faults, KubeSim, SimConfig};
use shiplog_application::auto_update::{RegistryHooks, Watcher, WatcherSettings};
use shiplog_application::oidc::Oidc;
use shiplog_application::stream_tickets::DEFAULT_TICKET_TTL;
use shiplog_application::{
    Access, Audit, Authenticator, BillingSettings, Catalog, ClusterInsight, Operations, Platform,
    Sessions, StreamTickets, Teams, Usecases,
};
use shiplog_application::{ImageResolver, NoResolution, NoVault, ProcessManager, SecretVault};
use shiplog_domain::Usecase;
use shiplog_infrastructure::audit::ChainSealer;
use shiplog_infrastructure::auto_update::{AutoUpdateRunner, PgCheckStore};
use shiplog_infrastructure::db::{connect_and_migrate_with, DbSetupError};
use shiplog_infrastructure::event_store::CachedEventStore;
use shiplog_infrastructure::image_resolver::{PullSecrets, RegistryResolver, RegistrySettings};
use shiplog_infrastructure::kube_calls::KubeCalls;
use shiplog_infrastructure::kube_cluster::{KubeCluster, KubeSettings};
use shiplog_infrastructure::oidc::{JwksVerifier, OidcSettings, OidcSetupError, PgTokenIdentities};
use shiplog_infrastructure::process_manager::ProcessManagerRunner;
use shiplog_infrastructure::secrets::{MasterKey, MasterKeyError, PgVault};
use shiplog_infrastructure::upstream::ApiServerHttp;
use shiplog_infrastructure::usecase_loader::PgUsecaseLoader;
use shiplog_infrastructure::{
    ClusterRetries, LiveFeed, MeteredCommandBus, PgLedger, PgReadModel, PgSessionStore,
    PgTicketStore, PgTokenStore, PostgresCommandBus, PostgresTeamBus, Projector, Telemetry,
};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};
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
    /// Address of the applications proxy's listener.
    pub proxy_listen: SocketAddr,
    /// Browser origins allowed to call applications through the proxy; `*` allows any.
    pub proxy_cors_origins: Vec<String>,
    /// The templates `POST /api/deployments` creates from.
    pub catalog: Catalog,
    /// Where a form post to `POST /api/deployments/delete` is redirected.
    pub deployments_page: String,
    /// Where the simulated cluster's ingress controller listens (simulated mode only);
    /// the URLs of public deployments then carry its port.
    pub ingress_listen: SocketAddr,
    /// Whether deployments are bounded by tier, and how far.
    pub billing: BillingSettings,
    /// Whether image tags are resolved to digests when a deployment starts.
    pub resolve_digests: ResolveDigests,
    /// Registries (`HOST[:PORT]`) spoken to over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// How often the auto-update watcher checks, and its budget per registry.
    pub auto_update: WatcherSettings,
    /// Refuse changes that give no reason (`X-Shiplog-Reason`).
    pub require_reason: bool,
    /// Bounds on request bodies, slow clients and streams per token.
    pub limits: RequestLimits,
    /// The API-server faults the embedded simulator injects (simulated mode only).
    pub sim_faults: SimFaults,
    /// The OIDC identity provider whose JWTs are accepted beside API tokens; `None`: off.
    pub oidc: Option<OidcSettings>,
    /// The web console's sessions and cookies.
    pub console: ConsoleSettings,
    /// Where the master key of secret values comes from.
    pub secret_key: SecretKeySource,
}

/// Where the master key that wraps the per-usecase data keys comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretKeySource {
    /// Read from this file (`--secret-key-file`): 32 bytes, raw, hex or base64.
    File(std::path::PathBuf),
    /// Generated for the embedded default: kept in this file (created when missing),
    /// or, with `None`, in memory only (what it sealed is lost with the process).
    Generated(Option<std::path::PathBuf>),
    /// No master key: requests with secret values are refused (503
    /// `secrets-unavailable`) rather than recorded in clear.
    None,
}

impl SecretKeySource {
    /// The vault this source gives over `pool`, saying loudly when its key is generated
    /// or missing.
    fn vault(&self, pool: &sqlx::PgPool) -> Result<Arc<dyn SecretVault>, StartError> {
        let master = match self {
            Self::File(path) => {
                let key = MasterKey::from_file(path)?;
                info!(path = %path.display(), master_key = %key.fingerprint(), "secrets: master key from --secret-key-file");
                key
            }
            Self::Generated(Some(path)) => {
                let (key, created) = MasterKey::generated(path)?;
                warn!(
                    path = %path.display(),
                    master_key = %key.fingerprint(),
                    created,
                    "SECRETS: NO --secret-key-file GIVEN: secret values are sealed under a master key GENERATED for this data directory and kept in this file.                      Back it up with the database: without it no secret value can ever be opened again.                      Anyone who reads it and the database reads every secret. Give --secret-key-file outside development"
                );
                key
            }
            Self::Generated(None) => {
                let key = MasterKey::ephemeral();
                warn!(master_key = %key.fingerprint(), "SECRETS: NO --secret-key-file GIVEN: secret values are sealed under a master key kept IN MEMORY ONLY; after a restart they cannot be opened again");
                key
            }
            Self::None => {
                warn!("SECRETS: NO MASTER KEY (--secret-key-file / SHIPLOG_SECRET_KEY_FILE): requests with secret values are refused (503 secrets-unavailable), never recorded in clear");
                return Ok(Arc::new(NoVault));
            }
        };
        Ok(Arc::new(PgVault::new(pool.clone(), master)))
    }
}

/// API-server faults for the embedded simulator to inject, so that shiplog can be tried
/// against an unreliable cluster (see `kube_sim::Faults`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SimFaults {
    /// The probability (0 to 1) that a request to the simulator fails; 0: none.
    pub rate: f64,
    /// Seeds the faults' random sequence; `None`: a random seed, logged so that the run
    /// can be repeated.
    pub seed: Option<u64>,
}

impl SimFaults {
    /// The seed to use: the one given, else a random one.
    pub fn seed_or_random(&self) -> u64 {
        self.seed.unwrap_or_else(rand::random)
    }
}

/// When the process manager pins a deployment's image tag to a manifest digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResolveDigests {
    /// `always` against a real cluster (`--cluster kube`, or `auto` inside a pod); in
    /// simulated mode a registry that cannot be reached is skipped (the seeds' made-up
    /// registries), while one that answers is resolved.
    Auto,
    /// Every tag is resolved; a registry that cannot answer fails the deployment.
    Always,
    /// No tag is resolved: pods run images by tag, as before digests.
    Never,
}

impl ResolveDigests {
    /// The resolver this setting means under `cluster`, reading pull secrets with `secrets`.
    fn resolver(
        self,
        cluster: ClusterMode,
        insecure: &[String],
        secrets: PullSecrets,
    ) -> Arc<dyn ImageResolver> {
        let skip_unreachable = match self {
            Self::Never => return Arc::new(NoResolution),
            Self::Always => false,
            Self::Auto => cluster.resolve() != ClusterMode::Kube,
        };
        let settings = RegistrySettings {
            insecure: insecure.to_vec(),
            skip_unreachable,
        };
        Arc::new(RegistryResolver::new(settings, Some(secrets)))
    }
}

/// How the Server-Sent Event streams behave.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// An idle stream sends a keep-alive comment this often, so proxies keep it open.
    pub keep_alive: Duration,
    /// How many events a subscriber may fall behind before it is cut off (it can resume).
    pub buffer: usize,
    /// How long a stream ticket (`POST /api/stream-tickets`) stays valid if unused.
    pub ticket_ttl: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(15),
            buffer: 4096,
            ticket_ttl: DEFAULT_TICKET_TTL,
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
    /// The master key file cannot be read or is not a key.
    #[error(transparent)]
    SecretKey(#[from] MasterKeyError),
    /// The cluster configuration could not be loaded or the simulator not started.
    #[error("cannot set up the cluster connection: {0}")]
    Cluster(String),
    /// The OIDC settings cannot be used.
    #[error(transparent)]
    Oidc(#[from] OidcSetupError),
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
    proxy_listener: TcpListener,
    proxy: Router,
    background: Vec<tokio::task::JoinHandle<()>>,
    /// The in-process simulator, kept alive as long as the server.
    sim: Option<Simulator>,
    /// Fired at shutdown: ends the event streams.
    stopping: CancellationToken,
    /// How long a client may take to send a request's headers.
    header_read_timeout: Duration,
}

/// The simulator a server runs in-process and stops with it.
#[cfg(feature = "sim")]
type Simulator = KubeSim;

/// The simulator a server runs in-process: none in a build without the `sim` feature, so this
/// type has no values.
#[cfg(not(feature = "sim"))]
enum Simulator {}

#[cfg(not(feature = "sim"))]
impl Simulator {
    fn ingress_addr(&self) -> Option<SocketAddr> {
        match *self {}
    }

    async fn shutdown(self) {
        match self {}
    }
}

/// What `serve` says, in a build without the `sim` feature, when asked for the embedded
/// cluster (`--cluster simulated`, or `auto` outside a pod).
#[cfg(not(feature = "sim"))]
pub const NO_SIMULATOR: &str = "this build of shiplog has no embedded Kubernetes simulator (built without the `sim` feature): name a cluster with --cluster kube (the cluster of KUBECONFIG or ~/.kube/config, or the in-cluster configuration), or serve the API alone with --cluster none";

/// The kube configuration for `settings.cluster`, and the simulator when it runs
/// in-process (with its ingress controller and injected faults as `settings` say).
async fn cluster_config(
    settings: &Settings,
) -> Result<Option<(kube::Config, Option<Simulator>)>, StartError> {
    let mode = settings.cluster;
    match mode.resolve() {
        ClusterMode::None => {
            warn!("cluster: none; this process does not run the process manager, deployments only move when another shiplog process on this database does");
            Ok(None)
        }
        ClusterMode::Kube => {
            let config = kube::Config::infer()
                .await
                .map_err(|e| StartError::Cluster(e.to_string()))?;
            warn!("cluster: kube; deploying to the cluster of the kubeconfig or in-cluster configuration");
            Ok(Some((config, None)))
        }
        ClusterMode::Simulated | ClusterMode::Auto => embedded_cluster(settings).await,
    }
}

/// Starts the embedded simulator, with its ingress controller on `settings.ingress_listen`,
/// injecting `settings.sim_faults`.
#[cfg(feature = "sim")]
async fn embedded_cluster(
    settings: &Settings,
) -> Result<Option<(kube::Config, Option<Simulator>)>, StartError> {
    let (ingress_listen, faults) = (settings.ingress_listen, settings.sim_faults);
    let mut config = SimConfig {
        ingress_listen: Some(ingress_listen),
        ..SimConfig::default()
    };
    if faults.rate > 0.0 {
        let seed = faults.seed_or_random();
        warn!(rate = faults.rate, seed, "cluster: the simulator injects API-server faults (repeat them with --sim-fault-seed {seed})");
        config.faults = Faults {
            rate: faults.rate,
            seed,
            // Held past shiplog's own call timeout, so that shiplog gives up first.
            hold: 2 * settings.kube.request_timeout,
            ..Faults::default()
        };
    }
    let sim = KubeSim::start(config).await.map_err(|e| {
        StartError::Cluster(format!(
            "starting the simulator (its ingress controller on {ingress_listen}): {e}"
        ))
    })?;
    let url = sim
        .url()
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| StartError::Cluster(e.to_string()))?;
    warn!(url = %sim.url(), "cluster: simulated; deployments go to the built-in Kubernetes API simulator, not to a real cluster");
    Ok(Some((kube::Config::new(url), Some(sim))))
}

/// A build without the `sim` feature has no embedded cluster to start.
#[cfg(not(feature = "sim"))]
async fn embedded_cluster(
    _settings: &Settings,
) -> Result<Option<(kube::Config, Option<Simulator>)>, StartError> {
    Err(StartError::Cluster(NO_SIMULATOR.to_string()))
}

/// The parts `router` starts that must run in the background.
pub struct Background {
    /// Feeds the read models.
    pub projector: Arc<Projector>,
    /// Reads the log once and fans new events out to every stream subscriber.
    pub feed: Arc<LiveFeed>,
    /// The router's metrics, which the process manager reports into too.
    pub telemetry: Arc<Telemetry>,
    /// The usecase use cases, shared with the applications proxy.
    pub usecases: Arc<Usecases>,
    /// The token checker, shared with the applications proxy.
    pub auth: Arc<Authenticator>,
    /// The folded usecases, shared by the API's commands and the process manager.
    pub store: Arc<CachedEventStore<Usecase>>,
    /// Seals secret values for the API and opens them for the process manager.
    pub vault: Arc<dyn SecretVault>,
}

/// Which origins `origins` allows (`*`: any; empty: none, so browsers on other origins are refused).
fn allowed_origins(origins: &[String]) -> Result<Option<AllowOrigin>, StartError> {
    if origins.is_empty() {
        return Ok(None);
    }
    if origins.iter().any(|o| o == "*") {
        return Ok(Some(AllowOrigin::any()));
    }
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
    Ok(Some(AllowOrigin::list(values)))
}

/// The API's CORS layer, if any origin is allowed.
fn cors(origins: &[String]) -> Result<Option<CorsLayer>, StartError> {
    Ok(allowed_origins(origins)?.map(|allow| {
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
            .max_age(Duration::from_secs(600))
    }))
}

/// The applications proxy's CORS layer: any method and header the browser asks
/// for, every response header readable, since the application behind decides them.
fn proxy_cors(origins: &[String]) -> Result<Option<CorsLayer>, StartError> {
    Ok(allowed_origins(origins)?.map(|allow| {
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods(AllowMethods::mirror_request())
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers(ExposeHeaders::any())
            .max_age(Duration::from_secs(600))
    }))
}

/// Builds the router over a ready pool (also used by tests that need no listener).
/// Event streams end when `stopping` fires, so a graceful shutdown is not held up by them.
/// `cluster` serves the operations routes' cluster reads (logs, events, usage); without
/// one they answer 503. `/metrics` shows the Kubernetes API retries counted in `retries`.
pub fn router(
    pool: sqlx::PgPool,
    settings: &Settings,
    stopping: CancellationToken,
    cluster: Option<Arc<dyn ClusterInsight>>,
    retries: ClusterRetries,
) -> Result<(Router, Background), StartError> {
    let projector = Projector::new(pool.clone());
    let feed = LiveFeed::new(pool.clone(), settings.streams.buffer);
    let read = Arc::new(PgReadModel::new(pool.clone(), projector.clone()));
    let telemetry = Telemetry::new(pool.clone(), feed.clone(), retries);
    let vault = settings.secret_key.vault(&pool)?;
    let store = PostgresCommandBus::metered_store(pool.clone(), &telemetry);
    let bus = Arc::new(metered_bus(&pool, &store, &telemetry));
    let checks = Arc::new(PgCheckStore::new(pool.clone()));
    let operations = Operations::new(
        bus.clone(),
        read.clone(),
        Arc::new(PgUsecaseLoader::new(store.clone())),
        cluster,
        checks.clone(),
    )
    .with_vault(vault.clone());
    let operations = Arc::new(operations);
    let teams = Arc::new(Teams::new(
        Arc::new(PostgresTeamBus::new(pool.clone())),
        read.clone(),
        settings.billing.clone(),
    ));
    let platform = Platform::new(
        bus.clone(),
        read.clone(),
        operations.clone(),
        teams.clone(),
        settings.catalog.clone(),
        settings.kube.ingress.clone(),
    )
    .with_vault(vault.clone());
    let usecases = Arc::new(Usecases::new(bus, read.clone()).with_vault(vault.clone()));
    let tokens = Arc::new(PgTokenStore::new(pool.clone()));
    let mut auth = Authenticator::new(tokens.clone(), settings.admin_token.as_deref());
    if let Some(oidc) = &settings.oidc {
        info!(issuer = %oidc.issuer, audience = %oidc.audience, "OIDC: the identity provider's bearer tokens are accepted");
        auth = auth.with_oidc(Arc::new(Oidc::new(
            Arc::new(JwksVerifier::new(oidc)?),
            Arc::new(PgTokenIdentities::new(pool.clone())),
            read.clone(),
            oidc.claims.clone(),
        )));
    }
    let auth = Arc::new(auth);
    let sessions = Arc::new(Sessions::new(
        Arc::new(PgSessionStore::new(pool.clone())),
        auth.clone(),
        settings.console.session_ttl,
    ));
    let stream_tickets = StreamTickets::new(
        Arc::new(PgTicketStore::new(pool.clone())),
        auth.clone(),
        settings.streams.ticket_ttl,
    );
    let state = AppState {
        usecases: usecases.clone(),
        operations,
        hooks: Arc::new(RegistryHooks::new(checks)),
        platform: Arc::new(platform),
        teams,
        deployments_page: settings.deployments_page.clone(),
        audit: Arc::new(Audit::new(Arc::new(PgLedger::new(
            pool.clone(),
            feed.clone(),
        )))),
        auth: auth.clone(),
        access: Arc::new(Access::new(tokens, read.clone())),
        stream_tickets: Arc::new(stream_tickets),
        pool,
        keep_alive: settings.streams.keep_alive,
        stopping,
        require_reason: settings.require_reason,
        telemetry: telemetry.clone(),
        streams: StreamSlots::new(settings.limits.max_streams_per_token),
        sessions,
        console: settings.console.clone(),
    };
    let (api, spec) = api_with_spec();
    let spec = crate::docs::with_templates(spec, &settings.catalog);
    let x_request_id = HeaderName::from_static("x-request-id");
    let router = api
        .merge(docs_router(spec))
        .merge(crate::console::router())
        .fallback(|| async { ApiError::NoSuchResource("no such route".to_owned()) })
        // Inside the request checks and body limits: a form's CSRF token is read
        // within them.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            resolve_session,
        ))
        .with_state(state);
    // Applied to every route and the fallback, after routing: they see the matched route.
    let mut router = checked(router, &settings.limits)
        // Outside the checks, so that their refusals are counted too.
        .layer(middleware::from_fn_with_state(
            telemetry.clone(),
            record_http,
        ))
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
    Ok((
        router,
        Background {
            projector,
            feed,
            telemetry,
            usecases,
            auth,
            store,
            vault,
        },
    ))
}

/// The command bus over `store`, with its commands timed in `telemetry`.
fn metered_bus(
    pool: &sqlx::PgPool,
    store: &Arc<CachedEventStore<Usecase>>,
    telemetry: &Arc<Telemetry>,
) -> MeteredCommandBus<PostgresCommandBus> {
    MeteredCommandBus::new(
        PostgresCommandBus::over(store.clone(), pool.clone()),
        telemetry.clone(),
    )
}

impl Server {
    /// Connects (creating the database if needed), migrates, connects to the
    /// cluster `settings.cluster` names, starts the projector and the process manager, and binds.
    pub async fn start(settings: &Settings) -> Result<Self, StartError> {
        let cluster = cluster_config(settings).await?;
        Self::start_with(settings, cluster).await
    }

    /// As `start`, with a kube configuration of the caller's (tests point it at their own simulator).
    pub async fn start_with_kube(
        settings: &Settings,
        config: kube::Config,
    ) -> Result<Self, StartError> {
        Self::start_with(settings, Some((config, None))).await
    }

    async fn start_with(
        settings: &Settings,
        cluster: Option<(kube::Config, Option<Simulator>)>,
    ) -> Result<Self, StartError> {
        let mut settings = settings.clone();
        if let Some(addr) = cluster
            .as_ref()
            .and_then(|(_, sim)| sim.as_ref())
            .and_then(Simulator::ingress_addr)
        {
            // Public URLs answer as written: through the simulator's ingress controller.
            settings.kube.ingress.port.get_or_insert(addr.port());
            info!(%addr, domain = %settings.kube.ingress.domain, "ingress controller of the simulated cluster listening");
        }
        let settings = &settings;
        let pool = connect_and_migrate_with(&settings.database_url, &settings.billing).await?;
        let stopping = CancellationToken::new();
        let mut sim = None;
        let mut kube = None;
        // Counted by the cluster adapter and the pull-secret reads, shown by `/metrics`.
        let retries = ClusterRetries::default();
        let mut images: Option<Arc<dyn ImageResolver>> = None;
        if let Some((mut config, simulator)) = cluster {
            sim = simulator;
            // shiplog retries API calls itself (kube_calls.rs): bounded by its call timeout,
            // waiting what a 429 asks, counted in /metrics. kube's own layer would retry 429s
            // and 503s out of sight, and past that timeout.
            config.default_retry = false;
            let client =
                Client::try_from(config.clone()).map_err(|e| StartError::Cluster(e.to_string()))?;
            let upstream = Upstream {
                http: ApiServerHttp::new(&config)
                    .map_err(|e| StartError::Cluster(e.to_string()))?,
                namespace: settings.kube.namespace.clone(),
            };
            let secrets = PullSecrets {
                client: client.clone(),
                namespace: settings.kube.namespace.clone(),
                names: settings.kube.image_pull_secrets.clone(),
                calls: KubeCalls::new(settings.kube.request_timeout, retries.clone()),
            };
            images = Some(settings.resolve_digests.resolver(
                settings.cluster,
                &settings.insecure_registries,
                secrets,
            ));
            kube = Some((
                Arc::new(KubeCluster::new(
                    client,
                    settings.kube.clone(),
                    retries.clone(),
                )),
                upstream,
            ));
        }
        let insight = kube
            .as_ref()
            .map(|(cluster, _)| cluster.clone() as Arc<dyn ClusterInsight>);
        let (router, parts) = router(pool.clone(), settings, stopping.clone(), insight, retries)?;
        let mut proxy = proxy_router(ProxyState {
            usecases: parts.usecases.clone(),
            auth: parts.auth.clone(),
            upstream: kube.as_ref().map(|(_, upstream)| upstream.clone()),
            stopping: stopping.clone(),
        });
        // Inside CORS: preflights answered by the CORS layer are not counted as proxied.
        proxy = proxy.layer(middleware::from_fn_with_state(
            parts.telemetry.clone(),
            record_proxy,
        ));
        if let Some(cors) = proxy_cors(&settings.proxy_cors_origins)? {
            // Outermost: preflights are answered without a token, as browsers send them.
            proxy = proxy.layer(cors);
        }
        let mut background = vec![
            tokio::spawn(parts.projector.run()),
            tokio::spawn(crate::memory::return_freed(parts.feed.clone())),
            tokio::spawn(parts.feed.run()),
            tokio::spawn(ChainSealer::new(pool.clone()).run()),
        ];
        if let Some((cluster, _)) = kube {
            let pm = ProcessManager::new(
                Arc::new(metered_bus(&pool, &parts.store, &parts.telemetry)),
                Arc::new(PgUsecaseLoader::new(parts.store.clone())),
                cluster,
                settings.rollout_timeout,
            )
            .with_observer(parts.telemetry.clone())
            .with_vault(parts.vault.clone());
            let images: Arc<dyn ImageResolver> = images.unwrap_or_else(|| Arc::new(NoResolution));
            let pm = pm.with_image_resolver(images.clone());
            background.push(tokio::spawn(
                ProcessManagerRunner::new(pool.clone(), Arc::new(pm)).run(),
            ));
            // The watcher asks the registries the process manager pins digests with.
            let watcher = Watcher::new(
                Arc::new(metered_bus(&pool, &parts.store, &parts.telemetry)),
                Arc::new(PgUsecaseLoader::new(parts.store.clone())),
                images,
                Arc::new(PgCheckStore::new(pool.clone())),
                settings.auto_update.clone(),
            );
            background.push(tokio::spawn(
                AutoUpdateRunner::new(pool, Arc::new(watcher)).run(),
            ));
        }
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen { addr, source })
        };
        let listener = bind(settings.listen).await?;
        let proxy_listener = bind(settings.proxy_listen).await?;
        Ok(Self {
            listener,
            router,
            proxy_listener,
            proxy,
            background,
            sim,
            stopping,
            header_read_timeout: settings.limits.header_read_timeout,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, std::io::Error> {
        self.listener.local_addr()
    }

    /// The applications proxy's address actually bound.
    pub fn proxy_addr(&self) -> Result<SocketAddr, std::io::Error> {
        self.proxy_listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets requests in progress finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), std::io::Error> {
        if let Ok(addr) = self.listener.local_addr() {
            info!(%addr, "shiplog API listening");
        }
        if let Ok(addr) = self.proxy_listener.local_addr() {
            info!(%addr, "applications proxy listening");
        }
        let stopping = self.stopping.clone();
        let settings = |connect_info| ConnectionSettings {
            header_read_timeout: self.header_read_timeout,
            connect_info,
        };
        // Each connection shares the router (an `Arc`): served as a bare `Router`
        // through axum's make-service, axum would re-apply the state per connection,
        // which deep-copies every route (with the OpenAPI document the docs routes
        // hold): ~2.4 MB and ~2 ms of CPU per connection, kept until it closes.
        let api = serve(self.listener, self.router, settings(false), {
            let stopping = stopping.clone();
            async move {
                shutdown.await;
                // Streams never end by themselves; end them so that shutdown can finish.
                stopping.cancel();
            }
        });
        // The client's address goes to the application as X-Forwarded-For.
        let proxy = serve(
            self.proxy_listener,
            self.proxy,
            settings(true),
            stopping.cancelled_owned(),
        );
        tokio::join!(api, proxy);
        for task in self.background {
            task.abort();
        }
        if let Some(sim) = self.sim {
            sim.shutdown().await;
        }
        info!("shiplog stopped");
        Ok(())
    }
}
