//! Validated value types: a usecase name and everything a deployment needs.
//!
//! Constructors check their input and name the offending field, so an invalid
//! name or image reference can never reach an event.

use crate::image::ImageRef;
use crate::secrets::{check_disjoint, check_secret_refs, SealedValue, SecretRef};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;
use thiserror::Error;
use unicode_normalization::UnicodeNormalization;

/// Input that failed validation; `field` is the JSON path the client sent ("config.image.tag").
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    /// Dotted path of the field in the request body.
    pub field: String,
    /// What is wrong with it, in words a user can act on.
    pub reason: String,
}

impl InvalidField {
    /// Builds the error for `field` with a human `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The maximum length of a usecase name, in characters.
pub const MAX_NAME_LEN: usize = 128;

/// A usecase's name: unique per installation, trimmed, 1..=128 characters, no control
/// characters, in Unicode normalisation form C (see [`normalized_name`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UsecaseName(String);

/// A name as a client sent it (field `name`): see [`normalized_name`] (the OpenAPI
/// document states the rule as `maxLength` and [`NAME_PATTERN`]). Usecase and team
/// names follow it.
pub(crate) fn checked_name(raw: &str, max: usize) -> Result<String, InvalidField> {
    normalized_name("name", raw, max)
}

/// Checks a name given in `field` and returns it as shiplog keeps it: trimmed, in
/// Unicode normalisation form C, 1 to `max` characters, no control characters.
///
/// Names that differ only by normalisation (`é` as one code point, or as `e` and a
/// combining accent) look the same and are the same name: both become the NFC
/// form, so the unique reservation of one refuses the other. Names that differ by
/// case (`Billing`, `billing`) or by compatibility forms (`ﬁ`, `fi`) look different
/// and are different names.
pub fn normalized_name(field: &str, raw: &str, max: usize) -> Result<String, InvalidField> {
    let name: String = raw.trim().nfc().collect();
    if name.is_empty() {
        return Err(InvalidField::new(field, "must not be empty"));
    }
    if raw.chars().count() > max {
        return Err(InvalidField::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(InvalidField::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(name)
}

impl UsecaseName {
    /// Validates a name as a client sent it (field `name`).
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        checked_name(raw, MAX_NAME_LEN).map(Self)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UsecaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an environment variable's name must match; the OpenAPI document states the same pattern.
pub const ENV_NAME_PATTERN: &str = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$";
/// What a Kubernetes quantity (CPU, memory) must match; the OpenAPI document states it too.
pub const QUANTITY_PATTERN: &str = r"^[0-9]+(?:\.[0-9]+)?(?:m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$";
/// What a Prometheus scraping interval must match; the OpenAPI document states it too.
pub const DURATION_PATTERN: &str = r"^(?:[0-9]+(?:ms|s|m|h))+$";
/// What a usecase or team name must match once trimmed (no control character, not
/// blank): the OpenAPI document's pattern for [`checked_name`]'s rule.
pub const NAME_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$";

static ENV_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(ENV_NAME_PATTERN).unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(QUANTITY_PATTERN).unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(DURATION_PATTERN).unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Whether Prometheus should scrape the usecase, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitor {
    /// Create a ServiceMonitor for the deployment.
    pub enabled: bool,
    /// Prometheus duration between scrapes ("5s", "1m").
    pub scraping_interval: String,
}

/// The default scraping interval when a client enables monitoring without one.
pub const DEFAULT_SCRAPING_INTERVAL: &str = "30s";

impl ServiceMonitor {
    /// Validates the scraping interval as a Prometheus duration (field `config.serviceMonitor.scrapingInterval`).
    pub fn new(enabled: bool, scraping_interval: Option<&str>) -> Result<Self, InvalidField> {
        let interval = scraping_interval.unwrap_or(DEFAULT_SCRAPING_INTERVAL);
        if !DURATION.is_match(interval) {
            return Err(InvalidField::new(
                "config.serviceMonitor.scrapingInterval",
                format!("{interval:?} is not a duration such as 5s, 1m or 1h30m"),
            ));
        }
        Ok(Self {
            enabled,
            scraping_interval: interval.to_owned(),
        })
    }
}

/// CPU and memory amounts in Kubernetes quantity notation ("500m", "256Mi").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceList {
    /// CPU quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

impl ResourceList {
    /// Validates both quantities; `field` is the path of this list ("config.resources.limits").
    pub fn new(field: &str, cpu: Option<&str>, memory: Option<&str>) -> Result<Self, InvalidField> {
        for (name, value) in [("cpu", cpu), ("memory", memory)] {
            if let Some(v) = value {
                if !QUANTITY.is_match(v) {
                    return Err(InvalidField::new(
                        format!("{field}.{name}"),
                        format!("{v:?} is not a Kubernetes quantity such as 500m, 2 or 256Mi"),
                    ));
                }
            }
        }
        Ok(Self {
            cpu: cpu.map(str::to_owned),
            memory: memory.map(str::to_owned),
        })
    }
}

/// Resource requests and limits of the usecase's container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// What the scheduler reserves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceList>,
    /// The most the container may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceList>,
}

/// The port a usecase listens on when the client names none.
pub const DEFAULT_CONTAINER_PORT: u16 = 8080;
/// The replica count when the client names none.
pub const DEFAULT_REPLICAS: u32 = 1;
/// The most replicas one deployment may ask for.
pub const MAX_REPLICAS: u32 = 100;

/// Everything needed to run one deployment of a usecase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfig {
    /// The container image.
    pub image: ImageRef,
    /// Optional Prometheus scraping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_monitor: Option<ServiceMonitor>,
    /// The port the application listens on.
    pub container_port: u16,
    /// Environment variables, sorted by name.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Number of pods.
    pub replicas: u32,
    /// Optional requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The main container's service name when a template names it ("nginx"); the
    /// container is then called so, else `app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Whether the main service gets an Ingress when the usecase is public.
    #[serde(default = "exposed_by_default", skip_serializing_if = "is_exposed")]
    pub exposed: bool,
    /// Variables of the main container whose values shiplog generates once per
    /// usecase and keeps in the cluster only (a template's database password):
    /// the ledger records their names, never their values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generated_secrets: Vec<String>,
    /// The further services of a multi-service template, as containers in the same pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<Sidecar>,
    /// Secret variables of the main container, sealed: the ledger holds ciphertext
    /// only, the cluster gets the values in the deployment's Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, SealedValue>,
    /// Variables of the main container read from existing Kubernetes Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_refs: Vec<SecretRef>,
}

fn exposed_by_default() -> bool {
    true
}

fn is_exposed(exposed: &bool) -> bool {
    *exposed
}

/// A further service of a multi-service template: a container in the same pods as
/// the main one (they share the network, so they reach each other on localhost).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    /// The service's name: its container's, its Service port's and its ingress's.
    pub name: String,
    /// Its image.
    pub image: ImageRef,
    /// The port it listens on.
    pub container_port: u16,
    /// Its environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Whether it gets an Ingress when the usecase is public.
    #[serde(default = "exposed_by_default", skip_serializing_if = "is_exposed")]
    pub exposed: bool,
    /// Variables whose values shiplog generates and keeps in the cluster only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generated_secrets: Vec<String>,
}

/// The name of the main container when the config names no service.
pub const MAIN_CONTAINER: &str = "app";
/// The Service port name of the main service (the applications proxy and
/// ServiceMonitors address it by this name).
pub const MAIN_PORT_NAME: &str = "http";

/// One service of a deployment as the cluster runs it: a container, a port of the
/// usecase's Service and, when exposed and public, an Ingress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSpec<'a> {
    /// The service's name (the container's).
    pub name: &'a str,
    /// The name of its port on the usecase's Service.
    pub port_name: &'a str,
    /// Its image.
    pub image: &'a ImageRef,
    /// The port it listens on.
    pub container_port: u16,
    /// Its environment variables.
    pub env: &'a BTreeMap<String, String>,
    /// Whether it gets an Ingress when public.
    pub exposed: bool,
    /// Variables generated and kept in the cluster only.
    pub generated_secrets: &'a [String],
}

/// The most environment variables a deployment (or one service of it) may have.
pub const MAX_ENV_VARS: usize = 500;
/// The longest environment variable name: what a key of the Kubernetes Secret that
/// holds the values may be.
pub const MAX_ENV_NAME_LEN: usize = 253;
/// The most bytes all names and values of one environment may add up to: it is
/// recorded in the ledger and must fit a Kubernetes Secret (1 MiB) with room to spare.
pub const MAX_ENV_BYTES: usize = 256 * 1024;

/// Checks an environment: at most [`MAX_ENV_VARS`] variables of at most
/// [`MAX_ENV_BYTES`] together, valid names of at most [`MAX_ENV_NAME_LEN`]
/// characters, values without NUL (a process environment cannot hold one).
/// `field` is where the map sits in the request (`config.env`, `env`), so the
/// error names the map or the offending variable's path.
pub fn check_env(env: &BTreeMap<String, String>, field: &str) -> Result<(), InvalidField> {
    if env.len() > MAX_ENV_VARS {
        return Err(InvalidField::new(
            field,
            format!(
                "has {} variables; at most {MAX_ENV_VARS} are allowed",
                env.len()
            ),
        ));
    }
    let bytes: usize = env
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    if bytes > MAX_ENV_BYTES {
        return Err(InvalidField::new(
            field,
            format!(
                "names and values add up to {bytes} bytes; at most {MAX_ENV_BYTES} are allowed"
            ),
        ));
    }
    for (name, value) in env {
        if name.is_empty() {
            // An empty name would make the path end in a dot: name the map.
            return Err(InvalidField::new(
                field,
                "an environment variable name must not be empty",
            ));
        }
        if name.len() > MAX_ENV_NAME_LEN {
            // The name itself would make an unreadable field path: name the map.
            return Err(InvalidField::new(
                field,
                format!("an environment variable name is at most {MAX_ENV_NAME_LEN} characters"),
            ));
        }
        if !ENV_NAME.is_match(name) {
            return Err(InvalidField::new(
                format!("{field}.{name}"),
                "an environment variable name consists of letters, digits, '_', '-' and '.', and does not start with a digit",
            ));
        }
        if value.contains('\0') {
            return Err(InvalidField::new(
                format!("{field}.{name}"),
                "must not contain NUL characters",
            ));
        }
    }
    Ok(())
}

impl DeploymentConfig {
    /// Validates the parts that are not already validated types (port, replicas, env names).
    pub fn new(
        image: ImageRef,
        service_monitor: Option<ServiceMonitor>,
        container_port: Option<u16>,
        env: BTreeMap<String, String>,
        replicas: Option<u32>,
        resources: Option<Resources>,
    ) -> Result<Self, InvalidField> {
        let container_port = container_port.unwrap_or(DEFAULT_CONTAINER_PORT);
        if container_port == 0 {
            return Err(InvalidField::new(
                "config.containerPort",
                "must be between 1 and 65535",
            ));
        }
        let replicas = replicas.unwrap_or(DEFAULT_REPLICAS);
        if replicas == 0 || replicas > MAX_REPLICAS {
            return Err(InvalidField::new(
                "config.replicas",
                format!("must be between 1 and {MAX_REPLICAS}"),
            ));
        }
        check_env(&env, "config.env")?;
        Ok(Self {
            image,
            service_monitor,
            container_port,
            env,
            replicas,
            resources,
            service_name: None,
            exposed: true,
            generated_secrets: Vec::new(),
            sidecars: Vec::new(),
            secret_env: BTreeMap::new(),
            secret_refs: Vec::new(),
        })
    }

    /// The same config with sealed secret values and references to Kubernetes
    /// Secrets for its main container. References are checked, and no variable may
    /// come from two sources (`env`, `secretEnv`, `secretRefs`); `prefix` is where
    /// the config sits in the request (`config`), for the error's field.
    pub fn with_secrets(
        mut self,
        prefix: &str,
        secret_env: BTreeMap<String, SealedValue>,
        secret_refs: Vec<SecretRef>,
    ) -> Result<Self, InvalidField> {
        check_secret_refs(&secret_refs, prefix)?;
        check_disjoint(&self.env, &secret_env, &secret_refs, prefix)?;
        self.secret_env = secret_env;
        self.secret_refs = secret_refs;
        Ok(self)
    }

    /// The same config as a multi-service template describes it: the main
    /// service's name, exposure and generated variables, and further services.
    /// Names must be distinct port names other than `http` (the main service's
    /// port). `field` names the template in errors.
    pub fn with_services(
        mut self,
        field: &str,
        service_name: &str,
        exposed: bool,
        generated_secrets: Vec<String>,
        sidecars: Vec<Sidecar>,
    ) -> Result<Self, InvalidField> {
        let mut seen = vec![MAIN_PORT_NAME];
        for (i, name) in std::iter::once(service_name)
            .chain(sidecars.iter().map(|s| s.name.as_str()))
            .enumerate()
        {
            let at = format!("{field}.services[{i}].name");
            crate::platform::check_service_name(&at, name)?;
            // The main service's port is `http` whatever its name: no service may take it.
            if seen.contains(&name) {
                return Err(InvalidField::new(
                    at,
                    format!("{name:?} is used twice, or is the reserved port name http"),
                ));
            }
            seen.push(name);
        }
        for (i, s) in sidecars.iter().enumerate() {
            if s.container_port == 0 {
                return Err(InvalidField::new(
                    format!("{field}.services[{}].port", i + 1),
                    "must be between 1 and 65535",
                ));
            }
            check_env(&s.env, &format!("{field}.services[{}].env", i + 1))?;
            check_generated(
                &s.generated_secrets,
                &format!("{field}.services[{}].generatedSecrets", i + 1),
            )?;
        }
        check_generated(
            &generated_secrets,
            &format!("{field}.services[0].generatedSecrets"),
        )?;
        self.service_name = Some(service_name.to_owned());
        self.exposed = exposed;
        self.generated_secrets = generated_secrets;
        self.sidecars = sidecars;
        Ok(self)
    }

    /// Every service of the deployment, the main one first.
    pub fn services(&self) -> Vec<ServiceSpec<'_>> {
        let main = ServiceSpec {
            name: self.service_name.as_deref().unwrap_or(MAIN_CONTAINER),
            port_name: MAIN_PORT_NAME,
            image: &self.image,
            container_port: self.container_port,
            env: &self.env,
            exposed: self.exposed,
            generated_secrets: &self.generated_secrets,
        };
        std::iter::once(main)
            .chain(self.sidecars.iter().map(|s| ServiceSpec {
                name: &s.name,
                port_name: &s.name,
                image: &s.image,
                container_port: s.container_port,
                env: &s.env,
                exposed: s.exposed,
                generated_secrets: &s.generated_secrets,
            }))
            .collect()
    }
}

/// Generated variables need valid names. A variable that also has an explicit
/// value keeps that value: the explicit one wins wherever both exist.
fn check_generated(names: &[String], field: &str) -> Result<(), InvalidField> {
    match names.iter().find(|name| !ENV_NAME.is_match(name)) {
        Some(name) => Err(InvalidField::new(
            field,
            format!("{name:?} is not an environment variable name"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_must_not_be_empty() {
        assert_eq!(
            UsecaseName::parse("  chat  ").map(|n| n.to_string()),
            Ok("chat".to_owned())
        );
        assert_eq!(
            UsecaseName::parse("   ").err().map(|e| e.field),
            Some("name".to_owned())
        );
        assert!(UsecaseName::parse(&"x".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(UsecaseName::parse("bell\u{7}").is_err());
    }

    #[test]
    fn names_that_differ_only_by_normalisation_are_the_same_name() {
        let composed = UsecaseName::parse("Caf\u{e9}").unwrap_or_else(|e| panic!("{e}"));
        let decomposed = UsecaseName::parse("Cafe\u{301}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(composed, decomposed, "both are kept in NFC");
        assert_eq!(decomposed.as_str(), "Caf\u{e9}");
        // Case and compatibility forms look different: different names.
        assert_ne!(UsecaseName::parse("Billing"), UsecaseName::parse("billing"));
        assert_ne!(UsecaseName::parse("\u{fb01}le"), UsecaseName::parse("file"));
        // The length is counted as sent, as the OpenAPI document's maxLength counts it:
        // 64 decomposed letters are 128 characters, 65 are too many.
        assert!(UsecaseName::parse(&"e\u{301}".repeat(MAX_NAME_LEN / 2)).is_ok());
        assert!(UsecaseName::parse(&"e\u{301}".repeat(MAX_NAME_LEN / 2 + 1)).is_err());
        assert_eq!(
            normalized_name("subject", "a\u{0}b", 10)
                .err()
                .map(|e| e.field),
            Some("subject".to_owned())
        );
    }

    #[test]
    fn environments_are_bounded_in_count_size_and_name_length() {
        let cases: Vec<(&str, BTreeMap<String, String>, Option<&str>)> = vec![
            (
                "the most variables allowed",
                (0..MAX_ENV_VARS)
                    .map(|i| (format!("V{i}"), "x".to_owned()))
                    .collect(),
                None,
            ),
            (
                "one variable too many",
                (0..=MAX_ENV_VARS)
                    .map(|i| (format!("V{i}"), "x".to_owned()))
                    .collect(),
                Some("env"),
            ),
            (
                "values adding up to too many bytes",
                BTreeMap::from([
                    ("A".to_owned(), "x".repeat(MAX_ENV_BYTES / 2)),
                    ("B".to_owned(), "x".repeat(MAX_ENV_BYTES / 2)),
                ]),
                Some("env"),
            ),
            (
                "a name too long",
                BTreeMap::from([("A".repeat(MAX_ENV_NAME_LEN + 1), String::new())]),
                Some("env"),
            ),
            (
                "the longest name",
                BTreeMap::from([("A".repeat(MAX_ENV_NAME_LEN), String::new())]),
                None,
            ),
            (
                "a NUL in a value",
                BTreeMap::from([("A".to_owned(), "x\u{0}y".to_owned())]),
                Some("env.A"),
            ),
        ];
        for (description, env, field) in cases {
            assert_eq!(
                check_env(&env, "env").err().map(|e| e.field).as_deref(),
                field,
                "{description}"
            );
        }
    }

    #[test]
    fn deployment_config_defaults_and_limits() {
        let image = ImageRef::new("r.example", "app", "1").unwrap_or_else(|e| panic!("{e}"));
        let config = DeploymentConfig::new(image.clone(), None, None, BTreeMap::new(), None, None);
        assert_eq!(
            config.as_ref().map(|c| (c.container_port, c.replicas)).ok(),
            Some((8080, 1))
        );
        let zero = DeploymentConfig::new(image.clone(), None, None, BTreeMap::new(), Some(0), None);
        assert_eq!(
            zero.err().map(|e| e.field),
            Some("config.replicas".to_owned())
        );
        let env = BTreeMap::from([("1BAD".to_owned(), "x".to_owned())]);
        let bad_env = DeploymentConfig::new(image, None, None, env, None, None);
        assert_eq!(
            bad_env.err().map(|e| e.field),
            Some("config.env.1BAD".to_owned())
        );
        assert!(ServiceMonitor::new(true, Some("5s")).is_ok());
        assert!(ServiceMonitor::new(true, Some("five")).is_err());
        assert!(ResourceList::new("config.resources.limits", Some("500m"), Some("256Mi")).is_ok());
        assert!(ResourceList::new("config.resources.limits", Some("lots"), None).is_err());
    }
}
