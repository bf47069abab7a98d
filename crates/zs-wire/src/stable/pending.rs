//! Server: a new link before it names its session.

use bytes::BytesMut;
use zeroize::Zeroizing;

use super::secret::{link_key, random};
use super::{Frame, RefuseReason, SessionId, StableError};

/// Server: a link that has not yet said which session it carries.
///
/// A runtime that keeps each session in its own task (rather than in a
/// [`StableRegistry`](super::StableRegistry)) uses it directly: [`PendingLink::new`], feed input to
/// [`PendingLink::handle_input`] until it yields a [`LinkRequest`], then
/// [`StableEndpoint::open_server`](super::StableEndpoint::open_server) or
/// [`StableEndpoint::resume_server`](super::StableEndpoint::resume_server) on the session the
/// request names.
#[derive(Debug)]
pub struct PendingLink {
    pub(super) nonce: [u8; 32],
    pub(super) link_key: Zeroizing<[u8; 32]>,
    transmit: BytesMut,
    done: bool,
}

/// What a new link asks for: its first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRequest {
    /// Open a new session.
    Open,
    /// Resume a session.
    Resume {
        /// The session named.
        session_id: SessionId,
        /// Proof of owning it (see the module docs).
        proof: [u8; 32],
        /// The offset the client received up to.
        next_expected: u64,
    },
}

impl PendingLink {
    /// A newly accepted link; its transmit holds the challenge. `link_secret` as in
    /// [`StableEndpoint::link_established`](super::StableEndpoint::link_established).
    pub fn new(link_secret: &[u8]) -> Result<Self, StableError> {
        let nonce = random::<32>()?;
        let mut transmit = BytesMut::new();
        Frame::Challenge { nonce }.encode(&mut transmit);
        Ok(Self {
            nonce,
            link_key: link_key(link_secret),
            transmit,
            done: false,
        })
    }

    /// Decodes the link's first frame from the front of `input`: `Ok(None)` until it is
    /// complete. Anything but `Open` or `Resume` is an error (close the link).
    pub fn handle_input(
        &mut self,
        input: &mut BytesMut,
    ) -> Result<Option<LinkRequest>, StableError> {
        if self.done {
            input.clear();
            return Err(StableError::Malformed {
                what: "input on a finished pending link",
            });
        }
        let frame = match Frame::decode(input) {
            Ok(None) => return Ok(None),
            Ok(Some(frame)) => frame,
            Err(error) => {
                self.done = true;
                input.clear();
                return Err(error);
            }
        };
        self.done = true;
        match frame {
            Frame::Open => Ok(Some(LinkRequest::Open)),
            Frame::Resume {
                session_id,
                proof,
                next_expected,
            } => Ok(Some(LinkRequest::Resume {
                session_id,
                proof,
                next_expected,
            })),
            _ => {
                input.clear();
                Err(StableError::Malformed {
                    what: "first frame on a link is neither Open nor Resume",
                })
            }
        }
    }

    /// Queues a `Refused` frame telling the client why; write the transmit, then close.
    pub fn refuse(&mut self, reason: RefuseReason) {
        Frame::Refused { reason }.encode(&mut self.transmit);
    }

    /// Queues the refusal matching `error`, if the client should learn it.
    pub(super) fn refuse_for(&mut self, error: &StableError) {
        let reason = match error {
            StableError::UnknownSession => RefuseReason::UnknownSession,
            StableError::BadProof => RefuseReason::BadProof,
            StableError::Expired => RefuseReason::Expired,
            StableError::TooManySessions { .. } => RefuseReason::TooManySessions,
            _ => return,
        };
        self.refuse(reason);
    }

    /// Appends up to `max` bytes of the link's pending output (the challenge, or a refusal)
    /// to `out`.
    pub fn poll_transmit(&mut self, out: &mut BytesMut, max: usize) -> usize {
        let n = self.transmit.len().min(max);
        out.extend_from_slice(&self.transmit.split_to(n));
        n
    }

    /// Bytes still to send.
    pub fn transmit_len(&self) -> usize {
        self.transmit.len()
    }
}
