//! The JSON-RPC envelope as the exec-server dialect uses it: JSON-RPC 2.0 in shape,
//! but no `jsonrpc` member is ever written (it is accepted and ignored when read).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A request id: a signed 64-bit integer or a string, echoed back verbatim.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// An integer id in the i64 range.
    Integer(i64),
    /// A string id (the empty string is allowed).
    String(String),
}

impl RequestId {
    /// The id used to answer a message that could not be parsed.
    pub const PARSE_ERROR: RequestId = RequestId::Integer(-1);
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Integer(i) => write!(f, "{i}"),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// JSON-RPC error codes used by the dialect.
pub mod codes {
    /// Invalid request or state (handshake gate, unknown ids, parse errors).
    pub const INVALID_REQUEST: i64 = -32600;
    /// Unknown request method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Parameters that do not decode or validate.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal or operating-system error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// A file or handle that does not exist.
    pub const NOT_FOUND: i64 = -32004;
    /// A session already attached to another connection.
    pub const SESSION_BUSY: i64 = -32010;
    /// Too many pending requests on the connection; retry later (execd).
    pub const OVERLOADED: i64 = -32001;
}

/// The `error` member of an error response. No `data` member is ever written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// One of [`codes`].
    pub code: i64,
    /// Human-readable text.
    pub message: String,
}

/// One incoming message, classified. Borrows from the text it was parsed from.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// `id` + `method`.
    Request {
        /// The request id.
        id: RequestId,
        /// The method name.
        method: Cow<'a, str>,
        /// The raw params, `None` when absent or `null`.
        params: Option<&'a RawValue>,
    },
    /// `method` without `id`.
    Notification {
        /// The method name.
        method: Cow<'a, str>,
        /// The raw params, `None` when absent or `null`.
        params: Option<&'a RawValue>,
    },
    /// `id` + `result`: a response from the client.
    Response {
        /// The id it answers.
        id: RequestId,
        /// The raw result.
        result: &'a RawValue,
    },
    /// `id` + `error`: an error response from the client.
    Error {
        /// The id it answers.
        id: RequestId,
        /// The error.
        error: ErrorObject,
    },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, deserialize_with = "present_id")]
    id: Option<RequestId>,
    #[serde(default, borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

/// A present `id` must be a valid id: `null` is an error, not "absent".
fn present_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RequestId>, D::Error> {
    RequestId::deserialize(d).map(Some)
}

/// Why an incoming message could not be parsed; its `Display` is the detail text.
#[derive(Debug)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

impl<'a> Incoming<'a> {
    /// Parses and classifies one message (one WebSocket message or one stdio line).
    pub fn parse(bytes: &'a [u8]) -> Result<Incoming<'a>, ParseError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            // Distinguish "not JSON" from "JSON, but not an object".
            return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Err(e) => ParseError(e.to_string()),
                Ok(_) => ParseError("expected a JSON-RPC object".into()),
            });
        }
        let env: Envelope<'a> = serde_json::from_slice(bytes).map_err(|e| {
            // Syntax errors name their position; errors about the data do not.
            ParseError(if e.is_data() { strip_position(&e) } else { e.to_string() })
        })?;
        // A literal `null` params member is the same as an absent one.
        let params = env.params.filter(|p| p.get() != "null");
        Ok(match (env.id, env.method, env.result, env.error) {
            (Some(id), Some(method), _, _) => Incoming::Request { id, method, params },
            (None, Some(method), _, _) => Incoming::Notification { method, params },
            (Some(id), None, Some(result), _) => Incoming::Response { id, result },
            (Some(id), None, None, Some(error)) => Incoming::Error { id, error },
            _ => return Err(ParseError("missing field `error`".into())),
        })
    }
}

/// A success response: `{"id":…,"result":…}` (id first).
#[derive(Serialize)]
pub struct ResponseOut<'a, T: Serialize> {
    /// The id being answered.
    pub id: &'a RequestId,
    /// The result.
    pub result: &'a T,
}

/// An error response: `{"error":{…},"id":…}` (error first).
#[derive(Serialize)]
pub struct ErrorOut<'a> {
    /// The error.
    pub error: &'a ErrorObject,
    /// The id being answered.
    pub id: &'a RequestId,
}

/// A notification: `{"method":…,"params":…}`.
#[derive(Serialize)]
pub struct NotificationOut<'a, T: Serialize> {
    /// The notification method name.
    pub method: &'a str,
    /// The params.
    pub params: &'a T,
}

/// Serializes a success response to its wire text.
pub fn response_text<T: Serialize>(id: &RequestId, result: &T) -> String {
    to_text(&ResponseOut { id, result })
}

/// Serializes an error response to its wire text.
pub fn error_text(id: &RequestId, error: &ErrorObject) -> String {
    to_text(&ErrorOut { error, id })
}

/// Serializes a notification to its wire text.
pub fn notification_text<N: crate::Notification>(params: &N::Params) -> String {
    to_text(&NotificationOut { method: N::NAME, params })
}

fn to_text<T: Serialize>(value: &T) -> String {
    // Serializing plain data structs to a String cannot fail: every map key is a string.
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":{{\"code\":-32603,\"message\":\"{e}\"}}}}"))
}

/// The error's text without the ` at line L column C` suffix.
pub fn serde_message(err: &serde_json::Error) -> String {
    strip_position(err)
}

fn strip_position(err: &serde_json::Error) -> String {
    let mut text = err.to_string();
    if err.line() != 0 {
        if let Some(pos) = text.rfind(" at line ") {
            text.truncate(pos);
        }
    }
    text
}

/// Turns a serde error about `params` into the text the reference server reports:
/// no ` at line L column C` suffix, and numbers named the way its decoder names them
/// (`invalid type: number, …`, `invalid number` for out-of-range integers).
pub fn params_error_message(err: &serde_json::Error) -> String {
    let text = strip_position(err);
    if let Some(rest) = text.strip_prefix("invalid type: ") {
        for kind in ["integer `", "floating point `"] {
            if let Some(after) = rest.strip_prefix(kind) {
                if let Some(end) = after.find('`') {
                    return format!("invalid type: number{}", &after[end + 1..]);
                }
            }
        }
    }
    if text.starts_with("invalid value: integer `") || text.starts_with("invalid value: floating point `") {
        return "invalid number".into();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(s: &str) -> String {
        Incoming::parse(s.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn classifies_messages() {
        match Incoming::parse(br#"{"jsonrpc":"2.0","id":"","method":"m","params":null}"#).unwrap() {
            Incoming::Request { id, method, params } => {
                assert_eq!(id, RequestId::String(String::new()));
                assert_eq!(method, "m");
                assert!(params.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(Incoming::parse(br#"{"method":"initialized"}"#).unwrap(), Incoming::Notification { .. }));
        assert!(matches!(Incoming::parse(br#"{"id":1,"result":{}}"#).unwrap(), Incoming::Response { .. }));
        assert!(matches!(
            Incoming::parse(br#"{"id":1,"error":{"code":1,"message":"x"}}"#).unwrap(),
            Incoming::Error { .. }
        ));
        match Incoming::parse(br#"{"id":-9223372036854775808,"method":"m"}"#).unwrap() {
            Incoming::Request { id, .. } => assert_eq!(id, RequestId::Integer(i64::MIN)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parse_errors_match_reference_wording() {
        assert_eq!(parse_err("[]"), "expected a JSON-RPC object");
        assert_eq!(parse_err("5"), "expected a JSON-RPC object");
        assert_eq!(parse_err("{not json"), "key must be a string at line 1 column 2");
        assert_eq!(parse_err(r#"{"id":1}"#), "missing field `error`");
        assert_eq!(parse_err("{}"), "missing field `error`");
        for bad in ["null", "1.5", "1e3", "true", "9223372036854775808"] {
            let text = format!(r#"{{"id":{bad},"method":"x"}}"#);
            assert_eq!(parse_err(&text), "data did not match any variant of untagged enum RequestId", "{bad}");
        }
    }

    #[test]
    fn writes_envelopes_in_reference_member_order() {
        let id = RequestId::Integer(7);
        assert_eq!(response_text(&id, &crate::EmptyResult {}), r#"{"id":7,"result":{}}"#);
        let e = ErrorObject { code: codes::METHOD_NOT_FOUND, message: "m".into() };
        assert_eq!(
            error_text(&RequestId::String("a".into()), &e),
            r#"{"error":{"code":-32601,"message":"m"},"id":"a"}"#
        );
    }

    #[test]
    fn params_errors_are_normalized() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct P {
            a: String,
            b: Option<u64>,
        }
        let msg = |s: &str| params_error_message(&serde_json::from_str::<P>(s).unwrap_err());
        assert_eq!(msg("null"), "invalid type: null, expected struct P");
        assert_eq!(msg(r#"{"b":1}"#), "missing field `a`");
        assert_eq!(msg(r#"{"a":5}"#), "invalid type: number, expected a string");
        assert_eq!(msg(r#"{"a":"x","b":-1}"#), "invalid number");
        assert_eq!(
            params_error_message(&serde_json::from_str::<crate::NoParams>(r#"{"a":1}"#).unwrap_err()),
            "invalid type: map, expected unit"
        );
        assert_eq!(
            params_error_message(&serde_json::from_str::<crate::NoParams>("[]").unwrap_err()),
            "invalid type: sequence, expected unit"
        );
        assert_eq!(
            params_error_message(&serde_json::from_str::<crate::NoParams>("5").unwrap_err()),
            "invalid type: number, expected unit"
        );
    }
}
