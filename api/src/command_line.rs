//! The `shiplog` command line: `serve` and the operator tools defined here, every client
//! command flattened in from `shiplog-cli`. In the library, so that the configuration
//! reference in the README can be checked against it.

use crate::limits::{
    DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_STREAMS_PER_TOKEN,
};
use crate::server::{ClusterMode, ResolveDigests};
use clap::{Parser, Subcommand};
use shiplog_application::oidc::{DEFAULT_SCOPES_CLAIM, DEFAULT_TEAMS_CLAIM};
use shiplog_cli::{ClientCommand, CompletionsArgs, EXIT_CODES_HELP};
use shiplog_domain::Tier;
use std::net::SocketAddr;

/// shiplog: deploy usecases to Kubernetes, keep every action as an auditable event.
#[derive(Parser)]
#[command(
    name = "shiplog",
    version,
    about = "shiplog: deploy usecases to Kubernetes, keep every action as an auditable event",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// How logs are written to stderr: `text` for people (colours on a terminal only),
    /// `json` (one object per line) for log pipelines.
    #[arg(long, env = "SHIPLOG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// The two ways logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands of `shiplog`.
#[derive(Subcommand)]
// Parsed once per process: the size of the server's flags beside the others' costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the API server.
    Serve(ServeArgs),
    /// Maintain the read models.
    Projections {
        /// Which maintenance.
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Print the OpenAPI document (what openapi/openapi.json holds).
    Openapi,
    /// Run the Kubernetes API simulator on its own (for kubectl and `serve --cluster kube`).
    #[cfg(feature = "sim")]
    Sim(SimArgs),
    /// The client commands (everything that calls the API).
    #[command(flatten)]
    Client(ClientCommand),
    /// Print a shell completion script to stdout (bash, zsh, fish).
    Completions(CompletionsArgs),
}

/// `shiplog sim`.
#[cfg(feature = "sim")]
#[derive(clap::Args)]
pub struct SimArgs {
    /// Address of the simulated API server.
    #[arg(long, env = "SHIPLOG_SIM_LISTEN", default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Write a kubeconfig for the simulator to this file (use it with KUBECONFIG=FILE).
    #[arg(long)]
    pub write_kubeconfig: Option<std::path::PathBuf>,
    /// Seconds until the pods of a new rollout become ready.
    #[arg(long, default_value_t = 1.0)]
    pub ready_delay: f64,
    /// Where its ingress controller listens: Ingress hosts are served there by Host header
    /// (give `serve --cluster kube` the same port as `--ingress-port`).
    #[arg(long, env = "SHIPLOG_INGRESS_LISTEN", default_value = "127.0.0.1:8082")]
    pub ingress_listen: SocketAddr,
    /// The probability (0 to 1) that a request gets an API-server fault: a 500, a 429 with
    /// Retry-After, a timeout (the request takes effect, its answer never comes), a dropped
    /// connection, a slow answer, a watch ended early or refused with 410 Expired; 0: none.
    #[arg(long, env = "SHIPLOG_SIM_FAULT_RATE", default_value_t = 0.0, value_parser = parse_fault_rate)]
    pub fault_rate: f64,
    /// The seed of the faults: the same seed, the same sequence of faults. Unset: a random
    /// one, logged.
    #[arg(long, env = "SHIPLOG_SIM_FAULT_SEED")]
    pub fault_seed: Option<u64>,
}

/// A fault rate: a probability from 0 to 1.
pub fn parse_fault_rate(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "{raw:?} is not a probability from 0 to 1, such as 0.1"
        )),
    }
}

/// Which database holds the ledger.
#[derive(clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL; the database is created if it does not exist. Unset: a private
    /// PostgreSQL under --data-dir, started and stopped with shiplog.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Where the private PostgreSQL keeps its files (with no --database-url), and where a
    /// generated admin token is written when stderr is not a terminal. Default:
    /// `$XDG_DATA_HOME/shiplog` or `~/.local/share/shiplog`; `/var/lib/shiplog` for root.
    #[arg(long, env = "SHIPLOG_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,
}

/// `shiplog serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address of the API listener.
    #[arg(long, env = "SHIPLOG_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The database.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Bootstrap admin token (at least 16 characters outside development). Unset: a random
    /// one for this run, printed on a terminal, else written to `<data-dir>/admin-token`
    /// (mode 0600); inside a Kubernetes pod it must be set (from a Secret).
    #[arg(long, env = "SHIPLOG_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The master key that wraps the per-usecase keys sealing secret env values: a file
    /// of 32 random bytes, raw, as 64 hex characters or in base64 (`openssl rand -base64 32`).
    /// Unset with a private PostgreSQL: one is generated once and kept as
    /// `<data-dir>/secret-key` (loud warning); unset with --database-url: secret values are
    /// refused (503 secrets-unavailable)
    #[arg(long, env = "SHIPLOG_SECRET_KEY_FILE")]
    pub secret_key_file: Option<std::path::PathBuf>,
    /// Where deployments go: `kube` (kubeconfig or in-cluster), `simulated` (built-in
    /// simulator), `auto` (kube inside a pod, simulated elsewhere) or `none` (API only).
    #[arg(long, env = "SHIPLOG_CLUSTER", value_enum, default_value = "auto")]
    pub cluster: ClusterMode,
    /// The namespace of every object shiplog creates.
    #[arg(long, env = "SHIPLOG_NAMESPACE", default_value = "shiplog")]
    pub namespace: String,
    /// Image pull secrets (in that namespace) added to every pod; repeat or comma-separate.
    #[arg(
        long = "image-pull-secret",
        env = "SHIPLOG_IMAGE_PULL_SECRETS",
        value_delimiter = ','
    )]
    pub image_pull_secrets: Vec<String>,
    /// Pin each deployment to the manifest digest its image tag names when it starts
    /// (the pods run `repository@digest`; a rollback runs the recorded digest):
    /// `always`, `never`, or `auto` (always against a real cluster; in simulated mode a
    /// registry that cannot be reached is skipped and the image runs by its tag).
    #[arg(
        long,
        env = "SHIPLOG_RESOLVE_DIGESTS",
        value_enum,
        default_value = "auto"
    )]
    pub resolve_digests: ResolveDigests,
    /// Registries (`HOST[:PORT]`) spoken to over plain HTTP when resolving digests, besides
    /// those on loopback addresses, which always are; repeat or comma-separate.
    #[arg(
        long = "insecure-registry",
        env = "SHIPLOG_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
    /// Seconds between two auto-update checks of a deployment that follows its tag (a
    /// HEAD of the tag's manifest; a registry notification checks at once).
    #[arg(long, env = "SHIPLOG_AUTO_UPDATE_INTERVAL", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub auto_update_interval: u64,
    /// Auto-update checks per minute at most against one registry; a registry answering
    /// 429 is left alone for a while that doubles with each refusal (up to an hour).
    #[arg(long, env = "SHIPLOG_REGISTRY_CHECKS_PER_MINUTE", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub registry_checks_per_minute: u32,
    /// Refuse every change (a write) that gives no reason in `X-Shiplog-Reason` (the
    /// CLI's `--reason`): 400 naming the header. Reasons are recorded either way.
    #[arg(long, env = "SHIPLOG_REQUIRE_REASON")]
    pub require_reason: bool,
    /// Seconds a rollout may take before the deployment fails.
    #[arg(long, env = "SHIPLOG_ROLLOUT_TIMEOUT", default_value_t = 600)]
    pub rollout_timeout: u64,
    /// Seconds one Kubernetes API call (not a watch) may wait for its answer. A call that
    /// times out, is throttled (429), meets a server error or a dropped connection is tried
    /// again with back-off, counted in `shiplog_cluster_retries_total`.
    #[arg(long, env = "SHIPLOG_CLUSTER_REQUEST_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub cluster_request_timeout: u64,
    /// Browser origins allowed to call the API (CORS), e.g. https://ops.example.com;
    /// `*` allows any; repeat or comma-separate. Unset: no CORS headers.
    #[arg(
        long = "cors-origin",
        env = "SHIPLOG_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Seconds between keep-alive comments on an idle event stream.
    #[arg(long, env = "SHIPLOG_SSE_KEEP_ALIVE", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub sse_keep_alive: u64,
    /// How many events a stream subscriber may fall behind before it is cut off (it can resume).
    /// At least 1000, so that one batch of new events never cuts off a subscriber that keeps up.
    #[arg(long, env = "SHIPLOG_SSE_BUFFER", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1000..=1_000_000))]
    pub sse_buffer: u64,
    /// Seconds a stream ticket (`POST /api/stream-tickets`) stays valid while unused;
    /// it opens one stream, once.
    #[arg(long, env = "SHIPLOG_STREAM_TICKET_TTL", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub stream_ticket_ttl: u64,
    /// The largest request body the API accepts, in bytes; a larger one is answered 413
    /// (the applications proxy passes bodies on unbounded).
    #[arg(long, env = "SHIPLOG_MAX_BODY_SIZE", default_value_t = DEFAULT_MAX_BODY_SIZE, value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024 * 1024))]
    pub max_body_size: u64,
    /// Seconds a client may take to send a request's headers (on both listeners); the
    /// connection is closed after it, as is a kept-alive one idle that long.
    #[arg(long, env = "SHIPLOG_HEADER_READ_TIMEOUT", default_value_t = DEFAULT_HEADER_READ_TIMEOUT, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout: u64,
    /// Seconds a client may take to send a request's body to the API, from the start
    /// of the request; answered 408 after it.
    #[arg(long, env = "SHIPLOG_BODY_READ_TIMEOUT", default_value_t = DEFAULT_BODY_READ_TIMEOUT, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_read_timeout: u64,
    /// How many event and log streams one token may have open at once; one more is
    /// answered 429 with Retry-After.
    #[arg(long, env = "SHIPLOG_MAX_STREAMS_PER_TOKEN", default_value_t = DEFAULT_MAX_STREAMS_PER_TOKEN, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_streams_per_token: u64,
    /// Address of the applications proxy (`/{usecaseId}/{path…}` reaches the usecase's application).
    #[arg(long, env = "SHIPLOG_PROXY_LISTEN", default_value = "127.0.0.1:8081")]
    pub proxy_listen: SocketAddr,
    /// Browser origins allowed to call applications through the proxy (CORS); `*` allows any;
    /// repeat or comma-separate. Unset: no CORS headers.
    #[arg(
        long = "proxy-cors-origin",
        env = "SHIPLOG_PROXY_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub proxy_cors_origins: Vec<String>,
    /// Public deployments get hosts `<name>.<domain>`; the default resolves to loopback
    /// in curl and browsers, so the simulated cluster's ingresses answer at once.
    #[arg(long, env = "SHIPLOG_INGRESS_DOMAIN", default_value = "localhost", value_parser = parse_domain)]
    pub ingress_domain: String,
    /// The IngressClass of public deployments' Ingresses (unset: the cluster's default class).
    #[arg(long, env = "SHIPLOG_INGRESS_CLASS")]
    pub ingress_class: Option<String>,
    /// A TLS Secret (in --namespace) for every ingress host; URLs are then https.
    #[arg(long, env = "SHIPLOG_INGRESS_TLS_SECRET")]
    pub ingress_tls_secret: Option<String>,
    /// The port in ingress URLs when the ingress controller does not listen on the
    /// scheme's default; in simulated mode, the simulator's ingress port is used.
    #[arg(long, env = "SHIPLOG_INGRESS_PORT")]
    pub ingress_port: Option<u16>,
    /// Where the simulated cluster's ingress controller listens (simulated mode only).
    #[arg(long, env = "SHIPLOG_INGRESS_LISTEN", default_value = "127.0.0.1:8082")]
    pub ingress_listen: SocketAddr,
    /// The probability (0 to 1) that the built-in simulator answers a request with an
    /// API-server fault, as `shiplog sim --fault-rate` does, to try shiplog against an
    /// unreliable cluster (simulated mode only); 0: none.
    #[arg(long, env = "SHIPLOG_SIM_FAULT_RATE", default_value_t = 0.0, value_parser = parse_fault_rate)]
    pub sim_fault_rate: f64,
    /// The seed of the built-in simulator's faults (simulated mode only). Unset: a random
    /// one, logged.
    #[arg(long, env = "SHIPLOG_SIM_FAULT_SEED")]
    pub sim_fault_seed: Option<u64>,
    /// A YAML (or JSON) file of templates (`templates: [...]`) added to the built-in
    /// nginx and postgres; one with a built-in's name replaces it.
    #[arg(long, env = "SHIPLOG_TEMPLATES")]
    pub templates: Option<std::path::PathBuf>,
    /// Where a form post to POST /api/deployments/delete is redirected (303).
    #[arg(long, env = "SHIPLOG_DEPLOYMENTS_PAGE", default_value = "/deployments")]
    pub deployments_page: String,
    /// How long a web console session lasts after login, in seconds (default 12 h);
    /// revoking its token ends it sooner.
    #[arg(long, env = "SHIPLOG_SESSION_TTL", default_value_t = 43_200, value_parser = clap::value_parser!(u64).range(60..=2_592_000))]
    pub session_ttl: u64,
    /// The URL people reach shiplog at (behind a proxy); an https URL makes the web
    /// console's cookies Secure (so does `X-Forwarded-Proto: https`).
    #[arg(long, env = "SHIPLOG_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Bound the number of deployments of each team (and each subject's personal ones)
    /// by its tier; beyond it, creating answers 403.
    #[arg(long, env = "SHIPLOG_BILLING")]
    pub billing: bool,
    /// A tier's limit, `TIER=N` or `TIER=unlimited` (defaults: free=1, business=10,
    /// enterprise=unlimited); repeat or comma-separate.
    #[arg(long = "tier-limit", env = "SHIPLOG_TIER_LIMITS", value_delimiter = ',', value_parser = parse_tier_limit)]
    pub tier_limits: Vec<(Tier, Option<u32>)>,
    /// The tier whose limit each subject's personal deployments (no team) share.
    #[arg(long, env = "SHIPLOG_PERSONAL_TIER", default_value = "free", value_parser = parse_tier)]
    pub personal_tier: Tier,
    /// OIDC bearer tokens.
    #[command(flatten)]
    pub oidc: OidcArgs,
}

/// The OIDC identity provider whose JWTs `serve` accepts beside API tokens.
#[derive(clap::Args)]
pub struct OidcArgs {
    /// Accept the JWTs this OIDC identity provider issues (their `iss`, exactly) as bearer
    /// tokens beside API tokens; needs --oidc-audience. Unset: OIDC is off.
    #[arg(long, env = "SHIPLOG_OIDC_ISSUER", requires = "oidc_audience")]
    pub oidc_issuer: Option<String>,
    /// The audience a token must name in `aud`: shiplog's client id at the provider.
    #[arg(long, env = "SHIPLOG_OIDC_AUDIENCE", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,
    /// Where the provider publishes its signing keys (JWKS). Unset: the `jwks_uri` of
    /// `<issuer>/.well-known/openid-configuration`.
    #[arg(long, env = "SHIPLOG_OIDC_JWKS_URL", requires = "oidc_issuer")]
    pub oidc_jwks_url: Option<String>,
    /// The claim listing the caller's teams (names or ids of shiplog teams; others are
    /// ignored).
    #[arg(long, env = "SHIPLOG_OIDC_TEAMS_CLAIM", default_value = DEFAULT_TEAMS_CLAIM)]
    pub oidc_teams_claim: String,
    /// The claim listing the caller's shiplog scopes (a space-separated string or an
    /// array; unknown names are ignored). A token without it has no scope.
    #[arg(long, env = "SHIPLOG_OIDC_SCOPES_CLAIM", default_value = DEFAULT_SCOPES_CLAIM)]
    pub oidc_scopes_claim: String,
    /// Put before `sub` to make a token's actor and owner (e.g. `oidc:`). Unset: `sub` as
    /// it is; a `sub` that is an API token's name or subject is refused either way.
    #[arg(long, env = "SHIPLOG_OIDC_ACTOR_PREFIX")]
    pub oidc_actor_prefix: Option<String>,
    /// Seconds between two fetches of the provider's keys at least: a token naming an
    /// unknown key (`kid`) fetches them again only this long after the last fetch.
    #[arg(long, env = "SHIPLOG_OIDC_JWKS_REFETCH_INTERVAL", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub oidc_jwks_refetch_interval: u64,
}

/// A tier name.
pub fn parse_tier(raw: &str) -> Result<Tier, String> {
    Tier::parse("tier", raw.trim()).map_err(|e| e.reason)
}

/// `TIER=N` or `TIER=unlimited`.
pub fn parse_tier_limit(raw: &str) -> Result<(Tier, Option<u32>), String> {
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
pub fn parse_domain(raw: &str) -> Result<String, String> {
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

/// `shiplog projections …`.
#[derive(Subcommand)]
pub enum ProjectionsCommand {
    /// Empty the read models and replay the whole event log into them.
    Rebuild {
        /// The database.
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// The configuration reference the README holds: every flag and environment variable
/// of every subcommand, one row per option with the subcommands that take it, from
/// the definitions above (so that a test can hold the README to them).
pub fn reference() -> String {
    use clap::CommandFactory;
    let mut root = Cli::command();
    root.build();
    let mut rows: Vec<(String, String, String, String, Vec<String>)> = Vec::new();
    collect(&root, "shiplog", &mut rows);
    // Options every subcommand, or every client command, takes are said so, not listed.
    let every: Vec<String> = runnable(&root, "");
    let clients: Vec<String> = rows
        .iter()
        .find(|r| r.0 == "`--url`")
        .map(|r| r.4.clone())
        .unwrap_or_default();
    for row in &mut rows {
        if row.4 == every {
            row.4 = vec!["all".to_owned()];
        } else if row.4 == clients {
            row.4 = vec!["every client command".to_owned()];
        }
    }
    let mut out = String::from(
        "| flag | environment | default | subcommands | meaning |\n|---|---|---|---|---|\n",
    );
    for (flag, env, default, help, commands) in rows {
        out.push_str(&format!(
            "| {flag} | {env} | {default} | {} | {help} |\n",
            commands.join(", ")
        ));
    }
    out
}

/// The names of the subcommands that run (have no subcommands of their own), in order.
fn runnable(command: &clap::Command, path: &str) -> Vec<String> {
    let subs: Vec<&clap::Command> = command
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .collect();
    if subs.is_empty() {
        return vec![path.trim_start().to_owned()];
    }
    subs.into_iter()
        .flat_map(|s| runnable(s, &format!("{path} {}", s.get_name())))
        .collect()
}

/// Adds the options of `command` (called `path`) and of its subcommands to `rows`,
/// merging an option that several subcommands share into one row.
fn collect(
    command: &clap::Command,
    path: &str,
    rows: &mut Vec<(String, String, String, String, Vec<String>)>,
) {
    let runnable = command.get_subcommands().next().is_none();
    if runnable {
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let cell = |text: String| {
                if text.is_empty() {
                    "-".to_owned()
                } else {
                    text
                }
            };
            let flag = format!("`--{long}`");
            let env = cell(
                arg.get_env()
                    .map(|e| format!("`{}`", e.to_string_lossy()))
                    .unwrap_or_default(),
            );
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let default = cell(if defaults.is_empty() {
                String::new()
            } else {
                format!("`{}`", defaults.join(","))
            });
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string().replace('\n', " ").replace('|', "\\|"))
                .unwrap_or_default();
            let name = path.trim_start_matches("shiplog ").to_owned();
            match rows
                .iter_mut()
                .find(|r| r.0 == flag && r.1 == env && r.2 == default && r.3 == help)
            {
                Some(row) => row.4.push(name),
                None => rows.push((flag, env, default, help, vec![name])),
            }
        }
    }
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        collect(sub, &format!("{path} {}", sub.get_name()), rows);
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_fault_rate, reference};

    #[test]
    fn a_fault_rate_is_a_probability() {
        // (description, input, accepted value)
        let cases = [
            ("none", "0", Some(0.0)),
            ("one in ten", "0.1", Some(0.1)),
            ("every request", "1", Some(1.0)),
            ("spaces around", " 0.5 ", Some(0.5)),
            ("a percentage", "10", None),
            ("negative", "-0.1", None),
            ("not a number", "NaN", None),
            ("words", "often", None),
        ];
        for (description, input, expected) in cases {
            assert_eq!(parse_fault_rate(input).ok(), expected, "{description}");
        }
        let refused = parse_fault_rate("10").err().unwrap_or_default();
        assert!(
            refused.contains("\"10\"") && refused.contains("0 to 1"),
            "{refused}"
        );
    }

    #[test]
    fn oidc_needs_an_issuer_and_an_audience_together() {
        use super::{Cli, Command};
        use clap::Parser;
        // (description, OIDC flags, accepted)
        let cases: [(&str, &[&str], bool); 5] = [
            ("none: OIDC off", &[], true),
            (
                "both",
                &[
                    "--oidc-issuer",
                    "https://idp.example.com",
                    "--oidc-audience",
                    "shiplog",
                ],
                true,
            ),
            (
                "an issuer without an audience",
                &["--oidc-issuer", "https://idp.example.com"],
                false,
            ),
            (
                "an audience without an issuer",
                &["--oidc-audience", "shiplog"],
                false,
            ),
            (
                "a JWKS URL without an issuer",
                &["--oidc-jwks-url", "https://idp.example.com/keys"],
                false,
            ),
        ];
        for (description, flags, accepted) in cases {
            let args = ["shiplog", "serve"].iter().chain(flags);
            let parsed = Cli::try_parse_from(args);
            assert_eq!(parsed.is_ok(), accepted, "{description}");
            if let Ok(Cli {
                command: Command::Serve(serve),
                ..
            }) = parsed
            {
                assert_eq!(serve.oidc.oidc_teams_claim, "groups", "{description}");
                assert_eq!(
                    serve.oidc.oidc_scopes_claim, "shiplog_scopes",
                    "{description}"
                );
            }
        }
    }

    const START: &str = "<!-- config-reference:start -->\n";
    const END: &str = "<!-- config-reference:end -->";

    /// The README's configuration reference is what `--help` says (of the default build,
    /// which has the simulator): regenerate it with
    /// `SHIPLOG_UPDATE_README=1 cargo nextest run -E 'test(configuration_reference)'`.
    #[cfg(feature = "sim")]
    #[test]
    fn the_readme_holds_the_configuration_reference_of_every_subcommand() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
        let (Some(start), Some(end)) = (readme.find(START), readme.find(END)) else {
            panic!("README.md lacks the markers {START:?} and {END:?}");
        };
        let current = &readme[start + START.len()..end];
        let wanted = reference();
        if current != wanted {
            if std::env::var_os("SHIPLOG_UPDATE_README").is_some() {
                let updated = format!(
                    "{}{wanted}{}",
                    &readme[..start + START.len()],
                    &readme[end..]
                );
                std::fs::write(path, updated).unwrap_or_else(|e| panic!("{e}"));
                return;
            }
            panic!("README.md's configuration reference is stale; run SHIPLOG_UPDATE_README=1 cargo nextest run -E 'test(configuration_reference)'");
        }
        for (flag, env) in [
            ("`--database-url`", "`DATABASE_URL`"),
            ("`--data-dir`", "`SHIPLOG_DATA_DIR`"),
            ("`--log-format`", "`SHIPLOG_LOG_FORMAT`"),
            ("`--url`", "`SHIPLOG_URL`"),
        ] {
            assert!(
                wanted
                    .lines()
                    .any(|l| l.starts_with(&format!("| {flag} | {env} |"))),
                "{flag} ({env}) is in the reference"
            );
        }
    }
}
