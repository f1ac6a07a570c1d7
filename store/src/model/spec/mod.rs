//! Specs and statuses in the Docker Engine API's JSON shape (`reference/docker-api.md` §3), so the
//! API layer can serialize store objects almost directly and the `docker` CLI and docker-py get
//! byte-compatible JSON back.
//!
//! Conventions, mirroring Go's `encoding/json` on moby's `api/types/swarm` structs:
//! - Field order is Go's declaration order and wire names are exact (`NanoCPUs`, `DNSConfig`, ...).
//! - Go `omitempty` scalars and collections are skipped when zero/empty; Go pointers are `Option`s,
//!   present (even when zero: `"Replicas":0`, `"Init":false`, `"Window":0`) when `Some`; fields
//!   without `omitempty` (`Labels`, `ForceUpdate`, `Parallelism`, ...) are always emitted.
//! - `null` is accepted for every field and means the zero value; unknown fields are ignored.
//! - Durations are [`Nanos`] (`i64` nanoseconds); times are [`Timestamp`](crate::model::Timestamp).
//! - String enums the daemon validates itself (restart condition, update order, availability,
//!   mount type, ...) are "open" enums with an `Other(String)` variant: a bad value is kept and
//!   the API layer rejects it with Docker's exact message. The only strict field is
//!   [`NodeSpec::role`], an `Option<NodeRole>`: an unknown role fails deserialization with
//!   Docker's text (`invalid Role: "boss"`), which `serde_json::from_value` reports without a
//!   position suffix (decode the body to a `Value` first to tell JSON errors apart).

mod container;
mod network;
mod node;
mod secret;
mod service;
mod swarm;
mod task;
mod wire;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use container::*;
pub use network::*;
pub use node::*;
pub use secret::*;
pub use service::*;
pub use swarm::*;
pub use task::*;
pub use wire::WireEnum;

use wire::null_default;

/// Key/value labels. A `BTreeMap`, so keys serialize sorted, as Go sorts map keys.
pub type Labels = BTreeMap<String, String>;

/// A duration on the wire: Go's `time.Duration`, integer nanoseconds.
pub type Nanos = i64;

/// One second in [`Nanos`].
pub const NANOS_PER_SECOND: Nanos = 1_000_000_000;

/// Converts wire nanoseconds to a `Duration` (negative values become zero).
pub fn nanos_to_duration(n: Nanos) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(0))
}

/// Converts a `Duration` to wire nanoseconds (saturating at `i64::MAX`).
pub fn duration_to_nanos(d: Duration) -> Nanos {
    Nanos::try_from(d.as_nanos()).unwrap_or(Nanos::MAX)
}

/// A driver name and its options (log driver, volume driver, IPAM driver, secret driver, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Driver {
    /// Driver name (`json-file`, `local`, ...).
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Driver options.
    #[serde(rename = "Options", default, skip_serializing_if = "Labels::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub options: Labels,
}

/// The swarm's trust root and the issuer of node certificates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TLSInfo {
    /// Root CA certificate(s), PEM.
    #[serde(
        rename = "TrustRoot",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub trust_root: String,
    /// DER subject of the certificate issuer (base64 on the wire).
    #[serde(
        rename = "CertIssuerSubject",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    #[serde(with = "wire::base64")]
    pub cert_issuer_subject: Vec<u8>,
    /// DER public key (SubjectPublicKeyInfo) of the certificate issuer (base64 on the wire).
    #[serde(
        rename = "CertIssuerPublicKey",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    #[serde(with = "wire::base64")]
    pub cert_issuer_public_key: Vec<u8>,
}

/// An OS/architecture pair (`{"Architecture":"x86_64","OS":"linux"}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`x86_64`, `amd64`, `aarch64`, ...).
    #[serde(
        rename = "Architecture",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    #[serde(deserialize_with = "null_default")]
    pub architecture: String,
    /// Operating system (`linux`, `windows`).
    #[serde(rename = "OS", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub os: String,
}

#[cfg(test)]
pub(crate) mod test_util {
    use serde::de::DeserializeOwned;
    use serde::Serialize;
    use serde_json::Value;

    /// Parses `json` as `T`, converts it back with `serde_json::to_value`, and asserts the result
    /// equals the original JSON value (and that the serialized text parses to it too).
    pub(crate) fn round_trip<T: Serialize + DeserializeOwned>(json: &str) -> T {
        let typed: T = serde_json::from_str(json).expect("parses");
        let want: Value = serde_json::from_str(json).unwrap();
        let got = serde_json::to_value(&typed).expect("converts");
        assert_eq!(
            got, want,
            "round trip changed the JSON:\n in: {json}\nout: {got}"
        );
        let text = serde_json::to_string(&typed).expect("serializes");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), want);
        typed
    }

    /// Like [`round_trip`], and also asserts the exact bytes (so key order is Go's).
    pub(crate) fn round_trip_exact<T: Serialize + DeserializeOwned>(json: &str) -> T {
        let typed = round_trip::<T>(json);
        assert_eq!(serde_json::to_string(&typed).unwrap(), json);
        typed
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::round_trip_exact;
    use super::*;

    #[test]
    fn spec_names_are_omitted_when_empty_and_labels_always_emitted() {
        let c: ConfigSpec = serde_json::from_str(r#"{"Name":"web","Labels":null}"#).unwrap();
        assert_eq!(c.name, "web");
        assert!(c.labels.is_empty());
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"Name":"web","Labels":{}}"#
        );
        let unnamed = ConfigSpec::default();
        assert_eq!(serde_json::to_string(&unnamed).unwrap(), r#"{"Labels":{}}"#);
    }

    #[test]
    fn common_types_round_trip() {
        let d: Driver = round_trip_exact(r#"{"Name":"json-file","Options":{"max-size":"1m"}}"#);
        assert_eq!(d.options["max-size"], "1m");
        assert_eq!(serde_json::to_string(&Driver::default()).unwrap(), "{}");
        let p: Platform = round_trip_exact(r#"{"Architecture":"x86_64","OS":"linux"}"#);
        assert_eq!(p.os, "linux");
        let t: TLSInfo = round_trip_exact(
            r#"{"TrustRoot":"-----BEGIN CERTIFICATE-----\n","CertIssuerSubject":"MBMxETAPBgNVBAMTCHN3YXJtLWNh","CertIssuerPublicKey":"AQID"}"#,
        );
        assert_eq!(t.cert_issuer_public_key, vec![1, 2, 3]);
        assert!(t.cert_issuer_subject.ends_with(b"swarm-ca"));
        let bad = serde_json::from_str::<TLSInfo>(r#"{"CertIssuerPublicKey":"A!=="}"#);
        assert!(bad.unwrap_err().to_string().contains("illegal base64 data"));
    }

    #[test]
    fn durations_convert_both_ways() {
        assert_eq!(
            nanos_to_duration(5 * NANOS_PER_SECOND),
            Duration::from_secs(5)
        );
        assert_eq!(nanos_to_duration(-1), Duration::ZERO);
        assert_eq!(
            duration_to_nanos(Duration::from_millis(1500)),
            1_500_000_000
        );
        assert_eq!(duration_to_nanos(Duration::MAX), Nanos::MAX);
    }
}
