//! The web console in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`, which `scripts/test` installs) through
//! fantoccini. A person logs in, creates a deployment from a template, watches its badge
//! turn Ready without reloading, opens it, changes its config (its page follows the
//! rollout and the pods' log lines live), rolls back, tries a form
//! without its CSRF token, deletes it through seed 002's form post, and logs out.
//!
//! Each page is saved as a screenshot under `$CARGO_TARGET_DIR/console-screenshots/`;
//! with `SHIPLOG_UPDATE_SCREENSHOTS=1` the README's two (`docs/console-*.png`) are
//! refreshed from this run.

use crate::cluster::sim_with;
use crate::helpers::{free_port, TestApp, ADMIN_TOKEN};
use crate::platform::{platform_app, wait_for};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use shiplog_testkit::eventually;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver of the test's own, on a free port; stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver, or `None` (the test is skipped, said on stderr) where it is not
/// installed and this is not CI (`CI=true` fails instead: CI must run it).
fn chromedriver() -> Option<Driver> {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var("CI").is_err(),
            "{CHROMEDRIVER} and {CHROMIUM} are missing: scripts/test installs chromium and chromium-driver"
        );
        eprintln!("skipped: {CHROMEDRIVER} or {CHROMIUM} is missing (apt-get install chromium chromium-driver)");
        return None;
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"));
    Some(Driver { child, port })
}

/// A headless Chromium session through `driver` (no display needed).
async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,900", "--lang=en-US"],
        }),
    );
    let url = format!("http://127.0.0.1:{}", driver.port);
    eventually("chromedriver accepts a session", || {
        let capabilities = capabilities.clone();
        let url = url.clone();
        async move {
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&url)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
}

/// Where this run's screenshots go.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            // …/target/debug/deps/api-<hash>: three levels up is the target dir.
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        })
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("console-screenshots")
}

/// Saves a screenshot of the page as `name.png`; with `SHIPLOG_UPDATE_SCREENSHOTS=1` and
/// a `docs` name, also as the README's `docs/console-<docs>.png`.
async fn screenshot(browser: &Client, name: &str, docs: Option<&str>) {
    let png = browser
        .screenshot()
        .await
        .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let file = dir.join(format!("{name}.png"));
    std::fs::write(&file, &png).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    if let (Some(docs), Ok("1")) = (docs, std::env::var("SHIPLOG_UPDATE_SCREENSHOTS").as_deref()) {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs")
            .join(format!("console-{docs}.png"));
        std::fs::write(&file, &png).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

/// The path (and query) of the page the browser shows.
async fn path(browser: &Client) -> String {
    let url = browser
        .current_url()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Waits until the browser shows a page whose path (and query) passes `check`: a click
/// returns before the navigation it starts has finished. Returns that path.
async fn arrive(browser: &Client, what: &str, check: impl Fn(&str) -> bool) -> String {
    eventually(&format!("the browser arrives at {what}"), || async {
        let here = path(browser).await;
        let loaded = browser
            .execute("return document.readyState;", vec![])
            .await
            .map(|s| s == json!("complete"))
            .unwrap_or(false);
        if loaded && check(&here) {
            Ok(here)
        } else {
            Err(here)
        }
    })
    .await
}

async fn click(browser: &Client, css: &str) {
    let found = browser.find(Locator::Css(css)).await;
    if let Err(e) = &found {
        // The page as it was, beside the screenshots, to see why.
        let source = browser.source().await.unwrap_or_default();
        let file = screenshot_dir().join("missing-element.html");
        let _ = std::fs::create_dir_all(screenshot_dir());
        let _ = std::fs::write(&file, source);
        panic!("{css}: {e} (page saved as {})", file.display());
    }
    found
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn text_of(browser: &Client, css: &str) -> Result<String, String> {
    let element = browser
        .find(Locator::Css(css))
        .await
        .map_err(|e| e.to_string())?;
    element.text().await.map_err(|e| e.to_string())
}

/// The deployments that rolled out, oldest first, as the API's history tells.
async fn succeeded(app: &TestApp, name: &str) -> Vec<Value> {
    let (status, history) = app.get(&format!("/api/deployments/{name}/history")).await;
    assert_eq!(status, 200, "{history}");
    history["revisions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == "deployed" || r["status"] == "superseded")
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_person_runs_a_deployment_from_the_console_in_a_browser() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let sim = sim_with(Duration::from_millis(1500), true).await;
    let app = platform_app(&sim, |_| {}).await;
    let browser = browser(&driver).await;

    // A page without a session sends the browser to the login form, and back after it.
    browser
        .goto(&app.url("/deployments"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(path(&browser).await, "/login?next=%2Fdeployments");
    screenshot(&browser, "01-login", None).await;
    browser
        .find(Locator::Css("#token"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    click(&browser, "form[action='/login'] button[type=submit]").await;
    arrive(&browser, "/deployments", |p| p == "/deployments").await;

    // Create from a template; the page comes back with the new deployment's row.
    click(
        &browser,
        "section[aria-labelledby=from-template] button[type=submit]",
    )
    .await;
    let here = arrive(&browser, "the new deployment", |p| p.contains("created=")).await;
    let name = here
        .strip_prefix("/deployments?created=")
        .unwrap_or_else(|| panic!("after create: {here}"))
        .to_owned();
    // A mark on the page's window: gone if the page were loaded again.
    browser
        .execute("window.shiplogMark = 'same page'; return null;", vec![])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let badge = format!("#badge-{name}");
    let first = text_of(&browser, &badge).await.unwrap_or_default();
    assert!(
        ["Pending", "Provisioning"].contains(&first.as_str()),
        "a fresh deployment is on its way: {first}"
    );
    screenshot(&browser, "02-deployments-pending", None).await;
    eventually(&format!("{name}'s badge turns Ready"), || async {
        match text_of(&browser, &badge).await {
            Ok(text) if text == "Ready" => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let mark = browser
        .execute("return window.shiplogMark || null;", vec![])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        mark,
        json!("same page"),
        "the badge changed without a reload"
    );
    screenshot(&browser, "03-deployments-ready", Some("deployments")).await;

    // Its page; a config change rolls out a second deployment.
    click(&browser, &format!("a[href='/deployments/{name}']")).await;
    let page = format!("/deployments/{name}");
    arrive(&browser, &page, |p| p == page).await;
    let env = browser
        .find(Locator::Css("#config-env"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.clear().await.unwrap_or_else(|e| panic!("{e}"));
    env.send_keys("GREETING=hello from the console")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .find(Locator::Css("#config-reason"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .send_keys("say hello")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    click(&browser, "form[action$='/config'] button[type=submit]").await;
    arrive(&browser, "the page saying so", |p| p.contains("done=")).await;
    // The page follows the new rollout and the pods' log lines without a reload: its
    // badge turns Ready, and lines the pods write after the page loaded are appended.
    browser
        .execute("window.shiplogMark = 'same page'; return null;", vec![])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eventually(&format!("{name}'s page shows Ready"), || async {
        match text_of(&browser, &badge).await {
            Ok(text) if text == "Ready" => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let mark = browser
        .execute("return window.shiplogMark || null;", vec![])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        mark,
        json!("same page"),
        "the badge and the lines came without a reload"
    );
    screenshot(&browser, "04a-deployment-live", None).await;
    eventually("the config change rolls out", || async {
        match succeeded(&app, &name).await.len() {
            2 => Ok(()),
            n => Err(n),
        }
    })
    .await;
    wait_for(&app, &name, "Ready").await;
    // Its pods' log lines arrive live (the tail follows the deployment serving when
    // the page was opened: the new one, now).
    browser
        .goto(&app.url(&format!("/deployments/{name}")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .execute("window.shiplogMark = 'same page'; return null;", vec![])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let last_line = "const l = document.querySelectorAll('#log-lines .log-line'); \
                     return l.length ? l[l.length - 1].textContent : null;";
    let heartbeat = |line: &serde_json::Value| {
        line.as_str()
            .and_then(|l| l.rsplit("kube-sim: heartbeat ").next())
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    let first_seen = eventually("a log line on the page", || async {
        let line = browser
            .execute(last_line, vec![])
            .await
            .map_err(|e| e.to_string())?;
        heartbeat(&line).ok_or(format!("{line}"))
    })
    .await;
    eventually("a newer log line is appended live", || async {
        let line = browser
            .execute(last_line, vec![])
            .await
            .map_err(|e| e.to_string())?;
        match heartbeat(&line) {
            Some(n) if n > first_seen + 2 => Ok(()),
            _ => Err(format!("{line}")),
        }
    })
    .await;
    let mark = browser
        .execute("return window.shiplogMark || null;", vec![])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mark, json!("same page"), "the lines came without a reload");

    // Roll back to the first deployment: one button per earlier deployment.
    browser
        .goto(&app.url(&format!("/deployments/{name}")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first_id = succeeded(&app, &name).await[0]["deploymentId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    click(
        &browser,
        &format!("form[action$='/rollback'] input[value='{first_id}'] ~ button"),
    )
    .await;
    arrive(&browser, "the page saying so", |p| {
        p.contains("done=Rollback")
    })
    .await;
    eventually("the rollback rolls out", || async {
        let (_, status) = app
            .get(&format!("/api/deployments/status?name={name}"))
            .await;
        let (_, history) = app.get(&format!("/api/deployments/{name}/history")).await;
        let last = history["revisions"]
            .as_array()
            .and_then(|r| r.last())
            .cloned()
            .unwrap_or_default();
        if status["status"] == "Ready" && last["kind"] == "rollback" && last["status"] == "deployed"
        {
            Ok(())
        } else {
            Err((status, last))
        }
    })
    .await;
    browser
        .goto(&app.url(&format!("/deployments/{name}")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let timeline = text_of(&browser, "ol.timeline").await.unwrap_or_default();
    assert!(timeline.contains("Reason: say hello"), "{timeline}");
    assert!(timeline.contains("by admin"), "{timeline}");
    // The history is below the status and config: in view for its picture.
    browser
        .execute(
            "document.getElementById('history-title').scrollIntoView(); return null;",
            vec![],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    screenshot(&browser, "04-deployment-timeline", Some("timeline")).await;

    // The slider's form: the state right after the first event.
    browser
        .goto(&app.url(&format!("/deployments/{name}?step=0")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let then = text_of(&browser, "#state-at").await.unwrap_or_default();
    assert!(then.contains("State at"), "{then}");
    screenshot(&browser, "05-deployment-at", None).await;

    // A form posted without its CSRF token is refused, and nothing is deleted.
    browser
        .goto(&app.url(&format!("/deployments/{name}/delete")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .execute(
            "document.querySelector(\"main form input[name='csrf_token']\").remove(); return null;",
            vec![],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    click(&browser, "main form button[type=submit]").await;
    arrive(&browser, "the refusal", |p| p == "/api/deployments/delete").await;
    let refused = browser.source().await.unwrap_or_default();
    assert!(refused.contains("csrf-token-invalid"), "{refused}");
    screenshot(&browser, "06-csrf-refused", None).await;
    let (status, _) = app
        .get(&format!("/api/deployments/status?name={name}"))
        .await;
    assert_eq!(status, 200, "still there");

    // Delete through the form: seed 002's post, back on the deployments page.
    browser
        .goto(&app.url(&format!("/deployments/{name}/delete")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .find(Locator::Css("#delete-reason"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .send_keys("tried it out")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    screenshot(&browser, "07-confirm-delete", None).await;
    click(&browser, "main form button[type=submit]").await;
    arrive(&browser, "/deployments", |p| p == "/deployments").await;
    eventually(&format!("{name} is gone"), || async {
        match app
            .get(&format!("/api/deployments/status?name={name}"))
            .await
        {
            (404, _) => Ok(()),
            other => Err(other),
        }
    })
    .await;

    // The ledger and the audit page read the same trail.
    browser
        .goto(&app.url("/ledger"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ledger = text_of(&browser, "#ledger-rows").await.unwrap_or_default();
    assert!(ledger.contains("DeletionRequested"), "{ledger}");
    screenshot(&browser, "08-ledger", None).await;
    browser
        .goto(&app.url("/audit"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let result = text_of(&browser, "#verify-result")
        .await
        .unwrap_or_default();
    assert!(result.contains("Verified"), "{result}");
    screenshot(&browser, "09-audit", None).await;

    // Logging out ends it: a page afterwards is the login form again.
    click(&browser, "form[action='/logout'] button").await;
    arrive(&browser, "/login", |p| p == "/login").await;
    browser
        .goto(&app.url("/deployments"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(path(&browser).await, "/login?next=%2Fdeployments");
    screenshot(&browser, "10-after-logout", None).await;
    browser.close().await.unwrap_or_else(|e| panic!("{e}"));
}

/// Logs the browser in with the admin token and waits for `/deployments`.
async fn log_in(browser: &Client, app: &TestApp) {
    browser
        .goto(&app.url("/login?next=%2Fdeployments"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .find(Locator::Css("#token"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    click(browser, "form[action='/login'] button[type=submit]").await;
    arrive(browser, "/deployments", |p| p == "/deployments").await;
}

/// Whether the page's live stream is open (htmx's SSE extension keeps its
/// `EventSource` in the element's internal data).
async fn live_is_open(browser: &Client) -> Result<(), String> {
    let state = browser
        .execute(
            "const e = document.querySelector('[sse-connect]');
             const s = e && e['htmx-internal-data'] && e['htmx-internal-data'].sseEventSource;
             return s ? s.readyState : null;",
            vec![],
        )
        .await
        .map_err(|e| e.to_string())?;
    if state == json!(1) {
        Ok(())
    } else {
        Err(format!("EventSource readyState {state}"))
    }
}

/// How long a page may take to load before the test calls it stalled: the browser's
/// own page-load timeout, so that a stall fails at once instead of after a minute.
const PROMPT_LOAD: Duration = Duration::from_secs(5);

/// Chromium keeps a page it leaves in its back/forward cache, live stream and all: each
/// held one of the six connections it opens to a host, and the seventh live page waited
/// about a minute. Going through more live pages than that, each must load promptly
/// and open its own stream.
#[tokio::test]
async fn leaving_live_pages_never_stalls_the_next_one() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let sim = sim_with(Duration::from_millis(100), true).await;
    let app = platform_app(&sim, |_| {}).await;
    let (status, created) = app
        .post("/api/deployments", json!({"template": "nginx"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let name = created["name"].as_str().unwrap_or_default().to_owned();
    let browser = browser(&driver).await;
    browser
        .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
            None,
            Some(PROMPT_LOAD),
            None,
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    log_in(&browser, &app).await;
    let pages = [
        format!("/deployments/{name}"),
        "/deployments".to_owned(),
        "/ledger".to_owned(),
    ];
    let mut slowest = Duration::ZERO;
    // Four rounds: twelve live pages, twice the browser's connections to a host.
    for round in 1..=4 {
        for page in &pages {
            let started = std::time::Instant::now();
            browser.goto(&app.url(page)).await.unwrap_or_else(|e| {
                panic!("round {round}: {page} did not load within {PROMPT_LOAD:?}: {e}")
            });
            eventually(
                &format!("round {round}: {page}'s live stream opens"),
                || live_is_open(&browser),
            )
            .await;
            slowest = slowest.max(started.elapsed());
        }
    }
    eprintln!("the slowest of 12 live pages loaded and opened its stream in {slowest:?}");
    browser.close().await.unwrap_or_else(|e| panic!("{e}"));
}
