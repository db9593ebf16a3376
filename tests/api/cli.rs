//! The `shiplog` command line as a user runs it: the built binary, with SHIPLOG_URL and
//! SHIPLOG_TOKEN, against a server on a real database driving the Kubernetes simulator.

use crate::cluster::{app_on, sim_with};
use crate::helpers::{TestApp, ADMIN_TOKEN};
use kube_sim::KubeSim;
use serde_json::Value;
use std::time::Duration;

/// A simulator whose rollouts are ready (or fail) within moments.
async fn sim() -> KubeSim {
    sim_with(Duration::from_millis(100), true).await
}

/// What one run of the binary did.
struct Run {
    args: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Fails the test unless the command exited with `code`.
    fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "`shiplog {}` exited {} instead of {code}\nstdout: {}\nstderr: {}",
            self.args, self.code, self.stdout, self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`shiplog {}` printed no JSON ({e}): {}",
                self.args, self.stdout
            )
        })
    }
}

/// Runs `shiplog ARGS` against `app` with the admin token.
async fn shiplog(app: &TestApp, args: &[&str]) -> Run {
    run(
        &[("SHIPLOG_URL", &app.base), ("SHIPLOG_TOKEN", ADMIN_TOKEN)],
        args,
    )
    .await
}

/// Runs `shiplog ARGS` against `app` with `token` instead of the admin's.
async fn shiplog_as(app: &TestApp, token: &str, args: &[&str]) -> Run {
    run(
        &[("SHIPLOG_URL", &app.base), ("SHIPLOG_TOKEN", token)],
        args,
    )
    .await
}

/// Creates a token with `shiplog token create` and returns its secret; `extra` adds
/// `--subject` and `--team` options.
async fn create_token(app: &TestApp, name: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "token",
        "create",
        name,
        "--scope",
        "usecases:read,usecases:write,deployments:read,deployments:write",
    ];
    args.extend(extra);
    shiplog(app, &args).await.expect(0).stdout.trim().to_owned()
}

/// Runs `shiplog ARGS` with these environment variables, off the async runtime (the
/// binary blocks, the server under test runs on this runtime).
async fn run(env: &[(&str, &str)], args: &[&str]) -> Run {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let output = assert_cmd::Command::new(env!("CARGO_BIN_EXE_shiplog"))
            .args(&args)
            .env_remove("SHIPLOG_URL")
            .env_remove("SHIPLOG_TOKEN")
            .envs(env)
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap_or_else(|e| panic!("running shiplog {args:?}: {e}"));
        Run {
            args: args.join(" "),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// One row of the error table: description, extra environment, arguments, the exit
/// code, and a part of what stderr must say.
type ErrorCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<&'a str>, i32, &'a str);

/// A manifest digest, for images pinned to one.
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_usecase_goes_from_create_through_deploy_and_undeploy_to_delete() {
    let sim = sim().await;
    let app = app_on(&sim).await;

    let created = shiplog(
        &app,
        &["usecase", "create", "chat bot", "--description", "demo"],
    )
    .await
    .expect(0);
    assert!(created.stdout.contains("created"), "{}", created.stdout);

    // The name works wherever an id does.
    let deployed = shiplog(
        &app,
        &[
            "deploy",
            "chat bot",
            "--image",
            "registry.example.com/team/chat:1.0.0",
            "--env",
            "LOG_LEVEL=debug",
            "--replicas",
            "2",
            "--wait",
        ],
    )
    .await
    .expect(0);
    assert!(
        deployed.stdout.contains("deployed"),
        "deploy --wait: {}",
        deployed.stdout
    );

    let status = shiplog(&app, &["status", "chat bot"]).await.expect(0);
    for expected in [
        "chat bot",
        "deployed",
        "registry.example.com/team/chat:1.0.0",
    ] {
        assert!(
            status.stdout.contains(expected),
            "status lacks {expected:?}: {}",
            status.stdout
        );
    }

    let history = shiplog(&app, &["history", "chat bot"]).await.expect(0);
    for expected in [
        "UsecaseRegistered",
        "DeploymentRequested",
        "DeploymentStarted",
        "DeploymentSucceeded",
        "requested: registry.example.com/team/chat:1.0.0",
        "process-manager",
    ] {
        assert!(
            history.stdout.contains(expected),
            "history lacks {expected:?}: {}",
            history.stdout
        );
    }

    let undeployed = shiplog(&app, &["undeploy", "chat bot", "--wait"])
        .await
        .expect(0);
    assert!(
        undeployed.stdout.contains("undeployed"),
        "{}",
        undeployed.stdout
    );
    let deployments = shiplog(&app, &["deployments", "chat bot"]).await.expect(0);
    assert!(
        deployments.stdout.contains("undeployed"),
        "{}",
        deployments.stdout
    );

    shiplog(&app, &["usecase", "delete", "chat bot"])
        .await
        .expect(0);
    let gone = shiplog(&app, &["status", "chat bot"]).await.expect(3);
    assert!(
        gone.stderr.contains("no usecase named \"chat bot\""),
        "{}",
        gone.stderr
    );
}

#[tokio::test]
async fn output_json_prints_the_apis_json() {
    let sim = sim().await;
    let app = app_on(&sim).await;

    let created = shiplog(&app, &["usecase", "create", "scripted", "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(created["name"], "scripted");
    let id = created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {created}"))
        .to_owned();

    // The connection options may also come first, before the subcommand.
    let shown = run(
        &[],
        &[
            "--url",
            &app.base,
            "--token",
            ADMIN_TOKEN,
            "-o",
            "json",
            "usecase",
            "show",
            &id,
        ],
    )
    .await
    .expect(0)
    .json();
    assert_eq!(shown["name"], "scripted");
    let refused = run(&[], &["serve", "--url", &app.base]).await.expect(2);
    assert!(refused.stderr.contains("--url"), "{}", refused.stderr);

    let deployment = shiplog(
        &app,
        &[
            "deploy",
            &id,
            "--image",
            "registry.example.com:5000/team/app:2.1",
            "--port",
            "9000",
            "--service-monitor",
            "5s",
            "--wait",
            "--output",
            "json",
        ],
    )
    .await
    .expect(0)
    .json();
    assert_eq!(deployment["status"], "deployed", "{deployment}");
    assert_eq!(
        deployment["config"]["image"]["registry"],
        "registry.example.com:5000"
    );
    assert_eq!(deployment["config"]["image"]["repository"], "team/app");
    assert_eq!(deployment["config"]["image"]["tag"], "2.1");
    assert_eq!(deployment["config"]["containerPort"], 9000);
    assert_eq!(
        deployment["config"]["serviceMonitor"]["scrapingInterval"],
        "5s"
    );

    let status = shiplog(&app, &["status", "scripted", "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(status["id"].as_str(), Some(id.as_str()));
    assert_eq!(status["deployment"]["id"], deployment["id"]);

    let history = shiplog(&app, &["history", "scripted", "-o", "json"])
        .await
        .expect(0)
        .json();
    let types: Vec<&str> = history["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "UsecaseRegistered",
            "DeploymentRequested",
            "DeploymentStarted",
            "DeploymentSucceeded"
        ]
    );

    let list = shiplog(&app, &["usecase", "list", "--name", "SCRIPT", "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(list["items"][0]["name"], "scripted", "{list}");

    // Without --wait: the 202 answer.
    let accepted = shiplog(
        &app,
        &[
            "deploy",
            "scripted",
            "--image",
            "registry.example.com/team/app:2.2",
            "-o",
            "json",
        ],
    )
    .await
    .expect(0)
    .json();
    assert!(accepted["id"].is_string(), "{accepted}");
}

#[tokio::test]
async fn a_failing_deployment_ends_the_wait_with_exit_1_and_its_message() {
    let sim = sim().await;
    let app = app_on(&sim).await;
    shiplog(&app, &["usecase", "create", "fragile"])
        .await
        .expect(0);

    // The simulator cannot pull images whose tag ends in -broken.
    let failed = shiplog(
        &app,
        &[
            "deploy",
            "fragile",
            "--image",
            "registry.example.com/team/app:1.0-broken",
            "--wait",
        ],
    )
    .await
    .expect(1);
    assert!(
        failed.stderr.contains("error: deployment") && failed.stderr.contains("failed: "),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("1.0-broken"),
        "the message names the image: {}",
        failed.stderr
    );

    let history = shiplog(&app, &["history", "fragile"]).await.expect(0);
    assert!(
        history.stdout.contains("DeploymentFailed"),
        "{}",
        history.stdout
    );
}

#[tokio::test]
async fn config_restart_rollback_and_logs_work_on_the_deployed_usecase() {
    let sim = sim().await;
    let app = app_on(&sim).await;
    shiplog(&app, &["usecase", "create", "operated"])
        .await
        .expect(0);
    shiplog(
        &app,
        &[
            "deploy",
            "operated",
            "--image",
            "registry.example.com/team/app:1.0",
            "--env",
            "A=1",
            "--wait",
        ],
    )
    .await
    .expect(0);

    // set merges into the current environment; unset removes.
    shiplog(&app, &["config", "set", "operated", "B=2", "--wait"])
        .await
        .expect(0);
    let config = shiplog(&app, &["config", "get", "operated", "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(
        config["env"],
        serde_json::json!({"A": "1", "B": "2"}),
        "{config}"
    );
    shiplog(&app, &["config", "unset", "operated", "A", "--wait"])
        .await
        .expect(0);
    let config = shiplog(&app, &["config", "get", "operated", "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(config["env"], serde_json::json!({"B": "2"}), "{config}");

    let restarted = shiplog(&app, &["restart", "operated", "--wait"])
        .await
        .expect(0);
    assert!(
        restarted.stdout.contains("succeeded"),
        "{}",
        restarted.stdout
    );

    // Back to the deployment before the current one: A=1, B=2.
    shiplog(&app, &["rollback", "operated", "--wait"])
        .await
        .expect(0);
    let config = shiplog(&app, &["config", "get", "operated", "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(
        config["env"],
        serde_json::json!({"A": "1", "B": "2"}),
        "{config}"
    );

    // The simulated containers log a heartbeat line from the start.
    let logs = shiplog(&app, &["logs", "operated", "--tail", "5", "-o", "json"])
        .await
        .expect(0)
        .json();
    assert!(logs["lines"].is_array(), "{logs}");
    let history = shiplog(&app, &["history", "operated"]).await.expect(0);
    for expected in [
        "ConfigChangeRequested",
        "RestartSucceeded",
        "RollbackRequested",
    ] {
        assert!(
            history.stdout.contains(expected),
            "history lacks {expected}: {}",
            history.stdout
        );
    }
}

#[tokio::test]
async fn errors_give_one_line_and_their_documented_exit_code() {
    let app = TestApp::spawn().await;
    shiplog(&app, &["usecase", "create", "taken"])
        .await
        .expect(0);
    let (status, token) = app
        .post(
            "/api/tokens",
            serde_json::json!({"name": "reader", "scopes": ["usecases:read"]}),
        )
        .await;
    assert_eq!(status, 201, "{token}");
    let reader = token["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{token}"))
        .to_owned();
    let unreachable = format!("http://127.0.0.1:{}", closed_port());
    let digest_only = format!("nginx@{DIGEST}");

    // (description, environment, arguments, exit code, a part of stderr)
    let cases: Vec<ErrorCase> = vec![
        (
            "an unknown usecase name",
            vec![],
            vec!["status", "no such usecase"],
            3,
            "error: no usecase named \"no such usecase\"",
        ),
        (
            "an unknown usecase id",
            vec![],
            vec!["status", "00000000-0000-0000-0000-000000000000"],
            3,
            "error: usecase 00000000-0000-0000-0000-000000000000",
        ),
        (
            "a name that is taken",
            vec![],
            vec!["usecase", "create", "taken"],
            4,
            "error: ",
        ),
        (
            "nothing to undeploy",
            vec![],
            vec!["undeploy", "taken"],
            4,
            "error: nothing is deployed",
        ),
        (
            "an unknown flag",
            vec![],
            vec!["deploy", "taken", "--bogus"],
            2,
            "--bogus",
        ),
        (
            "an image that is no Docker reference",
            vec![],
            vec![
                "deploy",
                "taken",
                "--image",
                "registry.example.com/Team/App:1",
            ],
            2,
            "\"registry.example.com/Team/App:1\" is not an image reference",
        ),
        (
            "a digest without a tag, which only deploy-image takes",
            vec![],
            vec!["deploy", "taken", "--image", &digest_only],
            2,
            "shiplog deploy-image",
        ),
        (
            "deploy-image of no Docker reference",
            vec![],
            vec!["deploy-image", "Nginx:latest"],
            2,
            "\"Nginx:latest\" is not an image reference",
        ),
        (
            "an unknown template",
            vec![],
            vec!["create", "no-such-template"],
            1,
            "(field: template)",
        ),
        (
            "an unknown visibility",
            vec![],
            vec!["create", "nginx", "--visibility", "secret"],
            2,
            "--visibility",
        ),
        (
            "removing a deployment that does not exist",
            vec![],
            vec!["remove", "no-such-deployment"],
            3,
            "error: deployment \"no-such-deployment\" not found",
        ),
        (
            "a wrong token",
            vec![("SHIPLOG_TOKEN", "not-a-token")],
            vec!["usecase", "list"],
            1,
            "error: the token was refused: set --token or SHIPLOG_TOKEN",
        ),
        (
            "no token at all",
            vec![("SHIPLOG_TOKEN", "")],
            vec!["usecase", "list"],
            1,
            "error: the token was refused",
        ),
        (
            "a token without the scope",
            vec![("SHIPLOG_TOKEN", reader.as_str())],
            vec!["usecase", "create", "other"],
            1,
            "error: this token lacks the scope usecases:write",
        ),
        (
            "an unreachable server",
            vec![("SHIPLOG_URL", unreachable.as_str())],
            vec!["usecase", "list"],
            1,
            "error: cannot reach shiplog at http://127.0.0.1:",
        ),
        (
            "a team name nobody has, on create",
            vec![],
            vec!["create", "nginx", "--team", "no-such-team"],
            3,
            "error: no team named \"no-such-team\"",
        ),
        (
            "a team name nobody has, on ls",
            vec![],
            vec!["ls", "--team", "no-such-team"],
            3,
            "error: no team named \"no-such-team\"",
        ),
        (
            "a team name nobody has, on usecase create",
            vec![],
            vec!["usecase", "create", "orphan", "--team", "no-such-team"],
            3,
            "error: no team named \"no-such-team\"",
        ),
        (
            "a team name nobody has, on token create",
            vec![],
            vec![
                "token",
                "create",
                "ghost",
                "--scope",
                "usecases:read",
                "--team",
                "no-such-team",
            ],
            3,
            "error: no team named \"no-such-team\"",
        ),
        (
            "a team id nobody has",
            vec![],
            vec!["team", "show", "00000000-0000-0000-0000-000000000000"],
            3,
            "error: ",
        ),
        (
            "a team update that changes nothing",
            vec![],
            vec!["team", "update", "some-team"],
            2,
            "--name",
        ),
        (
            "a tier that does not exist",
            vec![],
            vec!["team", "create", "gilded", "--tier", "gold"],
            2,
            "--tier",
        ),
        (
            "a usage range start that is no RFC 3339 instant",
            vec![],
            vec!["team", "usage", "some-team", "--from", "yesterday"],
            2,
            "\"yesterday\" is not an RFC 3339 instant",
        ),
        (
            "an invalid field",
            vec![],
            vec![
                "deploy",
                "taken",
                "--image",
                "registry.example.com/team/app:1",
                "--replicas",
                "1000",
            ],
            1,
            "(field: config.replicas)",
        ),
    ];
    for (description, env, args, code, message) in cases {
        let mut vars = vec![
            ("SHIPLOG_URL", app.base.as_str()),
            ("SHIPLOG_TOKEN", ADMIN_TOKEN),
        ];
        vars.extend(env);
        let result = run(&vars, &args).await;
        assert_eq!(
            result.code, code,
            "{description}: `shiplog {}` exited {}; stderr: {}",
            result.args, result.code, result.stderr
        );
        assert!(
            result.stderr.contains(message),
            "{description}: stderr lacks {message:?}: {}",
            result.stderr
        );
        if code != 2 {
            assert_eq!(
                result.stderr.trim().lines().count(),
                1,
                "{description}: one line, no trace: {}",
                result.stderr
            );
        }
    }
    // --token on the command line wins over the environment.
    run(
        &[
            ("SHIPLOG_URL", app.base.as_str()),
            ("SHIPLOG_TOKEN", "wrong"),
        ],
        &["usecase", "list", "--token", ADMIN_TOKEN],
    )
    .await
    .expect(0);
}

#[tokio::test]
async fn a_token_created_with_a_lifetime_lists_its_expiry() {
    let app = TestApp::spawn().await;
    let before = chrono::Utc::now();
    shiplog(
        &app,
        &[
            "token",
            "create",
            "for-a-month",
            "--scope",
            "usecases:read",
            "--expires-in",
            "30d",
        ],
    )
    .await
    .expect(0);
    let listed = shiplog(&app, &["token", "list", "-o", "json"])
        .await
        .expect(0);
    let tokens: Value = serde_json::from_str(&listed.stdout).unwrap_or_default();
    let expiry: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(tokens[0]["expiresAt"].clone())
            .unwrap_or_else(|e| panic!("{}: {e}", listed.stdout));
    let lifetime = expiry - before;
    assert!(
        lifetime >= chrono::Duration::days(30)
            && lifetime < chrono::Duration::days(30) + chrono::Duration::minutes(1),
        "{}",
        listed.stdout
    );
    let table = shiplog(&app, &["token", "list"]).await.expect(0);
    assert!(table.stdout.contains("EXPIRES"), "{}", table.stdout);
    shiplog(
        &app,
        &[
            "token",
            "create",
            "too-long",
            "--scope",
            "usecases:read",
            "--expires-in",
            "400d",
        ],
    )
    .await
    .expect(1);
}

#[tokio::test]
async fn tokens_are_created_once_listed_and_revoked() {
    let app = TestApp::spawn().await;
    let created = shiplog(
        &app,
        &[
            "token",
            "create",
            "ci-pipeline",
            "--scope",
            "usecases:read",
            "--scope",
            "usecases:write",
        ],
    )
    .await
    .expect(0);
    // The secret alone on stdout, ready for TOKEN=$(shiplog token create …).
    let secret = created.stdout.trim().to_owned();
    assert_eq!(created.stdout.lines().count(), 1, "{}", created.stdout);
    let as_ci = [
        ("SHIPLOG_URL", app.base.as_str()),
        ("SHIPLOG_TOKEN", secret.as_str()),
    ];
    run(&as_ci, &["usecase", "create", "made-by-ci"])
        .await
        .expect(0);

    let list = shiplog(&app, &["token", "list"]).await.expect(0);
    assert!(list.stdout.contains("ci-pipeline"), "{}", list.stdout);
    assert!(
        !list.stdout.contains(&secret),
        "a listing never shows secrets"
    );

    shiplog(&app, &["token", "revoke", "ci-pipeline"])
        .await
        .expect(0);
    run(&as_ci, &["usecase", "list"]).await.expect(1);
    shiplog(&app, &["token", "revoke", "ci-pipeline"])
        .await
        .expect(3);
}

#[tokio::test]
async fn completions_print_a_shell_script() {
    let run = run(&[], &["completions", "bash"]).await.expect(0);
    assert!(run.stdout.contains("_shiplog()"), "{}", run.stdout);
    for subcommand in [
        "deploy",
        "templates",
        "create",
        "deploy-image",
        "ls",
        "remove",
    ] {
        assert!(
            run.stdout.contains(subcommand),
            "the script knows the subcommand {subcommand}"
        );
    }
}

#[tokio::test]
async fn deploy_takes_images_in_dockers_syntax() {
    let sim = sim().await;
    let app = app_on(&sim).await;
    shiplog(&app, &["usecase", "create", "hub"]).await.expect(0);

    // (description, --image, the stored image)
    let cases = [
        (
            "Docker Hub's short form",
            "nginx:latest".to_owned(),
            serde_json::json!({"registry": "docker.io", "repository": "library/nginx", "tag": "latest"}),
        ),
        (
            "a tag pinned to a digest",
            format!("registry.example.com/team/app:1.0@{DIGEST}"),
            serde_json::json!({"registry": "registry.example.com", "repository": "team/app", "tag": "1.0", "digest": DIGEST}),
        ),
    ];
    for (description, image, stored) in cases {
        let deployment = shiplog(
            &app,
            &["deploy", "hub", "--image", &image, "--wait", "-o", "json"],
        )
        .await
        .expect(0)
        .json();
        assert_eq!(
            deployment["status"], "deployed",
            "{description}: {deployment}"
        );
        assert_eq!(deployment["config"]["image"], stored, "{description}");
    }
    let status = shiplog(&app, &["status", "hub"]).await.expect(0);
    assert!(
        status
            .stdout
            .contains(&format!("registry.example.com/team/app:1.0@{DIGEST}")),
        "status shows the pinned image: {}",
        status.stdout
    );
    let history = shiplog(&app, &["history", "hub"]).await.expect(0);
    assert!(
        history
            .stdout
            .contains("requested: docker.io/library/nginx:latest"),
        "{}",
        history.stdout
    );
}

#[tokio::test]
async fn named_deployments_are_created_listed_and_removed() {
    let sim = sim().await;
    let app = app_on(&sim).await;

    let templates = shiplog(&app, &["templates"]).await.expect(0);
    for expected in [
        "nginx:stable (port 80)",
        "postgres:16 (port 5432, not exposed)",
    ] {
        assert!(
            templates.stdout.contains(expected),
            "templates lacks {expected:?}: {}",
            templates.stdout
        );
    }
    let catalog = shiplog(&app, &["templates", "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(catalog[0]["name"], "nginx", "{catalog}");

    // The name alone on the first line, then the URL.
    let created = shiplog(&app, &["create", "nginx", "--env", "A=1", "--wait"])
        .await
        .expect(0);
    let lines: Vec<&str> = created.stdout.lines().collect();
    let name = lines.first().copied().unwrap_or_default().to_owned();
    assert!(!name.is_empty(), "no name: {}", created.stdout);
    assert_eq!(
        lines.get(1).copied(),
        Some(format!("http://{name}.localhost").as_str()),
        "{}",
        created.stdout
    );
    // A named deployment is a usecase: the usecase commands work on it.
    let status = shiplog(&app, &["status", &name]).await.expect(0);
    assert!(status.stdout.contains("deployed"), "{}", status.stdout);
    assert!(
        status.stdout.contains("docker.io/library/nginx:stable"),
        "{}",
        status.stdout
    );

    let web = shiplog(
        &app,
        &[
            "deploy-image",
            "nginx:latest",
            "--name",
            "web",
            "--port",
            "80",
            "--wait",
        ],
    )
    .await
    .expect(0);
    assert_eq!(
        web.stdout.lines().collect::<Vec<_>>(),
        ["web", "http://web.localhost"],
        "{}",
        web.stdout
    );

    let internal = shiplog(
        &app,
        &[
            "create",
            "postgres",
            "--visibility",
            "internal",
            "--wait",
            "-o",
            "json",
        ],
    )
    .await
    .expect(0)
    .json();
    assert_eq!(internal["status"], "Ready", "{internal}");
    assert_eq!(internal["visibility"], "internal", "{internal}");
    assert_eq!(internal["ingresses"], serde_json::json!([]), "{internal}");

    let taken = shiplog(&app, &["deploy-image", "nginx:1.27", "--name", "web"])
        .await
        .expect(4);
    assert!(
        taken
            .stderr
            .contains("error: a deployment named \"web\" already exists"),
        "{}",
        taken.stderr
    );

    let listed = shiplog(&app, &["ls"]).await.expect(0);
    let row = listed
        .stdout
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_else(|| panic!("ls lacks web: {}", listed.stdout));
    for expected in [
        "Ready",
        "docker.io/library/nginx:latest",
        "public",
        "http://web.localhost",
    ] {
        assert!(row.contains(expected), "ls row lacks {expected:?}: {row}");
    }
    let from_template = listed
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("ls lacks {name}: {}", listed.stdout));
    assert!(from_template.contains("nginx"), "{from_template}");

    // A pipeline's token (deployments only) creates and follows its deployment to the end.
    let (code, token) = app
        .post(
            "/api/tokens",
            serde_json::json!({"name": "platform-only", "scopes": ["deployments:read", "deployments:write"]}),
        )
        .await;
    assert_eq!(code, 201, "{token}");
    let secret = token["token"].as_str().unwrap_or_default();
    let followed = run(
        &[("SHIPLOG_URL", &app.base), ("SHIPLOG_TOKEN", secret)],
        &["create", "nginx", "--wait"],
    )
    .await
    .expect(0);
    assert_eq!(
        followed.stdout.lines().count(),
        2,
        "the name and URL: {}",
        followed.stdout
    );

    let removed = shiplog(&app, &["remove", "web", "--wait"]).await.expect(0);
    assert!(removed.stdout.contains("web removed"), "{}", removed.stdout);
    let (code, _) = app.get("/api/deployments/status?name=web").await;
    assert_eq!(code, 404, "web is gone");
    let names: Vec<String> = shiplog(&app, &["ls", "-o", "json"])
        .await
        .expect(0)
        .json()
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["name"].as_str().map(str::to_owned))
        .collect();
    assert!(!names.contains(&"web".to_owned()), "{names:?}");
    assert!(names.contains(&name), "{names:?}");
    shiplog(&app, &["status", "web"]).await.expect(3);
}

#[tokio::test]
async fn teams_are_created_listed_shown_updated_and_their_usage_read() {
    let app = TestApp::spawn().await;

    // The id alone on stdout, ready for TEAM=$(shiplog team create …).
    let created = shiplog(&app, &["team", "create", "acme", "--tier", "business"])
        .await
        .expect(0);
    let id = created.stdout.trim().to_owned();
    assert!(
        id.parse::<uuid::Uuid>().is_ok() && created.stdout.lines().count() == 1,
        "{}",
        created.stdout
    );

    let list = shiplog(&app, &["team", "list"]).await.expect(0);
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("team list lacks acme: {}", list.stdout));
    assert!(
        row.contains("acme") && row.contains("business"),
        "{}",
        list.stdout
    );
    let listed = shiplog(&app, &["team", "list", "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");

    // By name and by id alike.
    for team in ["acme", id.as_str()] {
        let shown = shiplog(&app, &["team", "show", team]).await.expect(0);
        assert!(
            shown.stdout.contains(&id) && shown.stdout.contains("business"),
            "team show {team}: {}",
            shown.stdout
        );
    }
    let updated = shiplog(
        &app,
        &[
            "team",
            "update",
            "acme",
            "--name",
            "acme corp",
            "--tier",
            "enterprise",
            "-o",
            "json",
        ],
    )
    .await
    .expect(0)
    .json();
    assert_eq!(
        (&updated["name"], &updated["tier"]),
        (&Value::from("acme corp"), &Value::from("enterprise")),
        "{updated}"
    );
    shiplog(&app, &["team", "show", "acme"]).await.expect(3);
    let taken = shiplog(&app, &["team", "create", "acme corp"])
        .await
        .expect(4);
    assert!(taken.stderr.starts_with("error: "), "{}", taken.stderr);

    // Usage counts what the team created: a usecase is a deployment.
    shiplog(
        &app,
        &["usecase", "create", "in-acme", "--team", "acme corp"],
    )
    .await
    .expect(0);
    shiplog(&app, &["usecase", "create", "elsewhere"])
        .await
        .expect(0);
    let usecases = shiplog(
        &app,
        &["usecase", "list", "--team", "acme corp", "-o", "json"],
    )
    .await
    .expect(0)
    .json();
    let names: Vec<&str> = usecases["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(names, ["in-acme"], "usecase list --team keeps the team's");

    let usage = shiplog(&app, &["team", "usage", "acme corp", "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(
        (
            &usage["teamId"],
            &usage["tier"],
            &usage["limit"],
            &usage["created"],
            &usage["running"]
        ),
        (
            &Value::from(id.as_str()),
            &Value::from("enterprise"),
            &Value::Null,
            &Value::from(1),
            &Value::from(1)
        ),
        "{usage}"
    );
    let table = shiplog(&app, &["team", "usage", &id]).await.expect(0);
    for line in [
        "tier     enterprise",
        "limit    none (billing is off)",
        "created  1",
        "running  1",
    ] {
        assert!(
            table.stdout.lines().any(|l| l == line),
            "usage lacks {line:?}: {}",
            table.stdout
        );
    }
    let long_ago = shiplog(
        &app,
        &[
            "team",
            "usage",
            "acme corp",
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2000-01-02T00:00:00+01:00",
            "-o",
            "json",
        ],
    )
    .await
    .expect(0)
    .json();
    assert_eq!(
        (&long_ago["created"], &long_ago["to"]),
        (&Value::from(0), &Value::from("2000-01-01T23:00:00Z")),
        "{long_ago}"
    );
}

#[tokio::test]
async fn a_teams_token_creates_deployments_the_team_owns() {
    let sim = sim().await;
    let app = app_on(&sim).await;
    let acme = shiplog(&app, &["team", "create", "acme"])
        .await
        .expect(0)
        .stdout
        .trim()
        .to_owned();
    let ci = create_token(&app, "ci", &["--subject", "pipeline", "--team", "acme"]).await;

    let tokens = shiplog(&app, &["token", "list", "-o", "json"])
        .await
        .expect(0)
        .json();
    let listed = tokens
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == "ci")
        .unwrap_or_else(|| panic!("token list lacks ci: {tokens}"));
    assert_eq!(
        (&listed["subject"], &listed["teams"]),
        (&Value::from("pipeline"), &serde_json::json!([acme])),
        "{listed}"
    );
    let table = shiplog(&app, &["token", "list"]).await.expect(0);
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with("ci "))
        .unwrap_or_else(|| panic!("token list lacks ci: {}", table.stdout));
    assert!(
        row.contains("pipeline") && row.contains("acme"),
        "SUBJECT and TEAMS: {row}"
    );

    let created = shiplog_as(&app, &ci, &["create", "nginx", "--team", "acme", "--wait"])
        .await
        .expect(0);
    let name = created.stdout.lines().next().unwrap_or_default().to_owned();
    let deployments = shiplog_as(&app, &ci, &["ls", "-o", "json"])
        .await
        .expect(0)
        .json();
    let mine = deployments
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["name"] == name.as_str())
        .unwrap_or_else(|| panic!("ls lacks {name}: {deployments}"));
    assert_eq!(
        (&mine["owner"], &mine["teamId"]),
        (&Value::from("pipeline"), &Value::from(acme.as_str())),
        "{mine}"
    );

    // Another deployment, not the team's: the admin's own.
    shiplog(&app, &["deploy-image", "nginx:latest", "--name", "solo"])
        .await
        .expect(0);
    let listed = shiplog(&app, &["ls"]).await.expect(0);
    let row = |name: &str| {
        listed
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("ls lacks {name}: {}", listed.stdout))
            .to_owned()
    };
    assert!(row(&name).contains("pipeline (acme)"), "{}", listed.stdout);
    assert!(row("solo").contains(" admin "), "{}", listed.stdout);
    for (who, token) in [("the team's token", ci.as_str()), ("an admin", ADMIN_TOKEN)] {
        let names: Vec<String> = shiplog_as(&app, token, &["ls", "--team", "acme", "-o", "json"])
            .await
            .expect(0)
            .json()
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(names, [name.as_str()], "ls --team acme as {who}");
    }
}

#[tokio::test]
async fn another_subjects_usecase_is_refused_by_name_and_by_id() {
    let app = TestApp::spawn().await;
    let alice = create_token(&app, "alice", &[]).await;
    let bob = create_token(&app, "bob", &[]).await;
    let created = shiplog_as(&app, &alice, &["create", "nginx", "-o", "json"])
        .await
        .expect(0)
        .json();
    let name = created["name"].as_str().unwrap_or_default().to_owned();
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    shiplog_as(&app, &alice, &["status", &name]).await.expect(0);

    // (description, arguments): each is bob's, on alice's deployment.
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("status by name", vec!["status", &name]),
        ("status by id", vec!["status", &id]),
        ("history by name", vec!["history", &name]),
        (
            "deploy by name",
            vec!["deploy", &name, "--image", "nginx:1.27"],
        ),
        ("remove", vec!["remove", &name]),
    ];
    for (description, args) in cases {
        let refused = shiplog_as(&app, &bob, &args).await;
        assert_eq!(
            refused.code, 1,
            "{description}: `shiplog {}` exited {}; stderr: {}",
            refused.args, refused.code, refused.stderr
        );
        assert!(
            refused
                .stderr
                .starts_with("error: ownership verification failed")
                && refused.stderr.trim().lines().count() == 1,
            "{description}: one line, the API's words: {}",
            refused.stderr
        );
    }
    // A name nobody has is still not found.
    shiplog_as(&app, &bob, &["status", "no-such-usecase"])
        .await
        .expect(3);
}

#[tokio::test]
async fn with_billing_a_second_deployment_in_a_free_team_is_refused() {
    let app = TestApp::spawn_configured(|s| s.billing.enabled = true).await;
    // Free is the default tier.
    shiplog(&app, &["team", "create", "small"]).await.expect(0);
    let frank = create_token(&app, "frank", &["--team", "small"]).await;
    shiplog_as(&app, &frank, &["create", "nginx"])
        .await
        .expect(0);

    // (description, arguments): both APIs count against the same limit.
    let cases = [
        ("a second create", vec!["create", "nginx"]),
        (
            "a usecase, which is a deployment too",
            vec!["usecase", "create", "one-too-many"],
        ),
    ];
    for (description, args) in cases {
        let refused = shiplog_as(&app, &frank, &args).await.expect(1);
        assert!(
            refused
                .stderr
                .starts_with("error: Deployment limit reached")
                && refused.stderr.trim().lines().count() == 1,
            "{description}: {}",
            refused.stderr
        );
    }
    let usage = shiplog(&app, &["team", "usage", "small"]).await.expect(0);
    for line in ["tier     free", "limit    1", "running  1"] {
        assert!(
            usage.stdout.lines().any(|l| l == line),
            "usage lacks {line:?}: {}",
            usage.stdout
        );
    }
}

#[tokio::test]
async fn auto_update_is_shown_and_changed_from_the_command_line() {
    let sim = sim().await;
    let app = app_on(&sim).await;
    shiplog(&app, &["usecase", "create", "followed"])
        .await
        .expect(0);

    let shown = shiplog(&app, &["auto-update", "followed"]).await.expect(0);
    assert!(
        shown.stdout.contains("enabled     false"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("last check  none yet"),
        "{}",
        shown.stdout
    );

    // A range alone means the semver policy; enabled is named, the strategy kept.
    let changed = shiplog(
        &app,
        &["auto-update", "followed", "--enable", "--range", ">=2 <3"],
    )
    .await
    .expect(0);
    assert!(
        changed.stdout.contains("policy      semver >=2 <3"),
        "{}",
        changed.stdout
    );
    // A flag that does not name enabled keeps it.
    let json = shiplog(
        &app,
        &[
            "auto-update",
            "followed",
            "--strategy",
            "recreate",
            "-o",
            "json",
        ],
    )
    .await
    .expect(0)
    .json();
    assert_eq!(json["enabled"], true, "{json}");
    assert_eq!(json["strategy"], "recreate");
    assert_eq!(json["policy"], "semver");

    // A range that is none is refused with the field named.
    let refused = shiplog(&app, &["auto-update", "followed", "--range", "newest"])
        .await
        .expect(1);
    assert!(refused.stderr.contains("range"), "{}", refused.stderr);
}

#[tokio::test]
async fn reason_is_sent_with_a_change_and_shown_in_history() {
    let sim = sim().await;
    let app = app_on(&sim).await;
    shiplog(
        &app,
        &["usecase", "create", "explained", "--reason", "ticket OPS-7"],
    )
    .await
    .expect(0);
    let history = shiplog(&app, &["history", "explained"]).await.expect(0);
    assert!(history.stdout.contains("REASON"), "{}", history.stdout);
    assert!(
        history.stdout.contains("ticket OPS-7"),
        "{}",
        history.stdout
    );
}
