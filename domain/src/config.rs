//! Validated value types: a usecase name and everything a deployment needs.
//!
//! Constructors check their input and name the offending field, so an invalid
//! name or image reference can never reach an event.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;
use thiserror::Error;

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

/// A usecase's name: unique per installation, trimmed, 1..=128 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UsecaseName(String);

impl UsecaseName {
    /// Validates a name as a client sent it (field `name`).
    pub fn parse(raw: &str) -> Result<Self, InvalidField> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(InvalidField::new("name", "must not be empty"));
        }
        if name.chars().count() > MAX_NAME_LEN {
            return Err(InvalidField::new(
                "name",
                format!("must be at most {MAX_NAME_LEN} characters"),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidField::new(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
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

// The grammar of the OCI distribution spec / docker reference.
static REGISTRY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]{1,5})?$")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static REPOSITORY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$",
    )
    .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static ENV_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9]+(?:\.[0-9]+)?(?:m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[0-9]+(?:ms|s|m|h))+$").unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// A container image reference split as the PhariaOS API sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRef {
    /// Registry host, optionally with a port ("registry.example.com:5000").
    pub registry: String,
    /// Repository path ("team/app").
    pub repository: String,
    /// Tag ("1.0.0").
    pub tag: String,
}

impl ImageRef {
    /// Validates the three parts against the OCI reference grammar (fields `config.image.*`).
    pub fn new(registry: &str, repository: &str, tag: &str) -> Result<Self, InvalidField> {
        check_part(
            "config.image.registry",
            registry,
            &REGISTRY,
            253,
            "a registry host name, optionally with :port (for example registry.example.com:5000)",
        )?;
        check_part(
            "config.image.repository",
            repository,
            &REPOSITORY,
            255,
            "a lower-case repository path such as team/app",
        )?;
        check_part(
            "config.image.tag",
            tag,
            &TAG,
            128,
            "a tag of letters, digits, '_', '.' and '-', not starting with '.' or '-'",
        )?;
        Ok(Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

fn check_part(
    field: &str,
    value: &str,
    re: &Regex,
    max: usize,
    expected: &str,
) -> Result<(), InvalidField> {
    if value.is_empty() {
        return Err(InvalidField::new(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(InvalidField::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if !re.is_match(value) {
        return Err(InvalidField::new(
            field,
            format!("{value:?} is not {expected}"),
        ));
    }
    Ok(())
}

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
}

/// Checks every environment variable name; `field` is where the map sits in the request
/// (`config.env`, `env`), so the error names the offending variable's path.
pub fn check_env(env: &BTreeMap<String, String>, field: &str) -> Result<(), InvalidField> {
    for name in env.keys() {
        if !ENV_NAME.is_match(name) {
            return Err(InvalidField::new(
                format!("{field}.{name}"),
                "an environment variable name consists of letters, digits, '_', '-' and '.', and does not start with a digit",
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_follow_the_oci_grammar() {
        let cases = [
            (
                "the seed's example",
                "your.container.registry.de",
                "your/repository",
                "1.0.0",
                None,
            ),
            (
                "registry with port",
                "localhost:5000",
                "app",
                "latest",
                None,
            ),
            (
                "empty tag",
                "r.example",
                "app",
                "",
                Some("config.image.tag"),
            ),
            (
                "upper-case repository",
                "r.example",
                "Team/App",
                "1",
                Some("config.image.repository"),
            ),
            (
                "tag starting with a dot",
                "r.example",
                "app",
                ".1",
                Some("config.image.tag"),
            ),
            (
                "registry with a scheme",
                "https://r.example",
                "app",
                "1",
                Some("config.image.registry"),
            ),
            (
                "repository with a tag inside",
                "r.example",
                "app:1",
                "1",
                Some("config.image.repository"),
            ),
        ];
        for (description, registry, repository, tag, failing_field) in cases {
            let result = ImageRef::new(registry, repository, tag);
            match failing_field {
                None => assert!(
                    result.is_ok(),
                    "{description}: expected valid, got {result:?}"
                ),
                Some(field) => assert_eq!(
                    result.err().map(|e| e.field),
                    Some(field.to_owned()),
                    "{description}: expected field {field} to be rejected"
                ),
            }
        }
    }

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
