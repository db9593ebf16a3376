//! The `shiplog` binary: `serve` runs the server; `projections`, `openapi` and `sim` (in a
//! build with the `sim` feature, the default) are operator tools; every other subcommand is a
//! client of the HTTP API (`shiplog_cli`).

use anyhow::Context;
use clap::{CommandFactory, Parser};
#[cfg(feature = "sim")]
use kube_sim::{KubeSim, SimConfig};
use rand::RngCore;
#[cfg(feature = "sim")]
use shiplog_api::command_line::SimArgs;
use shiplog_api::command_line::{
    Cli, Command, DatabaseArgs, LogFormat, OidcArgs, ProjectionsCommand, ServeArgs,
};
use shiplog_api::console::session::ConsoleSettings;
use shiplog_api::docs::spec;
use shiplog_api::limits::RequestLimits;
use shiplog_api::server::{SecretKeySource, Server, Settings, SimFaults, StreamSettings};
use shiplog_application::auto_update::WatcherSettings;
use shiplog_application::oidc::ClaimMapping;
use shiplog_application::{BillingSettings, Catalog, IngressSettings};
use shiplog_cli as cli;
use shiplog_domain::Tier;
use shiplog_infrastructure::db::{connect_and_migrate, redacted_url};
use shiplog_infrastructure::kube_cluster::KubeSettings;
use shiplog_infrastructure::oidc::OidcSettings;
use shiplog_infrastructure::private_db::{default_data_dir, PrivateDatabase, PrivateDbOptions};
use shiplog_infrastructure::Projector;
use std::io::IsTerminal;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    // `shiplog --url … status …` works as well as `shiplog status … --url …`.
    let command_line = Cli::parse_from(cli::hoist_connection_options(std::env::args_os()));
    init_logs(command_line.log_format);
    match command_line.command {
        Command::Serve(args) => serve(args).await.map(|()| ExitCode::SUCCESS),
        Command::Projections {
            command: ProjectionsCommand::Rebuild { database },
        } => {
            let (url, _private) = open_database(&database)?;
            let pool = connect_and_migrate(&url).await?;
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

/// Logs on stderr, filtered by SHIPLOG_LOG, as text (colours only on a terminal) or JSON.
fn init_logs(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("SHIPLOG_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
}

/// The database URL to use: the one given, or a private PostgreSQL's under the data
/// directory (kept running as long as the returned handle lives). Says loudly which.
fn open_database(args: &DatabaseArgs) -> anyhow::Result<(String, Option<PrivateDatabase>)> {
    if let Some(url) = args
        .database_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        warn!(database = %redacted_url(url), "DATABASE: the PostgreSQL at --database-url / DATABASE_URL");
        return Ok((url.to_owned(), None));
    }
    let data_dir = data_dir(args);
    let private = PrivateDatabase::start(&PrivateDbOptions {
        data_dir: data_dir.clone(),
    })
    .context("starting the private PostgreSQL (give --database-url to use another)")?;
    warn!(
        data_dir = %data_dir.display(),
        cluster = %private.cluster_dir().display(),
        "DATABASE: a private PostgreSQL of this shiplog (no --database-url given); its data stays in the data directory"
    );
    Ok((private.url().to_owned(), Some(private)))
}

fn data_dir(args: &DatabaseArgs) -> PathBuf {
    args.data_dir.clone().unwrap_or_else(default_data_dir)
}

/// The bootstrap admin token: the one given, or a random one for this run, shown on a
/// terminal or else written to `<data-dir>/admin-token`; inside a pod it must be given.
fn admin_token(args: &ServeArgs) -> anyhow::Result<String> {
    if let Some(token) = args.admin_token.as_deref().filter(|t| !t.trim().is_empty()) {
        if token.len() < 16 {
            warn!("SHIPLOG_ADMIN_TOKEN is shorter than 16 characters; use a long random token outside development");
        }
        return Ok(token.to_owned());
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        anyhow::bail!(
            "no SHIPLOG_ADMIN_TOKEN: inside a cluster the admin token must come from a Secret \
             (see deploy/ and the README's \"Running in Kubernetes\")"
        );
    }
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = format!("shiplog_admin_{}", hex::encode(bytes));
    if std::io::stderr().is_terminal() {
        eprintln!("No SHIPLOG_ADMIN_TOKEN set; this run's admin token is:\n\n    {token}\n");
    } else {
        let path = data_dir(&args.database).join("admin-token");
        write_secret(&path, &token)
            .with_context(|| format!("writing the generated admin token to {}", path.display()))?;
        warn!(path = %path.display(), "no SHIPLOG_ADMIN_TOKEN set: this run's admin token is in this file (mode 0600), not in the log");
    }
    Ok(token)
}

/// Writes a secret to a file only its owner can read.
fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{secret}")
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Before anything else is printed: the one line a build without the simulator has to say.
    #[cfg(not(feature = "sim"))]
    if args.cluster.resolve() == shiplog_api::server::ClusterMode::Simulated {
        anyhow::bail!(shiplog_api::server::NO_SIMULATOR);
    }
    let admin_token = admin_token(&args)?;
    let (database_url, private_database) = open_database(&args.database)?;
    let secret_key = match &args.secret_key_file {
        Some(path) => SecretKeySource::File(path.clone()),
        // The embedded default keeps a generated key beside its data.
        None if private_database.is_some() => {
            SecretKeySource::Generated(Some(data_dir(&args.database).join("secret-key")))
        }
        None => SecretKeySource::None,
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
        database_url,
        admin_token: Some(admin_token),
        cluster: args.cluster,
        kube: KubeSettings {
            namespace: args.namespace,
            image_pull_secrets: args.image_pull_secrets,
            // Kubernetes marks the rollout failed by itself a little before shiplog's own timeout.
            progress_deadline: Duration::from_secs(args.rollout_timeout.saturating_sub(10).max(30)),
            request_timeout: Duration::from_secs(args.cluster_request_timeout),
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
            ticket_ttl: Duration::from_secs(args.stream_ticket_ttl),
        },
        cors_origins: args.cors_origins,
        proxy_listen: args.proxy_listen,
        proxy_cors_origins: args.proxy_cors_origins,
        catalog,
        deployments_page: args.deployments_page,
        ingress_listen: args.ingress_listen,
        billing,
        resolve_digests: args.resolve_digests,
        insecure_registries: args.insecure_registries,
        require_reason: args.require_reason,
        auto_update: WatcherSettings {
            interval: Duration::from_secs(args.auto_update_interval),
            checks_per_minute: NonZeroU32::new(args.registry_checks_per_minute)
                .unwrap_or(NonZeroU32::MIN),
        },
        limits: RequestLimits {
            max_body_size: usize::try_from(args.max_body_size).unwrap_or(usize::MAX),
            header_read_timeout: Duration::from_secs(args.header_read_timeout),
            body_read_timeout: Duration::from_secs(args.body_read_timeout),
            max_streams_per_token: usize::try_from(args.max_streams_per_token)
                .unwrap_or(usize::MAX),
        },
        sim_faults: SimFaults {
            rate: args.sim_fault_rate,
            seed: args.sim_fault_seed,
        },
        oidc: oidc_settings(args.oidc),
        console: ConsoleSettings {
            session_ttl: Duration::from_secs(args.session_ttl),
            public_url: args.public_url,
        },
        secret_key,
    };
    let server = Server::start(&settings).await.context("starting shiplog")?;
    info!(database = %redacted_url(&settings.database_url), "database ready");
    let served = server.run(shutdown_signal()).await.context("serving HTTP");
    // The private database outlives every connection of the server, then stops.
    drop(private_database);
    served
}

/// The OIDC settings of `serve`'s flags; `None` (off) without an issuer (clap requires
/// the audience with it).
fn oidc_settings(args: OidcArgs) -> Option<OidcSettings> {
    let (issuer, audience) = (args.oidc_issuer?, args.oidc_audience?);
    Some(OidcSettings {
        issuer,
        audience,
        jwks_url: args.oidc_jwks_url,
        refetch_interval: Duration::from_secs(args.oidc_jwks_refetch_interval),
        claims: ClaimMapping {
            teams_claim: args.oidc_teams_claim,
            scopes_claim: args.oidc_scopes_claim,
            actor_prefix: args.oidc_actor_prefix.unwrap_or_default(),
        },
    })
}

#[cfg(feature = "sim")]
async fn sim(args: SimArgs) -> anyhow::Result<()> {
    let mut config = SimConfig {
        ready_delay: Duration::from_secs_f64(args.ready_delay.max(0.0)),
        ingress_listen: Some(args.ingress_listen),
        ..SimConfig::default()
    };
    if args.fault_rate > 0.0 {
        let seed = args.fault_seed.unwrap_or_else(rand::random);
        warn!(
            rate = args.fault_rate,
            seed, "the simulator injects API-server faults (repeat them with --fault-seed {seed})"
        );
        config.faults = kube_sim::Faults {
            rate: args.fault_rate,
            seed,
            ..kube_sim::Faults::default()
        };
    }
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
