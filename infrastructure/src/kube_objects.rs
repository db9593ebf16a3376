//! The Kubernetes objects of a workload, as shiplog applies them: pure functions
//! from a `Workload` to JSON, so what lands in the cluster can be tested without one.
//!
//! Every object carries the labels `shiplog.io/usecase`, `shiplog.io/deployment`
//! (per-deployment objects) and `app.kubernetes.io/managed-by=shiplog`.
//! Environment values never appear in the Deployment: they live in the
//! deployment's Secret (`sl-<deployment id>`), which the containers reference, and
//! values shiplog generates live in the usecase's Secret (`sl-<usecase id>-generated`).

use serde_json::{json, Value};
use shiplog_application::{IngressSettings, Workload};
use shiplog_domain::{ResourceList, ServiceSpec, UpdateStrategy};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// Label with the usecase id on every object.
pub const USECASE_LABEL: &str = "shiplog.io/usecase";
/// Label with the deployment id on every per-deployment object and pod.
pub const DEPLOYMENT_LABEL: &str = "shiplog.io/deployment";
/// The label every object of shiplog carries, so that it can find them all.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "shiplog");
/// Pod-template annotation with the newest restart's id (as `kubectl rollout restart` stamps a time).
pub const RESTART_ANNOTATION: &str = "shiplog.io/restart";
/// The port the usecase's Service offers for the main service.
pub const SERVICE_PORT: u16 = 80;

/// The Deployment (and ServiceMonitor, and Secret) of one deployment: `sl-<deployment id>`.
pub fn deployment_name(deployment_id: Uuid) -> String {
    format!("sl-{}", deployment_id.simple())
}

/// The stable Service of one usecase: `sl-<usecase id>`.
pub fn service_name(usecase_id: Uuid) -> String {
    format!("sl-{}", usecase_id.simple())
}

/// The Secret holding the values shiplog generated for a usecase: they outlive its
/// deployments (a config change keeps the database password) and go with the usecase.
pub fn generated_secret_name(usecase_id: Uuid) -> String {
    format!("sl-{}-generated", usecase_id.simple())
}

/// The Ingress of one exposed service of a usecase.
pub fn ingress_name(usecase_id: Uuid, service: &str) -> String {
    format!("sl-{}-{service}", usecase_id.simple())
}

/// The key of a variable in a deployment's or the generated Secret:
/// `<container>.<NAME>` (container names have no dots, so it reads back unambiguously).
pub fn secret_key(container: &str, variable: &str) -> String {
    format!("{container}.{variable}")
}

/// The labels of every object of the workload's deployment.
pub fn labels(w: &Workload) -> Value {
    json!({
        USECASE_LABEL: w.usecase_id.to_string(),
        DEPLOYMENT_LABEL: w.deployment_id.to_string(),
        MANAGED_BY.0: MANAGED_BY.1,
    })
}

/// The labels of the usecase's own objects (Service, Ingresses, generated Secret).
pub fn usecase_labels(usecase_id: Uuid) -> Value {
    json!({USECASE_LABEL: usecase_id.to_string(), MANAGED_BY.0: MANAGED_BY.1})
}

/// The deployment's Secret: every explicit environment value of every container,
/// and the opened secret values of the main one (the workload carries them in clear
/// only between the process manager's opening and this apply).
pub fn secret_object(namespace: &str, w: &Workload) -> Value {
    let services = w.config.services();
    let mut data: BTreeMap<String, &str> = services
        .iter()
        .flat_map(|s| {
            s.env
                .iter()
                .map(|(k, v)| (secret_key(s.name, k), v.as_str()))
        })
        .collect();
    if let Some(main) = services.first() {
        data.extend(
            w.secrets
                .iter()
                .map(|(k, v)| (secret_key(main.name, k), v.expose())),
        );
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": deployment_name(w.deployment_id), "namespace": namespace, "labels": labels(w)},
        "type": "Opaque",
        "stringData": data,
    })
}

/// The generated variables the workload's containers expect, as keys of the
/// usecase's generated Secret (explicit values win: those are not expected).
pub fn generated_keys(w: &Workload) -> Vec<String> {
    w.config
        .services()
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.generated_secrets
                .iter()
                .filter(move |name| !given_explicitly(w, s, name, i == 0))
                .map(|name| secret_key(s.name, name))
        })
        .collect()
}

/// A container's environment: references into the deployment's Secret (plain and,
/// for the main container, secret values), into the generated Secret for generated
/// variables without an explicit value, and, for the main container, into the
/// existing Secrets its `secretRefs` name.
fn container_env(w: &Workload, s: &ServiceSpec<'_>, main: bool) -> Vec<Value> {
    let reference = |secret: String, name: &str| json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": secret_key(s.name, name)}}});
    let sealed = w.config.secret_env.keys().filter(|_| main);
    let explicit = s
        .env
        .keys()
        .chain(sealed)
        .map(|k| reference(deployment_name(w.deployment_id), k));
    let referenced = w.config.secret_refs.iter().filter(|_| main).map(|r| {
        json!({"name": r.name, "valueFrom": {"secretKeyRef": {"name": r.secret.name, "key": r.secret.key}}})
    });
    let generated = s
        .generated_secrets
        .iter()
        .filter(|name| !given_explicitly(w, s, name, main))
        .map(|name| reference(generated_secret_name(w.usecase_id), name));
    explicit.chain(generated).chain(referenced).collect()
}

/// Whether a container's variable has a value of the client's (plain, secret or
/// referenced): then it is not generated.
fn given_explicitly(w: &Workload, s: &ServiceSpec<'_>, name: &str, main: bool) -> bool {
    s.env.contains_key(name)
        || (main
            && (w.config.secret_env.contains_key(name)
                || w.config.secret_refs.iter().any(|r| r.name == name)))
}

fn resource_list(l: Option<&ResourceList>) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    if let Some(l) = l {
        if let Some(cpu) = &l.cpu {
            m.insert("cpu", cpu.clone());
        }
        if let Some(memory) = &l.memory {
            m.insert("memory", memory.clone());
        }
    }
    m
}

/// The Deployment's strategy. `Recreate` carries no `rollingUpdate`: with
/// server-side apply, a field shiplog stops applying is removed.
fn strategy(s: UpdateStrategy) -> Value {
    match s {
        // One extra pod at a time and none missing: a restart never drops traffic.
        UpdateStrategy::Rolling => {
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
        }
        UpdateStrategy::Recreate => json!({"type": "Recreate"}),
    }
}

/// The Deployment object, as applied: one container per service of the config.
pub fn deployment_object(
    namespace: &str,
    image_pull_secrets: &[String],
    progress_deadline: Duration,
    w: &Workload,
) -> Value {
    let c = &w.config;
    let resources = c.resources.as_ref().map_or(json!({}), |r| {
        json!({"requests": resource_list(r.requests.as_ref()), "limits": resource_list(r.limits.as_ref())})
    });
    let containers: Vec<Value> = c
        .services()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut container = json!({
                "name": s.name,
                "image": s.image.pull_reference(),
                "ports": [{"name": s.port_name, "containerPort": s.container_port}],
                "env": container_env(w, s, i == 0),
            });
            // Requests and limits are the main container's, as the config states them.
            if i == 0 {
                container["resources"] = resources.clone();
            }
            container
        })
        .collect();
    let secrets: Vec<Value> = image_pull_secrets
        .iter()
        .map(|s| json!({"name": s}))
        .collect();
    let mut template_metadata = json!({"labels": labels(w)});
    if let Some(restart) = w.restart {
        // Changing it rolls the pods; the same id applied again changes nothing.
        template_metadata["annotations"] = json!({RESTART_ANNOTATION: restart.to_string()});
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment_name(w.deployment_id), "namespace": namespace, "labels": labels(w)},
        "spec": {
            "replicas": c.replicas,
            "progressDeadlineSeconds": progress_deadline.as_secs(),
            "strategy": strategy(w.strategy),
            "selector": {"matchLabels": {DEPLOYMENT_LABEL: w.deployment_id.to_string()}},
            "template": {
                "metadata": template_metadata,
                "spec": {
                    "imagePullSecrets": secrets,
                    "containers": containers,
                }
            }
        }
    })
}

/// The ServiceMonitor of a deployment that asked for one.
pub fn service_monitor_object(namespace: &str, w: &Workload, interval: &str) -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": deployment_name(w.deployment_id), "namespace": namespace, "labels": labels(w)},
        "spec": {
            "selector": {"matchLabels": {USECASE_LABEL: w.usecase_id.to_string()}},
            "endpoints": [{"port": shiplog_domain::MAIN_PORT_NAME, "path": "/metrics", "interval": interval}]
        }
    })
}

/// The usecase's Service, pointed at the workload's pods: the main service on
/// port 80 (`http`), every further service on its own port, named after it.
pub fn service_object(namespace: &str, w: &Workload) -> Value {
    let ports: Vec<Value> = w
        .config
        .services()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let port = if i == 0 {
                SERVICE_PORT
            } else {
                s.container_port
            };
            json!({"name": s.port_name, "port": port, "targetPort": s.container_port})
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service_name(w.usecase_id), "namespace": namespace, "labels": usecase_labels(w.usecase_id)},
        "spec": {
            "selector": {DEPLOYMENT_LABEL: w.deployment_id.to_string()},
            "ports": ports,
        }
    })
}

/// The Ingresses of a public workload, one per exposed service, by name.
pub fn ingress_objects(
    namespace: &str,
    settings: &IngressSettings,
    w: &Workload,
) -> Vec<(String, Value)> {
    settings
        .endpoints(&w.usecase_name, w.visibility, &w.config)
        .into_iter()
        .map(|e| {
            let name = ingress_name(w.usecase_id, &e.service);
            let mut spec = json!({
                "rules": [{
                    "host": e.host,
                    "http": {"paths": [{
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": service_name(w.usecase_id), "port": {"name": e.port_name}}}
                    }]}
                }]
            });
            if let Some(class) = &settings.class {
                spec["ingressClassName"] = json!(class);
            }
            if let Some(tls) = &settings.tls_secret {
                spec["tls"] = json!([{"hosts": [e.host], "secretName": tls}]);
            }
            let object = json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": name, "namespace": namespace, "labels": usecase_labels(w.usecase_id)},
                "spec": spec,
            });
            (name, object)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiplog_domain::{DeploymentConfig, ImageRef, Sidecar, Visibility};

    fn workload(config: DeploymentConfig) -> Workload {
        Workload {
            usecase_id: Uuid::from_u128(1),
            deployment_id: Uuid::from_u128(2),
            config,
            restart: None,
            usecase_name: "shop".to_owned(),
            visibility: Visibility::Public,
            strategy: UpdateStrategy::Rolling,
            secrets: Default::default(),
        }
    }

    fn postgres_with_admin() -> DeploymentConfig {
        let env = BTreeMap::from([("POSTGRES_USER".to_owned(), "postgres".to_owned())]);
        let image = ImageRef::parse("image", "postgres:16").unwrap_or_else(|e| panic!("{e}"));
        let admin = Sidecar {
            name: "admin".to_owned(),
            image: ImageRef::parse("image", "adminer:4").unwrap_or_else(|e| panic!("{e}")),
            container_port: 8080,
            env: BTreeMap::from([("ADMINER_DEFAULT_SERVER".to_owned(), "localhost".to_owned())]),
            exposed: true,
            generated_secrets: Vec::new(),
        };
        DeploymentConfig::new(image, None, Some(5432), env, None, None)
            .and_then(|c| {
                c.with_services(
                    "template",
                    "postgres",
                    false,
                    vec!["POSTGRES_PASSWORD".to_owned()],
                    vec![admin],
                )
            })
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn environment_values_live_in_the_secret_never_in_the_deployment() {
        let w = workload(postgres_with_admin());
        let deployment = deployment_object("ns", &[], Duration::from_secs(60), &w).to_string();
        assert!(!deployment.contains("\"value\""), "{deployment}");
        assert!(
            !deployment.contains("localhost\""),
            "no value in clear: {deployment}"
        );
        let secret = secret_object("ns", &w);
        assert_eq!(
            secret["stringData"],
            json!({"postgres.POSTGRES_USER": "postgres", "admin.ADMINER_DEFAULT_SERVER": "localhost"})
        );
        let main_env = &deployment_object("ns", &[], Duration::from_secs(60), &w)["spec"]
            ["template"]["spec"]["containers"][0]["env"];
        assert_eq!(
            main_env,
            &json!([
                {"name": "POSTGRES_USER", "valueFrom": {"secretKeyRef": {"name": deployment_name(w.deployment_id), "key": "postgres.POSTGRES_USER"}}},
                {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": generated_secret_name(w.usecase_id), "key": "postgres.POSTGRES_PASSWORD"}}},
            ])
        );
        assert_eq!(generated_keys(&w), vec!["postgres.POSTGRES_PASSWORD"]);
    }

    #[test]
    fn secret_values_go_to_the_secret_and_references_to_their_own_secrets() {
        use shiplog_application::SecretValue;
        use shiplog_domain::{SealedValue, SecretKeySelector, SecretRef};
        let sealed = SealedValue::new("k".into(), "n".into(), "c".into());
        let config = postgres_with_admin()
            .with_secrets(
                "config",
                BTreeMap::from([("POSTGRES_PASSWORD".to_owned(), sealed)]),
                vec![SecretRef {
                    name: "API_TOKEN".into(),
                    secret: SecretKeySelector {
                        name: "tokens".into(),
                        key: "api".into(),
                    },
                }],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let mut w = workload(config);
        w.secrets = BTreeMap::from([(
            "POSTGRES_PASSWORD".to_owned(),
            SecretValue::new("hunter2".to_owned()),
        )]);
        let deployment = deployment_object("ns", &[], Duration::from_secs(60), &w);
        assert!(!deployment.to_string().contains("hunter2"));
        assert_eq!(
            secret_object("ns", &w)["stringData"]["postgres.POSTGRES_PASSWORD"],
            "hunter2"
        );
        let main_env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(
            main_env,
            &json!([
                {"name": "POSTGRES_USER", "valueFrom": {"secretKeyRef": {"name": deployment_name(w.deployment_id), "key": "postgres.POSTGRES_USER"}}},
                {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": deployment_name(w.deployment_id), "key": "postgres.POSTGRES_PASSWORD"}}},
                {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "tokens", "key": "api"}}},
            ])
        );
        // The secret value wins over the generated one, as a plain value does.
        assert!(generated_keys(&w).is_empty());
        // Sidecars get neither.
        let sidecar_env = &deployment["spec"]["template"]["spec"]["containers"][1]["env"];
        assert_eq!(sidecar_env.as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn an_explicit_value_wins_over_a_generated_one() {
        let mut config = postgres_with_admin();
        config
            .env
            .insert("POSTGRES_PASSWORD".to_owned(), "chosen".to_owned());
        let w = workload(config);
        assert!(generated_keys(&w).is_empty());
        assert!(!deployment_object("ns", &[], Duration::from_secs(60), &w)
            .to_string()
            .contains("-generated"));
    }

    #[test]
    fn each_service_is_a_container_and_a_port_and_exposed_ones_get_an_ingress() {
        let w = workload(postgres_with_admin());
        let deployment = deployment_object("ns", &[], Duration::from_secs(60), &w);
        let names: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["postgres", "admin"]);
        let service = service_object("ns", &w);
        assert_eq!(
            service["spec"]["ports"],
            json!([{"name": "http", "port": 80, "targetPort": 5432}, {"name": "admin", "port": 8080, "targetPort": 8080}])
        );
        let ingresses = ingress_objects("ns", &IngressSettings::default(), &w);
        assert_eq!(ingresses.len(), 1, "postgres itself is not exposed");
        assert_eq!(ingresses[0].1["spec"]["rules"][0]["host"], "shop.localhost");
        assert_eq!(
            ingresses[0].1["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]
                ["name"],
            "admin"
        );
        let internal = Workload {
            visibility: Visibility::Internal,
            ..w
        };
        assert!(ingress_objects("ns", &IngressSettings::default(), &internal).is_empty());
    }

    #[test]
    fn the_strategy_follows_the_auto_update_setting() {
        let mut w = workload(postgres_with_admin());
        let spec = |w: &Workload| {
            deployment_object("ns", &[], Duration::from_secs(60), w)["spec"]["strategy"].clone()
        };
        assert_eq!(spec(&w)["type"], "RollingUpdate");
        w.strategy = UpdateStrategy::Recreate;
        assert_eq!(spec(&w), json!({"type": "Recreate"}));
    }
}
