//! Serving connections: the accept loop, the handshake, StableIO links, and the driver of
//! each connection with its hooks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::Instrument;

use crate::DisconnectReason;
use zs_wire::frame::CloseCode;
use zs_wire::session::Session;
use zs_wire::stable::{LinkRequest, PendingLink, RefuseReason, StableEndpoint};

use crate::Config;
use crate::dispatch::context::HandlerEnv;
use crate::driver::{DriverParts, drive};
use crate::endpoint::handle::ServerRef;
use crate::endpoint::peer::{Peer, SecurityInfo};
use crate::endpoint::server::Shared;
use crate::metrics::RefuseReason as Refused;
use crate::transport::encrypted::EncryptedStream;
use crate::transport::stable;

pub(crate) async fn accept_loop<S: Send + Sync + 'static>(
    listener: TcpListener,
    shared: Arc<Shared<S>>,
) {
    let permits = shared.permits.clone();
    // Never ends; runs while connections are accepted.
    let mut reclaim = std::pin::pin!(shared.stable_sessions.reclaim_memory());
    loop {
        let accepted = tokio::select! {
            accepted = crate::transport::accept(&listener, &shared.stop_accepting, "zs server") => accepted,
            () = &mut reclaim => continue,
        };
        let Some((stream, remote_addr)) = accepted else {
            break;
        };
        shared.counters.accepted();
        // Over the limit the connection still gets a handshake, so the client learns why it
        // is refused ("server full") instead of seeing a reset.
        let permit = permits.clone().try_acquire_owned().ok();
        if permit.is_none() {
            tracing::warn!(peer = %remote_addr, limit = shared.config.max_connections, "refusing connection: server full");
        }
        let shared_for_task = shared.clone();
        let span = tracing::info_span!("connection", peer = %remote_addr);
        shared.tasks.spawn(
            async move {
                serve_connection(stream, remote_addr, shared_for_task, permit).await;
            }
            .instrument(span),
        );
    }
}

/// Tells a connection why it is dropped: its preamble, then a close frame.
async fn refuse<W: AsyncWrite + Unpin>(
    mut stream: W,
    config: &Config,
    code: CloseCode,
    reason: &str,
) {
    let mut session: Session<()> = Session::new(config.session.clone(), std::time::Instant::now());
    session.close(code, reason);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(session.transmit_buffer()).await?;
        stream.flush().await?;
        stream.shutdown().await
    })
    .await;
}

async fn serve_connection<S: Send + Sync + 'static>(
    stream: TcpStream,
    remote_addr: SocketAddr,
    shared: Arc<Shared<S>>,
    permit: Option<OwnedSemaphorePermit>,
) {
    if let Some(custom) = &shared.custom
        && (custom.exclusive() || !crate::custom::detect(&stream, custom.detect_timeout()).await)
    {
        serve_custom(custom.clone(), stream, remote_addr, &shared, permit).await;
        return;
    }
    // Small frames must not wait for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let local_addr = stream.local_addr().unwrap_or(remote_addr);
    serve_stream(stream, remote_addr, local_addr, shared, permit).await;
}

/// Serves a connection of the custom protocol, in a connection slot like any other.
async fn serve_custom<S: Send + Sync + 'static>(
    custom: Arc<dyn crate::custom::CustomServe>,
    stream: TcpStream,
    remote_addr: SocketAddr,
    shared: &Arc<Shared<S>>,
    permit: Option<OwnedSemaphorePermit>,
) {
    // A foreign protocol cannot be told why; a full server just closes.
    let Some(permit) = permit else {
        shared.counters.refused(Refused::Full);
        return;
    };
    // Small messages must not wait for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    serve_custom_io(custom, Box::new(stream), remote_addr, shared, permit).await;
}

/// Serves a custom-protocol connection over any byte stream (TCP, a StableIO session).
async fn serve_custom_io<S: Send + Sync + 'static>(
    custom: Arc<dyn crate::custom::CustomServe>,
    stream: crate::custom::BoxedIo,
    remote_addr: SocketAddr,
    shared: &Arc<Shared<S>>,
    permit: OwnedSemaphorePermit,
) {
    let env = crate::custom::CustomEnv {
        peers: shared.custom_peers.clone(),
        counters: shared.counters.clone(),
        drain: shared.drain.clone(),
        abort: shared.abort.clone(),
        idle_timeout: shared.config.session.idle_timeout,
    };
    custom.serve(stream, remote_addr, env).await;
    drop(permit);
}

/// Serves one connection over any byte stream: handshake, then the driver.
pub(crate) async fn serve_stream<S, IO>(
    stream: IO,
    remote_addr: SocketAddr,
    local_addr: SocketAddr,
    shared: Arc<Shared<S>>,
    permit: Option<OwnedSemaphorePermit>,
) where
    S: Send + Sync + 'static,
    IO: tokio::io::AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let arrived = tokio::time::Instant::now();
    let security = &shared.config.security;
    // Boxed, like the other one-off phases below: a task is allocated for its largest state,
    // and an idle connection should pay only for the driver's.
    let handshake = Box::pin(EncryptedStream::accept_any_token(
        stream,
        security,
        &shared.keypair,
    ));
    let stream = match handshake.await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%error, "handshake failed; connection dropped");
            shared.counters.refused(Refused::Handshake);
            return;
        }
    };
    shared.counters.handshake_done();
    if stream.stable_link() {
        if shared.config.accept_stable {
            Box::pin(serve_stable_link(
                stream,
                (remote_addr, local_addr),
                arrived,
                shared,
                permit,
            ))
            .await;
        } else {
            tracing::warn!("StableIO link refused: this server does not accept StableIO");
            shared.counters.refused(Refused::Stable);
        }
        return;
    }
    if !stream.client_token_ok() {
        tracing::warn!("client token rejected");
        shared.counters.refused(Refused::Unauthorized);
        Box::pin(refuse(
            stream,
            &shared.config,
            CloseCode::Unauthorized,
            "client token rejected",
        ))
        .await;
        return;
    }
    let Some(permit) = Box::pin(with_slot(permit, &shared)).await else {
        let reason = format!(
            "server full ({} connections)",
            shared.config.max_connections
        );
        shared.counters.refused(Refused::Full);
        Box::pin(refuse(
            stream,
            &shared.config,
            CloseCode::ServerFull,
            &reason,
        ))
        .await;
        return;
    };
    let info = SecurityInfo {
        suite: stream.suite(),
        peer_fingerprint: stream.peer_fingerprint(),
    };
    serve_secured(stream, info, remote_addr, local_addr, shared, permit, None).await;
}

/// The connection slot a new connection needs. When the server is full, a StableIO session
/// whose client has been gone the longest gives its slot up: a client that is here now wins
/// over one that may never come back. Waits up to a second for that session to end.
async fn with_slot<S: Send + Sync + 'static>(
    permit: Option<OwnedSemaphorePermit>,
    shared: &Arc<Shared<S>>,
) -> Option<OwnedSemaphorePermit> {
    if permit.is_some() || !shared.stable_sessions.evict_longest_detached() {
        return permit;
    }
    tokio::time::timeout(
        Duration::from_secs(1),
        shared.permits.clone().acquire_owned(),
    )
    .await
    .ok()
    .and_then(Result::ok)
}

/// Serves a link whose client spoke StableIO: opens a session (and serves a zs connection
/// over it) or hands the link to the session it resumes.
async fn serve_stable_link<S, IO>(
    stream: EncryptedStream<IO>,
    (remote_addr, local_addr): (SocketAddr, SocketAddr),
    arrived: tokio::time::Instant,
    shared: Arc<Shared<S>>,
    permit: Option<OwnedSemaphorePermit>,
) where
    S: Send + Sync + 'static,
    IO: tokio::io::AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let info = SecurityInfo {
        suite: stream.suite(),
        peer_fingerprint: stream.peer_fingerprint(),
    };
    let token_ok = stream.client_token_ok();
    let mut pending = match PendingLink::new(stream.link_secret()) {
        Ok(pending) => pending,
        Err(error) => {
            tracing::error!(%error, "cannot start a StableIO link");
            return;
        }
    };
    let mut io: stable::BoxedLink = Box::new(stream);
    if !token_ok {
        tracing::warn!("client token rejected (StableIO link)");
        shared.counters.refused(Refused::Unauthorized);
        stable::refuse_link(io, &mut pending, RefuseReason::Unauthorized).await;
        return;
    }
    let timeout = shared.config.security.handshake_timeout;
    let (request, leftover) = match stable::read_link_request(&mut io, &mut pending, timeout).await
    {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(%error, "bad StableIO link; dropped");
            shared.counters.refused(Refused::Stable);
            return;
        }
    };
    match request {
        LinkRequest::Open => {
            let config = &shared.config;
            let Some(permit) = with_slot(permit, &shared).await else {
                tracing::warn!(
                    limit = config.max_connections,
                    "refusing StableIO session: server full"
                );
                shared.counters.refused(Refused::Full);
                stable::refuse_link(io, &mut pending, RefuseReason::TooManySessions).await;
                return;
            };
            if !shared.stable_sessions.make_room() {
                tracing::warn!(
                    limit = config.stable.max_sessions,
                    "refusing StableIO session: too many sessions, all with a link"
                );
                shared.counters.refused(Refused::Stable);
                stable::refuse_link(io, &mut pending, RefuseReason::TooManySessions).await;
                return;
            }
            let now = tokio::time::Instant::now().into_std();
            let endpoint = match StableEndpoint::open_server(config.stable.clone(), &pending, now) {
                Ok(endpoint) => endpoint,
                Err(error) => {
                    tracing::error!(%error, "cannot open a StableIO session");
                    return;
                }
            };
            let Some(id) = endpoint.session_id() else {
                return;
            };
            let ended = shared.clone();
            let (stream, entry) = stable::serve(
                endpoint,
                io,
                leftover,
                config.stable.clone(),
                config.stable_link_timeout,
                shared.stable_sessions.budget().clone(),
                move || ended.stable_sessions.remove(id),
            );
            if shared.stable_sessions.insert(id, entry).is_err() {
                // Filled up since `make_room` (a race between new clients). Dropping the
                // entry and the stream ends the session's driver.
                tracing::warn!(
                    limit = config.stable.max_sessions,
                    "StableIO session dropped: too many sessions, all with a link"
                );
                return;
            }
            tracing::debug!(?id, "StableIO session opened");
            // The session outlives links, so the zs idle timer must not end it while a
            // link is down: StableIO's give-up time does that.
            let mut session_config = config.clone();
            session_config.session.idle_timeout = None;
            // A server with a custom protocol serves raw StableIO streams with it
            // (`ClientBuilder::connect_stable_stream`); a zs client starts with the preamble.
            let (is_zs, stream) = match &shared.custom {
                Some(custom) => {
                    crate::custom::detect_stream(
                        stream,
                        &zs_wire::session::PREAMBLE_MAGIC,
                        custom.detect_timeout(),
                    )
                    .await
                }
                None => (true, crate::custom::Prefixed::new(stream)),
            };
            if let Some(custom) = shared.custom.clone().filter(|c| !is_zs || c.exclusive()) {
                serve_custom_io(custom, Box::new(stream), remote_addr, &shared, permit).await;
                return;
            }
            serve_secured(
                stream,
                info,
                remote_addr,
                local_addr,
                shared,
                permit,
                Some(session_config),
            )
            .await;
        }
        LinkRequest::Resume {
            session_id,
            proof,
            next_expected,
        } => {
            drop(permit);
            let link = stable::IncomingLink {
                io,
                pending,
                proof,
                next_expected,
                leftover,
            };
            match shared.stable_sessions.route(session_id, link) {
                Ok(()) => shared.counters.resumed(arrived.elapsed()),
                Err(mut link) => {
                    tracing::debug!(?session_id, "resume for an unknown StableIO session");
                    shared.counters.refused(Refused::Stable);
                    stable::refuse_link(link.io, &mut link.pending, RefuseReason::UnknownSession)
                        .await;
                }
            }
        }
    }
}

/// Serves one connection whose security is settled: peer, hooks, driver. Set up before the
/// returned future exists, so the future (alive as long as the connection) carries only
/// what it needs after set-up, not the stream or a configuration.
fn serve_secured<S, IO>(
    stream: IO,
    info: SecurityInfo,
    remote_addr: SocketAddr,
    local_addr: SocketAddr,
    shared: Arc<Shared<S>>,
    permit: OwnedSemaphorePermit,
    session_config: Option<Config>,
) -> impl Future<Output = ()> + Send + 'static
where
    S: Send + Sync + 'static,
    IO: tokio::io::AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    tracing::debug!(suite = %info.suite, "handshake done");
    let (commands_sender, commands) = mpsc::unbounded_channel();
    let peer = Peer::new(
        remote_addr,
        local_addr,
        (shared.state_factory)(remote_addr),
        commands_sender,
        &shared.config,
        info,
    );
    shared
        .peers
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(peer.id(), peer.clone());
    let (established_sender, established) = tokio::sync::oneshot::channel();
    let hook_peer = peer.clone();
    let hook_shared = shared.clone();
    let connected_hook = async move {
        if let Ok(Ok(())) = established.await {
            tracing::debug!(id = hook_peer.id(), "connected");
            if let Some(hook) = &hook_shared.on_connected {
                hook(&hook_peer);
            }
            true
        } else {
            false
        }
    };
    let parts = DriverParts {
        peer: peer.clone(),
        commands,
        registry: shared.registry.clone(),
        tasks: shared.tasks.clone(),
        drain: shared.drain.clone(),
        abort: shared.abort.clone(),
        established: Some(established_sender),
        env: Arc::new(HandlerEnv {
            app: shared.app.clone(),
            server: Some(ServerRef::new(shared.clone())),
            offload: shared.offload.clone(),
        }),
        counters: Some(shared.counters.clone()),
    };
    // Boxed: its own allocation, sized for the driver's loop alone.
    let driver = Box::pin(drive(
        stream,
        session_config.as_ref().unwrap_or(&shared.config),
        parts,
    ));
    async move {
        let (reason, was_established) = tokio::join!(driver, connected_hook);
        finish_connection(&shared, &peer, reason, was_established);
        drop(permit);
    }
}

/// After a connection's driver ended: the peer leaves the table, the hook runs.
fn finish_connection<S: Send + Sync + 'static>(
    shared: &Shared<S>,
    peer: &Peer<S>,
    reason: DisconnectReason,
    was_established: bool,
) {
    peer.mark_closed(reason.clone());
    {
        let mut peers = shared
            .peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Folded under the lock snapshots take: see `ServerCounters::fold`.
        shared.counters.fold(&peer.traffic());
        peers.remove(&peer.id());
    }
    tracing::debug!(%reason, "disconnected");
    if was_established && let Some(hook) = &shared.on_disconnected {
        hook(peer, &reason);
    }
}
