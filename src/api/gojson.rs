//! JSON decoding with the key matching of Go's `encoding/json`, which is what dockerd decodes
//! request bodies with: an object key selects the struct field with exactly that name, or else
//! the first field whose name equals it under Unicode case folding; keys that match no field are
//! ignored; when several keys select one field the last one wins (objects are merged into the
//! value decoded so far, as Go decodes into the existing struct or map). docker-py relies on it:
//! it sends `{"Mode": {"replicated": {"Replicas": 5}}}`.
//!
//! Map keys (labels, options, driver options) are data and are kept verbatim; only struct field
//! names fold. The matching is driven by the field lists that `#[derive(Deserialize)]` hands to
//! `deserialize_struct`, so any derived request type gets it for free. serde does not give a
//! field list for structs with `#[serde(flatten)]` fields (they are read as maps), so request
//! types must not flatten; the tests below decode every body type with folded keys.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// Decodes `bytes` (one JSON document) into `T` with Go's key matching.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    from_value(serde_json::from_slice(bytes)?)
}

/// Decodes an already parsed document into `T` with Go's key matching.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    T::deserialize(GoValue(value))
}

/// Whether `a` and `b` are equal under Unicode case folding (Go's `strings.EqualFold` for the
/// ASCII names Docker's fields have; `K` (Kelvin) and `ſ` (long s) fold as Go folds them).
fn fold_eq(a: &str, b: &str) -> bool {
    let fold = |s: &str| -> Vec<char> {
        s.chars()
            .flat_map(char::to_uppercase)
            .flat_map(char::to_lowercase)
            .collect()
    };
    a.eq_ignore_ascii_case(b) || fold(a) == fold(b)
}

/// The object's entries under the struct's field names: exact matches first, else the first
/// field (in declaration order) that folds equal; unmatched keys stay as they are (and are
/// ignored by the struct). Entries that land on one field are merged in document order.
fn to_field_names(object: Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    let mut out = Map::with_capacity(object.len());
    for (key, value) in object {
        let name = if fields.contains(&key.as_str()) {
            key
        } else {
            match fields.iter().find(|f| fold_eq(f, &key)) {
                Some(f) => (*f).to_owned(),
                None => key,
            }
        };
        match out.get_mut(&name) {
            Some(earlier) => merge_into(earlier, value),
            None => {
                out.insert(name, value);
            }
        }
    }
    out
}

/// Go decoding a later duplicate into the value decoded so far: objects merge key by key,
/// anything else is replaced.
fn merge_into(earlier: &mut Value, later: Value) {
    match (earlier, later) {
        (Value::Object(e), Value::Object(l)) => {
            for (k, v) in l {
                match e.get_mut(&k) {
                    Some(slot) => merge_into(slot, v),
                    None => {
                        e.insert(k, v);
                    }
                }
            }
        }
        (slot, later) => *slot = later,
    }
}

/// A parsed value whose objects fold their keys onto the field names of the struct read from
/// them, at every depth.
struct GoValue(Value);

impl<'de> de::Deserializer<'de> for GoValue {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(o) => visitor.visit_map(Entries::new(o)),
            Value::Array(a) => visitor.visit_seq(Items(a.into_iter())),
            scalar => de::Deserializer::deserialize_any(scalar, visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(o) => visitor.visit_map(Entries::new(to_field_names(o, fields))),
            other => de::Deserializer::deserialize_struct(other, name, fields, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_enum(self.0, name, variants, visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_bytes(self.0, visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_byte_buf(self.0, visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_unit_struct(self.0, name, visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string unit seq tuple
        tuple_struct map identifier ignored_any
    }
}

/// An object's entries, values wrapped so nested structs fold too; keys are passed verbatim.
struct Entries {
    iter: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl Entries {
    fn new(object: Map<String, Value>) -> Self {
        Entries {
            iter: object.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Entries {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.iter.next() {
            Some((key, value)) => {
                self.value = Some(value);
                let key: de::value::StringDeserializer<serde_json::Error> = key.into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a map value was read before its key"))?;
        seed.deserialize(GoValue(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// An array's items, each wrapped so structs inside arrays fold too.
struct Items(std::vec::IntoIter<Value>);

impl<'de> de::SeqAccess<'de> for Items {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(GoValue(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

#[cfg(test)]
mod tests;
