//! A PostgreSQL database of a test's own: created and migrated as `shiplog serve`
//! does on a fresh machine, dropped when the test ends (also when it fails).
//! Included with `#[path]` by the test crates that need it (there is no shared
//! dev-only crate for one file).

use shiplog_infrastructure::db::connect_and_migrate;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

/// The server the tests use; override with SHIPLOG_TEST_PG.
pub fn pg_base() -> String {
    std::env::var("SHIPLOG_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database of its own, migrated, dropped when the test ends.
pub struct TestDb {
    pub url: String,
    pub name: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn create() -> Self {
        let name = format!("shiplog_test_{}", Uuid::new_v4().simple());
        let url = format!("{}/{}", pg_base(), name);
        let pool = connect_and_migrate(&url)
            .await
            .unwrap_or_else(|e| panic!("test database {name}: {e}"));
        Self { url, name, pool }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop is not async: drop the database from a thread with its own runtime.
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
