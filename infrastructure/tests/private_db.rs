//! The private PostgreSQL shiplog starts when no database URL is given: created on
//! first use under the data directory, reachable only on its socket, its data kept
//! across a stop and a start, and no postmaster left running once it is stopped.

use shiplog_infrastructure::db::connect_and_migrate;
use shiplog_infrastructure::private_db::{PrivateDatabase, PrivateDbError, PrivateDbOptions};
use shiplog_testkit::eventually;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A data directory of the test's own, removed afterwards. Its parent is traversable,
/// as a home directory is, so that PostgreSQL can run as an unprivileged user when the
/// tests run as root.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "shiplog-private-db-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        Self(dir.join("data"))
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

fn postmaster_pid(db: &PrivateDatabase) -> i32 {
    let text = std::fs::read_to_string(db.cluster_dir().join("postmaster.pid"))
        .unwrap_or_else(|e| panic!("no pid file: {e}"));
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text}"))
}

#[tokio::test]
async fn a_private_database_keeps_its_data_across_a_stop_and_a_start() {
    let dir = DataDir::new();
    let options = PrivateDbOptions {
        data_dir: dir.0.clone(),
    };
    let mut db = PrivateDatabase::start(&options).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        db.url().starts_with("postgres:///shiplog?host=/"),
        "a socket, no TCP: {}",
        db.url()
    );
    let pool = connect_and_migrate(db.url())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("CREATE TABLE kept (note text)")
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("INSERT INTO kept VALUES ('still here')")
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    pool.close().await;
    let pid = postmaster_pid(&db);
    db.stop();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the postmaster {pid} is gone after stop"
    );
    drop(db);

    let db = PrivateDatabase::start(&options).unwrap_or_else(|e| panic!("{e}"));
    let pool = connect_and_migrate(db.url())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let note: String = sqlx::query_scalar("SELECT note FROM kept")
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(note, "still here");
    let migrated: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_name = 'events')",
    )
    .fetch_one(&pool)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(migrated, "shiplog's schema is in the private database");
}

#[tokio::test]
async fn a_second_start_on_a_data_directory_in_use_is_refused_and_harms_nothing() {
    let dir = DataDir::new();
    let options = PrivateDbOptions {
        data_dir: dir.0.clone(),
    };
    let db = PrivateDatabase::start(&options).unwrap_or_else(|e| panic!("{e}"));
    let refused = PrivateDatabase::start(&options);
    assert!(
        matches!(&refused, Err(PrivateDbError::InUse { holder: Some(pid), .. }) if *pid == std::process::id()),
        "{refused:?}"
    );
    let pool = connect_and_migrate(db.url())
        .await
        .unwrap_or_else(|e| panic!("the first database still serves: {e}"));
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(one, 1);
}

#[tokio::test]
async fn a_postmaster_killed_outright_leaves_files_that_do_not_fool_the_next_start() {
    let dir = DataDir::new();
    let options = PrivateDbOptions {
        data_dir: dir.0.clone(),
    };
    let mut db = PrivateDatabase::start(&options).unwrap_or_else(|e| panic!("{e}"));
    let pid = postmaster_pid(&db);
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    eventually("the killed postmaster to be gone", || async {
        if std::path::Path::new(&format!("/proc/{pid}/cwd")).exists() {
            Err("still there")
        } else {
            Ok(())
        }
    })
    .await;
    db.stop();
    drop(db);
    assert!(
        dir.0.join("postgres/postmaster.pid").exists(),
        "a postmaster killed outright leaves its pid file"
    );

    let db = PrivateDatabase::start(&options).unwrap_or_else(|e| panic!("{e}"));
    let pool = connect_and_migrate(db.url())
        .await
        .unwrap_or_else(|e| panic!("the restarted database: {e}"));
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(one, 1);
}
