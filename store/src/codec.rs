//! How Raft log entries and the messages between managers are encoded.
//!
//! Binary by default: MessagePack (`rmp-serde`) with structs as maps of field names, behind one
//! tag byte, [`BINARY_TAG`]. Maps of names, not positions, because the model's serde attributes
//! (`skip_serializing_if`, `flatten`, untagged and open enums) need a self-describing format:
//! positional formats (bincode, postcard) cannot tell a skipped field from the next one. The
//! win over JSON is in numbers, field names without quotes and escapes, and bytes (a config's
//! or secret's data) carried as they are instead of base64 (see `model::spec::wire::base64`).
//!
//! [`decode`] reads both encodings, whatever this member writes: a log written as JSON by an
//! earlier version opens, and a peer that sends JSON is understood. [`Encoding::Json`] is kept
//! for `shoal bench store --compare-encoding`, which runs the same workload both ways.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The first byte of a binary encoding: 0xC1 is never used by MessagePack and cannot start
/// JSON text (nor UTF-8), so one byte tells the two apart.
pub const BINARY_TAG: u8 = 0xC1;

/// An encoding of log entries and peer messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// [`BINARY_TAG`] then MessagePack with named fields.
    #[default]
    Binary,
    /// JSON text (what every version before the binary encoding wrote).
    Json,
}

impl Encoding {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Binary => "binary",
            Encoding::Json => "json",
        }
    }
}

/// A value that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(String);

/// Encodes `v` in `encoding`.
pub fn encode<T: Serialize + ?Sized>(encoding: Encoding, v: &T) -> Result<Vec<u8>, CodecError> {
    match encoding {
        Encoding::Binary => {
            let mut out = vec![BINARY_TAG];
            rmp_serde::encode::write_named(&mut out, v)
                .map_err(|e| CodecError(format!("binary encoding: {e}")))?;
            Ok(out)
        }
        Encoding::Json => serde_json::to_vec(v).map_err(|e| CodecError(format!("JSON: {e}"))),
    }
}

/// The length `v` has in `encoding`, counted without keeping the encoding (`usize::MAX` for
/// a value that does not encode).
pub fn encoded_len<T: Serialize + ?Sized>(encoding: Encoding, v: &T) -> usize {
    /// An `io::Write` that only counts the bytes written to it.
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    let written = match encoding {
        Encoding::Binary => {
            counter.0 = 1;
            rmp_serde::encode::write_named(&mut counter, v).is_ok()
        }
        Encoding::Json => serde_json::to_writer(&mut counter, v).is_ok(),
    };
    if written {
        counter.0
    } else {
        usize::MAX
    }
}

/// Decodes `bytes` in whichever encoding they are.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        Some((&BINARY_TAG, rest)) => {
            rmp_serde::from_slice(rest).map_err(|e| CodecError(format!("binary encoding: {e}")))
        }
        _ => serde_json::from_slice(bytes).map_err(|e| CodecError(format!("JSON: {e}"))),
    }
}

/// The encoding `bytes` are in.
pub fn encoding_of(bytes: &[u8]) -> Encoding {
    match bytes.first() {
        Some(&BINARY_TAG) => Encoding::Binary,
        _ => Encoding::Json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Config, ConfigSpec, Meta, Object};

    fn config(data: &[u8]) -> Object {
        Object::Config(Config {
            meta: Meta::with_id("c1"),
            spec: ConfigSpec {
                name: "app.conf".into(),
                data: data.to_vec(),
                labels: [("a".to_string(), "b".to_string())].into(),
                ..Default::default()
            },
        })
    }

    #[test]
    fn both_encodings_decode_to_the_same_value() {
        let object = config(b"\x00\xffbytes");
        for encoding in [Encoding::Binary, Encoding::Json] {
            let bytes = encode(encoding, &object).unwrap();
            assert_eq!(encoding_of(&bytes), encoding);
            let back: Object = decode(&bytes).unwrap();
            assert_eq!(back, object, "{encoding:?}");
        }
    }

    #[test]
    fn binary_carries_bytes_as_they_are_and_is_smaller() {
        let object = config(&[7u8; 3000]);
        let binary = encode(Encoding::Binary, &object).unwrap();
        let json = encode(Encoding::Json, &object).unwrap();
        // Base64 makes 4 bytes of 3 in JSON; the binary form adds a few bytes of framing.
        assert!(binary.len() < 3000 + 200, "{}", binary.len());
        assert!(json.len() > 4000, "{}", json.len());
    }

    #[test]
    fn the_counted_length_is_the_encoded_length() {
        let object = config(&[1u8; 500]);
        for encoding in [Encoding::Binary, Encoding::Json] {
            assert_eq!(
                encoded_len(encoding, &object),
                encode(encoding, &object).unwrap().len()
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<Object>(&[BINARY_TAG, 0xff, 0x00]).is_err());
        assert!(decode::<Object>(b"{").is_err());
        assert!(decode::<Object>(&[]).is_err());
    }
}
