//! The facts seed 002's platform API adds to a usecase: who may reach it
//! (visibility), how its pods are replaced (the update strategy), and the
//! DNS-safe names its deployments carry.

use crate::config::InvalidField;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Who can reach a usecase's application.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// An Ingress per exposed service, reachable at `<name>.<ingress domain>`.
    #[default]
    Public,
    /// No Ingress: reachable inside the cluster and through shiplog's applications proxy.
    Internal,
}

impl Visibility {
    /// The word the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Internal => "internal",
        }
    }

    /// Reads the API's word; `field` names the input in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidField> {
        match raw {
            "public" => Ok(Self::Public),
            "internal" => Ok(Self::Internal),
            other => Err(InvalidField::new(
                field,
                format!("{other:?} is not a visibility; use public or internal"),
            )),
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How Kubernetes replaces a deployment's pods (a restart, an update of the same Deployment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateStrategy {
    /// New pods come up before old ones go (`RollingUpdate`): no downtime.
    #[default]
    Rolling,
    /// Every old pod goes before new ones start (`Recreate`): for applications that
    /// must never run twice at once.
    Recreate,
}

impl UpdateStrategy {
    /// The word the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rolling => "rolling",
            Self::Recreate => "recreate",
        }
    }

    /// Reads the API's word; `field` names the input in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidField> {
        match raw {
            "rolling" => Ok(Self::Rolling),
            "recreate" => Ok(Self::Recreate),
            other => Err(InvalidField::new(
                field,
                format!("{other:?} is not an update strategy; use rolling or recreate"),
            )),
        }
    }
}

impl fmt::Display for UpdateStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest platform deployment name: it becomes the first label of a host name.
pub const MAX_PLATFORM_NAME_LEN: usize = 40;

/// Checks a name chosen for a platform deployment (`deploy-image`'s `name`): it
/// becomes a host name label (`<name>.<ingress domain>`), so lower-case letters,
/// digits and inner hyphens only, at most [`MAX_PLATFORM_NAME_LEN`] characters.
pub fn check_platform_name(field: &str, name: &str) -> Result<(), InvalidField> {
    if name.is_empty() {
        return Err(InvalidField::new(field, "must not be empty"));
    }
    if name.len() > MAX_PLATFORM_NAME_LEN {
        return Err(InvalidField::new(
            field,
            format!("must be at most {MAX_PLATFORM_NAME_LEN} characters"),
        ));
    }
    let allowed = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !allowed || name.starts_with('-') || name.ends_with('-') {
        return Err(InvalidField::new(
            field,
            format!("{name:?} is not a DNS label: use lower-case letters, digits and '-', starting and ending with a letter or digit"),
        ));
    }
    Ok(())
}

/// The longest service name of a template: Kubernetes port names allow 15 characters.
pub const MAX_SERVICE_NAME_LEN: usize = 15;

/// Checks a template service's name: it names the container, its Service port
/// and its ingress, so it must be a Kubernetes port name (IANA service name).
pub fn check_service_name(field: &str, name: &str) -> Result<(), InvalidField> {
    let fits = !name.is_empty()
        && name.len() <= MAX_SERVICE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if fits {
        Ok(())
    } else {
        Err(InvalidField::new(
            field,
            format!("{name:?} is not a service name: 1 to {MAX_SERVICE_NAME_LEN} lower-case letters, digits and single inner '-', with at least one letter"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_names_are_dns_labels() {
        for (name, ok) in [
            ("abc123xyz7", true),
            ("my-app", true),
            ("a", true),
            ("", false),
            ("My-App", false),
            ("-app", false),
            ("app-", false),
            ("my_app", false),
            ("my.app", false),
            (&"a".repeat(MAX_PLATFORM_NAME_LEN + 1), false),
        ] {
            assert_eq!(
                check_platform_name("name", name).is_ok(),
                ok,
                "{name:?} should be {}",
                if ok { "accepted" } else { "refused" }
            );
        }
    }

    #[test]
    fn service_names_are_port_names() {
        for (name, ok) in [
            ("nginx", true),
            ("db-2", true),
            ("1234", false),
            ("a--b", false),
            ("Web", false),
            ("averyveryverylongname", false),
        ] {
            assert_eq!(check_service_name("services", name).is_ok(), ok, "{name:?}");
        }
    }

    #[test]
    fn words_round_trip() {
        assert_eq!(Visibility::parse("v", "internal"), Ok(Visibility::Internal));
        assert!(Visibility::parse("v", "private").is_err());
        assert_eq!(
            UpdateStrategy::parse("s", "recreate"),
            Ok(UpdateStrategy::Recreate)
        );
        assert_eq!(
            UpdateStrategy::parse("s", "blue-green")
                .err()
                .map(|e| e.field),
            Some("s".to_owned())
        );
    }
}
