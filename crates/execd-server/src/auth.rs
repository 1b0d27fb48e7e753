//! WebSocket authentication (`--ws-auth`): a bearer token checked on every
//! WebSocket upgrade. Two modes, as in the reference:
//!
//! - `capability-token`: the token's SHA-256 must equal the configured digest
//!   (from `--ws-token-sha256`, or of the trimmed contents of `--ws-token-file`);
//! - `signed-bearer-token`: an HS256 JWT signed with the shared secret, with a
//!   required `exp`, an honoured `nbf`, and `iss`/`aud` checked when configured,
//!   all within a clock skew.
//!
//! Plain HTTP requests (`/readyz`, 404s) are never authenticated.

use axum::http::HeaderValue;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// The `--ws-*` command-line flags, before validation.
#[derive(Clone, Debug, Default)]
pub struct WsAuthArgs {
    /// `--ws-auth`: `capability-token` or `signed-bearer-token`.
    pub mode: Option<String>,
    /// `--ws-token-file`.
    pub token_file: Option<PathBuf>,
    /// `--ws-token-sha256`.
    pub token_sha256: Option<String>,
    /// `--ws-shared-secret-file`.
    pub shared_secret_file: Option<PathBuf>,
    /// `--ws-issuer`.
    pub issuer: Option<String>,
    /// `--ws-audience`.
    pub audience: Option<String>,
    /// `--ws-max-clock-skew-seconds` (default 30).
    pub max_clock_skew_seconds: Option<u64>,
}

/// A configured authentication mode.
#[derive(Clone)]
pub enum WsAuth {
    /// The SHA-256 of the accepted token.
    CapabilityToken {
        /// The digest.
        sha256: [u8; 32],
    },
    /// HS256 JWTs signed with a shared secret.
    SignedBearer {
        /// The key.
        key: DecodingKey,
        /// The checks.
        validation: Box<Validation>,
    },
}

/// Why an upgrade was refused (401); the text is the response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing websocket bearer token")]
    Missing,
    /// Not `Bearer <token>`.
    #[error("invalid authorization header")]
    InvalidHeader,
    /// A capability token that does not match.
    #[error("invalid websocket bearer token")]
    InvalidToken,
    /// A malformed JWT, a bad signature, another algorithm, no integer `exp`.
    #[error("invalid websocket jwt")]
    InvalidJwt,
    /// `exp` is past (beyond the skew).
    #[error("expired websocket jwt")]
    Expired,
    /// `nbf` is ahead (beyond the skew).
    #[error("websocket jwt is not valid yet")]
    NotYetValid,
    /// `iss` missing or different.
    #[error("websocket jwt issuer mismatch")]
    IssuerMismatch,
    /// `aud` missing or not containing the audience.
    #[error("websocket jwt audience mismatch")]
    AudienceMismatch,
}

const SIGNED_ONLY_FLAGS: &str =
    "`--ws-shared-secret-file`, `--ws-issuer`, `--ws-audience`, and `--ws-max-clock-skew-seconds` require `--ws-auth signed-bearer-token`";
const TOKEN_FLAGS_NEED_CAPABILITY: &str =
    "`--ws-token-file` and `--ws-token-sha256` require `--ws-auth capability-token`, not `signed-bearer-token`";

impl WsAuth {
    /// Validates the flags (`stdio`: whether the listener is stdio) and reads
    /// the token or secret file. `Ok(None)` when authentication is off.
    pub fn from_args(args: &WsAuthArgs, stdio: bool) -> Result<Option<WsAuth>, String> {
        let token_flags = args.token_file.is_some() || args.token_sha256.is_some();
        let signed_flags = args.shared_secret_file.is_some()
            || args.issuer.is_some()
            || args.audience.is_some()
            || args.max_clock_skew_seconds.is_some();
        let Some(mode) = args.mode.as_deref() else {
            if token_flags || signed_flags {
                return Err(
                    "websocket auth flags require `--ws-auth capability-token` or `--ws-auth signed-bearer-token`"
                        .into(),
                );
            }
            return Ok(None);
        };
        if stdio {
            return Err("WebSocket auth requires a WebSocket listener, not stdio".into());
        }
        match mode {
            "capability-token" => {
                if signed_flags {
                    return Err(SIGNED_ONLY_FLAGS.into());
                }
                let sha256 = match (&args.token_file, &args.token_sha256) {
                    (Some(_), Some(_)) => {
                        return Err("`--ws-token-file` and `--ws-token-sha256` are mutually exclusive".into())
                    }
                    (None, None) => return Err(
                        "`--ws-token-file` or `--ws-token-sha256` is required when `--ws-auth capability-token` is set"
                            .into(),
                    ),
                    (Some(file), None) => {
                        let token = read_secret(file)?;
                        Sha256::digest(String::from_utf8_lossy(&token).trim().as_bytes()).into()
                    }
                    (None, Some(hex)) => parse_sha256(hex)?,
                };
                Ok(Some(WsAuth::CapabilityToken { sha256 }))
            }
            "signed-bearer-token" => {
                if token_flags {
                    return Err(TOKEN_FLAGS_NEED_CAPABILITY.into());
                }
                let file = args.shared_secret_file.as_ref().ok_or(
                    "`--ws-shared-secret-file` is required when `--ws-auth signed-bearer-token` is set".to_owned(),
                )?;
                let secret = read_secret(file)?;
                if secret.len() < 32 {
                    return Err(format!("signed websocket bearer secret {} must be at least 32 bytes", file.display()));
                }
                let mut validation = Validation::new(Algorithm::HS256);
                validation.leeway = args.max_clock_skew_seconds.unwrap_or(30);
                validation.validate_nbf = true;
                // A configured issuer or audience must be present, not just match when present.
                let mut required = vec!["exp"];
                if let Some(issuer) = &args.issuer {
                    validation.set_issuer(&[issuer]);
                    required.push("iss");
                }
                match &args.audience {
                    Some(audience) => {
                        validation.set_audience(&[audience]);
                        required.push("aud");
                    }
                    None => validation.validate_aud = false,
                }
                validation.set_required_spec_claims(&required);
                Ok(Some(WsAuth::SignedBearer {
                    key: DecodingKey::from_secret(&secret),
                    validation: Box::new(validation),
                }))
            }
            other => {
                Err(format!("invalid --ws-auth value `{other}`; expected `capability-token` or `signed-bearer-token`"))
            }
        }
    }

    /// Checks the `Authorization` header of an upgrade request.
    pub fn check(&self, header: Option<&HeaderValue>) -> Result<(), AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = bearer_token(header).ok_or(AuthError::InvalidHeader)?;
        match self {
            WsAuth::CapabilityToken { sha256 } => {
                let got: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                // Compare digests without an early exit.
                let diff = got.iter().zip(sha256).fold(0u8, |acc, (a, b)| acc | (a ^ b));
                if diff == 0 {
                    Ok(())
                } else {
                    Err(AuthError::InvalidToken)
                }
            }
            WsAuth::SignedBearer { key, validation } => {
                let claims =
                    jsonwebtoken::decode::<serde_json::Value>(token, key, validation).map_err(|e| match e.kind() {
                        ErrorKind::ExpiredSignature => AuthError::Expired,
                        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                        ErrorKind::InvalidIssuer => AuthError::IssuerMismatch,
                        ErrorKind::InvalidAudience => AuthError::AudienceMismatch,
                        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::IssuerMismatch,
                        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => AuthError::AudienceMismatch,
                        _ => AuthError::InvalidJwt,
                    })?;
                // `exp` must be whole seconds (the library also accepts fractions).
                let exp = &claims.claims["exp"];
                if exp.is_u64() || exp.is_i64() {
                    Ok(())
                } else {
                    Err(AuthError::InvalidJwt)
                }
            }
        }
    }
}

/// `Bearer <token>`: the scheme is case-insensitive, spaces around the token are ignored.
fn bearer_token(header: &HeaderValue) -> Option<&str> {
    let value = header.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn read_secret(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("failed to read websocket auth secret {}: {e}", path.display()))
}

fn parse_sha256(hex: &str) -> Result<[u8; 32], String> {
    let invalid = || "--ws-token-sha256 must be a 64-character hex SHA-256 digest".to_owned();
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(invalid());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_forms() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(bearer_token(&h("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&h("bEaReR    abc  ")), Some("abc"));
        assert_eq!(bearer_token(&h("Bearer")), None);
        assert_eq!(bearer_token(&h("Bearerabc")), None);
        assert_eq!(bearer_token(&h("Basic abc")), None);
    }

    #[test]
    fn sha256_flag_is_64_hex_digits() {
        assert!(parse_sha256(&"ab".repeat(32)).is_ok());
        assert_eq!(parse_sha256("xyz").unwrap_err(), "--ws-token-sha256 must be a 64-character hex SHA-256 digest");
        assert!(parse_sha256(&"zz".repeat(32)).is_err());
        assert!(parse_sha256(&"é".repeat(32)).is_err());
    }
}
