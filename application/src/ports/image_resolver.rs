//! The registry behind an image tag: the process manager pins each deployment to
//! the manifest digest its tag names when it starts, so that the pods run exactly
//! those bytes and a rollback can bring the same bytes back (issue 16).

use async_trait::async_trait;
use shiplog_domain::ImageRef;

/// Turns an image's tag into the manifest digest it names right now.
#[async_trait]
pub trait ImageResolver: Send + Sync {
    /// The digest (`sha256:…`) of the manifest `image`'s tag names at its registry;
    /// `Ok(None)` when this resolver leaves the image unresolved (resolution is off,
    /// or the registry is one the simulated mode skips because it cannot answer).
    async fn resolve(&self, image: &ImageRef) -> Result<Option<String>, ResolveError>;

    /// The tags of `image`'s repository (the auto-update policy `semver` picks the highest
    /// in its range); `Ok(None)` when this resolver leaves the registry alone.
    async fn tags(&self, image: &ImageRef) -> Result<Option<Vec<String>>, ResolveError>;
}

/// Why a tag could not be resolved; the deployment ends in `error` with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resolve {reference} at registry {registry}: {answer}")]
pub struct ResolveError {
    /// The registry asked (`host[:port]`).
    pub registry: String,
    /// The reference resolved (`registry/repository:tag`).
    pub reference: String,
    /// What the registry answered, in the user's words ("404 Not Found: manifest
    /// unknown", "401 Unauthorized", "unreachable: connection refused").
    pub answer: String,
    /// The registry answered 429 Too Many Requests: callers back off before asking again.
    pub rate_limited: bool,
}

/// The resolver of `--resolve-digests never`: every image runs by its tag, as before digests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoResolution;

#[async_trait]
impl ImageResolver for NoResolution {
    async fn resolve(&self, _image: &ImageRef) -> Result<Option<String>, ResolveError> {
        Ok(None)
    }

    async fn tags(&self, _image: &ImageRef) -> Result<Option<Vec<String>>, ResolveError> {
        Ok(None)
    }
}
