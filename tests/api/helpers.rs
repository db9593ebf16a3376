//! `TestApp`: shiplog in-process on a random port over a database of its own
//! (`TestDb`, from the test kit), with helpers named after the API.

use serde_json::{json, Value};
use shiplog_api::server::{ClusterMode, ResolveDigests, Server, Settings, StreamSettings};
use shiplog_application::auto_update::WatcherSettings;
use shiplog_application::{CommandBus, CommandContext};
use shiplog_client::wire::usecases::{
    CreateDeployment, CreateUsecase, DeploymentConfigBody, DeploymentResponse, ImageBody,
};
use shiplog_client::Client;
use shiplog_domain::UsecaseCommand;
use shiplog_infrastructure::kube_cluster::KubeSettings;
use shiplog_infrastructure::PostgresCommandBus;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

use shiplog_testkit::eventually;
pub use shiplog_testkit::TestDb;

/// The namespace the process manager creates objects in during tests.
pub const NAMESPACE: &str = "shiplog-test";

/// The one browser origin test apps allow (CORS).
pub const CORS_ORIGIN: &str = "http://ops.example.test";

/// The bootstrap admin token every test app starts with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// shiplog running in-process on a random port over its own database.
pub struct TestApp {
    pub base: String,
    /// The applications proxy's base URL.
    pub proxy_base: String,
    pub client: reqwest::Client,
    /// shiplog's typed client, speaking with the admin token: what setup steps call,
    /// so that a changed field breaks the tests' build, not their assertions.
    pub api: Client,
    pub db: Arc<TestDb>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), std::io::Error>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// What the process manager (a later issue) will report; tests drive it directly.
pub const PROCESS_MANAGER: &str = "process-manager";

impl TestApp {
    /// The app without a process manager: tests drive deployment outcomes themselves.
    pub async fn spawn() -> Self {
        let db = TestDb::create().await;
        Self::spawn_on(db).await
    }

    pub async fn spawn_on(db: TestDb) -> Self {
        let url = db.url.clone();
        Self::spawn_with_url(db, &url).await
    }

    /// Starts the app on `db`, reached through `database_url` (a proxy, say).
    pub async fn spawn_with_url(db: TestDb, database_url: &str) -> Self {
        Self::start(Arc::new(db), database_url, None, |_| {}).await
    }

    /// The app without a process manager on a database another app uses before or
    /// after it (a restart played in steps).
    pub async fn spawn_shared(db: Arc<TestDb>) -> Self {
        let url = db.url.clone();
        Self::start(db, &url, None, |_| {}).await
    }

    /// The app with settings changed by `configure` (stream buffer, CORS, ...).
    pub async fn spawn_configured(configure: impl FnOnce(&mut Settings)) -> Self {
        let db = Arc::new(TestDb::create().await);
        let url = db.url.clone();
        Self::start(db, &url, None, configure).await
    }

    /// The app with its process manager driving the cluster behind `kube`.
    pub async fn spawn_with_cluster(db: Arc<TestDb>, kube: kube::Config) -> Self {
        let url = db.url.clone();
        Self::start(db, &url, Some(kube), |_| {}).await
    }

    /// The app on the database at `database_url` (a private PostgreSQL of the test's),
    /// driving the cluster behind `kube`; `db` is only kept alive beside it.
    pub async fn spawn_on_url_with_cluster(
        db: Arc<TestDb>,
        database_url: &str,
        kube: kube::Config,
    ) -> Self {
        Self::start(db, database_url, Some(kube), |_| {}).await
    }

    /// The app driving the cluster behind `kube`, with settings changed by `configure`.
    pub async fn spawn_with_cluster_configured(
        db: Arc<TestDb>,
        kube: kube::Config,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        let url = db.url.clone();
        Self::start(db, &url, Some(kube), configure).await
    }

    async fn start(
        db: Arc<TestDb>,
        database_url: &str,
        kube: Option<kube::Config>,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        // Server logs appear in the output of a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,sqlx=warn")
            .with_test_writer()
            .try_init();
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
            database_url: database_url.to_owned(),
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            cluster: ClusterMode::None,
            kube: KubeSettings {
                namespace: NAMESPACE.to_owned(),
                image_pull_secrets: vec!["registry-credentials".to_owned()],
                progress_deadline: Duration::from_secs(60),
                ingress: shiplog_application::IngressSettings::default(),
                request_timeout: Duration::from_secs(10),
            },
            rollout_timeout: Duration::from_secs(30),
            streams: StreamSettings {
                keep_alive: Duration::from_millis(300),
                buffer: 1024,
                ..StreamSettings::default()
            },
            cors_origins: vec![CORS_ORIGIN.to_owned()],
            proxy_listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
            proxy_cors_origins: vec![CORS_ORIGIN.to_owned()],
            catalog: shiplog_application::Catalog::builtin(),
            deployments_page: "/deployments".to_owned(),
            ingress_listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
            billing: shiplog_application::BillingSettings::default(),
            resolve_digests: ResolveDigests::Auto,
            insecure_registries: Vec::new(),
            auto_update: WatcherSettings::default(),
            require_reason: false,
            limits: shiplog_api::limits::RequestLimits::default(),
            sim_faults: Default::default(),
            oidc: None,
            console: Default::default(),
            secret_key: shiplog_api::server::SecretKeySource::Generated(None),
        };
        configure(&mut settings);
        let server = match kube {
            Some(config) => Server::start_with_kube(&settings, config).await,
            None => Server::start(&settings).await,
        };
        let server = server.unwrap_or_else(|e| panic!("start: {e}"));
        let addr = server.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let proxy_addr = server.proxy_addr().unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        let base = format!("http://{addr}");
        Self {
            api: Client::new(&base, Some(ADMIN_TOKEN)).unwrap_or_else(|e| panic!("{e}")),
            base,
            proxy_base: format!("http://{proxy_addr}"),
            client: reqwest::Client::new(),
            db,
            shutdown: Some(tx),
            server: Some(handle),
        }
    }

    /// Another shiplog on this app's database, as a second replica would be.
    pub async fn replica(&self) -> Self {
        let url = self.db.url.clone();
        Self::start(self.db.clone(), &url, None, |_| {}).await
    }

    /// Stops the server and its process manager, and waits until they are gone.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.server.take() {
            let _ = handle.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, Some(ADMIN_TOKEN), None)
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(ADMIN_TOKEN), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, Some(ADMIN_TOKEN), None)
            .await
    }

    /// Every page of a paged listing (`path` has a query string), following
    /// `nextCursor` as `after` until the last page; each must answer 200.
    pub async fn get_pages(&self, path: &str) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut next = path.to_owned();
        loop {
            let (status, page) = self.get(&next).await;
            assert_eq!(status, 200, "{next}: {page}");
            let after = page["nextCursor"].as_str().map(str::to_owned);
            pages.push(page);
            match after {
                Some(after) => next = format!("{path}&after={after}"),
                None => return pages,
            }
        }
    }

    /// Registers a usecase and returns its id.
    pub async fn create_usecase(&self, name: &str) -> Uuid {
        let body = CreateUsecase {
            name: name.to_owned(),
            description: Some("test".to_owned()),
        };
        self.api
            .create_usecase(&body, None)
            .await
            .unwrap_or_else(|e| panic!("creating {name}: {e}"))
            .id
    }

    /// Requests a deployment of `tag` and returns its id.
    pub async fn deploy(&self, usecase: Uuid, tag: &str) -> Uuid {
        self.api
            .deploy(usecase, &deployment_of(tag))
            .await
            .unwrap_or_else(|e| panic!("deploying {tag}: {e}"))
            .id
    }

    /// Plays the process manager: appends an outcome command directly to the ledger.
    pub async fn record(&self, usecase: Uuid, command: UsecaseCommand) {
        let bus = PostgresCommandBus::new(self.db.pool.clone());
        let ctx = CommandContext {
            actor: PROCESS_MANAGER.to_owned(),
            request_id: "test".to_owned(),
            causation: None,
            reason: None,
        };
        bus.execute(usecase, command, &ctx)
            .await
            .unwrap_or_else(|e| panic!("outcome: {e}"));
    }

    /// The usecase's stored events as (type, metadata), in stream order.
    pub async fn events_of(&self, usecase: Uuid) -> Vec<(String, Value)> {
        sqlx::query_as("SELECT event_type, metadata::jsonb FROM events WHERE aggregate_id = $1 ORDER BY sequence")
            .bind(usecase.to_string())
            .fetch_all(&self.db.pool)
            .await
            .unwrap_or_else(|e| panic!("events of {usecase}: {e}"))
    }

    /// Drives a deployment to `deployed` as the process manager would.
    pub async fn mark_deployed(&self, usecase: Uuid, deployment: Uuid) {
        let at = chrono::Utc::now();
        self.record(
            usecase,
            UsecaseCommand::StartDeployment {
                deployment_id: deployment,
                digest: None,
                at,
            },
        )
        .await;
        self.record(
            usecase,
            UsecaseCommand::CompleteDeployment {
                deployment_id: deployment,
                at,
            },
        )
        .await;
        self.wait_for_status(usecase, deployment, "deployed").await;
    }

    /// Reads the deployment until it shows `status` (the projector is asynchronous for
    /// writes that did not come through this API); fails after the default budget.
    pub async fn wait_for_status(
        &self,
        usecase: Uuid,
        deployment: Uuid,
        status: &str,
    ) -> DeploymentResponse {
        eventually(
            &format!("deployment {deployment} becomes {status}"),
            || async {
                match self.api.deployment(usecase, deployment).await {
                    Ok(read) if read.status.as_str() == status => Ok(read),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
    }
}

/// A valid deployment request for `tag`, typed.
pub fn deployment_of(tag: &str) -> CreateDeployment {
    CreateDeployment {
        config: DeploymentConfigBody::image(ImageBody::tagged(
            "registry.example.com",
            "team/app",
            tag,
        )),
    }
}

/// A valid deployment request body for `tag`, as JSON (for tests of the wire itself).
pub fn deploy_body(tag: &str) -> Value {
    json!({"config": {"image": {"registry": "registry.example.com", "repository": "team/app", "tag": tag}}})
}

pub fn uuid(v: &Value) -> Uuid {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a uuid: {v}"))
}

/// A port free at the moment of asking, for a process to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The built binary's `shiplog serve` as a replica of a deployed shiplog: on the database
/// at `database_url`, driving the cluster behind `kubeconfig` (a simulator, whose made-up
/// registries are not asked for digests), the API on `api_port` and the proxy on
/// `proxy_port` (0: any), its log in `log`.
pub fn spawn_serve_on_kube(
    database_url: &str,
    kubeconfig: &std::path::Path,
    api_port: u16,
    proxy_port: u16,
    log: &std::path::Path,
) -> std::process::Child {
    let file = std::fs::File::create(log).unwrap_or_else(|e| panic!("{e}"));
    std::process::Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("SHIPLOG_LISTEN", format!("127.0.0.1:{api_port}"))
        .env("SHIPLOG_PROXY_LISTEN", format!("127.0.0.1:{proxy_port}"))
        .env("SHIPLOG_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SHIPLOG_CLUSTER", "kube")
        .env("SHIPLOG_RESOLVE_DIGESTS", "never")
        .env("KUBECONFIG", kubeconfig)
        .env("SHIPLOG_NAMESPACE", NAMESPACE)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn shiplog: {e}"))
}
