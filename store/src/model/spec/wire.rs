//! Serde helpers that reproduce Go's `encoding/json` behaviour for the Docker wire types:
//! `omitempty` predicates, `null` accepted for every field, `[]byte` as base64, and "open" string
//! enums that keep values Docker does not define so the API layer can reject them with Docker's
//! own error text.

use serde::{Deserialize, Deserializer, Serializer};

/// Go's `omitempty` for scalars: true when the value is its type's zero (`0`, `false`, `""`).
pub(crate) fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Deserializes `null` (or an absent field, with `#[serde(default)]`) as the type's default, the
/// way Go leaves a field at its zero value. docker-py sends nested `null`s (`"Args": null`).
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Serializes an `f32` the way Go's `encoding/json` prints a `float32`: shortest decimal form,
/// integral values without a fraction (`0`, not `0.0`). The value is widened to the `f64` with
/// the same decimal form, so `serde_json::to_value` also yields `0.2` rather than
/// `0.20000000298023224`. (Go switches to exponent form only below 1e-6 or from 1e21; serde_json
/// from 1e17: irrelevant for ratios.)
pub(crate) fn go_f32<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return s.serialize_i64(*v as i64);
    }
    let widened: f64 = v.to_string().parse().unwrap_or(f64::from(*v));
    s.serialize_f64(widened)
}

/// A string-valued wire enum whose unknown values are kept (declared with `open_enum!`).
pub trait WireEnum: Sized {
    /// Parses a wire value; values Docker does not define are kept verbatim.
    fn from_wire(s: &str) -> Self;
    /// The wire spelling.
    fn as_wire(&self) -> &str;
}

/// Deserializes an optional open enum: `null`, absent and `""` are all `None` (Go's zero value,
/// which `omitempty` would not emit either); any other string is kept.
pub(crate) fn opt_enum<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: WireEnum,
{
    Ok(Option::<String>::deserialize(d)?
        .filter(|s| !s.is_empty())
        .map(|s| T::from_wire(&s)))
}

/// Serializes an optional open enum that Go always emits (no `omitempty`): `None` becomes `""`.
pub(crate) fn opt_enum_or_empty<S, T>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    T: WireEnum,
{
    s.serialize_str(v.as_ref().map_or("", |e| e.as_wire()))
}

/// Declares a string enum as Docker puts it on the wire, plus an `Other(String)` variant that
/// keeps any value Docker does not define. Deserialization never fails on an unknown string, so
/// validation (with Docker's exact error messages, in Docker's order) happens in the API layer.
/// `ignore_case: true` matches known values case-insensitively (the daemon upper-cases those
/// before looking them up, so `"ACTIVE"` is valid and comes back as `"active"`).
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident (ignore_case: $ic:literal) {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value Docker does not define, kept verbatim so the API layer can reject it with
            /// Docker's own error message.
            Other(String),
        }

        impl $name {
            /// The values Docker defines, in declaration order.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),+];

            const IGNORE_CASE: bool = $ic;

            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )+
                    $name::Other(s) => s,
                }
            }

            /// Parses a wire value; unknown values become `Other`.
            pub fn from_wire(s: &str) -> Self {
                $(
                    if s == $wire || (Self::IGNORE_CASE && s.eq_ignore_ascii_case($wire)) {
                        return $name::$variant;
                    }
                )+
                $name::Other(s.to_owned())
            }

            /// Whether this is a value Docker defines.
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Other(_))
            }
        }

        impl $crate::model::spec::WireEnum for $name {
            fn from_wire(s: &str) -> Self {
                $name::from_wire(s)
            }
            fn as_wire(&self) -> &str {
                self.as_str()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name::from_wire(s)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as ::serde::Deserialize>::deserialize(d)?;
                Ok($name::from_wire(&s))
            }
        }
    };
}
pub(crate) use open_enum;

/// Go's `[]byte` on the wire: standard base64 with padding; `null` and absent decode to empty.
pub(crate) mod base64 {
    use ::base64::engine::general_purpose::STANDARD;
    use ::base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Encodes with the standard alphabet and `=` padding.
    pub(crate) fn encode(data: &[u8]) -> String {
        STANDARD.encode(data)
    }

    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }

    /// Decodes like Go's `base64.StdEncoding` (padding required, CR/LF ignored); the error text
    /// is Go's (`illegal base64 data at input byte N`).
    pub(crate) fn decode(s: &str) -> Result<Vec<u8>, String> {
        // Fast path for what we write ourselves and most clients send; the careful decoder
        // below runs only for line breaks or bad input, to report errors exactly as Go does.
        if let Ok(out) = STANDARD.decode(s) {
            return Ok(out);
        }
        let input: Vec<(usize, u8)> = s
            .bytes()
            .enumerate()
            .filter(|(_, b)| *b != b'\r' && *b != b'\n')
            .collect();
        let illegal = |pos: usize| format!("illegal base64 data at input byte {pos}");
        let chunks = input.len().div_ceil(4);
        let mut out = Vec::with_capacity(chunks * 3);
        for (ci, chunk) in input.chunks(4).enumerate() {
            let mut n = 0u32;
            let mut pad = 0usize;
            for (j, &(pos, c)) in chunk.iter().enumerate() {
                if c == b'=' {
                    if j < 2 {
                        return Err(illegal(pos));
                    }
                    pad += 1;
                } else if pad > 0 {
                    return Err(illegal(pos));
                } else {
                    n |= value(c).ok_or_else(|| illegal(pos))? << (18 - 6 * j);
                }
            }
            if chunk.len() < 4 {
                // Input ends inside a quantum: Go reports the quantum's first byte.
                return Err(illegal(chunk[0].0));
            }
            if pad > 0 && ci + 1 != chunks {
                // Data after the padding: Go reports the first byte after it.
                return Err(illegal(input[(ci + 1) * 4].0));
            }
            out.push((n >> 16) as u8);
            if pad < 2 {
                out.push((n >> 8) as u8);
            }
            if pad < 1 {
                out.push(n as u8);
            }
        }
        Ok(out)
    }

    /// `#[serde(with = ...)]` serializer: base64 text in JSON, the bytes themselves in the
    /// store's binary encoding (`crate::codec`), which is not human-readable.
    pub(crate) fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&encode(data))
        } else {
            s.serialize_bytes(data)
        }
    }

    /// `#[serde(with = ...)]` deserializer: base64 text or bytes; `null` is empty.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            return match Option::<String>::deserialize(d)? {
                None => Ok(Vec::new()),
                Some(s) => decode(&s).map_err(serde::de::Error::custom),
            };
        }
        struct Data;
        impl<'de> serde::de::Visitor<'de> for Data {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes, base64 text or nothing")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
                decode(v).map_err(E::custom)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Vec<u8>, E> {
                Ok(Vec::new())
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Vec<u8>, E> {
                Ok(Vec::new())
            }
        }
        d.deserialize_any(Data)
    }
}

#[cfg(test)]
mod tests {
    use super::base64::{decode, encode};
    use super::*;

    #[test]
    fn base64_matches_the_standard_encoding() {
        let cases: [(&[u8], &str); 5] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"s3cr3t\n", "czNjcjN0Cg=="),
        ];
        for (raw, text) in cases {
            assert_eq!(encode(raw), text);
            assert_eq!(decode(text).unwrap(), raw);
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)).unwrap(), all);
        assert_eq!(decode("Zm9v\r\nYmFy").unwrap(), b"foobar");
    }

    #[test]
    fn base64_rejects_what_go_rejects() {
        assert_eq!(
            decode("Zm9").unwrap_err(),
            "illegal base64 data at input byte 0"
        );
        assert_eq!(
            decode("Zm9v!A==").unwrap_err(),
            "illegal base64 data at input byte 4"
        );
        assert_eq!(
            decode("Zg==Zm9v").unwrap_err(),
            "illegal base64 data at input byte 4"
        );
        assert_eq!(
            decode("Z===").unwrap_err(),
            "illegal base64 data at input byte 1"
        );
        assert_eq!(
            decode("Zm9vY").unwrap_err(),
            "illegal base64 data at input byte 4"
        );
        assert_eq!(
            decode("not base64").unwrap_err(),
            "illegal base64 data at input byte 3"
        );
        assert!(decode("Zm=v").is_err());
    }

    #[derive(serde::Serialize)]
    struct Ratio(#[serde(serialize_with = "go_f32")] f32);

    #[test]
    fn float32_prints_like_go() {
        let print = |v: f32| serde_json::to_string(&Ratio(v)).unwrap();
        assert_eq!(print(0.0), "0");
        assert_eq!(print(1.0), "1");
        assert_eq!(print(0.2), "0.2");
        assert_eq!(print(0.333_333_34), "0.33333334");
        assert_eq!(print(1e-7), "1e-7");
        assert_eq!(
            serde_json::to_value(Ratio(0.2)).unwrap(),
            serde_json::json!(0.2)
        );
    }

    #[test]
    fn zero_predicate_is_go_omitempty() {
        assert!(is_zero(&0u64) && is_zero(&0i64) && is_zero(&false) && is_zero(&String::new()));
        assert!(!is_zero(&1u32) && !is_zero(&true) && !is_zero(&"x".to_string()));
    }
}
