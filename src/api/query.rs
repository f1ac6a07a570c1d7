//! Query-string conventions of the Docker API: two boolean parsers and `version` parameters.

use std::collections::HashMap;

use super::error::ApiError;

/// Query parameters as a map (last value wins).
pub type Query = HashMap<String, String>;

/// Docker's `httputils.BoolValue`: false iff absent or one of `"" 0 no false none`.
pub fn bool_value(q: &Query, key: &str) -> bool {
    match q.get(key) {
        None => false,
        Some(v) => !matches!(
            v.to_ascii_lowercase().as_str(),
            "" | "0" | "no" | "false" | "none"
        ),
    }
}

/// Go's `strconv.ParseBool` for `status`, `insertDefaults`, `rotate*`: absent = false, bad value = 400.
pub fn parse_bool(q: &Query, key: &str) -> Result<bool, ApiError> {
    match q.get(key).map(String::as_str) {
        None | Some("") => Ok(false),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(v) => Err(ApiError::bad_request(format!(
            "invalid value for {key}: {v}: strconv.ParseBool: parsing \"{v}\": invalid syntax"
        ))),
    }
}

/// The required `version` parameter of update routes (`what` is `service`, `node`, `swarm`...).
pub fn version_param(q: &Query, what: &str) -> Result<u64, ApiError> {
    let raw = q.get("version").map(String::as_str).unwrap_or("");
    raw.parse::<u64>().map_err(|_| {
        let reason =
            if raw.starts_with('-') || raw.chars().all(|c| c.is_ascii_digit()) && !raw.is_empty() {
                "value out of range"
            } else {
                "invalid syntax"
            };
        ApiError::bad_request(format!(
            "invalid {what} version '{raw}': strconv.ParseUint: parsing \"{raw}\": {reason}"
        ))
    })
}
