//! The `filters` query parameter: a JSON object in either encoding (`{"name":{"web":true}}` from
//! the Go client, `{"name":["web"]}` from docker-py). Values of one key are ORed, keys ANDed.

use std::collections::{BTreeMap, BTreeSet};

use super::error::ApiError;
use super::query::Query;

/// Parsed filters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    values: BTreeMap<String, BTreeSet<String>>,
}

impl Filters {
    /// Parses `filters` from the query and checks every key is one of `allowed`.
    pub fn from_query(q: &Query, allowed: &[&str]) -> Result<Filters, ApiError> {
        let Some(raw) = q.get("filters").filter(|s| !s.is_empty()) else {
            return Ok(Filters::default());
        };
        let parsed: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
        let obj = parsed
            .as_object()
            .ok_or_else(|| ApiError::bad_request("invalid filter: must be a JSON object"))?;
        let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (key, v) in obj {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
            }
            let set = values.entry(key.clone()).or_default();
            match v {
                serde_json::Value::Object(m) => {
                    for (val, on) in m {
                        if on.as_bool().unwrap_or(false) {
                            set.insert(val.clone());
                        }
                    }
                }
                serde_json::Value::Array(a) => {
                    for val in a {
                        if let Some(s) = val.as_str() {
                            set.insert(s.to_string());
                        }
                    }
                }
                serde_json::Value::String(s) => {
                    set.insert(s.clone());
                }
                _ => return Err(ApiError::bad_request(format!("invalid filter '{key}'"))),
            }
        }
        Ok(Filters { values })
    }

    /// The values given for `key` (empty when absent).
    pub fn get(&self, key: &str) -> impl Iterator<Item = &str> {
        self.values
            .get(key)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Whether `key` was given (with at least one value).
    pub fn contains(&self, key: &str) -> bool {
        self.values.get(key).is_some_and(|v| !v.is_empty())
    }

    /// No filter given for `key`, or `pred` holds for one of its values.
    pub fn any(&self, key: &str, mut pred: impl FnMut(&str) -> bool) -> bool {
        !self.contains(key) || self.get(key).any(&mut pred)
    }

    /// Label filters (`key` or `key=value`) against `labels`: every one must match.
    pub fn labels_match(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        self.get(key).all(|f| match f.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(f),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(filters: &str) -> Query {
        let mut q = Query::new();
        q.insert("filters".into(), filters.into());
        q
    }

    #[test]
    fn both_encodings_parse_to_the_same_filters() {
        let modern =
            Filters::from_query(&q(r#"{"name":{"web":true,"db":true}}"#), &["name"]).unwrap();
        let legacy = Filters::from_query(&q(r#"{"name":["web","db"]}"#), &["name"]).unwrap();
        assert_eq!(modern, legacy);
        assert_eq!(modern.get("name").collect::<Vec<_>>(), vec!["db", "web"]);
    }

    #[test]
    fn unknown_keys_are_refused_with_dockers_text() {
        let e = Filters::from_query(&q(r#"{"bogus":{"x":true}}"#), &["name"]).unwrap_err();
        assert_eq!(e.message, "invalid filter 'bogus'");
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(Filters::from_query(&q("not json"), &["name"]).is_err());
    }

    #[test]
    fn label_filters_match_key_or_key_value() {
        let f = Filters::from_query(&q(r#"{"label":{"a":true,"b=2":true}}"#), &["label"]).unwrap();
        let mut labels = BTreeMap::new();
        labels.insert("a".to_string(), "1".to_string());
        labels.insert("b".to_string(), "2".to_string());
        assert!(f.labels_match("label", &labels));
        labels.insert("b".to_string(), "3".to_string());
        assert!(!f.labels_match("label", &labels));
    }
}
