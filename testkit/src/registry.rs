//! A real OCI registry for a test: Debian's `docker-registry` (the CNCF
//! distribution registry) on a free loopback port with a storage directory of
//! its own, and pushes through its HTTP API (a config blob, one layer, a
//! manifest), so that tests resolve real digests with no Docker anywhere.
//! `scripts/test` installs the package; [`Registry::start`] panics with a clear
//! message when the binary is missing.

use sha2::{Digest, Sha256};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Where Debian's package puts the registry.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";
/// The media type of the manifests pushed (Docker's image manifest, schema 2).
const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A running registry; stopped and its storage removed on drop.
pub struct Registry {
    /// `127.0.0.1:PORT`: the registry part of an image reference.
    pub host: String,
    dir: PathBuf,
    child: Child,
    http: reqwest::Client,
}

/// What a push left in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest's digest (`sha256:…`): what the tag names now.
    pub digest: String,
}

impl Registry {
    /// Starts a registry on a free loopback port and waits until `/v2/` answers.
    pub async fn start() -> Self {
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
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {host}\n",
            dir.join("storage").display()
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config)
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
        };
        let probe = format!("http://{}/v2/", registry.host);
        crate::eventually("the registry answers /v2/", || async {
            match registry.http.get(&probe).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(r.status().to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        registry
    }

    /// Pushes a small image to `repository:tag`: a config blob and one layer whose
    /// bytes depend on `content`, then the manifest naming them. Pushing the same tag
    /// again with other `content` moves the tag to a new digest.
    pub async fn push(&self, repository: &str, tag: &str, content: &str) -> Pushed {
        let layer = format!("layer of {repository}:{tag}: {content}").into_bytes();
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
        let url = format!("http://{}/v2/{repository}/manifests/{tag}", self.host);
        let response = self
            .http
            .put(&url)
            .header("content-type", MANIFEST_TYPE)
            .body(manifest.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        assert_eq!(response.status().as_u16(), 201, "PUT {url}: {response:?}");
        let digest = sha256(manifest.as_bytes());
        let answered = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(answered, digest, "the registry's digest of the manifest");
        Pushed { digest }
    }

    /// Uploads `data` as one blob (a monolithic upload) and returns its digest.
    async fn push_blob(&self, repository: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let start = format!("http://{}/v2/{repository}/blobs/uploads/", self.host);
        let response = self
            .http
            .post(&start)
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
            .http
            .put(&url)
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        assert_eq!(response.status().as_u16(), 201, "PUT {url}: {response:?}");
        digest
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `sha256:<hex>` of `data`, as OCI digests are written.
fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pushed_tag_names_its_manifest_and_a_re_push_moves_it() {
        let registry = Registry::start().await;
        let first = registry.push("team/app", "1.0", "first").await;
        let again = registry.push("team/app", "1.0", "first").await;
        assert_eq!(first, again, "the same content gives the same digest");
        let second = registry.push("team/app", "1.0", "second").await;
        assert_ne!(first, second, "new content moves the tag");
        // The registry serves the tag's current manifest under that digest.
        let url = format!("http://{}/v2/team/app/manifests/1.0", registry.host);
        let head = reqwest::Client::new()
            .head(&url)
            .header("accept", MANIFEST_TYPE)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.headers()["docker-content-digest"].to_str().unwrap(),
            second.digest
        );
        let dir = registry.dir.clone();
        drop(registry);
        assert!(!dir.exists(), "the storage is removed on drop");
    }
}
