//! A place in the global event order, shown to clients as an opaque string.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A place in the global order: the writing transaction's id, then the event's position.
/// Ordered first by transaction id so that a reader never passes an event whose
/// transaction commits late; the string form is fixed-width hex, so it sorts
/// the same way as the pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    /// The id (xid8) of the transaction that wrote the event.
    pub transaction_id: u64,
    /// The event's position (an identity column), unique across the log.
    pub position: i64,
}

impl Cursor {
    /// The place before the first event.
    pub const START: Cursor = Cursor {
        transaction_id: 0,
        position: 0,
    };
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Positions are never negative (identity starts at 1), so the cast keeps order.
        write!(
            f,
            "{:016x}{:016x}",
            self.transaction_id, self.position as u64
        )
    }
}

/// A cursor string that shiplog did not produce.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a shiplog cursor (expected 32 hexadecimal characters)")]
pub struct InvalidCursor;

impl FromStr for Cursor {
    type Err = InvalidCursor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidCursor);
        }
        let transaction_id = u64::from_str_radix(&s[..16], 16).map_err(|_| InvalidCursor)?;
        let position = u64::from_str_radix(&s[16..], 16).map_err(|_| InvalidCursor)?;
        let position = i64::try_from(position).map_err(|_| InvalidCursor)?;
        Ok(Self {
            transaction_id,
            position,
        })
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_sort_like_cursors_and_round_trip() {
        let a = Cursor {
            transaction_id: 9,
            position: 500,
        };
        let b = Cursor {
            transaction_id: 10,
            position: 3,
        };
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
        assert_eq!(b.to_string().parse::<Cursor>(), Ok(b));
        assert_eq!("xyz".parse::<Cursor>(), Err(InvalidCursor));
        assert_eq!("g".repeat(32).parse::<Cursor>(), Err(InvalidCursor));
    }
}
