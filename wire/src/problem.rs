//! The RFC 9457 problem document every error answer of shiplog carries, read by
//! clients to tell one failure from another.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An RFC 9457 problem document: what every error response of shiplog carries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// A URI naming the problem kind (`about:blank` for plain HTTP statuses).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem kind.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this request, in words a user can act on.
    pub detail: String,
    /// The request field at fault (dotted JSON path), for input errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The same sentence as `detail`: the member seed 002's clients read.
    pub error: String,
}

/// How every refusal for someone else's usecase or team begins ("ownership verification
/// failed: ..."): clients tell it apart from a name nobody has by this prefix.
pub const OWNERSHIP_REFUSED: &str = "ownership verification failed";

#[cfg(all(test, feature = "server"))]
mod tests {
    #[test]
    fn the_ownership_refusal_is_spelled_as_the_application_spells_it() {
        assert_eq!(
            super::OWNERSHIP_REFUSED,
            shiplog_application::OWNERSHIP_REFUSED
        );
    }
}
