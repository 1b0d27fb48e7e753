//! A first end-to-end check of the harness and the server.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn start_example_from_the_spec() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    let r = c.start("p1", &["sh", "-c", "echo hi; echo err >&2; exit 3"], json!({})).await.unwrap();
    assert_eq!(r, json!({"processId": "p1", "sandboxType": "none"}));
    let run = c.events_until_closed("p1").await;
    assert_eq!(run.stdout, b"hi\n");
    assert_eq!(run.stderr, b"err\n");
    assert_eq!(run.exit_code, Some(3));
    assert_eq!(run.seqs(), vec![1, 2, 3, 4]);
    assert_eq!(run.events[2].1, "exited", "{:?}", run.events);
}

#[tokio::test]
async fn stdio_transport_serves_the_same_protocol() {
    let mut c = Client::stdio(&[]).await;
    c.handshake().await;
    c.start("p", &["echo", "hello"], json!({})).await.unwrap();
    let run = c.events_until_closed("p").await;
    assert_eq!(run.stdout, b"hello\n");
    assert_eq!(run.exit_code, Some(0));
}
