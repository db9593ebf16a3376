//! Container image references: the three parts the PhariaOS API sends
//! (`registry`, `repository`, `tag`), or one string in Docker's reference syntax
//! (`nginx:latest`, `registry.example.com/team/app:1.2.3@sha256:…`) as seed 002's
//! `deploy-image`, its templates and the CLI send it.

use crate::config::InvalidField;
use oci_spec::distribution::Reference;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

/// What `config.image.registry` must match (the OCI distribution grammar); the OpenAPI
/// document states the same pattern.
pub const REGISTRY_PATTERN: &str = r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]{1,5})?$";
/// The longest registry host (with its port).
pub const MAX_REGISTRY_LEN: usize = 253;
/// What `config.image.repository` must match; the OpenAPI document states it too.
pub const REPOSITORY_PATTERN: &str =
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$";
/// The longest repository path.
pub const MAX_REPOSITORY_LEN: usize = 255;
/// What `config.image.tag` must match (at most 128 characters); the OpenAPI document states it too.
pub const TAG_PATTERN: &str = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$";
/// What `config.image.digest` must match (`algorithm:encoded`, as the OCI image spec
/// defines a digest); the OpenAPI document states it too.
pub const DIGEST_PATTERN: &str = r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$";
/// The longest digest.
pub const MAX_DIGEST_LEN: usize = 1024;

/// What a reference in Docker's syntax (`deploy-image`'s `image`) must match: the
/// distribution grammar with ASCII tags and the digests the parser supports
/// (sha256, sha384, sha512); the OpenAPI document states the same pattern.
pub const REFERENCE_PATTERN: &str = r"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@(?:sha256:[0-9a-fA-F]{64}|sha384:[0-9a-fA-F]{96}|sha512:[0-9a-fA-F]{128}))?$";
/// The longest reference in Docker's syntax: short enough that the repository, with
/// Docker Hub's `library/` added, stays within the distribution spec's 255 characters.
pub const MAX_REFERENCE_LEN: usize = 247;

static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(REFERENCE_PATTERN).unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static REGISTRY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(REGISTRY_PATTERN).unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static REPOSITORY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(REPOSITORY_PATTERN).unwrap_or_else(|e| unreachable!("static regex: {e}"))
});
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(TAG_PATTERN).unwrap_or_else(|e| unreachable!("static regex: {e}")));
static DIGEST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(DIGEST_PATTERN).unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// What a Docker-syntax reference may look like, for error messages.
const REFERENCE_EXAMPLES: &str = "an image reference such as nginx:latest, myapp:v1.0.0 or registry.example.com/team/app:1.2.3 (lower-case repository, optional :tag and @sha256:digest)";

/// A container image reference, split as the PhariaOS API sends it, optionally pinned to a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRef {
    /// Registry host, optionally with a port ("registry.example.com:5000").
    pub registry: String,
    /// Repository path ("team/app").
    pub repository: String,
    /// Tag ("1.0.0"); empty only when the reference names a digest alone (`nginx@sha256:…`).
    pub tag: String,
    /// The manifest digest ("sha256:…") when the reference is pinned to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl ImageRef {
    /// Validates the three parts against the OCI reference grammar (fields `config.image.*`).
    pub fn new(registry: &str, repository: &str, tag: &str) -> Result<Self, InvalidField> {
        check_part(
            "config.image.registry",
            registry,
            &REGISTRY,
            MAX_REGISTRY_LEN,
            "a registry host name, optionally with :port (for example registry.example.com:5000)",
        )?;
        check_part(
            "config.image.repository",
            repository,
            &REPOSITORY,
            MAX_REPOSITORY_LEN,
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
            digest: None,
        })
    }

    /// The same reference pinned to `digest` (field `config.image.digest`).
    pub fn pinned(mut self, digest: &str) -> Result<Self, InvalidField> {
        check_part(
            "config.image.digest",
            digest,
            &DIGEST,
            MAX_DIGEST_LEN,
            "a digest such as sha256:<64 hex digits>",
        )?;
        self.digest = Some(digest.to_owned());
        Ok(self)
    }

    /// Parses Docker's reference syntax with Docker's normalisation: no registry
    /// means Docker Hub, a one-part repository there lives under `library/`, no tag
    /// and no digest means `latest` (`nginx` is `docker.io/library/nginx:latest`).
    /// `field` names the input in the error.
    pub fn parse(field: &str, reference: &str) -> Result<Self, InvalidField> {
        let text = reference;
        if text.is_empty() {
            return Err(InvalidField::new(field, "must not be empty"));
        }
        if text.chars().count() > MAX_REFERENCE_LEN {
            return Err(InvalidField::new(
                field,
                format!("must be at most {MAX_REFERENCE_LEN} characters"),
            ));
        }
        let invalid = || InvalidField::new(field, format!("{text:?} is not {REFERENCE_EXAMPLES}"));
        // The grammar first, as the OpenAPI document states it: the parser is lenient
        // about spaces and accepts Unicode letters in tags; Docker does not.
        if !REFERENCE.is_match(text) {
            return Err(invalid());
        }
        let parsed = Reference::from_str(text).map_err(|_| invalid())?;
        Ok(Self {
            registry: parsed.registry().to_owned(),
            repository: parsed.repository().to_owned(),
            tag: parsed.tag().unwrap_or_default().to_owned(),
            digest: parsed.digest().map(str::to_owned),
        })
    }
}

impl ImageRef {
    /// What the pod's container names: `registry/repository@digest` when pinned, so
    /// that the digest alone decides which bytes are pulled (the tag says nothing a
    /// runtime would use), else `registry/repository:tag`.
    pub fn pull_reference(&self) -> String {
        match &self.digest {
            Some(digest) => format!("{}/{}@{digest}", self.registry, self.repository),
            None => self.to_string(),
        }
    }
}

impl fmt::Display for ImageRef {
    /// The full reference a container runtime pulls: `registry/repository[:tag][@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if !self.tag.is_empty() {
            write!(f, ":{}", self.tag)?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST_64: &str =
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

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
    fn docker_references_are_normalised_as_docker_does() {
        let cases = [
            ("a bare name", "nginx", "docker.io/library/nginx:latest"),
            (
                "the seed's nginx",
                "nginx:latest",
                "docker.io/library/nginx:latest",
            ),
            (
                "the seed's app",
                "myapp:v1.0.0",
                "docker.io/library/myapp:v1.0.0",
            ),
            (
                "a registry",
                "myregistry.com/app:v1.2.3",
                "myregistry.com/app:v1.2.3",
            ),
            (
                "a registry with a port",
                "localhost:5000/team/app:1",
                "localhost:5000/team/app:1",
            ),
            (
                "a Docker Hub user",
                "bitnami/redis:7",
                "docker.io/bitnami/redis:7",
            ),
            (
                "the old Hub alias",
                "index.docker.io/library/nginx:1",
                "docker.io/library/nginx:1",
            ),
        ];
        for (description, reference, expected) in cases {
            let image = ImageRef::parse("image", reference)
                .unwrap_or_else(|e| panic!("{description}: {reference} refused: {e}"));
            assert_eq!(image.to_string(), expected, "{description}");
            assert_eq!(image.digest, None, "{description}");
        }
    }

    #[test]
    fn docker_references_may_be_pinned_to_a_digest() {
        let only = ImageRef::parse("image", &format!("nginx@{DIGEST_64}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(only.tag, "");
        assert_eq!(only.digest.as_deref(), Some(DIGEST_64));
        assert_eq!(
            only.to_string(),
            format!("docker.io/library/nginx@{DIGEST_64}")
        );
        let both = ImageRef::parse("image", &format!("ghcr.io/a/b:1@{DIGEST_64}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (both.tag.as_str(), both.registry.as_str()),
            ("1", "ghcr.io")
        );
        assert_eq!(both.to_string(), format!("ghcr.io/a/b:1@{DIGEST_64}"));
    }

    #[test]
    fn malformed_docker_references_name_the_field() {
        for (description, reference) in [
            ("empty", "  "),
            ("upper case", "Nginx:latest"),
            ("empty tag", "nginx:"),
            ("a space", "my app:1"),
            ("a scheme", "https://r.example/app:1"),
            ("a short digest", "nginx@sha256:abc"),
        ] {
            let error = ImageRef::parse("image", reference).err();
            assert_eq!(
                error.map(|e| e.field),
                Some("image".to_owned()),
                "{description}: {reference:?} should be refused"
            );
        }
    }

    #[test]
    fn a_pinned_digest_is_checked() {
        let image = ImageRef::new("r.example", "app", "1").unwrap_or_else(|e| panic!("{e}"));
        assert!(image.clone().pinned(DIGEST_64).is_ok());
        assert_eq!(
            image.pinned("latest").err().map(|e| e.field),
            Some("config.image.digest".to_owned())
        );
    }

    #[test]
    fn a_pinned_image_is_pulled_by_its_digest_alone() {
        let image =
            ImageRef::new("127.0.0.1:5000", "team/app", "1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(image.pull_reference(), "127.0.0.1:5000/team/app:1");
        let pinned = image.pinned(DIGEST_64).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            pinned.pull_reference(),
            format!("127.0.0.1:5000/team/app@{DIGEST_64}")
        );
    }

    #[test]
    fn stored_references_without_a_digest_read_as_before() {
        let stored = serde_json::json!({"registry": "r.example", "repository": "app", "tag": "1"});
        let image: ImageRef =
            serde_json::from_value(stored.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(image.digest, None);
        assert_eq!(serde_json::to_value(&image).ok(), Some(stored));
    }
}
