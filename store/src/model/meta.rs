//! Identity and bookkeeping shared by every stored object: ids, versions, timestamps.

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length of every object id: 25 lowercase base-36 characters (128+ random bits), as SwarmKit.
pub const ID_LEN: usize = 25;

/// Generates a fresh random object id (25 lowercase base-36 characters).
pub fn new_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..ID_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The store revision of an object's last change, wire name `Version: {"Index": n}`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version {
    /// Raft log index of the entry that committed the change.
    #[serde(rename = "Index", default, skip_serializing_if = "is_zero")]
    pub index: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Version {
    /// A version at the given revision.
    pub const fn at(index: u64) -> Self {
        Version { index }
    }
}

/// A UTC instant with nanosecond precision, serialised like Go's `time.RFC3339Nano`
/// (`2026-11-25T05:33:54.648088463Z`, trailing zeros trimmed; the zero time is
/// `0001-01-01T00:00:00Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Timestamp(DateTime::<Utc>::from(crate::clock::now()))
    }

    /// Go's zero time, `0001-01-01T00:00:00Z`.
    pub fn zero() -> Self {
        Timestamp(Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap())
    }

    /// Nanoseconds since the Unix epoch (saturating).
    pub fn unix_nanos(&self) -> i64 {
        self.0.timestamp_nanos_opt().unwrap_or(i64::MAX)
    }

    /// From nanoseconds since the Unix epoch.
    pub fn from_unix_nanos(n: i64) -> Self {
        Timestamp(Utc.timestamp_nanos(n))
    }

    /// Whether this is Go's zero time.
    pub fn is_zero(&self) -> bool {
        *self == Self::zero()
    }
}

impl Default for Timestamp {
    fn default() -> Self {
        Self::zero()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use chrono::{Datelike, Timelike};
        // Formatted by hand: this runs for every object encoded, and strftime parsing is slow.
        let t = &self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        let nanos = t.nanosecond() % 1_000_000_000;
        if nanos != 0 {
            let mut digits = 9;
            let mut n = nanos;
            while n.is_multiple_of(10) {
                n /= 10;
                digits -= 1;
            }
            write!(f, ".{n:0digits$}")?;
        }
        f.write_str("Z")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Timestamp(t.with_timezone(&Utc)))
            .map_err(|e| serde::de::Error::custom(format!("invalid timestamp {s:?}: {e}")))
    }
}

/// The bookkeeping every object carries, inlined into the object on the wire:
/// `ID`, `Version`, `CreatedAt`, `UpdatedAt`. Written only by the store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// 25-character lowercase base-36 id, never reused.
    #[serde(rename = "ID")]
    pub id: String,
    /// Revision of the object's last change.
    #[serde(rename = "Version", default)]
    pub version: Version,
    /// When the object was created (the committing leader's clock).
    #[serde(rename = "CreatedAt", default)]
    pub created_at: Timestamp,
    /// When the object last changed (the committing leader's clock).
    #[serde(rename = "UpdatedAt", default)]
    pub updated_at: Timestamp,
}

impl Meta {
    /// Meta for an object about to be created with the given id; the store fills in the rest.
    pub fn with_id(id: impl Into<String>) -> Self {
        Meta {
            id: id.into(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_25_lowercase_base36() {
        let id = new_id();
        assert_eq!(id.len(), ID_LEN);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_ne!(id, new_id());
    }

    #[test]
    fn timestamps_format_like_go() {
        assert_eq!(Timestamp::zero().to_string(), "0001-01-01T00:00:00Z");
        let t = Timestamp::from_unix_nanos(1_764_048_834_648_088_463);
        assert_eq!(t.to_string(), "2025-11-25T05:33:54.648088463Z");
        let t = Timestamp::from_unix_nanos(1_764_048_834_500_000_000);
        assert_eq!(t.to_string(), "2025-11-25T05:33:54.5Z");
        let back: Timestamp = serde_json::from_str("\"2025-11-25T05:33:54.5Z\"").unwrap();
        assert_eq!(back, t);
    }
}
