//! Byte payloads on the wire: standard base64 with padding (RFC 4648 section 4).

use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes that travel as a standard, padded base64 string.
///
/// Serializing streams the encoding straight into the output (no intermediate
/// string), so large chunks cost one pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Base64Bytes(pub Bytes);

impl Base64Bytes {
    /// Decodes a base64 string; the error text is the decoder's, e.g. `Invalid symbol 33, offset 0.`
    pub fn decode(text: &str) -> Result<Self, base64::DecodeError> {
        STANDARD.decode(text).map(|v| Base64Bytes(Bytes::from(v)))
    }
}

impl From<Bytes> for Base64Bytes {
    fn from(b: Bytes) -> Self {
        Base64Bytes(b)
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&Base64Display::new(&self.0, &STANDARD))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Base64Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Base64Bytes, E> {
                Base64Bytes::decode(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let b = Base64Bytes(Bytes::from_static(b"hi\n"));
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"aGkK\"");
        let back: Base64Bytes = serde_json::from_str("\"aGkK\"").unwrap();
        assert_eq!(back, b);
        let err = serde_json::from_str::<Base64Bytes>("\"!!\"").unwrap_err().to_string();
        assert!(err.starts_with("Invalid symbol 33, offset 0."), "{err}");
        assert!(serde_json::from_str::<Base64Bytes>("\"aGk\"").is_err(), "padding is mandatory");
        let empty: Base64Bytes = serde_json::from_str("\"\"").unwrap();
        assert!(empty.0.is_empty());
    }
}
