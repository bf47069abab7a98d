//! The file service's wire format: command names, request and reply messages (JSON), and
//! the header a transfer's BigStream starts with. ZServer4D's file transfer (the
//! `GetFile`/`PostFile` commands of its dual-tunnel servers) used its own framing; this one is
//! documented on [`FileService`](super::FileService).
//!
//! # Commands (installed by `FileService`)
//!
//! Paths are relative to the served root, `/`-separated; absolute paths, `..` components,
//! backslashes and anything that resolves outside the root (through a symbolic link) are
//! refused with a `bad path` error reply. Anyone who can connect can read and write the
//! root: serve only what the server's clients may see (a token or pinned keys restrict who
//! connects).
//!
//! - `__zs.files.stat` (console, JSON): `{"path", "part": bool, "hash": bool, "hash_len":
//!   n|null}` → `{"found": false, "size": 0}` or `{"found": true, "size", "sha3"}`; with
//!   `part` it describes `<path>.part` (waiting for a transfer still writing it), with
//!   `hash_len` the hash covers only the first `hash_len` bytes (how a resumed download
//!   checks its local prefix).
//! - `__zs.files.put` (BigStream): the stream starts with a header (below) naming the path
//!   and the file size, then the file's bytes from the stream's offset. They go to
//!   `<path>.part`: offset 0 starts it anew, any other offset must equal the current size
//!   of the `.part` (a resume). Replies with the `.part`'s size as one `u64`. Nothing is
//!   renamed here.
//! - `__zs.files.commit` (console, JSON): `{"path", "sha3"}`: hashes the `.part` and renames
//!   it to the final name if the hash is the expected one; otherwise an error reply
//!   (`sha3-256 mismatch: ...`) and the `.part` stays for a later resume. Replies
//!   `{"size", "sha3"}`.
//! - `__zs.files.get` (console, JSON): `{"path", "offset", "transfer"}`: pushes the file from
//!   `offset` to the calling client's `__zs.files.sink` (a BigStream whose header carries
//!   `transfer` and the file's size) and, once the sink has answered, replies `{"size",
//!   "sha3", "sent"}` with the whole file's size and SHA3-256.
//!
//! - `__zs.files.list` and `__zs.files.read` (stream): a directory's entries and a range of
//!   a file; see `browse.rs`.
//!
//! A transfer header is a `u32` little-endian length followed by that many bytes of JSON
//! (at most 64 KiB): a BigStream carries no request body, so the header travels as the
//! stream's first bytes. The stream's offset ([`BigStream::offset`](crate::BigStream::offset)) is where the file bytes
//! after the header start in the file.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::transfer::large::BigStream;

/// The service's namespace: every command below is `"__zs.files.<name>"`.
pub(super) const NAMESPACE: &str = "__zs.files";
pub(super) const STAT: &str = "__zs.files.stat";
pub(super) const PUT: &str = "__zs.files.put";
pub(super) const COMMIT: &str = "__zs.files.commit";
pub(super) const GET: &str = "__zs.files.get";
pub(super) const SINK: &str = "__zs.files.sink";
pub(super) const LIST: &str = "__zs.files.list";
pub(super) const READ: &str = "__zs.files.read";

/// Appended to a file's name while it is being received.
pub(super) const PART_SUFFIX: &str = ".part";
/// Largest transfer header accepted.
pub(super) const MAX_HEADER: usize = 64 * 1024;
/// Timeout of calls that hash whole files or carry a whole download: a dead connection ends
/// them anyway (keep-alive); this only bounds a stuck handler.
pub(super) const LONG_CALL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a server operation waits for another one on the same file (an interrupted
/// transfer still writing its last chunks) before answering "busy".
pub(super) const LOCK_WAIT: Duration = Duration::from_secs(30);
/// Read size when hashing files.
pub(super) const HASH_BUFFER: usize = 1 << 20;
/// Tags in the details of the service's error statuses, so the client tells failures
/// apart by code and details, never by message text.
pub(super) const DETAIL_NOT_FOUND: &str = "not-found";
pub(super) const DETAIL_MISMATCH: &str = "sha3-mismatch";
pub(super) const DETAIL_NO_SINK: &str = "no-sink";

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StatRequest {
    pub(super) path: String,
    #[serde(default)]
    pub(super) part: bool,
    #[serde(default = "yes")]
    pub(super) hash: bool,
    #[serde(default)]
    pub(super) hash_len: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StatReply {
    pub(super) found: bool,
    #[serde(default)]
    pub(super) size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sha3: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PutHeader {
    pub(super) path: String,
    pub(super) size: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CommitRequest {
    pub(super) path: String,
    pub(super) sha3: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CommitReply {
    pub(super) size: u64,
    pub(super) sha3: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct GetRequest {
    pub(super) path: String,
    pub(super) offset: u64,
    pub(super) transfer: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct GetReply {
    pub(super) size: u64,
    pub(super) sha3: String,
    pub(super) sent: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SinkHeader {
    pub(super) transfer: u64,
    pub(super) size: u64,
}

pub(super) fn encode_header<T: Serialize>(header: &T) -> Vec<u8> {
    // Our headers are plain structs of strings and numbers: serializing cannot fail.
    let json = serde_json::to_vec(header).unwrap_or_default();
    let len = u32::try_from(json.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&json);
    out
}

/// Reads a transfer's header; returns it with the bytes that followed it in its chunk.
pub(super) async fn read_header<T: DeserializeOwned>(
    stream: &mut BigStream,
) -> Result<(T, Bytes), String> {
    let mut buffer = BytesMut::new();
    loop {
        if buffer.len() >= 4 {
            let mut len = [0u8; 4];
            len.copy_from_slice(&buffer[..4]);
            let len = u32::from_le_bytes(len) as usize;
            if len > MAX_HEADER {
                return Err(format!(
                    "transfer header of {len} bytes exceeds {MAX_HEADER}"
                ));
            }
            if buffer.len() >= 4 + len {
                let header = serde_json::from_slice(&buffer[4..4 + len])
                    .map_err(|error| format!("bad transfer header: {error}"))?;
                let rest = buffer.split_off(4 + len).freeze();
                return Ok((header, rest));
            }
        }
        match stream.next_chunk().await {
            Ok(Some(chunk)) => buffer.extend_from_slice(&chunk),
            Ok(None) => return Err("the transfer ended inside its header".to_owned()),
            Err(error) => return Err(error.to_string()),
        }
    }
}
