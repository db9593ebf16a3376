//! The `shiplog` binary: `serve` runs the server; `projections`, `openapi` and `sim` (in a
//! build with the `sim` feature, the default) are operator tools; every other subcommand is a
//! client of the HTTP API (`shiplog_api::cli`).

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
#[cfg(feature = "sim")]
use kube_sim::{KubeSim, SimConfig};
use rand::RngCore;
use shiplog_api::cli::{self, ClientCommand, CompletionsArgs};
use shiplog_api::docs::spec;
use shiplog_api::server::{ClusterMode, Server, Settings, StreamSettings};
use shiplog_application::{BillingSettings, Catalog, IngressSettings};
use shiplog_domain::Tier;
use shiplog_infrastructure::db::connect_and_migrate;
use shiplog_infrastructure::kube_cluster::KubeSettings;
use shiplog_infrastructure::Projector;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// The database used when neither --database-url nor DATABASE_URL is given.
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/shiplog";

/// shiplog: deploy usecases to Kubernetes, keep every action as an auditable event.
#[derive(Parser)]
#[command(
    name = "shiplog",
    version,
    about = "shiplog: deploy usecases to Kubernetes, keep every action as an auditable event",
    after_help = cli::EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server.
    Serve(ServeArgs),
    /// Maintain the read models.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Print the OpenAPI document (what openapi/openapi.json holds).
    Openapi,
    /// Run the Kubernetes API simulator on its own (for kubectl and `serve --cluster kube`).
    #[cfg(feature = "sim")]
    Sim(SimArgs),
    #[command(flatten)]
    Client(ClientCommand),
    /// Print a shell completion script to stdout (bash, zsh, fish).
    Completions(CompletionsArgs),
}

#[cfg(feature = "sim")]
#[derive(clap::Args)]
struct SimArgs {
    /// Address of the simulated API server.
    #[arg(long, env = "SHIPLOG_SIM_LISTEN", default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Write a kubeconfig for the simulator to this file (use it with KUBECONFIG=FILE).
    #[arg(long)]
    write_kubeconfig: Option<std::path::PathBuf>,
    /// Seconds until the pods of a new rollout become ready.
    #[arg(long, default_value_t = 1.0)]
    ready_delay: f64,
    /// Where its ingress controller listens: Ingress hosts are served there by Host header
    /// (give `serve --cluster kube` the same port as `--ingress-port`).
    #[arg(long, env = "SHIPLOG_INGRESS_LISTEN", default_value = "127.0.0.1:8082")]
    ingress_listen: SocketAddr,
}

#[derive(clap::Args)]
struct DatabaseArgs {
    /// PostgreSQL URL; the database is created if it does not exist.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address of the API listener.
    #[arg(long, env = "SHIPLOG_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Bootstrap admin token; when unset a random one is generated and printed at start.
    #[arg(long, env = "SHIPLOG_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Where deployments go: `kube` (kubeconfig or in-cluster), `simulated` (built-in
    /// simulator), `auto` (kube inside a pod, simulated elsewhere) or `none` (API only).
    #[arg(long, env = "SHIPLOG_CLUSTER", value_enum, default_value = "auto")]
    cluster: ClusterMode,
    /// The namespace of every object shiplog creates.
    #[arg(long, env = "SHIPLOG_NAMESPACE", default_value = "shiplog")]
    namespace: String,
    /// Image pull secrets (in that namespace) added to every pod; repeat or comma-separate.
    #[arg(
        long = "image-pull-secret",
        env = "SHIPLOG_IMAGE_PULL_SECRETS",
        value_delimiter = ','
    )]
    image_pull_secrets: Vec<String>,
    /// Seconds a rollout may take before the deployment fails.
    #[arg(long, env = "SHIPLOG_ROLLOUT_TIMEOUT", default_value_t = 600)]
    rollout_timeout: u64,
    /// Browser origins allowed to call the API (CORS), e.g. https://ops.example.com;
    /// `*` allows any; repeat or comma-separate. Unset: no CORS headers.
    #[arg(
        long = "cors-origin",
        env = "SHIPLOG_CORS_ORIGINS",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// Seconds between keep-alive comments on an idle event stream.
    #[arg(long, env = "SHIPLOG_SSE_KEEP_ALIVE", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    sse_keep_alive: u64,
    /// How many events a stream subscriber may fall behind before it is cut off (it can resume).
    /// At least 1000, so that one batch of new events never cuts off a subscriber that keeps up.
    #[arg(long, env = "SHIPLOG_SSE_BUFFER", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1000..=1_000_000))]
    sse_buffer: u64,
    /// Address of the applications proxy (`/{usecaseId}/{path…}` reaches the usecase's application).
    #[arg(long, env = "SHIPLOG_PROXY_LISTEN", default_value = "127.0.0.1:8081")]
    proxy_listen: SocketAddr,
    /// Browser origins allowed to call applications through the proxy (CORS); `*` allows any;
    /// repeat or comma-separate. Unset: no CORS headers.
    #[arg(
        long = "proxy-cors-origin",
        env = "SHIPLOG_PROXY_CORS_ORIGINS",
        value_delimiter = ','
    )]
    proxy_cors_origins: Vec<String>,
    /// Public deployments get hosts `<name>.<domain>`; the default resolves to loopback
    /// in curl and browsers, so the simulated cluster's ingresses answer at once.
    #[arg(long, env = "SHIPLOG_INGRESS_DOMAIN", default_value = "localhost", value_parser = parse_domain)]
    ingress_domain: String,
    /// The IngressClass of public deployments' Ingresses (unset: the cluster's default class).
    #[arg(long, env = "SHIPLOG_INGRESS_CLASS")]
    ingress_class: Option<String>,
    /// A TLS Secret (in --namespace) for every ingress host; URLs are then https.
    #[arg(long, env = "SHIPLOG_INGRESS_TLS_SECRET")]
    ingress_tls_secret: Option<String>,
    /// The port in ingress URLs when the ingress controller does not listen on the
    /// scheme's default; in simulated mode, the simulator's ingress port is used.
    #[arg(long, env = "SHIPLOG_INGRESS_PORT")]
    ingress_port: Option<u16>,
    /// Where the simulated cluster's ingress controller listens (simulated mode only).
    #[arg(long, env = "SHIPLOG_INGRESS_LISTEN", default_value = "127.0.0.1:8082")]
    ingress_listen: SocketAddr,
    /// A YAML (or JSON) file of templates (`templates: [...]`) added to the built-in
    /// nginx and postgres; one with a built-in's name replaces it.
    #[arg(long, env = "SHIPLOG_TEMPLATES")]
    templates: Option<std::path::PathBuf>,
    /// Where a form post to POST /api/deployments/delete is redirected (303).
    #[arg(long, env = "SHIPLOG_DEPLOYMENTS_PAGE", default_value = "/deployments")]
    deployments_page: String,
    /// Bound the number of deployments of each team (and each subject's personal ones)
    /// by its tier; beyond it, creating answers 403.
    #[arg(long, env = "SHIPLOG_BILLING")]
    billing: bool,
    /// A tier's limit, `TIER=N` or `TIER=unlimited` (defaults: free=1, business=10,
    /// enterprise=unlimited); repeat or comma-separate.
    #[arg(long = "tier-limit", env = "SHIPLOG_TIER_LIMITS", value_delimiter = ',', value_parser = parse_tier_limit)]
    tier_limits: Vec<(Tier, Option<u32>)>,
    /// The tier whose limit each subject's personal deployments (no team) share.
    #[arg(long, env = "SHIPLOG_PERSONAL_TIER", default_value = "free", value_parser = parse_tier)]
    personal_tier: Tier,
}

/// A tier name.
fn parse_tier(raw: &str) -> Result<Tier, String> {
    Tier::parse("tier", raw.trim()).map_err(|e| e.reason)
}

/// `TIER=N` or `TIER=unlimited`.
fn parse_tier_limit(raw: &str) -> Result<(Tier, Option<u32>), String> {
    let (tier, limit) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?} is not TIER=N or TIER=unlimited"))?;
    let limit = match limit.trim() {
        "unlimited" => None,
        n => Some(
            n.parse::<u32>()
                .map_err(|_| format!("{n:?} is not a number of deployments or unlimited"))?,
        ),
    };
    Ok((parse_tier(tier)?, limit))
}

/// An ingress domain: lower-case DNS labels separated by dots.
fn parse_domain(raw: &str) -> Result<String, String> {
    let domain = raw.trim().trim_end_matches('.');
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.is_empty() || domain.len() > 200 || !domain.split('.').all(label_ok) {
        return Err(format!(
            "{raw:?} is not a domain of lower-case DNS labels such as apps.example.com"
        ));
    }
    Ok(domain.to_owned())
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Empty the read models and replay the whole event log into them.
    Rebuild {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("SHIPLOG_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // `shiplog --url … status …` works as well as `shiplog status … --url …`.
    match Cli::parse_from(cli::hoist_connection_options(std::env::args_os())).command {
        Command::Serve(args) => serve(args).await.map(|()| ExitCode::SUCCESS),
        Command::Projections {
            command: ProjectionsCommand::Rebuild { database },
        } => {
            let pool = connect_and_migrate(&database.database_url).await?;
            let replayed = Projector::new(pool)
                .rebuild()
                .await
                .context("rebuilding the read models")?;
            println!(
                "rebuilt the read models (usecase_view, deployment_view, revision_view, team_view) from {replayed} events"
            );
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "sim")]
        Command::Sim(args) => sim(args).await.map(|()| ExitCode::SUCCESS),
        Command::Openapi => {
            println!(
                "{}",
                spec()
                    .to_pretty_json()
                    .context("serialising the OpenAPI document")?
            );
            Ok(ExitCode::SUCCESS)
        }
        // Client commands print their own one-line errors and choose their exit code.
        Command::Client(command) => Ok(cli::run(command).await),
        Command::Completions(args) => Ok(cli::print_completions(&args, Cli::command())),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Before anything else is printed: the one line a build without the simulator has to say.
    #[cfg(not(feature = "sim"))]
    if args.cluster.resolve() == ClusterMode::Simulated {
        anyhow::bail!(shiplog_api::server::NO_SIMULATOR);
    }
    let admin_token = match args.admin_token.filter(|t| !t.trim().is_empty()) {
        Some(token) => {
            if token.len() < 16 {
                warn!("SHIPLOG_ADMIN_TOKEN is shorter than 16 characters; use a long random token outside development");
            }
            token
        }
        None => {
            let mut bytes = [0u8; 24];
            rand::thread_rng().fill_bytes(&mut bytes);
            let token = format!("shiplog_admin_{}", hex::encode(bytes));
            eprintln!("No SHIPLOG_ADMIN_TOKEN set; this run's admin token is:\n\n    {token}\n");
            token
        }
    };
    let catalog = match &args.templates {
        None => Catalog::builtin(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the templates file {}", path.display()))?;
            let catalog = Catalog::with_file(&text)
                .with_context(|| format!("loading the templates file {}", path.display()))?;
            info!(path = %path.display(), templates = ?catalog.names(), "templates loaded");
            catalog
        }
    };
    let mut billing = BillingSettings {
        enabled: args.billing,
        personal_tier: args.personal_tier,
        ..BillingSettings::default()
    };
    for (tier, limit) in args.tier_limits {
        match tier {
            Tier::Free => billing.free = limit,
            Tier::Business => billing.business = limit,
            Tier::Enterprise => billing.enterprise = limit,
        }
    }
    if billing.enabled {
        warn!(free = ?billing.free, business = ?billing.business, enterprise = ?billing.enterprise, personal = %billing.personal_tier, "billing: deployments are bounded by tier (None: unlimited)");
    }
    let settings = Settings {
        listen: args.listen,
        database_url: args.database.database_url,
        admin_token: Some(admin_token),
        cluster: args.cluster,
        kube: KubeSettings {
            namespace: args.namespace,
            image_pull_secrets: args.image_pull_secrets,
            // Kubernetes marks the rollout failed by itself a little before shiplog's own timeout.
            progress_deadline: Duration::from_secs(args.rollout_timeout.saturating_sub(10).max(30)),
            ingress: IngressSettings {
                domain: args.ingress_domain,
                class: args.ingress_class,
                tls_secret: args.ingress_tls_secret,
                port: args.ingress_port,
            },
        },
        rollout_timeout: Duration::from_secs(args.rollout_timeout),
        streams: StreamSettings {
            keep_alive: Duration::from_secs(args.sse_keep_alive),
            buffer: usize::try_from(args.sse_buffer).unwrap_or(usize::MAX),
        },
        cors_origins: args.cors_origins,
        proxy_listen: args.proxy_listen,
        proxy_cors_origins: args.proxy_cors_origins,
        catalog,
        deployments_page: args.deployments_page,
        ingress_listen: args.ingress_listen,
        billing,
    };
    let server = Server::start(&settings).await.context("starting shiplog")?;
    info!(database = %redact(&settings.database_url), "database ready");
    server
        .run(shutdown_signal())
        .await
        .context("serving HTTP")?;
    Ok(())
}

#[cfg(feature = "sim")]
async fn sim(args: SimArgs) -> anyhow::Result<()> {
    let config = SimConfig {
        ready_delay: Duration::from_secs_f64(args.ready_delay.max(0.0)),
        ingress_listen: Some(args.ingress_listen),
        ..SimConfig::default()
    };
    let sim = KubeSim::start_on(args.listen, config)
        .await
        .with_context(|| format!("starting the simulator on {}", args.listen))?;
    if let Some(path) = &args.write_kubeconfig {
        sim.write_kubeconfig(path)
            .with_context(|| format!("writing {}", path.display()))?;
        info!(path = %path.display(), "kubeconfig written; use KUBECONFIG={}", path.display());
    }
    info!(url = %sim.url(), ingress = ?sim.ingress_addr(), "Kubernetes API simulator listening");
    shutdown_signal().await;
    sim.shutdown().await;
    Ok(())
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    info!("shutdown signal received; finishing requests in progress");
}
