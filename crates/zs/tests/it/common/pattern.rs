//! Deterministic test data and a hashing BigStream handler, shared by the large-data and
//! StableIO tests.

use tokio::io::AsyncRead;
use zs::{BigStream, DataFrame, Status};
use zs_wire::crypto::hash::{HashAlgorithm, Hasher};

/// A deterministic byte source of `len` bytes (no memory for the whole thing).
pub struct Pattern {
    remaining: u64,
    state: u64,
}

pub fn pattern(len: u64) -> Pattern {
    Pattern {
        remaining: len,
        state: 0x9e37_79b9_7f4a_7c15,
    }
}

impl AsyncRead for Pattern {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let len = (buf.remaining() as u64).min(self.remaining).min(256 * 1024) as usize;
        let mut chunk = vec![0u8; len];
        // xorshift64, eight bytes per step.
        for word in chunk.chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            word.copy_from_slice(&self.state.to_le_bytes()[..word.len()]);
        }
        buf.put_slice(&chunk);
        self.remaining -= len as u64;
        std::task::Poll::Ready(Ok(()))
    }
}

pub async fn sha3_of_pattern(len: u64) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut source = pattern(len);
    let mut hasher = Hasher::new(HashAlgorithm::Sha3_256);
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = source.read(&mut buffer).await.unwrap();
        if read == 0 {
            return hasher.finalize();
        }
        hasher.update(&buffer[..read]);
    }
}

/// `store` hashes what it receives and replies with [hash, bytes, offset, total].
pub async fn hashing_handler(mut stream: BigStream) -> Result<DataFrame, Status> {
    let mut hasher = Hasher::new(HashAlgorithm::Sha3_256);
    while let Some(chunk) = stream.next_chunk().await? {
        hasher.update(&chunk);
    }
    Ok(DataFrame::new()
        .with(hasher.finalize())
        .with(stream.completed())
        .with(stream.offset())
        .with(stream.total().unwrap_or(u64::MAX)))
}
