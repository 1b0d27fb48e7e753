//! Wire types of the execd JSON-RPC protocol: the exec-server dialect, and the
//! app-server process dialect in [`app`].
//!
//! This crate is the single source of truth for what travels on the wire: the
//! JSON-RPC envelope ([`jsonrpc`]), byte payloads ([`Base64Bytes`]) and one type per
//! method tying its name, params and result together ([`Method`], [`Notification`]).
//! It has no runtime dependencies (no tokio) so that servers and clients share it.

pub mod app;
pub mod bytes64;
pub mod environment;
pub mod fs;
pub mod initialize;
pub mod jsonrpc;
pub mod process;

pub use bytes64::Base64Bytes;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A request method: its wire name, its params and its result.
pub trait Method {
    /// The JSON-RPC method name, e.g. `process/start`.
    const NAME: &'static str;
    /// The `params` member of the request.
    type Params: Serialize + DeserializeOwned + Send + 'static;
    /// The `result` member of a successful response.
    type Result: Serialize + DeserializeOwned + Send + 'static;
}

/// A notification method: its wire name and its params.
pub trait Notification {
    /// The JSON-RPC method name, e.g. `process/output`.
    const NAME: &'static str;
    /// The `params` member of the notification.
    type Params: Serialize + DeserializeOwned;
}

/// Params of methods that take none: accepts an absent member, `null` or `{}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoParams;

impl Serialize for NoParams {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> serde::Deserialize<'de> for NoParams {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NoParams;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("unit")
            }
            fn visit_unit<E>(self) -> Result<NoParams, E> {
                Ok(NoParams)
            }
            fn visit_none<E>(self) -> Result<NoParams, E> {
                Ok(NoParams)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<NoParams, A::Error> {
                match map.next_key::<serde::de::IgnoredAny>()? {
                    None => Ok(NoParams),
                    Some(_) => Err(serde::de::Error::invalid_type(serde::de::Unexpected::Map, &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The empty object `{}` used as a result by several methods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EmptyResult {}
