//! Auto-update: which new images of a deployment's tag shiplog follows (a policy),
//! how pods are replaced, and why following is paused. The watcher that checks the
//! registry lives in the application; here are the settings and their rules.

use crate::config::InvalidField;
use crate::platform::UpdateStrategy;
use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::LazyLock;
use uuid::Uuid;

/// Whether a usecase follows new images of its tag, which ones, and how pods are replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoUpdate {
    /// Follow new images of the deployed tag.
    pub enabled: bool,
    /// How pods are replaced.
    pub strategy: UpdateStrategy,
    /// Which new images count: the same tag's new digest, or the highest tag in a range.
    #[serde(default)]
    pub policy: UpdatePolicy,
}

/// Which new image an auto-update follows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum UpdatePolicy {
    /// The deployed tag's digest changed (a tag such as `latest` was pushed again): seed 002's behaviour.
    #[default]
    Digest,
    /// The highest tag that is a semantic version inside `range` (a newer release).
    Semver {
        /// The versions followed.
        range: VersionRange,
    },
}

/// The kind of an [`UpdatePolicy`], as events record it beside the range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// [`UpdatePolicy::Digest`]; what events recorded before policies existed mean.
    #[default]
    Digest,
    /// [`UpdatePolicy::Semver`].
    Semver,
}

impl PolicyKind {
    /// `digest` or `semver`, as the API and the ledger spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Digest => "digest",
            Self::Semver => "semver",
        }
    }
}

impl UpdatePolicy {
    /// Its kind.
    pub fn kind(&self) -> PolicyKind {
        match self {
            Self::Digest => PolicyKind::Digest,
            Self::Semver { .. } => PolicyKind::Semver,
        }
    }

    /// The range of a `semver` policy.
    pub fn range(&self) -> Option<&VersionRange> {
        match self {
            Self::Digest => None,
            Self::Semver { range } => Some(range),
        }
    }

    /// The policy named `kind` (`digest`, `semver`) with `range`: `semver` without a
    /// range follows every release (`*`); `digest` has no use for one and ignores it
    /// (it is still checked, so that a typo is not silently kept). `field` prefixes the
    /// fields named in errors.
    pub fn parse(field: &str, kind: &str, range: Option<&str>) -> Result<Self, InvalidField> {
        let range = range
            .map(|r| VersionRange::parse(&format!("{field}range"), r))
            .transpose()?;
        match (kind, range) {
            ("digest", _) => Ok(Self::Digest),
            ("semver", Some(range)) => Ok(Self::Semver { range }),
            ("semver", None) => Ok(Self::Semver {
                range: VersionRange("*".to_owned()),
            }),
            (other, _) => Err(InvalidField::new(
                format!("{field}policy"),
                format!("{other:?} is not an auto-update policy; use digest or semver"),
            )),
        }
    }

    /// The policy an event recorded: its kind and, for `semver`, its range (a `semver`
    /// kind without a range, which no command records, reads as `digest`).
    pub fn recorded(kind: PolicyKind, range: Option<VersionRange>) -> Self {
        match (kind, range) {
            (PolicyKind::Semver, Some(range)) => Self::Semver { range },
            _ => Self::Digest,
        }
    }
}

/// A range of semantic versions (`^1`, `~1.4`, `>=2 <3`), kept as the client wrote it
/// and valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionRange(String);

/// The longest range accepted: long enough for any real range, short enough for a label.
pub const MAX_RANGE_LEN: usize = 100;

/// What a version range must match (the OpenAPI document states the same pattern):
/// comparators separated by spaces or commas, each an optional operator (`=`, `>`,
/// `>=`, `<`, `<=`, `~`, `^`) before a version of one to three numbers; or one
/// wildcard alone (`1.x`, `1.2.*`, `*`). Every string it matches is a range the
/// `semver` crate reads (a property test below holds it to that).
pub const VERSION_RANGE_PATTERN: &str = r"^(?:(?:(?:=|>=|<=|>|<|~|\^) *)?(?:0|[1-9][0-9]{0,8})(?:\.(?:0|[1-9][0-9]{0,8})){0,2}(?:[ ,]+(?:(?:=|>=|<=|>|<|~|\^) *)?(?:0|[1-9][0-9]{0,8})(?:\.(?:0|[1-9][0-9]{0,8})){0,2})*|(?:0|[1-9][0-9]{0,8})(?:\.(?:0|[1-9][0-9]{0,8}))?\.[xX*]|[xX*])$";

static VERSION_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(VERSION_RANGE_PATTERN).unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

impl VersionRange {
    /// Checks `raw` as a version range: comparators separated by spaces or commas
    /// (npm's `>=2 <3` and Cargo's `>=2, <3` alike).
    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidField> {
        if raw.is_empty() {
            return Err(InvalidField::new(field, "must not be empty"));
        }
        if raw.chars().count() > MAX_RANGE_LEN {
            return Err(InvalidField::new(
                field,
                format!("must be at most {MAX_RANGE_LEN} characters"),
            ));
        }
        if !VERSION_RANGE.is_match(raw) {
            return Err(InvalidField::new(
                field,
                format!("{raw:?} is not a version range; write it as ^1, ~1.4, >=2 <3 or 1.x"),
            ));
        }
        let range = Self(raw.to_owned());
        range.requirement().map_err(|e| {
            InvalidField::new(
                field,
                format!("{raw:?} is not a version range ({e}); write it as ^1, ~1.4 or >=2 <3"),
            )
        })?;
        Ok(range)
    }

    /// The range as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The range in the `semver` crate's grammar: comparators joined by commas, an
    /// operator written apart from its version (`>= 2`) joined to it.
    fn requirement(&self) -> Result<semver::VersionReq, semver::Error> {
        let mut comparators: Vec<String> = Vec::new();
        let mut pending_operator = String::new();
        for token in self.0.split([' ', ',']).filter(|t| !t.is_empty()) {
            if token
                .chars()
                .all(|c| matches!(c, '>' | '<' | '=' | '^' | '~'))
            {
                pending_operator.push_str(token);
            } else {
                comparators.push(format!("{}{token}", std::mem::take(&mut pending_operator)));
            }
        }
        if !pending_operator.is_empty() {
            comparators.push(pending_operator);
        }
        semver::VersionReq::parse(&comparators.join(", "))
    }

    /// The tag among `tags` naming the highest version inside the range. Tags are read
    /// as semantic versions with an optional leading `v` (`1.4.2`, `v2.0.0-rc.1`); other
    /// tags (`latest`, `1.4`) are ignored. Pre-releases count only when the range names
    /// one of the same version, as Cargo decides.
    pub fn highest<'a>(&self, tags: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        let requirement = self.requirement().ok()?;
        tags.into_iter()
            .filter_map(|tag| {
                let version = semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()?;
                requirement.matches(&version).then_some((version, tag))
            })
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, tag)| tag)
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why auto-update is paused: a manual rollback chose older bytes on purpose, and
/// following the tag again would undo it. Enabling auto-update again ends the pause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoUpdatePause {
    /// In the user's words.
    pub reason: String,
    /// The rollback's deployment that paused it.
    pub rollback: Uuid,
    /// Since when.
    pub since: DateTime<Utc>,
}

/// What a check found: the image the serving deployment should run instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImage {
    /// The check that found it.
    pub check_id: Uuid,
    /// What made the watcher check.
    pub trigger: CheckTrigger,
    /// The serving deployment the check compared against: the update is refused if
    /// another serves by the time it is decided.
    pub expected: Uuid,
    /// The tag to run.
    pub tag: String,
    /// The digest it names now.
    pub digest: String,
}

/// What made the watcher check a deployment's registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckTrigger {
    /// The periodic check (`--auto-update-interval`).
    #[default]
    Interval,
    /// A registry's push notification (`POST /api/hooks/registry`).
    Webhook,
}

impl CheckTrigger {
    /// `interval` or `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interval => "interval",
            Self::Webhook => "webhook",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_accept_npm_and_cargo_spellings_and_refuse_the_rest() {
        for good in [
            "^1", "~1.4", ">=2 <3", ">=2, <3", ">= 2 < 3", "1.x", "*", "=1.2.3",
        ] {
            assert!(VersionRange::parse("range", good).is_ok(), "{good}");
        }
        for bad in ["", "   ", "latest", ">=", "^1 ||", &"9".repeat(101)] {
            let error = VersionRange::parse("range", bad).expect_err(bad);
            assert_eq!(error.field, "range", "{bad}");
        }
    }

    #[test]
    fn the_highest_matching_tag_is_followed() {
        let tags = [
            "latest",
            "1.4.0",
            "v1.5.2",
            "1.5.10",
            "1.6",
            "2.0.0",
            "2.1.0-rc.1",
            "3.0.0",
        ];
        let cases = [
            ("^1", Some("1.5.10")),
            ("~1.4", Some("1.4.0")),
            (">=2 <3", Some("2.0.0")),
            ("^4", None),
        ];
        for (range, expected) in cases {
            let range = VersionRange::parse("range", range).expect(range);
            assert_eq!(range.highest(tags), expected, "{range}");
        }
    }

    proptest::proptest! {
        /// The documented pattern promises what the server reads: every string it
        /// matches is a range (the fuzzer sends exactly such strings).
        #[test]
        fn every_string_the_pattern_matches_is_a_range(
            // The pattern, unanchored, with at most five comparators and one space.
            raw in proptest::string::string_regex(
                &VERSION_RANGE_PATTERN
                    .trim_start_matches('^')
                    .trim_end_matches('$')
                    .replace(")*|", "){0,4}|")
                    .replace(" *)?", " ?)?")
                    .replace("[ ,]+", "[ ,]{1,2}"),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        ) {
            proptest::prop_assume!(raw.chars().count() <= MAX_RANGE_LEN);
            proptest::prop_assert!(VersionRange::parse("range", &raw).is_ok(), "{:?}", raw);
        }
    }

    #[test]
    fn a_policy_takes_a_valid_range_and_semver_alone_follows_every_release() {
        assert_eq!(
            UpdatePolicy::parse("", "digest", None),
            Ok(UpdatePolicy::Digest)
        );
        assert_eq!(
            UpdatePolicy::parse("", "digest", Some("^1")),
            Ok(UpdatePolicy::Digest)
        );
        let semver = UpdatePolicy::parse("", "semver", Some("^1")).expect("semver");
        assert_eq!(semver.range().map(VersionRange::as_str), Some("^1"));
        let every = UpdatePolicy::parse("", "semver", None).expect("semver alone");
        assert_eq!(every.range().map(VersionRange::as_str), Some("*"));
        let cases = [
            ("semver", Some("nope"), "range"),
            ("digest", Some("nope"), "range"),
            ("newest", None, "policy"),
        ];
        for (kind, range, field) in cases {
            let error = UpdatePolicy::parse("", kind, range).expect_err(kind);
            assert_eq!(error.field, field, "{kind} {range:?}");
        }
    }
}
