//! Wire types of the app-server process dialect: the handle-based `process/*`
//! API and the `command/exec*` family of the Codex app-server.
//!
//! The envelope is the same JSON-RPC shape as the exec-server dialect's, with
//! one addition: every server notification carries a top-level `emittedAtMs`.
//! Param struct names match the reference's, since they show in error texts
//! (``invalid length 0, expected struct ProcessSpawnParams with 10 elements``).

pub mod command;
pub mod initialize;
pub mod process;

use serde::{Deserialize, Deserializer, Serialize};

/// The JSON-RPC error message prefix for params that do not decode.
pub const INVALID_REQUEST_PREFIX: &str = "Invalid request: ";

/// A notification of this dialect: `{"method":…,"params":…,"emittedAtMs":…}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppNotificationOut<'a, T: Serialize> {
    /// The notification method name.
    pub method: &'a str,
    /// The params.
    pub params: &'a T,
    /// Unix time in milliseconds when the server emitted it.
    pub emitted_at_ms: u64,
}

/// Serializes a notification of this dialect to its wire text.
pub fn notification_text<N: crate::Notification>(params: &N::Params, emitted_at_ms: u64) -> String {
    serde_json::to_string(&AppNotificationOut { method: N::NAME, params, emitted_at_ms })
        .unwrap_or_else(|e| format!("{{\"method\":\"{}\",\"error\":\"{e}\"}}", N::NAME))
}

/// An output stream of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OutputStream {
    /// Standard output (all PTY output too).
    Stdout,
    /// Standard error.
    Stderr,
}

/// Deserializes a member that distinguishes absent (`None`, via `default`)
/// from `null` (`Some(None)`).
pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Renders an id as Rust `Debug` string syntax (`"a\u{1b}b"`), as `process/*` errors quote handles.
pub fn debug_quoted(id: &str) -> String {
    format!("{id:?}")
}

/// Renders an id as a JSON string (`"a\u001bb"`), as `command/exec*` errors quote ids.
pub fn json_quoted(id: &str) -> String {
    serde_json::to_string(id).unwrap_or_else(|_| format!("{id:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_quoted_per_family() {
        assert_eq!(debug_quoted("a\u{1b}b\u{2028}"), r#""a\u{1b}b\u{2028}""#);
        assert_eq!(json_quoted("a\u{1b}b\u{2028}"), "\"a\\u001bb\u{2028}\"");
        assert_eq!(debug_quoted(r#"q"\"#), r#""q\"\\""#);
        assert_eq!(json_quoted(r#"q"\"#), r#""q\"\\""#);
    }

    #[test]
    fn nullable_tells_null_from_absent() {
        #[derive(Deserialize)]
        struct P {
            #[serde(default, deserialize_with = "nullable")]
            cap: Option<Option<usize>>,
        }
        let cap = |s: &str| serde_json::from_str::<P>(s).map(|p| p.cap).map_err(|e| e.to_string());
        assert_eq!(cap("{}"), Ok(None));
        assert_eq!(cap(r#"{"cap":null}"#), Ok(Some(None)));
        assert_eq!(cap(r#"{"cap":3}"#), Ok(Some(Some(3))));
        assert!(cap(r#"{"cap":-1}"#).unwrap_err().starts_with("invalid value: integer `-1`, expected usize"));
    }
}

/// Wire text of an output-delta notification, built directly for the hot path.
/// Identical to serializing [`process::ProcessOutputDeltaNotification`] (or the
/// `command/exec` one) with [`notification_text`].
pub struct DeltaText {
    /// `process/outputDelta` or `command/exec/outputDelta`.
    pub method: &'static str,
    /// `processHandle` or `processId`.
    pub id_field: &'static str,
    /// The id as a JSON string literal.
    pub id_json: String,
}

impl DeltaText {
    /// The notification for one chunk.
    pub fn text(&self, stream: OutputStream, data: &[u8], cap_reached: bool, emitted_at_ms: u64) -> String {
        use std::fmt::Write;
        let b64 = base64_simd::STANDARD.encoded_length(data.len());
        let mut out = String::with_capacity(128 + self.id_json.len() + b64);
        let stream = match stream {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        };
        let _ = write!(
            out,
            r#"{{"method":"{}","params":{{"{}":{},"stream":"{stream}","deltaBase64":""#,
            self.method, self.id_field, self.id_json
        );
        base64_simd::STANDARD.encode_append(data, &mut out);
        let _ = write!(out, r#"","capReached":{cap_reached}}},"emittedAtMs":{emitted_at_ms}}}"#);
        out
    }
}

#[cfg(test)]
mod delta_tests {
    use super::*;
    use crate::app::command::{CommandExecOutputDelta, CommandExecOutputDeltaNotification};
    use crate::app::process::{ProcessOutputDelta, ProcessOutputDeltaNotification};
    use base64::Engine;

    #[test]
    fn fast_delta_text_matches_serde() {
        for (id, data, cap) in
            [("p1", &b"hi\n"[..], false), ("we\"ird\n\u{1b}", &[0u8, 255, 10][..], true), ("", &b""[..], true)]
        {
            let b64 = base64::engine::general_purpose::STANDARD.encode(data);
            let id_json = serde_json::to_string(id).unwrap();
            let process =
                DeltaText { method: "process/outputDelta", id_field: "processHandle", id_json: id_json.clone() };
            let expected = notification_text::<ProcessOutputDelta>(
                &ProcessOutputDeltaNotification {
                    process_handle: id.into(),
                    stream: OutputStream::Stderr,
                    delta_base64: b64.clone(),
                    cap_reached: cap,
                },
                17,
            );
            assert_eq!(process.text(OutputStream::Stderr, data, cap, 17), expected);
            let command = DeltaText { method: "command/exec/outputDelta", id_field: "processId", id_json };
            let expected = notification_text::<CommandExecOutputDelta>(
                &CommandExecOutputDeltaNotification {
                    process_id: id.into(),
                    stream: OutputStream::Stdout,
                    delta_base64: b64,
                    cap_reached: cap,
                },
                5,
            );
            assert_eq!(command.text(OutputStream::Stdout, data, cap, 5), expected);
        }
    }
}

/// An absolute path, with `.` and `..` segments resolved lexically. A relative
/// path does not decode (the reference's wording of that error is kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbsolutePath(pub std::path::PathBuf);

impl Serialize for AbsolutePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for AbsolutePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use std::path::{Component, PathBuf};
        let raw = PathBuf::deserialize(d)?;
        if !raw.is_absolute() {
            return Err(serde::de::Error::custom("AbsolutePathBuf deserialized without a base path"));
        }
        let mut path = PathBuf::new();
        for part in raw.components() {
            match part {
                Component::ParentDir => {
                    path.pop();
                }
                Component::CurDir => {}
                other => path.push(other),
            }
        }
        Ok(AbsolutePath(path))
    }
}

#[cfg(test)]
mod path_tests {
    use super::AbsolutePath;

    #[test]
    fn absolute_paths_are_normalized_and_relative_ones_refused() {
        let p = |s: &str| serde_json::from_str::<AbsolutePath>(s).map(|p| p.0).map_err(|e| e.to_string());
        assert_eq!(p(r#""/tmp/./a/../b""#), Ok("/tmp/b".into()));
        assert_eq!(p(r#""/..""#), Ok("/".into()));
        assert!(p(r#""rel/x""#).unwrap_err().starts_with("AbsolutePathBuf deserialized without a base path"));
    }
}
