//! Retention of recent output: a byte-bounded ring of whole chunks.

use crate::StreamKind;
use bytes::Bytes;
use std::collections::VecDeque;

/// One retained chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetainedChunk {
    /// The chunk's sequence number.
    pub seq: u64,
    /// Its stream.
    pub stream: StreamKind,
    /// Its bytes.
    pub data: Bytes,
}

/// The most recent output chunks within a byte budget. The oldest chunks are
/// evicted whole; the newest chunk is always kept, whatever its size.
#[derive(Debug)]
pub struct OutputRing {
    chunks: VecDeque<RetainedChunk>,
    bytes: usize,
    capacity: usize,
    evicted_bytes: u64,
    /// The seq of the newest evicted chunk (0: none yet).
    last_evicted_seq: u64,
}

impl OutputRing {
    /// An empty ring that keeps at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        OutputRing { chunks: VecDeque::new(), bytes: 0, capacity, evicted_bytes: 0, last_evicted_seq: 0 }
    }

    /// Appends a chunk (seqs must ascend) and evicts the oldest chunks over budget.
    pub fn push(&mut self, chunk: RetainedChunk) {
        debug_assert!(self.chunks.back().is_none_or(|last| last.seq < chunk.seq));
        self.bytes += chunk.data.len();
        self.chunks.push_back(chunk);
        while self.bytes > self.capacity && self.chunks.len() > 1 {
            if let Some(old) = self.chunks.pop_front() {
                self.bytes -= old.data.len();
                self.evicted_bytes += old.data.len() as u64;
                self.last_evicted_seq = old.seq;
            }
        }
    }

    /// Retained chunks with `seq > after`, ascending.
    pub fn after(&self, after: u64) -> impl Iterator<Item = &RetainedChunk> {
        let start = self.chunks.partition_point(|c| c.seq <= after);
        self.chunks.range(start..)
    }

    /// The seq of the oldest retained chunk.
    pub fn first_seq(&self) -> Option<u64> {
        self.chunks.front().map(|c| c.seq)
    }

    /// Bytes currently retained.
    pub fn retained_bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes evicted so far.
    pub fn evicted_bytes(&self) -> u64 {
        self.evicted_bytes
    }

    /// Whether a chunk with `seq > after` was evicted: reading after `after` has a gap.
    pub fn evicted_after(&self, after: u64) -> bool {
        after < self.last_evicted_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seq: u64, len: usize) -> RetainedChunk {
        RetainedChunk { seq, stream: StreamKind::Stdout, data: Bytes::from(vec![b'x'; len]) }
    }

    #[test]
    fn evicts_whole_chunks_oldest_first() {
        let mut ring = OutputRing::new(10);
        ring.push(chunk(1, 4));
        ring.push(chunk(2, 4));
        assert_eq!(ring.first_seq(), Some(1));
        ring.push(chunk(3, 4));
        assert_eq!(ring.first_seq(), Some(2));
        assert_eq!(ring.retained_bytes(), 8);
        assert_eq!(ring.evicted_bytes(), 4);
        assert!(ring.evicted_after(0) && !ring.evicted_after(1), "seq 1 was evicted");
        assert_eq!(ring.after(2).map(|c| c.seq).collect::<Vec<_>>(), vec![3]);
        assert_eq!(ring.after(0).map(|c| c.seq).collect::<Vec<_>>(), vec![2, 3]);
        ring.push(chunk(5, 50));
        assert_eq!(ring.after(0).map(|c| c.seq).collect::<Vec<_>>(), vec![5], "the newest chunk is always kept");
    }
}
