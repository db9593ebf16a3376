//! Connecting to Postgres, creating the database on first start, migrations,
//! and telling an outage (503) from a bug (500).

use shiplog_application::{AppError, BillingSettings};
use shiplog_domain::Tier;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use std::str::FromStr;
use std::time::Duration;
use tracing::info;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Why the database could not be prepared at start.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// The URL is not a Postgres URL.
    #[error("invalid database URL: {0}")]
    InvalidUrl(#[source] sqlx::Error),
    /// The server could not be reached or refused us.
    #[error("cannot reach the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Opens a pool on `url`, creating the database first when the server lacks it
/// (so a fresh machine needs no manual `createdb`), and applies the migrations.
/// Billing is off on its connections.
pub async fn connect_and_migrate(url: &str) -> Result<PgPool, DbSetupError> {
    connect_and_migrate_with(url, &BillingSettings::default()).await
}

/// The session settings the billing trigger reads (see `0009_owners_teams_billing.sql`).
fn billing_settings(billing: &BillingSettings) -> Vec<(String, String)> {
    let limit = |l: Option<u32>| l.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    let on = if billing.enabled { "on" } else { "off" };
    vec![
        ("shiplog.billing".to_owned(), on.to_owned()),
        (format!("shiplog.limit_{}", Tier::Free), limit(billing.free)),
        (
            format!("shiplog.limit_{}", Tier::Business),
            limit(billing.business),
        ),
        (
            format!("shiplog.limit_{}", Tier::Enterprise),
            limit(billing.enterprise),
        ),
        (
            "shiplog.personal_tier".to_owned(),
            billing.personal_tier.to_string(),
        ),
    ]
}

/// A database URL fit for a log: the password of `user:password@` and any `password`
/// (or `sslpassword`) query parameter replaced by `***`.
pub fn redacted_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match base[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{}:***{}", &base[..scheme + 3], user, &base[at..]),
            None => base.to_owned(),
        },
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if matches!(name, "password" | "sslpassword") => {
                    format!("{name}=***")
                }
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// As [`connect_and_migrate`], with `billing` in force on every connection: the
/// trigger that counts deployments per account reads it, so the limit holds in the
/// database itself, whatever the concurrency.
pub async fn connect_and_migrate_with(
    url: &str,
    billing: &BillingSettings,
) -> Result<PgPool, DbSetupError> {
    let options = PgConnectOptions::from_str(url).map_err(DbSetupError::InvalidUrl)?;
    ensure_database(&options).await?;
    let settings = billing_settings(billing);
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(move |conn, _meta| {
            let settings = settings.clone();
            Box::pin(async move {
                // A forgotten open transaction would pause every subscriber (see README).
                sqlx::query("SET idle_in_transaction_session_timeout = '60s'")
                    .execute(&mut *conn)
                    .await?;
                for (name, value) in settings {
                    sqlx::query("SELECT set_config($1, $2, false)")
                        .bind(name)
                        .bind(value)
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(DbSetupError::Connect)?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

async fn ensure_database(options: &PgConnectOptions) -> Result<(), DbSetupError> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .map_err(DbSetupError::Connect)?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await
        .map_err(DbSetupError::Connect)?;
    if exists.is_none() {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await
        {
            Ok(_) => info!(database = %name, "created database"),
            // Another process created it at the same moment: fine.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(e) => return Err(DbSetupError::Connect(e)),
        }
    }
    let _ = admin.close().await;
    Ok(())
}

/// True for errors that mean "the database is not reachable right now", which
/// the API answers with 503 and Retry-After rather than 500.
pub fn is_outage(err: &sqlx::Error) -> bool {
    match err {
        // Protocol: the conversation broke off (a proxy or server went away mid-handshake).
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            // Class 08: connection exceptions; 57P0x: server shutting down; 53300: too many connections.
            code.starts_with("08") || code.starts_with("57P") || code == "53300"
        }),
        _ => false,
    }
}

/// Maps a database error to the application's error: outage or bug.
pub fn app_error(err: sqlx::Error) -> AppError {
    if is_outage(&err) {
        AppError::Unavailable(format!("database unavailable: {err}"))
    } else {
        AppError::Internal(format!("database error: {err}"))
    }
}

/// Marks the current transaction as one that writes only what the event log can
/// rebuild (read models, the hash chain, a subscription's checkpoint), in one round trip:
///
/// - it commits without waiting for its WAL flush. It is visible to every session
///   at once, as any commit; a crash can lose only its last few milliseconds,
///   which the writer then redoes from its durable checkpoint. The events
///   themselves are always committed durably before a client hears of them.
/// - each statement is planned for its actual arguments. A batch's arrays hold one
///   row or thousands, and a generic plan cached while a table was small (a
///   sequential scan and a hash join) would go on scanning it whole as it grew:
///   seen as deploy commands slowing down with the size of `deployment_view`.
pub(crate) async fn derived_writes(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('synchronous_commit', 'off', true),
                set_config('plan_cache_mode', 'force_custom_plan', true)",
    )
    .execute(conn)
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_urls_hold_no_password() {
        let cases = [
            (
                "postgres://app:s3cret@db:5432/shiplog",
                "postgres://app:***@db:5432/shiplog",
            ),
            (
                "postgres://db/shiplog?user=app&password=s3cret&sslmode=require",
                "postgres://db/shiplog?user=app&password=***&sslmode=require",
            ),
            (
                "postgres:///shiplog?host=/run/x&user=shiplog",
                "postgres:///shiplog?host=/run/x&user=shiplog",
            ),
            ("postgres://app@db/shiplog", "postgres://app@db/shiplog"),
        ];
        for (url, logged) in cases {
            assert_eq!(redacted_url(url), logged);
        }
    }
}
