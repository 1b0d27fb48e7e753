//! WebSocket authentication (`--ws-auth`, spec section 1.3): capability tokens
//! and HS256 bearer JWTs, every 401 body, and every flag error.

mod common;

use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-secret";

/// Attempts an upgrade with the given `Authorization` header. Returns the HTTP
/// status and body; on 101 it also checks that the connection serves JSON-RPC.
async fn upgrade(url: &str, authorization: Option<&str>) -> (u16, String) {
    let mut request = url.into_client_request().expect("request");
    if let Some(value) = authorization {
        request.headers_mut().insert("authorization", HeaderValue::from_str(value).expect("header"));
    }
    match within("upgrade", tokio_tungstenite::connect_async(request)).await {
        Ok((ws, response)) => {
            drop(ws);
            let mut c = Client::websocket_authorized(url, authorization).await;
            c.handshake().await;
            assert_eq!(c.ok("environment/status", json!({})).await, json!({"status": "ready"}));
            (response.status().as_u16(), String::new())
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned());
            assert_eq!(content_type.as_deref(), Some("text/plain; charset=utf-8"));
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).expect("utf-8 body");
            (response.status().as_u16(), body)
        }
        Err(e) => panic!("unexpected upgrade error: {e}"),
    }
}

fn temp_file(name: &str, contents: &[u8]) -> String {
    let dir = temp_dir(&format!("auth-{name}"));
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write");
    path.to_string_lossy().into_owned()
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

fn jwt(alg: Algorithm, secret: &[u8], claims: Value) -> String {
    encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret)).expect("encode")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn capability_token_from_a_file_is_trimmed_and_required_on_upgrades() {
    let file = temp_file("token", b"  s3cret-token\n");
    let server = Server::start(&["--ws-auth", "capability-token", "--ws-token-file", &file]);
    let url = server.url.clone();
    assert_eq!(upgrade(&url, None).await, (401, "missing websocket bearer token".into()));
    for bad in ["Basic s3cret-token", "Bearer", "Bearers3cret-token", "s3cret-token"] {
        assert_eq!(upgrade(&url, Some(bad)).await, (401, "invalid authorization header".into()), "{bad}");
    }
    for wrong in ["Bearer s3cret", "Bearer s3cret-token-2", "Bearer S3CRET-TOKEN"] {
        assert_eq!(upgrade(&url, Some(wrong)).await, (401, "invalid websocket bearer token".into()), "{wrong}");
    }
    for good in ["Bearer s3cret-token", "bearer s3cret-token", "BEARER    s3cret-token  "] {
        assert_eq!(upgrade(&url, Some(good)).await.0, 101, "{good}");
    }
}

#[tokio::test]
async fn capability_token_by_sha256_digest() {
    let out = Command::new("sh").args(["-c", "printf tok123 | sha256sum"]).output().expect("sha256sum");
    let digest = String::from_utf8(out.stdout).expect("utf-8")[..64].to_owned();
    let server = Server::start(&["--ws-auth", "capability-token", "--ws-token-sha256", &digest]);
    assert_eq!(upgrade(&server.url, Some("Bearer tok123")).await.0, 101);
    assert_eq!(upgrade(&server.url, Some("Bearer tok1234")).await, (401, "invalid websocket bearer token".into()));
}

#[tokio::test]
async fn plain_http_is_not_authenticated() {
    let file = temp_file("token2", b"t");
    let server = Server::start(&["--ws-auth", "capability-token", "--ws-token-file", &file]);
    let addr = server.addr();
    let get = |path: &'static str| {
        let addr = addr.clone();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.expect("write");
            let mut out = String::new();
            s.read_to_string(&mut out).await.expect("read");
            out
        }
    };
    assert!(within("readyz", get("/readyz")).await.starts_with("HTTP/1.1 200"));
    assert!(within("404", get("/nope")).await.starts_with("HTTP/1.1 404"));
    let root = within("root", get("/")).await;
    assert!(root.starts_with("HTTP/1.1 400"), "{root}");
    assert!(root.ends_with("Connection header did not include 'upgrade'"), "{root}");
}

#[tokio::test]
async fn signed_bearer_tokens() {
    let secret = temp_file("secret", SECRET);
    let server = Server::start(&["--ws-auth", "signed-bearer-token", "--ws-shared-secret-file", &secret]);
    let url = server.url.clone();
    let t = now();
    let ok = |claims: Value| jwt(Algorithm::HS256, SECRET, claims);
    assert_eq!(upgrade(&url, Some(&bearer(&ok(json!({"exp": t + 60}))))).await.0, 101);
    // Within the default 30 s skew, and just beyond it.
    assert_eq!(upgrade(&url, Some(&bearer(&ok(json!({"exp": t - 20}))))).await.0, 101);
    assert_eq!(upgrade(&url, Some(&bearer(&ok(json!({"exp": t - 40}))))).await, (401, "expired websocket jwt".into()));
    assert_eq!(
        upgrade(&url, Some(&bearer(&ok(json!({"exp": t + 60, "nbf": t + 50}))))).await,
        (401, "websocket jwt is not valid yet".into())
    );
    assert_eq!(upgrade(&url, Some(&bearer(&ok(json!({"exp": t + 60, "nbf": t + 10}))))).await.0, 101);
    // Claims other than exp/nbf are ignored when iss/aud are not configured.
    assert_eq!(upgrade(&url, Some(&bearer(&ok(json!({"exp": t + 60, "iss": "x", "aud": "y"}))))).await.0, 101);
    let invalid = [
        ok(json!({"sub": "no exp"})),
        ok(json!({"exp": (t + 60) as f64 + 0.5})),
        ok(json!({"exp": "soon"})),
        jwt(Algorithm::HS384, SECRET, json!({"exp": t + 60})),
        jwt(Algorithm::HS512, SECRET, json!({"exp": t + 60})),
        jwt(Algorithm::HS256, b"another secret of at least 32 bytes!!", json!({"exp": t + 60})),
        "not.a.jwt".to_owned(),
        // alg "none": header {"alg":"none","typ":"JWT"}, claims {"exp": far future}, no signature.
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjQxMDI0NDQ4MDB9.".to_owned(),
    ];
    for token in invalid {
        assert_eq!(upgrade(&url, Some(&bearer(&token))).await, (401, "invalid websocket jwt".into()), "{token}");
    }
}

#[tokio::test]
async fn signed_bearer_issuer_audience_and_skew() {
    let secret = temp_file("secret2", SECRET);
    let args = [
        "--ws-auth",
        "signed-bearer-token",
        "--ws-shared-secret-file",
        &secret,
        "--ws-issuer",
        "me",
        "--ws-audience",
        "execd",
        "--ws-max-clock-skew-seconds",
        "5",
    ];
    let server = Server::start(&args);
    let url = server.url.clone();
    let t = now();
    let tok = |claims: Value| bearer(&jwt(Algorithm::HS256, SECRET, claims));
    assert_eq!(upgrade(&url, Some(&tok(json!({"exp": t + 60, "iss": "me", "aud": "execd"})))).await.0, 101);
    assert_eq!(upgrade(&url, Some(&tok(json!({"exp": t + 60, "iss": "me", "aud": ["x", "execd"]})))).await.0, 101);
    let cases = [
        (json!({"exp": t + 60, "iss": "you", "aud": "execd"}), "websocket jwt issuer mismatch"),
        (json!({"exp": t + 60, "aud": "execd"}), "websocket jwt issuer mismatch"),
        (json!({"exp": t + 60, "iss": "me", "aud": "other"}), "websocket jwt audience mismatch"),
        (json!({"exp": t + 60, "iss": "me", "aud": ["a", "b"]}), "websocket jwt audience mismatch"),
        (json!({"exp": t + 60, "iss": "me"}), "websocket jwt audience mismatch"),
        (json!({"exp": t - 20, "iss": "me", "aud": "execd"}), "expired websocket jwt"),
    ];
    for (claims, body) in cases {
        assert_eq!(upgrade(&url, Some(&tok(claims.clone()))).await, (401, body.into()), "{claims}");
    }
}

/// Runs `execd serve ARGS` expecting a start-up failure; returns stderr.
fn serve_fails(args: &[&str]) -> String {
    let out = Command::new(execd_bin()).arg("serve").args(args).env("RUST_LOG", "off").output().expect("run execd");
    assert!(!out.status.success(), "execd serve {args:?} should fail");
    String::from_utf8(out.stderr).expect("utf-8")
}

#[test]
fn flag_errors() {
    let token = temp_file("flagtoken", b"t");
    let short = temp_file("short", b"too short");
    let secret = temp_file("flagsecret", SECRET);
    let ws = ["--listen", "ws://127.0.0.1:0"];
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--ws-token-file", &token],
            "websocket auth flags require `--ws-auth capability-token` or `--ws-auth signed-bearer-token`".into(),
        ),
        (vec!["--ws-issuer", "x"], "websocket auth flags require `--ws-auth capability-token` or `--ws-auth signed-bearer-token`".into()),
        (
            vec!["--ws-auth", "capability-token"],
            "`--ws-token-file` or `--ws-token-sha256` is required when `--ws-auth capability-token` is set".into(),
        ),
        (
            vec!["--ws-auth", "capability-token", "--ws-token-file", &token, "--ws-token-sha256", "aa"],
            "`--ws-token-file` and `--ws-token-sha256` are mutually exclusive".into(),
        ),
        (
            vec!["--ws-auth", "capability-token", "--ws-token-sha256", "xyz"],
            "--ws-token-sha256 must be a 64-character hex SHA-256 digest".into(),
        ),
        (
            vec!["--ws-auth", "capability-token", "--ws-token-file", "/nonexistent/token"],
            "failed to read websocket auth secret /nonexistent/token: No such file or directory (os error 2)".into(),
        ),
        (
            vec!["--ws-auth", "capability-token", "--ws-token-file", &token, "--ws-issuer", "x"],
            "`--ws-shared-secret-file`, `--ws-issuer`, `--ws-audience`, and `--ws-max-clock-skew-seconds` require `--ws-auth signed-bearer-token`".into(),
        ),
        (
            vec!["--ws-auth", "signed-bearer-token"],
            "`--ws-shared-secret-file` is required when `--ws-auth signed-bearer-token` is set".into(),
        ),
        (
            vec!["--ws-auth", "signed-bearer-token", "--ws-shared-secret-file", &short],
            format!("signed websocket bearer secret {short} must be at least 32 bytes"),
        ),
        (
            vec!["--ws-auth", "signed-bearer-token", "--ws-shared-secret-file", &secret, "--ws-token-file", &token],
            "`--ws-token-file` and `--ws-token-sha256` require `--ws-auth capability-token`, not `signed-bearer-token`".into(),
        ),
    ];
    for (args, message) in cases {
        let all: Vec<&str> = ws.iter().copied().chain(args.iter().copied()).collect();
        let stderr = serve_fails(&all);
        assert!(stderr.contains(&format!("Error: {message}")), "{args:?}: {stderr}");
    }
    let stderr = serve_fails(&["--listen", "stdio", "--ws-auth", "capability-token", "--ws-token-file", &token]);
    assert!(stderr.contains("Error: WebSocket auth requires a WebSocket listener, not stdio"), "{stderr}");
}
