//! The stdio transport: newline-delimited JSON on stdin and stdout. One
//! connection; when stdin closes its session ends and its processes are killed.

use crate::connection::{self, TransportInfo, OUTBOUND_QUEUE};
use crate::transport::ws::MAX_MESSAGE_BYTES;
use crate::ServerState;
use bytes::Bytes;
use futures_util::Stream;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;

/// Serves one connection over the given reader and writer (stdin and stdout in production).
pub async fn serve<R, W>(server: Arc<ServerState>, input: R, output: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (outbound, queue) = mpsc::channel(OUTBOUND_QUEUE);
    let writer = tokio::spawn(write_lines(output, queue));
    let transport =
        TransportInfo { parse_error_subject: "JSON-RPC message from exec-server stdio".into(), resumable: false };
    connection::run(server, Box::pin(lines(input)), outbound, transport).await;
    // Every queue sender is gone now; let the writer flush what was already answered.
    let _ = writer.await;
}

/// Complete, non-blank lines without their `\n` / `\r\n`. Ends at EOF, on a read
/// error, or at a line longer than the message limit.
fn lines<R: AsyncRead + Unpin + Send + 'static>(input: R) -> impl Stream<Item = Bytes> + Send {
    futures_util::stream::unfold(BufReader::with_capacity(64 << 10, input), |mut input| async move {
        loop {
            let mut line = Vec::new();
            let n = (&mut input).take(MAX_MESSAGE_BYTES as u64 + 2).read_until(b'\n', &mut line).await.ok()?;
            if n == 0 || line.last() != Some(&b'\n') {
                return None;
            }
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some((Bytes::from(line), input));
        }
    })
}

async fn write_lines<W: AsyncWrite + Unpin>(output: W, mut queue: mpsc::Receiver<String>) {
    let mut out = BufWriter::with_capacity(64 << 10, output);
    while let Some(text) = queue.recv().await {
        let mut next = Some(text);
        while let Some(text) = next {
            if out.write_all(text.as_bytes()).await.is_err() || out.write_all(b"\n").await.is_err() {
                return;
            }
            next = queue.try_recv().ok();
        }
        if out.flush().await.is_err() {
            return;
        }
    }
}
