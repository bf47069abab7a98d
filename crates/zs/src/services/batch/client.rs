//! [`BatchClient`]: the sending side of BatchStream.

use bytes::{BufMut, Bytes, BytesMut};
use zs_wire::DataFrame;

use super::service::check_name;
use super::store::{BatchInfo, BatchState};
use super::{BATCH_CLEAR_COMMAND, BATCH_NEW_COMMAND, BATCH_POST_COMMAND, BATCH_STATE_COMMAND};
use crate::endpoint::peer::Peer;
use crate::error::{BadReply, CallError};

/// Encodes a post (see the module's wire layout).
fn encode_post(name: &str, item: &[u8]) -> Result<Bytes, CallError> {
    check_name(name).map_err(CallError::Remote)?;
    let mut post = BytesMut::with_capacity(2 + name.len() + item.len());
    post.put_u16_le(name.len() as u16);
    post.put_slice(name.as_bytes());
    post.put_slice(item);
    Ok(post.freeze())
}

/// The typed client of a [`BatchService`](super::BatchService) at the other side of a
/// connection (ZServer4D's `NewBatchStream`, `PostBatchStream`, `GetBatchStreamState`,
/// `ClearBatchStream`). It works from either side: on a client's
/// [`Client::peer`](crate::Client::peer) or, in a server handler, on
/// [`Context::peer`](crate::Context::peer) (when the client installed the service).
///
/// ```no_run
/// # async fn demo(client: zs::Client) -> Result<(), zs::CallError> {
/// use zs::services::batch::BatchClient;
/// let batches = BatchClient::new(client.peer());
/// batches.new_batch("jobs").await?;
/// batches.post("jobs", b"first").await?;
/// batches.post("jobs", b"second").await?;
/// // ... then call the application's command that consumes "jobs".
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BatchClient<'a, S = ()> {
    peer: &'a Peer<S>,
}

impl<S> Clone for BatchClient<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for BatchClient<'_, S> {}

impl<'a, S: Send + Sync + 'static> BatchClient<'a, S> {
    /// The batches at the other side of `peer`.
    pub fn new(peer: &'a Peer<S>) -> Self {
        Self { peer }
    }

    /// Creates batch `name` (ZServer4D `NewBatchStream`); an error if it exists or the
    /// connection has its maximum of batches.
    pub async fn new_batch(&self, name: &str) -> Result<(), CallError> {
        self.peer
            .call_stream(BATCH_NEW_COMMAND, &DataFrame::new().with(name))
            .await
            .map(drop)
    }

    /// Appends `item` to batch `name` (ZServer4D `PostBatchStream`). Returns the batch's item
    /// count, bytes and spilled bytes after the post. Refused with [`CallError::Remote`]
    /// (nothing stored) for an unknown batch or past the receiver's disk or item limits; a
    /// name outside 1 to [`MAX_BATCH_NAME`](super::MAX_BATCH_NAME) bytes fails locally,
    /// before anything is sent, with an `INVALID_ARGUMENT` [`CallError::Remote`] status.
    pub async fn post(&self, name: &str, item: &[u8]) -> Result<BatchInfo, CallError> {
        let post = encode_post(name, item)?;
        let reply = self
            .peer
            .send_complete_buffer(BATCH_POST_COMMAND, post)
            .await?;
        let mut reader = reply.reader();
        Ok(BatchInfo {
            name: name.to_owned(),
            items: reader.read_u64().map_err(bad_reply)?,
            bytes: reader.read_u64().map_err(bad_reply)?,
            spilled: reader.read_u64().map_err(bad_reply)?,
        })
    }

    /// The batches at the other side (ZServer4D `GetBatchStreamState`).
    pub async fn state(&self) -> Result<BatchState, CallError> {
        let reply = self
            .peer
            .call_stream(BATCH_STATE_COMMAND, &DataFrame::new())
            .await?;
        BatchState::from_frame(&reply).map_err(bad_reply)
    }

    /// Removes batch `name` (ZServer4D `ClearBatchStream`); true if it existed.
    pub async fn clear(&self, name: &str) -> Result<bool, CallError> {
        let reply = self
            .peer
            .call_stream(BATCH_CLEAR_COMMAND, &DataFrame::new().with(name))
            .await?;
        let removed = reply.reader().read_u64().map_err(bad_reply)?;
        Ok(removed > 0)
    }

    /// Removes every batch at the other side; returns how many there were.
    pub async fn clear_all(&self) -> Result<u64, CallError> {
        let reply = self
            .peer
            .call_stream(BATCH_CLEAR_COMMAND, &DataFrame::new())
            .await?;
        reply.reader().read_u64().map_err(bad_reply)
    }
}

fn bad_reply(error: zs_wire::dataframe::ReadError) -> CallError {
    CallError::BadReply(BadReply::Values(error))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::MAX_BATCH_NAME;
    use super::super::service::split_post;
    use super::encode_post;

    #[test]
    fn post_layout_round_trips() {
        let post = encode_post("jobs", b"payload").unwrap();
        assert_eq!(&post[..2], &4u16.to_le_bytes());
        assert_eq!(&post[2..6], b"jobs");
        let (name, item) = split_post(post).unwrap();
        assert_eq!(name, "jobs");
        assert_eq!(&item[..], b"payload");
    }

    #[test]
    fn bad_posts_are_refused() {
        assert!(split_post(Bytes::from_static(b"\x01")).is_err());
        assert!(split_post(Bytes::from_static(b"\x05\x00ab")).is_err());
        assert!(split_post(Bytes::from_static(b"\x00\x00item")).is_err());
        assert!(split_post(Bytes::from_static(b"\x02\x00\xff\xfeitem")).is_err());
        assert!(encode_post("", b"x").is_err());
        assert!(encode_post(&"n".repeat(MAX_BATCH_NAME + 1), b"x").is_err());
    }
}
