//! A real OCI registry for a test: Debian's `docker-registry` (the CNCF
//! distribution registry, 2.8) on a free loopback port with a storage directory
//! of its own, and pushes through its HTTP API (a config blob, one layer, a
//! manifest), so that tests resolve real digests with no Docker anywhere.
//! `scripts/test` installs the package; [`Registry::start`] panics with a clear
//! message when the binary is missing.
//!
//! [`Registry::start_with`] adds what auto-update and credentials tests need:
//!
//! - **Basic auth** ([`RegistryOptions::auth`]): the registry's `htpasswd`
//!   scheme (no token server). Without credentials every request gets `401`
//!   with `WWW-Authenticate: Basic realm="shiplog-test"`; the kit's own pushes
//!   send them. [`Registry::docker_config`] writes the docker config JSON a pull
//!   secret holds.
//! - **Notifications** ([`RegistryOptions::notify`]): after each manifest push
//!   the registry POSTs to the URL, within about a second, one request per
//!   event. Blob uploads and pulls (HEAD or GET of a manifest) are not sent.
//!   A receiver that does not answer 2xx or 3xx (or does not answer within 2 s)
//!   gets the same event again every 200 ms, and later events wait behind it.
//!
//! A notification as received: `POST` to the configured URL (path and query as
//! given), with the configured headers (e.g. `Authorization: Bearer …`),
//! `Content-Type: application/vnd.docker.distribution.events.v1+json`,
//! `User-Agent: Go-http-client/1.1`, and a body (indented by the registry) of
//! one envelope holding one event:
//!
//! ```json
//! {"events": [{
//!   "id": "0b261c1e-1e23-4bd7-8f23-4feb8c8098e4",
//!   "timestamp": "2026-11-30T01:21:46.100774402Z",
//!   "action": "push",
//!   "target": {
//!     "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
//!     "size": 420, "length": 420,
//!     "digest": "sha256:a07b58e5…",
//!     "repository": "team/app",
//!     "url": "http://127.0.0.1:PORT/v2/team/app/manifests/sha256:a07b58e5…",
//!     "tag": "1.4.0"
//!   },
//!   "request": {"id": "…", "addr": "127.0.0.1:52432", "host": "127.0.0.1:PORT",
//!               "method": "PUT", "useragent": "…"},
//!   "actor": {"name": "robot"},
//!   "source": {"addr": "HOSTNAME:PORT", "instanceID": "…"}
//! }]}
//! ```
//!
//! `target.digest` is the manifest digest the push returned (what the tag names
//! now), `target.tag` the tag pushed, `request.host` the registry as the pusher
//! addressed it (the registry part of an image reference). `actor` is `{}`
//! without auth. A manifest pushed by digest alone has no `tag`.

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where Debian's package puts the registry.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";
/// The media type of the manifests pushed (Docker's image manifest, schema 2).
const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The media type of the registry's notification bodies (the distribution event envelope).
pub const EVENTS_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";
/// The realm of the registry's basic auth challenge.
pub const AUTH_REALM: &str = "shiplog-test";
/// The bcrypt cost of the htpasswd entry: the lowest bcrypt allows, because the
/// registry checks the password on every request and a test sends many.
const HTPASSWD_COST: u32 = 4;

/// How [`Registry::start_with`] sets the registry up; the default is
/// [`Registry::start`]'s (anonymous, no notifications).
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `(user, password)`: the only account, through the registry's htpasswd
    /// scheme; anonymous requests get `401`.
    pub auth: Option<(String, String)>,
    /// Where the registry sends a notification of each manifest push.
    pub notify: Option<Notify>,
}

/// A notification endpoint of the registry (`notifications.endpoints`).
#[derive(Debug, Clone)]
pub struct Notify {
    /// The URL the registry POSTs each event to.
    pub url: String,
    /// Headers sent with every notification, e.g. `("Authorization", "Bearer …")`;
    /// a name given twice is sent with both values.
    pub headers: Vec<(String, String)>,
}

/// A running registry; stopped and its storage removed on drop.
pub struct Registry {
    /// `127.0.0.1:PORT`: the registry part of an image reference.
    pub host: String,
    dir: PathBuf,
    child: Child,
    http: reqwest::Client,
    auth: Option<(String, String)>,
}

/// What a push left in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest's digest (`sha256:…`): what the tag names now.
    pub digest: String,
}

impl Registry {
    /// Starts an anonymous registry on a free loopback port and waits until `/v2/` answers.
    pub async fn start() -> Self {
        Self::start_with(RegistryOptions::default()).await
    }

    /// Starts a registry set up as `options` say on a free loopback port, and waits
    /// until `/v2/` answers (with the credentials, when it has auth).
    pub async fn start_with(options: RegistryOptions) -> Self {
        let dir = std::env::temp_dir().join(format!("shiplog-registry-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("storage"))
            .unwrap_or_else(|e| panic!("registry storage {}: {e}", dir.display()));
        // The port is free now; the registry binds it a moment later (nothing else on
        // this machine picks ports from the ephemeral range this quickly).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("a free port: {e}"))
            .port();
        let host = format!("127.0.0.1:{port}");
        let htpasswd = options.auth.as_ref().map(|(user, password)| {
            let path = dir.join("htpasswd");
            let hash = bcrypt::hash(password, HTPASSWD_COST)
                .unwrap_or_else(|e| panic!("bcrypt of the registry password: {e}"));
            std::fs::write(&path, format!("{user}:{hash}\n"))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            path
        });
        let config = config(
            &host,
            &dir.join("storage"),
            htpasswd.as_deref(),
            options.notify.as_ref(),
        );
        // JSON is YAML: the registry reads it as its config.yml.
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config.to_string())
            .unwrap_or_else(|e| panic!("{}: {e}", config_path.display()));
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{REGISTRY_BINARY}: {e} (install Debian's docker-registry package; scripts/test does)")
            });
        let registry = Self {
            host,
            dir,
            child,
            http: reqwest::Client::new(),
            auth: options.auth,
        };
        let probe = format!("http://{}/v2/", registry.host);
        crate::eventually("the registry answers /v2/", || async {
            match registry.request(reqwest::Method::GET, &probe).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(r.status().to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        registry
    }

    /// The docker config JSON of a pull secret for this registry
    /// (`{"auths":{"127.0.0.1:PORT":{"auth":"<base64 user:password>"}}}`), the
    /// `.dockerconfigjson` of a `kubernetes.io/dockerconfigjson` Secret. Panics
    /// when the registry was started without auth: there is nothing to put in it.
    pub fn docker_config(&self) -> String {
        let Some((user, password)) = &self.auth else {
            panic!(
                "the registry at {} has no auth: no docker config",
                self.host
            )
        };
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        json!({"auths": {&self.host: {"auth": auth}}}).to_string()
    }

    /// Pushes a small image to `repository:tag`: a config blob and one layer whose
    /// bytes depend on `tag` and `content`, then the manifest naming them. Pushing the
    /// same tag again with other `content` moves the tag to a new digest.
    pub async fn push(&self, repository: &str, tag: &str, content: &str) -> Pushed {
        self.push_tags(repository, &[tag], content).await
    }

    /// Pushes one image under several tags (`["2.0.0", "latest"]`): the image
    /// [`push`](Self::push) would push under the first tag, its blobs uploaded once
    /// and its manifest put under each tag, so all the tags name one digest. With a
    /// notification endpoint, each tag makes one push event.
    pub async fn push_tags(&self, repository: &str, tags: &[&str], content: &str) -> Pushed {
        let Some(first) = tags.first() else {
            panic!("push_tags of {repository}: no tag")
        };
        let layer = format!("layer of {repository}:{first}: {content}").into_bytes();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"content":{content:?}}}}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            sha256(&layer)
        )
        .into_bytes();
        let config_digest = self.push_blob(repository, &config).await;
        let layer_digest = self.push_blob(repository, &layer).await;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_TYPE}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{config_digest}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{},"digest":"{layer_digest}"}}]}}"#,
            config.len(),
            layer.len()
        );
        let digest = sha256(manifest.as_bytes());
        for tag in tags {
            let url = format!("http://{}/v2/{repository}/manifests/{tag}", self.host);
            let response = self
                .request(reqwest::Method::PUT, &url)
                .header("content-type", MANIFEST_TYPE)
                .body(manifest.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
            assert_eq!(response.status().as_u16(), 201, "PUT {url}: {response:?}");
            let answered = response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert_eq!(answered, digest, "the registry's digest of the manifest");
        }
        Pushed { digest }
    }

    /// Uploads `data` as one blob (a monolithic upload) and returns its digest.
    async fn push_blob(&self, repository: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let start = format!("http://{}/v2/{repository}/blobs/uploads/", self.host);
        let response = self
            .request(reqwest::Method::POST, &start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {start}: {e}"));
        assert_eq!(
            response.status().as_u16(),
            202,
            "POST {start}: {response:?}"
        );
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("POST {start}: no Location"))
            .to_owned();
        // The location may be relative, and may carry a query of its own.
        let mut url = if location.starts_with('/') {
            format!("http://{}{location}", self.host)
        } else {
            location
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={digest}"));
        let response = self
            .request(reqwest::Method::PUT, &url)
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        assert_eq!(response.status().as_u16(), 201, "PUT {url}: {response:?}");
        digest
    }

    /// A request to the registry, with the credentials when it has auth: the
    /// htpasswd scheme takes basic auth on every request, no token exchange.
    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.auth {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The registry's configuration: storage, listen address, and auth and
/// notifications when asked for.
fn config(host: &str, storage: &Path, htpasswd: Option<&Path>, notify: Option<&Notify>) -> Value {
    let mut config = json!({
        "version": "0.1",
        "log": {"level": "error", "accesslog": {"disabled": true}},
        "storage": {
            "filesystem": {"rootdirectory": storage},
            "delete": {"enabled": true},
        },
        "http": {"addr": host},
    });
    if let Some(path) = htpasswd {
        config["auth"] = json!({"htpasswd": {"realm": AUTH_REALM, "path": path}});
    }
    if let Some(notify) = notify {
        // Go's http.Header: each name maps to a list of values.
        let mut headers = serde_json::Map::new();
        for (name, value) in &notify.headers {
            if let Some(values) = headers
                .entry(name.clone())
                .or_insert_with(|| json!([]))
                .as_array_mut()
            {
                values.push(json!(value));
            }
        }
        config["notifications"] = json!({"endpoints": [{
            "name": "test",
            "url": notify.url,
            "headers": headers,
            // Short enough that a test sees a push within about a second, and a
            // receiver that failed gets the event again soon.
            "timeout": "2s",
            "threshold": 1,
            "backoff": "200ms",
            // Only manifest pushes: blob uploads (octet-stream) and pulls are left out.
            "ignore": {"mediatypes": ["application/octet-stream"], "actions": ["pull"]},
        }]});
    }
    config
}

/// `sha256:<hex>` of `data`, as OCI digests are written.
pub(crate) fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::State;
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn a_pushed_tag_names_its_manifest_and_a_re_push_moves_it() {
        let registry = Registry::start().await;
        let first = registry.push("team/app", "1.0", "first").await;
        let again = registry.push("team/app", "1.0", "first").await;
        assert_eq!(first, again, "the same content gives the same digest");
        let second = registry.push("team/app", "1.0", "second").await;
        assert_ne!(first, second, "new content moves the tag");
        // The registry serves the tag's current manifest under that digest.
        assert_eq!(
            head_digest(&registry, "team/app", "1.0", None).await,
            second.digest
        );
        let dir = registry.dir.clone();
        drop(registry);
        assert!(!dir.exists(), "the storage is removed on drop");
    }

    #[tokio::test]
    async fn several_tags_of_one_push_name_one_digest_and_other_tags_keep_theirs() {
        let registry = Registry::start().await;
        let old = registry.push("team/app", "1.4.0", "1.4.0 build").await;
        let minor = registry.push("team/app", "1.5.2", "1.5.2 build").await;
        let major = registry
            .push_tags("team/app", &["2.0.0", "latest"], "2.0.0 build")
            .await;
        assert_ne!(old, minor);
        assert_ne!(minor, major);
        assert_eq!(
            major,
            registry.push("team/app", "2.0.0", "2.0.0 build").await,
            "push_tags pushes the image push would push under its first tag"
        );
        for (tag, pushed) in [
            ("1.4.0", &old),
            ("1.5.2", &minor),
            ("2.0.0", &major),
            ("latest", &major),
        ] {
            assert_eq!(
                head_digest(&registry, "team/app", tag, None).await,
                pushed.digest,
                "{tag}"
            );
        }
    }

    #[tokio::test]
    async fn a_registry_with_auth_refuses_anonymous_requests_and_takes_its_credentials() {
        let credentials = ("robot".to_owned(), "s3cret".to_owned());
        let registry = Registry::start_with(RegistryOptions {
            auth: Some(credentials.clone()),
            notify: None,
        })
        .await;
        // The kit's own push authenticates.
        let pushed = registry.push("team/app", "1.0", "private build").await;

        let url = format!("http://{}/v2/team/app/manifests/1.0", registry.host);
        let anonymous = reqwest::Client::new().head(&url).send().await.unwrap();
        assert_eq!(anonymous.status().as_u16(), 401);
        assert_eq!(
            anonymous.headers()["www-authenticate"],
            format!("Basic realm=\"{AUTH_REALM}\"")
        );
        let wrong = reqwest::Client::new()
            .head(&url)
            .basic_auth("robot", Some("guess"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 401);
        assert_eq!(
            head_digest(&registry, "team/app", "1.0", Some(&credentials)).await,
            pushed.digest
        );

        // The docker config a pull secret holds names this registry and these credentials.
        let config: Value = serde_json::from_str(&registry.docker_config()).unwrap();
        let auth = config["auths"][&registry.host]["auth"].as_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .unwrap();
        assert_eq!(decoded, b"robot:s3cret");
    }

    /// What a notification receiver got: each request's headers and JSON body.
    type Received = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

    /// A receiver of the registry's notifications on a free loopback port; returns its URL.
    async fn receiver(received: Received) -> String {
        async fn receive(State(received): State<Received>, headers: HeaderMap, body: String) {
            let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
            received.lock().unwrap().push((headers, body));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hooks/registry", axum::routing::post(receive))
            .with_state(received);
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/hooks/registry")
    }

    /// The events received so far, in order, once there are at least `n`.
    async fn events(received: &Received, n: usize) -> Vec<(HeaderMap, Value)> {
        crate::eventually(&format!("{n} notifications"), || async {
            let got = received.lock().unwrap().clone();
            if got.len() >= n {
                Ok(got)
            } else {
                Err(got.into_iter().map(|(_, body)| body).collect::<Vec<_>>())
            }
        })
        .await
    }

    #[tokio::test]
    async fn a_manifest_push_is_notified_with_the_configured_header_and_blobs_and_pulls_are_not() {
        let received = Received::default();
        let url = receiver(received.clone()).await;
        let credentials = ("robot".to_owned(), "s3cret".to_owned());
        let registry = Registry::start_with(RegistryOptions {
            auth: Some(credentials.clone()),
            notify: Some(Notify {
                url,
                headers: vec![("Authorization".to_owned(), "Bearer hook-token".to_owned())],
            }),
        })
        .await;

        let pushed = registry
            .push_tags("team/app", &["2.0.0", "latest"], "2.0.0 build")
            .await;
        // The registry delivers in order: had it sent the blob uploads, they would
        // have come before the manifest pushes.
        let got = events(&received, 2).await;
        assert_eq!(got.len(), 2, "only the two manifest pushes: {got:?}");
        for ((headers, body), tag) in got.iter().zip(["2.0.0", "latest"]) {
            assert_eq!(headers["authorization"], "Bearer hook-token");
            assert_eq!(headers["content-type"], EVENTS_MEDIA_TYPE);
            let events = body["events"].as_array().unwrap();
            assert_eq!(events.len(), 1, "one event per request: {body}");
            let event = &events[0];
            assert_eq!(event["action"], "push", "{body}");
            assert_eq!(event["target"]["repository"], "team/app");
            assert_eq!(event["target"]["tag"], tag);
            assert_eq!(event["target"]["digest"], pushed.digest);
            assert_eq!(event["target"]["mediaType"], MANIFEST_TYPE);
            assert_eq!(
                event["target"]["url"],
                format!(
                    "http://{}/v2/team/app/manifests/{}",
                    registry.host, pushed.digest
                )
            );
            assert_eq!(event["request"]["host"], registry.host);
            assert_eq!(event["request"]["method"], "PUT");
            assert_eq!(event["actor"]["name"], "robot");
            eprintln!("a notification as received: {body}");
        }

        // A pull is not notified: the next notification is the next push.
        head_digest(&registry, "team/app", "latest", Some(&credentials)).await;
        let moved = registry.push("team/app", "latest", "a newer build").await;
        let got = events(&received, 3).await;
        assert_eq!(got.len(), 3, "{got:?}");
        let event = &got[2].1["events"][0];
        assert_eq!(event["action"], "push");
        assert_eq!(event["target"]["tag"], "latest");
        assert_eq!(event["target"]["digest"], moved.digest);
    }

    /// The digest the registry answers a HEAD of `repository:tag` with.
    async fn head_digest(
        registry: &Registry,
        repository: &str,
        tag: &str,
        credentials: Option<&(String, String)>,
    ) -> String {
        let url = format!("http://{}/v2/{repository}/manifests/{tag}", registry.host);
        let mut head = reqwest::Client::new()
            .head(&url)
            .header("accept", MANIFEST_TYPE);
        if let Some((user, password)) = credentials {
            head = head.basic_auth(user, Some(password));
        }
        let head = head.send().await.unwrap();
        assert_eq!(head.status().as_u16(), 200, "HEAD {url}");
        head.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_owned()
    }
}
