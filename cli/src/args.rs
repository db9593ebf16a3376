//! The client subcommands as clap sees them, and the parsers of their values
//! (`--image`, `K=V`, `--url`), so that malformed input is a usage error (exit 2).

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use shiplog_domain::ImageRef;
use shiplog_wire::auto_update::PolicyBody;
use shiplog_wire::platform::{StrategyBody, VisibilityBody};
use shiplog_wire::teams::TierBody;
use uuid::Uuid;

/// Where the client looks for shiplog when neither --url nor SHIPLOG_URL is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// How to reach shiplog and how to print; every client command takes these.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct Connection {
    /// shiplog's API address.
    #[arg(long, env = "SHIPLOG_URL", default_value = DEFAULT_URL, value_parser = parse_url, global = true)]
    pub url: String,
    /// Bearer token (the admin token, or one from `shiplog token create`).
    #[arg(long, env = "SHIPLOG_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Why you make this change: recorded with its events and shown in history (sent as
    /// `X-Shiplog-Reason`; a shiplog run with --require-reason refuses changes without one).
    #[arg(long, env = "SHIPLOG_REASON", global = true)]
    pub reason: Option<String>,
    /// `table` for people, `json` for scripts (the API's JSON, pretty-printed; no colours).
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,
}

/// The two ways a command prints what it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables and sentences for people; colours on a terminal.
    Table,
    /// The API's JSON, for scripts.
    Json,
}

/// `--wait` and `--timeout`, shared by every command that starts something asynchronous.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Follow the usecase's events until the outcome (a spinner shows progress); exit 1 when it fails.
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait waits before giving up with exit 1.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub timeout: u64,
}

/// The client subcommands: each one calls shiplog's HTTP API.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// List the templates `shiplog create` can start from.
    Templates(Listing),
    /// Create a deployment from a template under a generated name; prints the name, then its URLs.
    Create(CreateArgs),
    /// Deploy a container image under a name (yours or a generated one); prints the name, then its URLs.
    DeployImage(DeployImageArgs),
    /// List the named deployments (every usecase): status, template or image, visibility,
    /// owner, URL.
    Ls(LsArgs),
    /// Undeploy a named deployment and delete it, Kubernetes objects and all.
    Remove(RemoveArgs),
    /// Register, list, show and delete usecases.
    Usecase(UsecaseArgs),
    /// Deploy an image to a usecase (`--wait` follows it until deployed or failed).
    Deploy(DeployArgs),
    /// Show a usecase and its current deployment.
    Status(Target),
    /// List a usecase's deployments, newest first.
    Deployments(Target),
    /// Take down everything of a usecase that is deployed or in flight.
    Undeploy(WaitingTarget),
    /// Roll the pods of the deployed deployment (same config).
    Restart(WaitingTarget),
    /// Deploy an earlier deployment's config again (default: the one deployed before the current).
    Rollback(RollbackArgs),
    /// Read and change the deployed deployment's environment variables.
    Config(ConfigArgs),
    /// Show or change auto-update: following new images of the deployed tag (`digest`)
    /// or the highest version in a range (`semver`); shows the pause a rollback left
    /// and the watcher's last check.
    AutoUpdate(AutoUpdateArgs),
    /// Print the logs of the deployed deployment's pods.
    Logs(LogsArgs),
    /// A usecase's audit trail: every event, oldest first.
    History(Target),
    /// Follow events live, one line each (all usecases need audit:read); resumable with --after.
    Watch(WatchArgs),
    /// Check the ledger's tamper evidence.
    Audit(AuditArgs),
    /// Create, list and revoke API tokens.
    Token(TokenArgs),
    /// Create, list, show and change teams, and see what they use.
    Team(TeamArgs),
}

/// A command that takes nothing but the connection options.
#[derive(Debug, Args)]
pub struct Listing {
    #[command(flatten)]
    pub conn: Connection,
}

/// Who may reach a named deployment, as `--visibility` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VisibilityArg {
    /// An ingress (and URL) per exposed service.
    Public,
    /// No ingress: reachable inside the cluster and through the applications proxy.
    Internal,
}

impl From<VisibilityArg> for VisibilityBody {
    fn from(v: VisibilityArg) -> Self {
        match v {
            VisibilityArg::Public => VisibilityBody::Public,
            VisibilityArg::Internal => VisibilityBody::Internal,
        }
    }
}

/// `shiplog create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The template's name (see `shiplog templates`).
    pub template: String,
    /// An environment variable over the template's defaults; repeat for more.
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env_var)]
    pub env: Vec<(String, String)>,
    /// Who may reach it (shiplog's default: public).
    #[arg(long, value_enum)]
    pub visibility: Option<VisibilityArg>,
    /// The team it belongs to: its id or exact name (default: the token's only team).
    #[arg(long, value_name = "TEAM")]
    pub team: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub conn: Connection,
}

/// `shiplog ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only this team's deployments: its id or exact name.
    #[arg(long, value_name = "TEAM")]
    pub team: Option<String>,
    #[command(flatten)]
    pub conn: Connection,
}

/// `shiplog deploy-image`.
#[derive(Debug, Args)]
pub struct DeployImageArgs {
    /// The image in Docker's syntax: nginx:latest, registry.example.com/team/app:1.2.3,
    /// optionally @sha256:…; no tag means latest.
    #[arg(value_name = "IMAGE", value_parser = parse_reference)]
    pub image: String,
    /// Its name: a DNS label of up to 40 characters (shiplog's default: a generated one).
    #[arg(long)]
    pub name: Option<String>,
    /// The port the container listens on (shiplog's default: 8080).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// An environment variable; repeat for more.
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env_var)]
    pub env: Vec<(String, String)>,
    /// Who may reach it (shiplog's default: public).
    #[arg(long, value_enum)]
    pub visibility: Option<VisibilityArg>,
    /// The team it belongs to: its id or exact name (default: the token's only team).
    #[arg(long, value_name = "TEAM")]
    pub team: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub conn: Connection,
}

/// `shiplog remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The deployment's name (as `shiplog ls` shows it).
    pub name: String,
    // --wait: until it is gone (undeployed, deleted, its name free again).
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub conn: Connection,
}

/// A command about one usecase.
#[derive(Debug, Args)]
pub struct Target {
    /// The usecase: its id or its exact name.
    pub usecase: String,
    #[command(flatten)]
    pub conn: Connection,
}

/// A command about one usecase that can wait for its outcome.
#[derive(Debug, Args)]
pub struct WaitingTarget {
    /// The usecase: its id or its exact name.
    pub usecase: String,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub conn: Connection,
}

/// `shiplog usecase …`.
#[derive(Debug, Args)]
pub struct UsecaseArgs {
    #[command(subcommand)]
    pub command: UsecaseCommand,
    #[command(flatten)]
    pub conn: Connection,
}

/// The usecase subcommands.
#[derive(Debug, Subcommand)]
pub enum UsecaseCommand {
    /// Register a usecase under a unique name.
    Create {
        /// Its name: unique, 1 to 128 characters.
        name: String,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// The team it belongs to: its id or exact name (default: the token's only team).
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
    },
    /// List usecases in registration order (every page).
    List {
        /// Only those whose name contains this text (case-insensitive).
        #[arg(long, value_name = "PART")]
        name: Option<String>,
        /// Only this team's usecases: its id or exact name.
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
    },
    /// Show one usecase and its current deployment.
    Show {
        /// Its id or exact name.
        usecase: String,
    },
    /// Delete a usecase (refused while anything of it is deployed or in flight).
    Delete {
        /// Its id or exact name.
        usecase: String,
    },
}

/// `shiplog deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The usecase: its id or its exact name.
    pub usecase: String,
    /// The image in Docker's syntax: nginx:latest, registry.example.com/team/app:1.0.0,
    /// optionally @sha256:…; no registry means Docker Hub, no tag latest.
    #[arg(long, value_name = "IMAGE", value_parser = parse_image)]
    pub image: ImageRef,
    /// The port the application listens on (shiplog's default: 8080).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// An environment variable; repeat for more.
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env_var)]
    pub env: Vec<(String, String)>,
    /// A secret environment variable: sealed before shiplog records it, shown masked,
    /// given to the pod through the deployment's Kubernetes Secret; repeat for more
    #[arg(long = "secret-env", value_name = "K=V", value_parser = parse_env_var)]
    pub secret_env: Vec<(String, String)>,
    /// Number of pods (shiplog's default: 1).
    #[arg(long, value_name = "N")]
    pub replicas: Option<u32>,
    /// Create a Prometheus ServiceMonitor scraping /metrics at this interval (e.g. 5s).
    #[arg(long, value_name = "INTERVAL")]
    pub service_monitor: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub conn: Connection,
}

/// `shiplog rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The usecase: its id or its exact name.
    pub usecase: String,
    /// The finished deployment whose config to restore (default: the one deployed before the current).
    #[arg(long, value_name = "DEPLOYMENT_ID")]
    pub to: Option<Uuid>,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub conn: Connection,
}

/// `shiplog config …`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
    #[command(flatten)]
    pub conn: Connection,
}

/// `shiplog auto-update`: without a flag it shows; any flag changes what it names.
#[derive(Debug, Args)]
pub struct AutoUpdateArgs {
    /// The usecase: its id or its exact name.
    pub usecase: String,
    /// Follow new images (again: also ends a pause a manual rollback left).
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Stop following new images.
    #[arg(long)]
    pub disable: bool,
    /// How pods are replaced.
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
    /// Which new images count.
    #[arg(long, value_enum)]
    pub policy: Option<PolicyArg>,
    /// The versions the semver policy follows (`^1`, `~1.4`, `>=2 <3`); alone it means --policy semver.
    #[arg(long)]
    pub range: Option<String>,
    #[command(flatten)]
    pub conn: Connection,
}

/// How pods are replaced, as `--strategy` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// New pods before old ones go.
    Rolling,
    /// Old pods go before new ones start.
    Recreate,
}

impl From<StrategyArg> for StrategyBody {
    fn from(s: StrategyArg) -> Self {
        match s {
            StrategyArg::Rolling => StrategyBody::Rolling,
            StrategyArg::Recreate => StrategyBody::Recreate,
        }
    }
}

/// Which new images count, as `--policy` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// A new digest behind the deployed tag.
    Digest,
    /// The highest tag inside --range.
    Semver,
}

impl From<PolicyArg> for PolicyBody {
    fn from(p: PolicyArg) -> Self {
        match p {
            PolicyArg::Digest => PolicyBody::Digest,
            PolicyArg::Semver => PolicyBody::Semver,
        }
    }
}

/// The config subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the deployed deployment's environment variables.
    Get {
        /// The usecase: its id or its exact name.
        usecase: String,
    },
    /// Set environment variables (merged into the current ones; --replace sends exactly these).
    /// This rolls out a new deployment.
    Set {
        /// The usecase: its id or its exact name.
        usecase: String,
        /// The variables.
        #[arg(value_name = "K=V", required = true, value_parser = parse_env_var)]
        vars: Vec<(String, String)>,
        /// Make these the complete environment instead of merging them into the current one.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Remove environment variables; this rolls out a new deployment.
    Unset {
        /// The usecase: its id or its exact name.
        usecase: String,
        /// The names to remove.
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// `shiplog logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The usecase: its id or its exact name.
    pub usecase: String,
    /// Lines per pod from the end of its log (shiplog's default: 100).
    #[arg(long, value_name = "N")]
    pub tail: Option<u32>,
    /// Keep following new lines until interrupted or the pods go away.
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// `shiplog watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only this usecase (its id or exact name); without it, the whole ledger (needs audit:read).
    pub usecase: Option<String>,
    /// Start after this cursor (printed with every event) instead of with the next new event.
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
    /// Only these event types, comma-separated (e.g. DeploymentSucceeded,DeploymentFailed).
    #[arg(long, value_name = "T1,T2", value_delimiter = ',')]
    pub types: Vec<String>,
    #[command(flatten)]
    pub conn: Connection,
}

/// `shiplog audit …`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
    #[command(flatten)]
    pub conn: Connection,
}

/// The audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; exit 1 when it is broken.
    Verify,
}

/// `shiplog token …`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
    #[command(flatten)]
    pub conn: Connection,
}

/// The token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once, alone on stdout.
    Create {
        /// Its name, recorded as the actor of everything it does.
        name: String,
        /// A scope (usecases:read, usecases:write, deployments:read, deployments:write,
        /// audit:read, admin, hooks:registry); repeat or comma-separate.
        #[arg(
            long = "scope",
            value_name = "SCOPE",
            required = true,
            value_delimiter = ','
        )]
        scopes: Vec<String>,
        /// Who it speaks for: the owner of what it creates, whose usecases it may read and
        /// change (shiplog's default: its name). Tokens may share a subject.
        #[arg(long)]
        subject: Option<String>,
        /// A team its subject belongs to (its id or exact name); repeat for more. With
        /// exactly one, what it creates belongs to that team.
        #[arg(long = "team", value_name = "TEAM")]
        teams: Vec<String>,
        /// It stops working this long after its creation: `30d`, `12h`, `90m`, `1w`,
        /// `1d 12h` (at most a year). Default: it does not expire
        #[arg(long, value_name = "DURATION", value_parser = parse_lifetime)]
        expires_in: Option<u64>,
    },
    /// List the tokens not revoked (never their secrets), with their expiry.
    List,
    /// Revoke a token at once.
    Revoke {
        /// Its id (or its name). Not called `token`: that is the global --token.
        #[arg(value_name = "ID")]
        id: String,
    },
}

/// `shiplog team …`.
#[derive(Debug, Args)]
pub struct TeamArgs {
    #[command(subcommand)]
    pub command: TeamCommand,
    #[command(flatten)]
    pub conn: Connection,
}

/// A team's billing tier, as `--tier` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TierArg {
    /// 1 deployment by default (with billing on).
    Free,
    /// 10 deployments by default.
    Business,
    /// No limit by default.
    Enterprise,
}

impl From<TierArg> for TierBody {
    fn from(t: TierArg) -> Self {
        match t {
            TierArg::Free => TierBody::Free,
            TierArg::Business => TierBody::Business,
            TierArg::Enterprise => TierBody::Enterprise,
        }
    }
}

/// The team subcommands. TEAM is a team's id or its exact name.
#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Create a team (needs admin); its id is printed alone on stdout.
    Create {
        /// Its name: unique, 1 to 64 characters.
        name: String,
        /// Its tier (shiplog's default: free).
        #[arg(long, value_enum)]
        tier: Option<TierArg>,
    },
    /// List the teams this token can see (all of them for an admin).
    List,
    /// Show one team.
    Show {
        /// Its id or exact name.
        team: String,
    },
    /// Rename a team and/or change its tier (needs admin); a new tier's limit applies at once.
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args(["name", "tier"])))]
    Update {
        /// Its id or exact name.
        team: String,
        /// Its new name.
        #[arg(long)]
        name: Option<String>,
        /// Its new tier.
        #[arg(long, value_enum)]
        tier: Option<TierArg>,
    },
    /// What a team's deployments came to over a time range, from the ledger.
    Usage {
        /// Its id or exact name.
        team: String,
        /// The range's start, RFC 3339 (default: the beginning).
        #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
        from: Option<DateTime<Utc>>,
        /// The range's end, exclusive, RFC 3339 (default: now).
        #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
        to: Option<DateTime<Utc>>,
    },
}

/// Parses `--image` with the domain's parser of Docker's reference syntax, normalised as
/// Docker does (`nginx:latest` is `docker.io/library/nginx:latest`). The usecase API needs
/// a tag, so a digest alone (`nginx@sha256:…`) is refused here, pointing to `deploy-image`.
pub fn parse_image(value: &str) -> Result<ImageRef, String> {
    let image = ImageRef::parse("--image", value).map_err(|e| e.reason)?;
    if image.tag.is_empty() {
        return Err(format!(
            "{:?} names a digest but no tag: `deploy` needs both (e.g. {}/{}:1.0@{}), \
             or use `shiplog deploy-image`, which takes a digest alone",
            value.trim(),
            image.registry,
            image.repository,
            image.digest.as_deref().unwrap_or("sha256:…"),
        ));
    }
    Ok(image)
}

/// Checks an image in Docker's reference syntax (for `deploy-image`) with the domain's
/// parser, so a typo is a usage error naming it; the text itself goes to the server.
pub fn parse_reference(value: &str) -> Result<String, String> {
    ImageRef::parse("IMAGE", value).map_err(|e| e.reason)?;
    Ok(value.trim().to_owned())
}

/// Splits `NAME=VALUE` at the first '='; the value may be empty or contain '='.
pub fn parse_env_var(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("{value:?} is not NAME=VALUE")),
    }
}

/// Reads an RFC 3339 instant (`2026-01-31T00:00:00Z`, any offset), so that a typo is a
/// usage error here rather than the server's 400.
pub fn parse_instant(value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("{value:?} is not an RFC 3339 instant like 2026-01-31T00:00:00Z ({e})")
        })
}

/// Reads a lifetime in people's words (`30d`, `12h`, `1w`, `1d 12h`, or ISO 8601's
/// `P30D`) as whole seconds, days counting 24 hours; the server bounds it.
pub fn parse_lifetime(value: &str) -> Result<u64, String> {
    let unreadable = |e: &dyn std::fmt::Display| {
        format!("{value:?} is not a duration like 30d, 12h, 90m or 1w ({e})")
    };
    let span: jiff::Span = value.trim().parse().map_err(|e| unreadable(&e))?;
    let seconds = span
        .total((
            jiff::Unit::Second,
            jiff::SpanRelativeTo::days_are_24_hours(),
        ))
        .map_err(|e| unreadable(&e))?;
    if seconds < 1.0 {
        return Err(format!("{value:?}: a token lives at least one second"));
    }
    Ok(seconds.floor() as u64)
}

/// Accepts an http(s) URL and drops trailing slashes, so paths can be appended.
pub fn parse_url(value: &str) -> Result<String, String> {
    let url = shiplog_client::Url::parse(value.trim()).map_err(|e| format!("{value:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{value:?}: shiplog is reached over http or https"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
