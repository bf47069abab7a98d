//! The per-session driver: frames over the current link, then the next link.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use zs_wire::stable::{StableConfig, StableError};

use crate::transport::read_buf::ReadBuffer;
use crate::transport::security::SecurityError;

// The shared session state (`Inner`, `Shared`) and link types live in the parent.
use super::client::Dialer;
use super::server::{IncomingLink, send_refusal};
use super::*;

/// Why a link could not be made or ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Security(#[from] SecurityError),
    #[error(transparent)]
    Stable(#[from] StableError),
    #[error("nothing received on the link for {0:?}")]
    Silent(Duration),
}

/// Where a session's next link comes from.
pub(super) enum LinkSource {
    Dial(Box<Dialer>),
    Accept(mpsc::UnboundedReceiver<IncomingLink>),
}

/// How one link ended.
pub(super) enum LinkEnd {
    Lost(LinkError),
    /// Server: the client resumed on a newer link, already attached.
    Replaced((BoxedLink, BytesMut)),
    /// The session is over.
    Finished,
}

pub(super) struct Driver {
    pub(super) shared: Arc<Shared>,
    pub(super) source: LinkSource,
    pub(super) link_timeout: Duration,
    pub(super) reconnect_attempt: u32,
    pub(super) config: StableConfig,
    /// After the application dropped its stream: when to stop waiting for the peer's close.
    pub(super) linger_until: Option<Instant>,
}

impl Driver {
    pub(super) async fn run(
        mut self,
        mut link: Option<(BoxedLink, BytesMut)>,
        mut opened: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    ) {
        loop {
            if let Some((io, leftover)) = link.take() {
                let end = self.run_link(io, leftover, &mut opened).await;
                let mut inner = self.shared.lock();
                let now = inner.now();
                match end {
                    LinkEnd::Replaced(new_link) => {
                        link = Some(new_link);
                        continue;
                    }
                    LinkEnd::Lost(error) => {
                        tracing::debug!(%error, "StableIO link lost");
                        inner.endpoint.link_lost(now);
                    }
                    LinkEnd::Finished => {}
                }
            }
            {
                let mut inner = self.shared.lock();
                inner.process_events();
                if lingered_out(&mut self.linger_until, &inner) || inner.is_over() {
                    inner.end("StableIO session ended");
                    break;
                }
            }
            if let Some(opened) = opened.take_if(|_| self.shared.lock().endpoint.is_expired()) {
                let _ = opened.send(Err("StableIO session refused".into()));
                break;
            }
            link = self.next_link(&mut opened).await;
            if link.is_none() && self.shared.lock().is_over() {
                break;
            }
        }
        let mut inner = self.shared.lock();
        inner.process_events();
        inner.end("StableIO session ended");
        if let Some(opened) = opened.take() {
            let why = inner.ended.clone().unwrap_or_default();
            let _ = opened.send(Err(why));
        }
    }

    /// Waits for the next link: dials with backoff (client) or waits for a resume
    /// (server), until the give-up time.
    pub(super) async fn next_link(
        &mut self,
        opened: &mut Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    ) -> Option<(BoxedLink, BytesMut)> {
        let give_up = self
            .shared
            .lock()
            .endpoint
            .poll_timeout()
            .map(Instant::from_std);
        let sleep_give_up = async {
            match give_up {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let expire = || {
            let mut inner = self.shared.lock();
            let now = inner.now();
            inner.endpoint.handle_timeout(now);
            inner.process_events();
        };
        match &mut self.source {
            LinkSource::Dial(dialer) => {
                // The first open gets no second try: `connect` reports its failure.
                if opened.is_some() {
                    let mut inner = self.shared.lock();
                    inner.end("StableIO: the first link failed before the session opened");
                    return None;
                }
                // The first try after a loss goes at once (to another entry, if the pool has
                // one); then the backoff doubles.
                let delay = match self.reconnect_attempt {
                    0 => Duration::ZERO,
                    attempt => self.config.reconnect_delay(attempt - 1),
                };
                self.reconnect_attempt = self.reconnect_attempt.saturating_add(1);
                let attempt = async {
                    tokio::time::sleep(delay).await;
                    dialer.dial().await
                };
                tokio::select! {
                    result = attempt => match result {
                        Ok((io, secret, _)) => {
                            let mut inner = self.shared.lock();
                            let now = inner.now();
                            inner.endpoint.link_established(now, &secret);
                            Some((io, BytesMut::new()))
                        }
                        Err(error) => {
                            tracing::debug!(%error, "StableIO reconnect failed");
                            None
                        }
                    },
                    () = sleep_give_up => {
                        expire();
                        None
                    }
                }
            }
            LinkSource::Accept(incoming) => {
                tokio::select! {
                    received = incoming.recv() => match received {
                        Some(link) => self.attach(link).await,
                        None => {
                            self.shared.lock().end("StableIO server stopped");
                            None
                        }
                    },
                    () = sleep_give_up => {
                        expire();
                        None
                    }
                    () = self.shared.wake_driver.wait() => None,
                }
            }
        }
    }

    /// Server: checks a resuming link's proof and binds the session to it, or refuses it.
    pub(super) async fn attach(&mut self, link: IncomingLink) -> Option<(BoxedLink, BytesMut)> {
        let IncomingLink {
            io,
            mut pending,
            proof,
            next_expected,
            leftover,
        } = link;
        let result = {
            let mut inner = self.shared.lock();
            let now = inner.now();
            let result = inner
                .endpoint
                .resume_server(&mut pending, &proof, next_expected, now);
            inner.process_events();
            result
        };
        match result {
            Ok(()) => Some((io, leftover)),
            Err(error) => {
                tracing::warn!(%error, "StableIO resume refused");
                send_refusal(io, &mut pending).await;
                None
            }
        }
    }

    /// Moves frames over one link until it fails, is replaced, or the session ends.
    pub(super) async fn run_link(
        &mut self,
        io: BoxedLink,
        received: BytesMut,
        opened: &mut Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    ) -> LinkEnd {
        let (mut reader, mut writer) = tokio::io::split(io);
        // Both sized to what flows: an idle session holds neither.
        let mut received = ReadBuffer::with_leftover(received);
        let mut output = BytesMut::new();
        let mut last_received = Instant::now();
        // Bytes read past the server's first frames belong to this link.
        let mut feed_now = !received.is_empty();
        // One timer for the link, moved only when something falls due sooner than it is set
        // for (or it fired): a fresh `sleep_until` per turn cost a timer-wheel insert and
        // removal per frame, and most turns only push the silence deadline later, which a
        // timer that fires early and is re-armed covers.
        let timer = tokio::time::sleep_until(last_received + self.link_timeout);
        tokio::pin!(timer);
        loop {
            let (deadline, over) = {
                let mut inner = self.shared.lock();
                let now = inner.now();
                if feed_now {
                    feed_now = false;
                    let handled = inner.endpoint.handle_link_bytes(received.bytes(), now);
                    received.settle();
                    if let Err(error) = handled {
                        if let StableError::Refused { reason } = &error {
                            inner.end(&format!("StableIO server refused the session: {reason}"));
                        }
                        inner.process_events();
                        return LinkEnd::Lost(error.into());
                    }
                }
                if output.is_empty() {
                    inner
                        .endpoint
                        .poll_link_transmit(&mut output, TRANSMIT_BATCH);
                }
                if inner.process_events() {
                    self.reconnect_attempt = 0;
                    if let Some(opened) = opened.take() {
                        let _ = opened.send(Ok(()));
                    }
                }
                if lingered_out(&mut self.linger_until, &inner) {
                    inner.end("StableIO session closed locally; the peer did not close in time");
                }
                let deadline = inner.endpoint.poll_timeout().map(Instant::from_std);
                let deadline = match (deadline, self.linger_until) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (deadline, inner.is_over())
            };
            if over && output.is_empty() {
                let _ = writer.flush().await;
                return LinkEnd::Finished;
            }
            let silent_at = last_received + self.link_timeout;
            let due = deadline.map_or(silent_at, |at| at.min(silent_at));
            if due < timer.deadline() || timer.is_elapsed() {
                timer.as_mut().reset(due);
            }
            let incoming = async {
                match &mut self.source {
                    LinkSource::Accept(incoming) => incoming.recv().await,
                    LinkSource::Dial(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                result = writer.write(&output), if !output.is_empty() => match result {
                    Ok(0) => return LinkEnd::Lost(io::Error::from(io::ErrorKind::WriteZero).into()),
                    Ok(written) => {
                        output.advance(written);
                        if output.is_empty() {
                            // Kept for the next batch (an allocation per write showed in
                            // `perf`), unless it grew well past what flows now.
                            if output.capacity() > KEEP_OUTPUT.max(4 * written) {
                                output = BytesMut::new();
                            }
                            if let Err(error) = writer.flush().await {
                                return LinkEnd::Lost(error.into());
                            }
                        }
                    }
                    Err(error) => return LinkEnd::Lost(error.into()),
                },
                result = std::future::poll_fn(|cx| received.poll_fill(Pin::new(&mut reader), cx)) => match result {
                    Ok(0) => {
                        return LinkEnd::Lost(
                            io::Error::new(io::ErrorKind::UnexpectedEof, "link closed").into(),
                        );
                    }
                    Ok(_) => {
                        last_received = Instant::now();
                        feed_now = true;
                    }
                    Err(error) => return LinkEnd::Lost(error.into()),
                },
                link = incoming => match link {
                    // A failed resume (a bad proof) leaves the current link alone.
                    Some(link) => if let Some(attached) = self.attach(link).await {
                        return LinkEnd::Replaced(attached);
                    },
                    None => {
                        self.shared.lock().end("StableIO server stopped");
                        return LinkEnd::Finished;
                    }
                },
                () = self.shared.wake_driver.wait() => {}
                () = &mut timer => {
                    if Instant::now() >= silent_at {
                        return LinkEnd::Lost(LinkError::Silent(self.link_timeout));
                    }
                    received.release_if_empty();
                    if output.is_empty() {
                        output = BytesMut::new();
                    }
                    let mut inner = self.shared.lock();
                    let now = inner.now();
                    inner.endpoint.handle_timeout(now);
                }
            }
        }
    }
}

/// Output capacity kept between writes whatever the last write's size.
const KEEP_OUTPUT: usize = 16 * 1024;

/// Starts the linger clock once the application dropped its stream; true when it ran out.
pub(super) fn lingered_out(linger_until: &mut Option<Instant>, inner: &Inner) -> bool {
    if inner.dropped && linger_until.is_none() {
        *linger_until = Some(Instant::now() + CLOSE_LINGER);
    }
    linger_until.is_some_and(|until| Instant::now() >= until)
}
