//! A PostgreSQL database of a test's own.

use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

/// The workspace's migrations, the ones `shiplog serve` runs (same files, same
/// checksums): a server started on a `TestDb` finds them applied.
static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Connections a test's pool may open: as many as the server's own pool, so a
/// test that holds several transactions open at once (the ledger's ordering
/// tests) is not starved.
const MAX_CONNECTIONS: u32 = 16;

/// The server the tests use: `SHIPLOG_TEST_PG`, by default the local PostgreSQL
/// that lets user `postgres` in without a password.
pub fn pg_base() -> String {
    std::env::var("SHIPLOG_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database of the test's own (`shiplog_test_<uuid>`), migrated, dropped when
/// the value is dropped: at the end of the test, or while a failed one unwinds.
pub struct TestDb {
    /// Its URL, for a server or a command line under test.
    pub url: String,
    /// Its name.
    pub name: String,
    /// A pool on it, for arranging and asserting directly in SQL. Its sessions
    /// carry no settings of their own: billing is off, as the trigger's default.
    pub pool: PgPool,
}

impl TestDb {
    /// Creates, migrates and opens a new database; panics (failing the test) when
    /// the server cannot be reached or a migration fails.
    pub async fn create() -> Self {
        let db = Self::create_empty().await;
        MIGRATOR
            .run(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("test database {}: migration failed: {e}", db.name));
        db
    }

    /// Creates and opens a new database without migrating it: for tests of a
    /// migration, which bring it to the version before first.
    pub async fn create_empty() -> Self {
        let name = format!("shiplog_test_{}", Uuid::new_v4().simple());
        let base = pg_base();
        let mut admin = PgConnection::connect(&format!("{base}/postgres"))
            .await
            .unwrap_or_else(|e| panic!("test database {name}: cannot reach {base}: {e}"));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("test database {name}: {e}"));
        let _ = admin.close().await;
        // From here on the database exists: dropping the value removes it, also
        // when a migration fails.
        let url = format!("{base}/{name}");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_lazy(&url)
            .unwrap_or_else(|e| panic!("test database {name}: {e}"));
        Self { url, name, pool }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop is not async, and the test's runtime may be the one unwinding: drop
        // the database from a thread with a runtime of its own, and wait for it.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) =
                    PgConnection::connect(&format!("{}/postgres", pg_base())).await
                {
                    // FORCE: a server or pool of the test may still hold connections.
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                }
            });
        })
        .join();
    }
}
