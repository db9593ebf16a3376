//! The Kubernetes manifests in `deploy/`: every YAML document parses into the k8s-openapi
//! type its `kind` names (and says nothing that type would drop), the base is wired together
//! (ports, probes, Secret keys, the Role to the ServiceAccount the pods run as, selectors),
//! and, where `kubectl` is installed, the example overlay renders and applies to the
//! simulator, where shiplog's two replicas roll out with their Secret resolved.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_sim::{KubeSim, SimConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The repository's `deploy/` folder.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every `.yaml`/`.yml` file under `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The documents of a YAML stream, as JSON values (empty documents skipped).
fn documents(text: &str, origin: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("{origin} is not YAML: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// Parses `doc` into `T` and back: what the type does not know (a misspelt or misplaced
/// field) would be silently dropped by a real client, so it fails here, named.
fn typed<T: DeserializeOwned + Serialize>(doc: &Value, origin: &str) -> T {
    let value: T = serde_path_to_error::deserialize(doc)
        .unwrap_or_else(|e| panic!("{origin}: not a valid object of its kind at {e}"));
    let back = serde_json::to_value(&value).unwrap_or_else(|e| panic!("{origin}: {e}"));
    let mut dropped = Vec::new();
    missing_fields(doc, &back, String::new(), &mut dropped);
    assert!(
        dropped.is_empty(),
        "{origin}: fields its type does not have: {dropped:?}"
    );
    value
}

/// The paths of `original` that `parsed` lacks.
fn missing_fields(original: &Value, parsed: &Value, at: String, out: &mut Vec<String>) {
    match (original, parsed) {
        (Value::Object(o), Value::Object(p)) => {
            for (k, v) in o {
                match p.get(k) {
                    Some(pv) => missing_fields(v, pv, format!("{at}.{k}"), out),
                    None => out.push(format!("{at}.{k}")),
                }
            }
        }
        (Value::Array(o), Value::Array(p)) => {
            for (i, (v, pv)) in o.iter().zip(p).enumerate() {
                missing_fields(v, pv, format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// A Secret with its `data` values' line breaks removed: kustomize wraps long base64 values,
/// and the API server's decoder (Go's) skips line breaks, where k8s-openapi's does not.
fn unwrapped_data(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if let Some(data) = doc.get_mut("data").and_then(Value::as_object_mut) {
        for value in data.values_mut() {
            if let Some(text) = value.as_str() {
                *value = Value::String(text.replace(['\n', '\r'], ""));
            }
        }
    }
    doc
}

/// The objects of a set of manifests, by kind, each parsed into its k8s-openapi type.
#[derive(Default)]
struct Objects {
    namespaces: Vec<Namespace>,
    service_accounts: Vec<ServiceAccount>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    budgets: Vec<PodDisruptionBudget>,
    secrets: Vec<Secret>,
    /// Kustomization files, by the folder they are in.
    kustomizations: Vec<(PathBuf, Value)>,
}

impl Objects {
    /// Sorts one document into its kind; an unknown kind fails the test, named.
    fn add(&mut self, doc: &Value, origin: &str, folder: &Path) {
        let api_version = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        let origin = format!("{origin} ({api_version} {kind})");
        match (api_version, kind) {
            ("v1", "Namespace") => self.namespaces.push(typed(doc, &origin)),
            ("v1", "ServiceAccount") => self.service_accounts.push(typed(doc, &origin)),
            ("rbac.authorization.k8s.io/v1", "Role") => self.roles.push(typed(doc, &origin)),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                self.role_bindings.push(typed(doc, &origin))
            }
            ("apps/v1", "Deployment") => self.deployments.push(typed(doc, &origin)),
            ("v1", "Service") => self.services.push(typed(doc, &origin)),
            ("policy/v1", "PodDisruptionBudget") => self.budgets.push(typed(doc, &origin)),
            ("v1", "Secret") => self.secrets.push(typed(&unwrapped_data(doc), &origin)),
            ("kustomize.config.k8s.io/v1beta1", "Kustomization") => {
                self.kustomizations.push((folder.to_owned(), doc.clone()))
            }
            _ => panic!(
                "{origin}: a kind this test does not know; add it here with its k8s-openapi type"
            ),
        }
    }

    fn from_stream(text: &str, origin: &str) -> Objects {
        let mut objects = Objects::default();
        for (i, doc) in documents(text, origin).iter().enumerate() {
            objects.add(doc, &format!("{origin} document {i}"), Path::new("."));
        }
        objects
    }

    fn deployment(&self) -> &Deployment {
        assert_eq!(self.deployments.len(), 1, "one Deployment of shiplog");
        &self.deployments[0]
    }
}

/// Every manifest under `deploy/`.
fn all_manifests() -> Objects {
    let mut objects = Objects::default();
    for file in yaml_files(&deploy_dir()) {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let folder = file.parent().unwrap_or(Path::new("."));
        let origin = file.display().to_string();
        let docs = documents(&text, &origin);
        assert!(!docs.is_empty(), "{origin} holds no document");
        for doc in &docs {
            objects.add(doc, &origin, folder);
        }
    }
    objects
}

/// The base's manifests alone (what `deploy/base/kustomization.yaml` lists).
fn base() -> Objects {
    let folder = deploy_dir().join("base");
    let mut objects = Objects::default();
    for file in yaml_files(&folder) {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for doc in documents(&text, &file.display().to_string()) {
            objects.add(&doc, &file.display().to_string(), &folder);
        }
    }
    objects
}

fn container(d: &Deployment) -> &Container {
    let containers = &d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .unwrap_or_else(|| panic!("the Deployment has no pod spec"))
        .containers;
    assert_eq!(containers.len(), 1, "shiplog runs as one container");
    &containers[0]
}

/// A plain environment value of the container.
fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

/// The Secret and key an environment variable of the container is read from.
fn env_secret(c: &Container, name: &str) -> Option<(String, String)> {
    let reference = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)?
        .value_from
        .as_ref()?
        .secret_key_ref
        .as_ref()?;
    Some((reference.name.clone(), reference.key.clone()))
}

/// The container port of the given name.
fn port_named(c: &Container, name: &str) -> i32 {
    c.ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| p.container_port)
        .unwrap_or_else(|| panic!("no container port named {name}"))
}

/// The port of a `host:port` listen address.
fn listen_port(address: &str) -> i32 {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("{address} is not host:port"))
}

#[test]
fn every_manifest_parses_into_the_type_its_kind_names() {
    let all = all_manifests();
    assert!(!all.kustomizations.is_empty());
    for (folder, kustomization) in &all.kustomizations {
        for resource in kustomization["resources"].as_array().into_iter().flatten() {
            let path = folder.join(resource.as_str().unwrap_or_default());
            assert!(
                path.exists(),
                "{} lists {}, which does not exist",
                folder.display(),
                path.display()
            );
        }
    }
    assert_eq!(all.namespaces.len(), 1);
    assert_eq!(
        all.roles.len(),
        1,
        "a Role, no ClusterRole: shiplog works in one namespace"
    );
}

#[test]
fn the_base_runs_two_probed_non_root_replicas_with_their_secret_and_ports() {
    let base = base();
    let deployment = base.deployment();
    let spec = deployment
        .spec
        .as_ref()
        .unwrap_or_else(|| panic!("no spec"));
    assert_eq!(spec.replicas, Some(2));
    let pod = spec
        .template
        .spec
        .as_ref()
        .unwrap_or_else(|| panic!("no pod spec"));
    let c = container(deployment);

    // The image's tag is the version being built.
    assert_eq!(
        c.image.as_deref(),
        Some(format!("shiplog:{}", env!("CARGO_PKG_VERSION")).as_str())
    );
    // It deploys to the cluster it runs in, listening outside the pod.
    assert_eq!(env_value(c, "SHIPLOG_CLUSTER"), Some("kube"));
    let api = env_value(c, "SHIPLOG_LISTEN").unwrap_or_else(|| panic!("no SHIPLOG_LISTEN"));
    let proxy =
        env_value(c, "SHIPLOG_PROXY_LISTEN").unwrap_or_else(|| panic!("no SHIPLOG_PROXY_LISTEN"));
    assert!(
        api.starts_with("0.0.0.0:") && proxy.starts_with("0.0.0.0:"),
        "{api} {proxy}"
    );
    assert_eq!(listen_port(api), port_named(c, "http"));
    assert_eq!(listen_port(proxy), port_named(c, "proxy"));
    let namespace_ref = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "SHIPLOG_NAMESPACE")
        .and_then(|e| e.value_from.as_ref()?.field_ref.as_ref())
        .map(|f| f.field_path.as_str());
    assert_eq!(
        namespace_ref,
        Some("metadata.namespace"),
        "objects go where its Role is"
    );
    // Credentials come from the Secret, never in clear.
    assert_eq!(
        env_secret(c, "DATABASE_URL"),
        Some(("shiplog".to_owned(), "database-url".to_owned()))
    );
    assert_eq!(
        env_secret(c, "SHIPLOG_ADMIN_TOKEN"),
        Some(("shiplog".to_owned(), "admin-token".to_owned()))
    );
    // Probes on the API port.
    let probe = |p: Option<&k8s_openapi::api::core::v1::Probe>| {
        let get = p
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("no HTTP probe"));
        (get.path.clone().unwrap_or_default(), get.port.clone())
    };
    assert_eq!(
        probe(c.readiness_probe.as_ref()),
        ("/readyz".to_owned(), IntOrString::String("http".to_owned()))
    );
    assert_eq!(
        probe(c.liveness_probe.as_ref()),
        (
            "/healthz".to_owned(),
            IntOrString::String("http".to_owned())
        )
    );
    let requests = c
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .unwrap_or_else(|| panic!("no resource requests"));
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
    // Not root, nothing to escalate to, nothing written to the image.
    let pod_security = pod
        .security_context
        .as_ref()
        .unwrap_or_else(|| panic!("no pod securityContext"));
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert!(pod_security.run_as_user.is_some_and(|u| u != 0));
    let security = c
        .security_context
        .as_ref()
        .unwrap_or_else(|| panic!("no container securityContext"));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_owned()])
    );

    // Each Service reaches the pods on a named container port: the API's and the proxy's.
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let matches_pods = |selector: &BTreeMap<String, String>| {
        !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
    };
    let mut targets = Vec::new();
    for service in &base.services {
        let s = service
            .spec
            .as_ref()
            .unwrap_or_else(|| panic!("a Service without spec"));
        assert!(
            matches_pods(&s.selector.clone().unwrap_or_default()),
            "{:?} selects no shiplog pod",
            service.metadata.name
        );
        for p in s.ports.iter().flatten() {
            match &p.target_port {
                Some(IntOrString::String(name)) => targets.push((name.clone(), p.port)),
                other => panic!(
                    "{:?}: target the named port, not {other:?}",
                    service.metadata.name
                ),
            }
        }
    }
    targets.sort();
    assert_eq!(
        targets,
        [
            ("http".to_owned(), port_named(c, "http")),
            ("proxy".to_owned(), port_named(c, "proxy"))
        ]
    );
    // A drain leaves one replica.
    assert_eq!(base.budgets.len(), 1);
    let budget = base.budgets[0]
        .spec
        .as_ref()
        .unwrap_or_else(|| panic!("no PDB spec"));
    assert_eq!(budget.min_available, Some(IntOrString::Int(1)));
    let budget_selector = budget
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.clone())
        .unwrap_or_default();
    assert!(
        matches_pods(&budget_selector),
        "the budget selects the pods"
    );

    // The Role is bound to the account the pods run as.
    let account = pod
        .service_account_name
        .as_deref()
        .unwrap_or_else(|| panic!("no serviceAccountName"));
    assert_eq!(base.service_accounts.len(), 1);
    assert_eq!(
        base.service_accounts[0].metadata.name.as_deref(),
        Some(account)
    );
    assert_eq!(base.role_bindings.len(), 1);
    let binding = &base.role_bindings[0];
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(
        Some(binding.role_ref.name.as_str()),
        base.roles[0].metadata.name.as_deref()
    );
    let subjects = binding.subjects.clone().unwrap_or_default();
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str()),
        ("ServiceAccount", account)
    );
    assert_eq!(
        subjects[0].namespace, None,
        "no namespace: RBAC takes the binding's, which follows an overlay's"
    );
}

/// A command's output, or why it failed.
async fn run(command: &mut tokio::process::Command, stdin: Option<&str>) -> String {
    use tokio::io::AsyncWriteExt;
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or_default().as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let output = child
        .wait_with_output()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn kubectl_installed() -> bool {
    std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn the_example_overlay_renders_and_applies_to_the_simulator() {
    if !kubectl_installed() {
        // In CI the check must run: scripts/test installs kubectl there.
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl is not installed, and CI must render and apply the manifests (scripts/test installs kubectl)"
        );
        eprintln!("kubectl is not installed: the render-and-apply half of the manifest test is skipped (scripts/test installs it)");
        return;
    }
    let overlay = deploy_dir().join("overlays/example");
    let rendered = run(
        tokio::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(&overlay),
        None,
    )
    .await;
    let objects = Objects::from_stream(&rendered, "kubectl kustomize deploy/overlays/example");
    let namespace = objects.namespaces[0]
        .metadata
        .name
        .clone()
        .unwrap_or_default();
    assert_eq!(namespace, "platform-shiplog");
    let c = container(objects.deployment());
    assert_eq!(
        c.image.as_deref(),
        Some("registry.example.com/platform/shiplog:0.1.0")
    );
    // The generated Secret's name (with its hash) is what the pods refer to.
    assert_eq!(objects.secrets.len(), 1);
    let secret = objects.secrets[0].metadata.name.clone().unwrap_or_default();
    assert_eq!(
        env_secret(c, "DATABASE_URL").map(|(name, _)| name),
        Some(secret.clone())
    );
    let keys: Vec<&String> = objects.secrets[0]
        .data
        .iter()
        .flat_map(|d| d.keys())
        .collect();
    assert_eq!(keys, ["admin-token", "database-url"]);

    let sim = KubeSim::start(SimConfig {
        ready_delay: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("simulator: {e}"));
    let dir = std::env::temp_dir().join(format!("shiplog-manifests-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)
        .unwrap_or_else(|e| panic!("{e}"));
    let applied = run(
        tokio::process::Command::new("kubectl")
            .env("KUBECONFIG", &kubeconfig)
            .args([
                "apply",
                "--server-side",
                "--field-manager=shiplog-install",
                "-f",
                "-",
            ]),
        Some(&rendered),
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        applied.lines().count(),
        9,
        "every object applied: {applied}"
    );

    for (resource, name) in [
        ("serviceaccounts", "shiplog"),
        ("roles", "shiplog"),
        ("rolebindings", "shiplog"),
        ("services", "shiplog"),
        ("services", "shiplog-proxy"),
        ("poddisruptionbudgets", "shiplog"),
        ("secrets", secret.as_str()),
    ] {
        assert!(
            sim.objects(resource, Some(&namespace))
                .iter()
                .any(|o| o["metadata"]["name"] == name),
            "{resource}/{name} is not in the simulator"
        );
    }
    // Both replicas start: their Secret and its keys resolve, as the kubelet checks them.
    shiplog_testkit::eventually("both replicas of shiplog to be ready", || async {
        let deployment = sim
            .objects("deployments", Some(&namespace))
            .into_iter()
            .find(|d| d["metadata"]["name"] == "shiplog")
            .unwrap_or_else(|| panic!("no Deployment shiplog"));
        if deployment["status"]["readyReplicas"] == 2 {
            Ok(())
        } else {
            Err(deployment["status"].clone())
        }
    })
    .await;
    sim.shutdown().await;
}
