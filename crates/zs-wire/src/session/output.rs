//! Output: what the session has queued for the socket.
//!
//! Frames are encoded into one buffer (`transmit`). A transfer chunk of at least
//! [`SEGMENT_MIN`] bytes is not copied there: its header is, and the chunk's own `Bytes`
//! joins the queue after it, so a runtime that writes vectored (`writev`, or a record layer
//! that gathers) moves a BigStream's data with no copy here. Small frames are still
//! coalesced, so a burst of calls leaves in one write.

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use super::Session;

/// Transfer chunks at least this large are queued as their own segment rather than copied
/// into the output buffer. Below it copying is cheap, and a queued chunk keeps its whole
/// allocation alive until written: a short read's chunk may sit in a 64 KiB buffer, so only
/// chunks of half that or more are queued (at most twice their size pinned).
pub const SEGMENT_MIN: usize = 32 * 1024;

impl<T> Session<T> {
    /// The output as one buffer: everything waiting to be written to the socket, in order
    /// (queued segments are copied into it first, so prefer [`Self::transmit_vectored`] on
    /// a hot path). Tests and simple runtimes take bytes out of it directly (`split`).
    pub fn transmit_buffer(&mut self) -> &mut BytesMut {
        if !self.queued.is_empty() {
            let mut all = BytesMut::with_capacity(self.transmit_len());
            for segment in self.queued.drain(..) {
                all.extend_from_slice(&segment);
            }
            all.extend_from_slice(&self.transmit);
            self.transmit = all;
            self.queued_len = 0;
        }
        &mut self.transmit
    }

    /// The first contiguous run of pending output (empty when nothing is pending); write it
    /// and [`advance`](Self::advance_transmit) by what was written.
    pub fn transmit_pending(&self) -> &[u8] {
        self.queued
            .front()
            .map_or(&self.transmit[..], |segment| &segment[..])
    }

    /// Bytes waiting to be written, in all.
    pub fn transmit_len(&self) -> usize {
        self.queued_len + self.transmit.len()
    }

    /// Fills `slices` with the pending output, in order, and returns how many it used (all
    /// the output fits when `slices` has room for every segment plus one).
    pub fn transmit_vectored<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut used = 0;
        let parts = self
            .queued
            .iter()
            .map(|segment| &segment[..])
            .chain(std::iter::once(&self.transmit[..]))
            .filter(|part| !part.is_empty());
        for (slot, part) in slices.iter_mut().zip(parts) {
            *slot = IoSlice::new(part);
            used += 1;
        }
        used
    }

    /// Marks `written` bytes of the pending output as sent.
    pub fn advance_transmit(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.queued.front_mut() else {
                self.transmit.advance(written.min(self.transmit.len()));
                return;
            };
            let step = written.min(front.len());
            front.advance(step);
            self.queued_len -= step;
            written -= step;
            if front.is_empty() {
                self.queued.pop_front();
            }
        }
    }

    /// Queues `body` after everything encoded so far, without copying it.
    pub(super) fn queue_segment(&mut self, body: Bytes) {
        if !self.transmit.is_empty() {
            let encoded = self.transmit.split().freeze();
            self.queued_len += encoded.len();
            self.queued.push_back(encoded);
        }
        self.queued_len += body.len();
        self.queued.push_back(body);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::frame::RequestId;
    use crate::session::{Event, SessionConfig};

    fn open_transfer(session: &mut Session<()>) -> RequestId {
        let id = RequestId(1);
        session
            .send_stream_open(id, "upload", &crate::session::tests::chunks_info(), ())
            .unwrap();
        id
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Chunks queued without a copy leave the session as the same bytes, in the same
        /// order, as chunks copied in, whether written vectored in pieces of any size or
        /// taken as one buffer; and the peer decodes them.
        #[test]
        fn queued_chunks_leave_as_the_copied_ones_would(
            chunks in prop::collection::vec(0usize..80_000, 1..8),
            end_after in prop::collection::vec(any::<bool>(), 8),
            writes in prop::collection::vec(1usize..30_000, 1..20),
            slots in 1usize..6,
        ) {
            let now = std::time::Instant::now();
            let mut copying: Session<()> = Session::new(SessionConfig::default(), now);
            let mut queuing: Session<()> = Session::new(SessionConfig::default(), now);
            let id = open_transfer(&mut copying);
            open_transfer(&mut queuing);
            for (index, (len, end)) in chunks.iter().zip(&end_after).enumerate() {
                let chunk: Vec<u8> = (0..*len).map(|i| (i + index) as u8).collect();
                copying.send_stream_data(id, &chunk).unwrap();
                queuing.send_stream_bytes(id, Bytes::from(chunk)).unwrap();
                if *end {
                    copying.send_stream_end(id).ok();
                    queuing.send_stream_end(id).ok();
                    break;
                }
            }
            let expected = copying.transmit_buffer().split();
            prop_assert_eq!(queuing.transmit_len(), expected.len());
            // Write it out in pieces as a socket would take them.
            let mut written = Vec::new();
            let mut sizes = writes.iter().cycle();
            while queuing.transmit_len() > 0 {
                let mut slices = vec![IoSlice::new(&[]); slots];
                let used = queuing.transmit_vectored(&mut slices);
                prop_assert!(used > 0);
                let budget = *sizes.next().unwrap();
                let mut taken = 0;
                for slice in &slices[..used] {
                    let step = slice.len().min(budget - taken);
                    written.extend_from_slice(&slice[..step]);
                    taken += step;
                    if taken == budget {
                        break;
                    }
                }
                queuing.advance_transmit(taken);
            }
            prop_assert_eq!(&written[..], &expected[..]);
            prop_assert_eq!(queuing.transmit_len(), 0);

            // The peer reads the same frames.
            let mut server: Session<()> = Session::new(SessionConfig::default(), now);
            let mut input = BytesMut::from(&written[..]);
            server.handle_received(&mut input, now).unwrap();
            let mut received = 0;
            while let Some(event) = server.poll_event() {
                if let Event::StreamData { body, .. } = event {
                    received += body.len();
                }
            }
            let sent: usize = chunks.iter().zip(&end_after)
                .scan(false, |ended, (len, end)| {
                    if *ended { return None; }
                    *ended = *end;
                    Some(*len)
                })
                .sum();
            prop_assert_eq!(received, sent);
        }
    }

    #[test]
    fn the_one_buffer_view_joins_queued_segments_in_order() {
        let now = std::time::Instant::now();
        let mut session: Session<()> = Session::new(SessionConfig::default(), now);
        let id = open_transfer(&mut session);
        let chunk = Bytes::from(vec![9u8; SEGMENT_MIN]);
        session.send_stream_bytes(id, chunk).unwrap();
        session.send_stream_end(id).unwrap();
        // The header before the chunk, the chunk itself, the end frame after it.
        assert!(session.transmit_pending().len() < session.transmit_len());
        let total = session.transmit_len();
        let joined = session.transmit_buffer().split();
        assert_eq!(joined.len(), total);
        assert_eq!(session.transmit_len(), 0);
        assert!(
            joined
                .windows(SEGMENT_MIN)
                .any(|window| window.iter().all(|&b| b == 9))
        );
    }
}
