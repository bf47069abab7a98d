//! StableIO runtime: a byte stream that survives dropped TCP connections.
//!
//! [`StableStream`] is what a zs connection runs over when the client used
//! [`ClientBuilder::connect_stable`](crate::ClientBuilder::connect_stable). Underneath, a
//! driver task moves the bytes of a sans-IO [`StableEndpoint`] over a sequence of *links*:
//! TCP connections, each with its own handshake and record layer ([`EncryptedStream`]), so
//! every link is authenticated (pin, token) and encrypted, and its resume proof is keyed by
//! secrets from that link's handshake. When a link drops, the client dials again with
//! backoff, proves it owns the session, and both sides resend what the other has not
//! received; the zs session on top sees nothing. After the give-up time without a link the
//! session expires and reads and writes fail with a clear error.
//!
//! A StableIO client sets a flag in its handshake's first message; that is how the server
//! tells the two kinds apart on one port, without waiting for the client to speak. Then the
//! StableIO link protocol of [`zs_wire::stable`] runs inside the records: the server sends
//! its challenge first.
//!
//! Layout: `stream` is the application's end ([`StableStream`]); `driver` moves a session's
//! frames over its current link and finds the next one; `client` dials links and opens
//! sessions; `server` holds the session table and serves new and resuming links.

mod budget;
mod client;
mod driver;
mod server;
mod stream;

pub(crate) use budget::MemoryBudget;
pub(crate) use client::{EncryptedInfo, connect};
pub(crate) use server::{IncomingLink, Sessions, read_link_request, refuse_link, serve};
pub use stream::StableStream;

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use zs_wire::stable::{StableEndpoint, StableEvent};

use crate::transport::signal::Signal;

/// Output gathered per write to a link.
pub(super) const TRANSMIT_BATCH: usize = 256 * 1024;
/// How long a locally closed session waits for the peer's close before it is dropped.
pub(super) const CLOSE_LINGER: Duration = Duration::from_secs(10);

/// A link: an encrypted connection carrying StableIO frames.
pub(crate) trait LinkIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> LinkIo for T {}
pub(crate) type BoxedLink = Box<dyn LinkIo>;

pub(super) struct Inner {
    pub(super) endpoint: StableEndpoint,
    pub(super) read_waker: Option<Waker>,
    pub(super) write_waker: Option<Waker>,
    pub(super) peer_closed: bool,
    /// The application dropped its handle.
    pub(super) dropped: bool,
    /// Why the session ended, once it has.
    pub(super) ended: Option<String>,
    /// What the session's buffers count against the server's [`MemoryBudget`].
    pub(super) charge: budget::Charge,
}

pub(super) struct Shared {
    pub(super) inner: Mutex<Inner>,
    pub(super) wake_driver: Signal,
}

impl Shared {
    pub(super) fn new(endpoint: StableEndpoint, charge: budget::Charge) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                endpoint,
                read_waker: None,
                write_waker: None,
                peer_closed: false,
                dropped: false,
                ended: None,
                charge,
            }),
            wake_driver: Signal::default(),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    pub(super) fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }

    /// Charges what the endpoint's buffers hold now (nothing once the session is over).
    pub(super) fn update_charge(&mut self) {
        let bytes = if self.is_over() {
            0
        } else {
            self.endpoint.buffered_bytes()
        };
        self.charge.set(bytes);
    }

    /// Acts on the endpoint's events: wakes the reader and writer, notes the end, and
    /// updates the memory charge. Returns whether the session opened or resumed.
    pub(super) fn process_events(&mut self) -> bool {
        let mut linked = false;
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                StableEvent::Readable => wake(&mut self.read_waker),
                StableEvent::Writable => wake(&mut self.write_waker),
                StableEvent::PeerClosed => {
                    self.peer_closed = true;
                    wake(&mut self.read_waker);
                }
                StableEvent::Expired => self.end("StableIO session expired: no link within the give-up time, or the server refused to resume it"),
                StableEvent::Closed => self.end("StableIO session closed"),
                StableEvent::Opened | StableEvent::Resumed => linked = true,
                _ => {}
            }
        }
        self.update_charge();
        linked
    }

    pub(super) fn end(&mut self, why: &str) {
        if self.ended.is_none() {
            self.ended = Some(why.to_owned());
        }
        wake(&mut self.read_waker);
        wake(&mut self.write_waker);
        // An ended session's buffers are dead weight: its share goes back to the budget.
        self.update_charge();
    }

    pub(super) fn is_over(&self) -> bool {
        self.ended.is_some() || self.endpoint.is_expired() || self.endpoint.is_closed()
    }
}

pub(super) fn wake(waker: &mut Option<Waker>) {
    if let Some(waker) = waker.take() {
        waker.wake();
    }
}

pub(super) fn session_error(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, why.to_owned())
}
