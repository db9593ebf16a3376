//! `shiplog serve` with no database URL, as the README's run command starts it: it
//! brings up a PostgreSQL of its own under the data directory, a deployment reaches
//! `deployed`, the usecase is still there after a stop and a start, and a SIGKILL of
//! shiplog leaves no database process behind.

use crate::helpers::ADMIN_TOKEN;
use shiplog_client::wire::secrets::SecretEnvValue;
use shiplog_client::wire::usecases::{
    CreateDeployment, CreateUsecase, DeploymentConfigBody, ImageBody,
};
use shiplog_client::Client;
use shiplog_testkit::{eventually, eventually_within};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use uuid::Uuid;

/// A temporary data directory whose parent others may traverse (PostgreSQL runs as
/// an unprivileged user when the tests run as root); removed afterwards.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("shiplog-serve-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        Self(dir)
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.0.join("data")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `shiplog serve` on the private database of `data_dir`.
struct Serve {
    child: Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts it with the admin token `ADMIN_TOKEN`, or none (`generate`).
    async fn start(scratch: &Scratch, run: usize) -> Self {
        Self::start_with(scratch, run, Some(ADMIN_TOKEN)).await
    }

    async fn start_with(scratch: &Scratch, run: usize, token: Option<&str>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let log = std::fs::File::create(scratch.0.join(format!("serve-{run}.log")))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_shiplog"));
        match token {
            Some(token) => command.env("SHIPLOG_ADMIN_TOKEN", token),
            None => command.env_remove("SHIPLOG_ADMIN_TOKEN"),
        };
        let child = command
            .arg("serve")
            .arg("--data-dir")
            .arg(scratch.data_dir())
            .env_remove("DATABASE_URL")
            .env("SHIPLOG_LISTEN", format!("127.0.0.1:{port}"))
            .env("SHIPLOG_PROXY_LISTEN", "127.0.0.1:0")
            .env("SHIPLOG_INGRESS_LISTEN", "127.0.0.1:0")
            .env("SHIPLOG_CLUSTER", "simulated")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn shiplog: {e}"));
        let mut serve = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        serve.await_ready(scratch, run).await;
        serve
    }

    async fn await_ready(&mut self, scratch: &Scratch, run: usize) {
        let client = Client::new(&self.base, None).unwrap_or_else(|e| panic!("{e}"));
        let child = &mut self.child;
        eventually_within("shiplog to answer /readyz", Duration::from_secs(90), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("shiplog exited with {status}: {}", log_of(scratch, run));
            }
            let probe = client.send(client.request(reqwest::Method::GET, "/readyz"));
            async move { probe.await.map(|_| ()).map_err(|e| e.to_string()) }
        })
        .await;
    }

    fn client(&self) -> Client {
        self.client_with(ADMIN_TOKEN)
    }

    fn client_with(&self, token: &str) -> Client {
        Client::new(&self.base, Some(token)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Stops it as a service manager would (SIGTERM) and waits for its exit.
    fn terminate(mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let status = self.child.wait().unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success(), "a graceful stop exits 0, not {status}");
    }
}

fn log_of(scratch: &Scratch, run: usize) -> String {
    std::fs::read_to_string(scratch.0.join(format!("serve-{run}.log"))).unwrap_or_default()
}

/// The postmaster's pid, from the cluster's pid file.
fn postmaster(data_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("postgres/postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

async fn gone(pid: i32, what: &str) {
    eventually(
        &format!("{what}: postmaster {pid} to exit"),
        || async move {
            if alive(pid) {
                Err("still running")
            } else {
                Ok(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn with_no_database_url_shiplog_runs_on_a_private_postgresql_that_survives_restarts() {
    let scratch = Scratch::new();
    let serve = Serve::start(&scratch, 1).await;
    let log = log_of(&scratch, 1);
    assert!(
        log.contains("DATABASE: a private PostgreSQL"),
        "the start-up log says which database: {log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes in a log that is not a terminal: {log}"
    );
    let api = serve.client();
    let usecase = api
        .create_usecase(
            &CreateUsecase {
                name: "private".to_owned(),
                description: None,
            },
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A secret value: the embedded default seals it under a master key it generated.
    let mut config = DeploymentConfigBody::image(ImageBody::tagged(
        "registry.example.com",
        "team/app",
        "1.0.0",
    ));
    config.secret_env = Some(
        [(
            "DB_PASSWORD".to_owned(),
            SecretEnvValue::Value("embedded-s3cret".to_owned()),
        )]
        .into(),
    );
    let body = CreateDeployment { config };
    let deployment = api
        .deploy(usecase.id, &body)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eventually("the deployment to reach deployed", || async {
        match api.deployment(usecase.id, deployment.id).await {
            Ok(read) if read.status.as_str() == "deployed" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let key_file = scratch.data_dir().join("secret-key");
    let mode = std::fs::metadata(&key_file)
        .unwrap_or_else(|e| panic!("{}: {e}", key_file.display()))
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the generated master key is the owner's alone"
    );
    let log = log_of(&scratch, 1);
    assert!(
        log.contains("SECRETS: NO --secret-key-file GIVEN"),
        "a loud warning: {log}"
    );
    assert!(!log.contains("embedded-s3cret"), "the value is not logged");
    let first = postmaster(&scratch.data_dir()).unwrap_or_else(|| panic!("no postmaster.pid"));
    serve.terminate();
    gone(first, "after SIGTERM").await;

    let serve = Serve::start(&scratch, 2).await;
    // The same master key after a restart: what was sealed still opens.
    let master_key = |log: String| {
        regex::Regex::new(r"master_key=([0-9a-f]{16})")
            .ok()
            .and_then(|re| re.captures(&log)?.get(1).map(|m| m.as_str().to_owned()))
    };
    assert_eq!(
        master_key(log_of(&scratch, 2)),
        master_key(log),
        "the key kept in the data directory is used again"
    );
    let kept = serve
        .client()
        .usecase(usecase.id)
        .await
        .unwrap_or_else(|e| panic!("the usecase after a restart: {e}"));
    assert_eq!(kept.name, "private");
    let second = postmaster(&scratch.data_dir()).unwrap_or_else(|| panic!("no postmaster.pid"));
    let mut serve = serve;
    serve.child.kill().unwrap_or_else(|e| panic!("{e}"));
    let _ = serve.child.wait();
    gone(second, "after SIGKILL of shiplog").await;

    // No admin token given and no terminal: a generated one goes to a file only the
    // owner can read, not into the log.
    let serve = Serve::start_with(&scratch, 3, None).await;
    let file = scratch.data_dir().join("admin-token");
    let mode = std::fs::metadata(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is the owner's alone");
    let token = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    let token = token.trim();
    assert!(
        !log_of(&scratch, 3).contains(token),
        "the generated token is not in the log"
    );
    let kept = serve
        .client_with(token)
        .usecase(usecase.id)
        .await
        .unwrap_or_else(|e| panic!("the usecase after a SIGKILL: {e}"));
    assert_eq!(kept.name, "private");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_for_log_pipelines() {
    let output = Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(["serve", "--log-format", "json"])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("SHIPLOG_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SHIPLOG_LISTEN", "127.0.0.1:0")
        .env("SHIPLOG_PROXY_LISTEN", "127.0.0.1:0")
        .env("SHIPLOG_CLUSTER", "none")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!output.status.success(), "no database: it cannot start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("DATABASE"))
        .unwrap_or_else(|| panic!("no line names the database: {stderr}"));
    let record: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(record["level"], "WARN", "{record}");
    assert!(
        record["fields"]["database"]
            .as_str()
            .is_some_and(|d| d.contains("127.0.0.1:1")),
        "{record}"
    );
}
