//! One leader per database for a background duty (the process manager, the
//! auto-update watcher): a session advisory lock held on a dedicated connection.
//! Whoever holds it leads; a lost connection releases it, and a standby takes over.

use sqlx::{Connection, PgConnection, PgPool};
use std::time::Duration;

/// How often the leader checks that its lock connection is alive.
const LEASE_CHECK: Duration = Duration::from_secs(1);

/// A dedicated connection holding the lock named `duty`, or `None` when another
/// process holds it.
pub async fn try_lead(pool: &PgPool, duty: &str) -> Result<Option<PgConnection>, sqlx::Error> {
    let mut conn = pool.acquire().await?.detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(duty)
        .fetch_one(&mut conn)
        .await?;
    if locked {
        Ok(Some(conn))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

/// Holds the lock connection; returns when it is lost.
pub async fn hold(mut lock: PgConnection) {
    loop {
        tokio::time::sleep(LEASE_CHECK).await;
        if sqlx::query("SELECT 1").execute(&mut lock).await.is_err() {
            return;
        }
    }
}
