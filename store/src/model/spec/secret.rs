//! Secret and config specs (docker-api.md §2.7).

use serde::{Deserialize, Serialize};

use super::wire::null_default;
use super::{Driver, Labels};

/// A secret as created (`POST /secrets/create`). Only the labels may change afterwards.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretSpec {
    /// Secret name.
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Labels; always emitted (`{}` when empty), as the daemon does.
    #[serde(rename = "Labels", default, deserialize_with = "null_default")]
    pub labels: Labels,
    /// The secret's bytes (Go `[]byte`: base64 on the wire; invalid base64 fails decoding with
    /// Go's `illegal base64 data at input byte N`). The API layer never returns it.
    #[serde(rename = "Data", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(with = "super::wire::base64")]
    pub data: Vec<u8>,
    /// External secret store driver.
    #[serde(rename = "Driver", default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Driver>,
    /// Templating driver (`golang`).
    #[serde(
        rename = "Templating",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub templating: Option<Driver>,
}

/// A config as created (`POST /configs/create`). Only the labels may change afterwards.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigSpec {
    /// Config name.
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Labels; always emitted (`{}` when empty), as the daemon does.
    #[serde(rename = "Labels", default, deserialize_with = "null_default")]
    pub labels: Labels,
    /// The config's bytes (Go `[]byte`: base64 on the wire).
    #[serde(rename = "Data", default, skip_serializing_if = "Vec::is_empty")]
    #[serde(with = "super::wire::base64")]
    pub data: Vec<u8>,
    /// Templating driver (`golang`).
    #[serde(
        rename = "Templating",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub templating: Option<Driver>,
}

impl SecretSpec {
    /// The secret name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl ConfigSpec {
    /// The config name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::round_trip_exact;
    use super::*;

    #[test]
    fn stack_secret_body_round_trips_and_decodes() {
        // `docker stack deploy` (docker-api.md §4, observed).
        let spec: SecretSpec = round_trip_exact(
            r#"{"Name":"st_mysecret","Labels":{"com.docker.stack.namespace":"st"},"Data":"czNjcjN0Cg=="}"#,
        );
        assert_eq!(spec.name(), "st_mysecret");
        assert_eq!(spec.data, b"s3cr3t\n");
        assert_eq!(spec.labels["com.docker.stack.namespace"], "st");
    }

    #[test]
    fn secret_drivers_round_trip_and_bad_base64_is_rejected() {
        let spec: SecretSpec = round_trip_exact(
            r#"{"Name":"s","Labels":{},"Driver":{"Name":"vault","Options":{"path":"x"}},"Templating":{"Name":"golang"}}"#,
        );
        assert!(spec.data.is_empty());
        assert_eq!(spec.driver.unwrap().name, "vault");
        let err =
            serde_json::from_str::<SecretSpec>(r#"{"Name":"s","Data":"not base64"}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("illegal base64 data at input byte 3"),
            "{err}"
        );
        let null: SecretSpec =
            serde_json::from_str(r#"{"Name":"s","Labels":null,"Data":null,"Driver":null}"#)
                .unwrap();
        assert_eq!(null.name(), "s");
        assert!(null.data.is_empty() && null.driver.is_none());
    }

    #[test]
    fn config_body_round_trips_with_unicode_data() {
        let spec: ConfigSpec = round_trip_exact(
            r#"{"Name":"st_myconfig","Labels":{},"Data":"4pyIIGNvbmZpZw==","Templating":{"Name":"golang"}}"#,
        );
        assert_eq!(
            String::from_utf8(spec.data.clone()).unwrap(),
            "\u{2708} config"
        );
        assert_eq!(spec.name(), "st_myconfig");
        assert_eq!(
            serde_json::to_string(&ConfigSpec::default()).unwrap(),
            r#"{"Labels":{}}"#
        );
    }
}
