//! Agent links: the agent listener, reverse-mode dialing, the link setup (handshake,
//! multiplexer, control stream, `Hello`) and the registration of mappings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zs::EncryptedStream;
use zs::mux::{MuxLink, Role};

use super::public::Mapping;
use super::{AgentEntry, AgentId, Shared, lock};
use crate::backoff::Backoff;
use crate::codec::{CONTROL_SERVICE, ControlMessage, PROTOCOL_VERSION, RefuseReason};
use crate::link::{ControlChannel, Cuttable, LinkError, within};
use crate::stats::AgentStats;

/// Registrations one agent link may attempt; past it the link is closed.
const MAX_REGISTRATIONS_PER_LINK: usize = 1024;

/// How long an agent that left gracefully may keep its link for connections in flight.
const LEAVE_DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// How long a peer that broke the protocol gets to read our `Error` before the link is cut.
const ERROR_LINGER: Duration = Duration::from_secs(2);

pub(super) async fn accept_agents(shared: Arc<Shared>, listener: TcpListener) {
    while let Some((socket, address)) =
        zs::transport::accept(&listener, &shared.accepting, "the agent port").await
    {
        let Ok(permit) = shared.agent_permits.clone().try_acquire_owned() else {
            warn!(%address, "max_agents reached; agent connection closed");
            continue;
        };
        let task_shared = shared.clone();
        shared.tasks.spawn(async move {
            serve_agent(task_shared, socket, address).await;
            drop(permit);
        });
    }
}

/// Reverse mode: keeps a link to the agent listening at `address`.
pub(super) async fn dial_agent(shared: Arc<Shared>, address: String, mut backoff: Backoff) {
    loop {
        let connect = within(
            shared.link.handshake_timeout,
            "the TCP connection",
            TcpStream::connect(address.as_str()),
        );
        let connected = tokio::select! {
            () = shared.accepting.cancelled() => break,
            connected = connect => connected,
        };
        match connected {
            Ok(socket) => {
                let peer = socket
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                if serve_agent(shared.clone(), socket, peer).await {
                    backoff.reset();
                }
            }
            Err(error) => debug!(agent = %address, %error, "cannot dial the agent"),
        }
        let delay = backoff.next_delay();
        debug!(agent = %address, ?delay, "redialing the agent");
        tokio::select! {
            () = shared.accepting.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Serves one agent link until it ends; true if a mapping was registered on it.
async fn serve_agent(shared: Arc<Shared>, socket: TcpStream, address: SocketAddr) -> bool {
    let _ = socket.set_nodelay(true);
    let encrypted =
        match EncryptedStream::accept(socket, &shared.link.security, &shared.keypair).await {
            Ok(encrypted) => encrypted,
            Err(error) => {
                warn!(%address, %error, "agent handshake failed; connection closed");
                return false;
            }
        };
    let channel_binding = encrypted.channel_binding();
    let cut = shared.closing.child_token();
    let link = MuxLink::new(
        Cuttable::new(encrypted, &cut),
        Role::Acceptor,
        shared.link.mux.clone(),
    );
    let served = run_agent_link(&shared, &link, address, &channel_binding).await;
    cut.cancel();
    served
}

async fn run_agent_link(
    shared: &Arc<Shared>,
    link: &MuxLink,
    address: SocketAddr,
    channel_binding: &[u8; 32],
) -> bool {
    let limit = shared.link.handshake_timeout;
    let control = match link.listen(CONTROL_SERVICE) {
        Ok(mut listener) => {
            within(limit, "the control stream", async move {
                listener.accept().await.ok_or(LinkError::Closed)
            })
            .await
        }
        Err(error) => Err(error.into()),
    };
    let mut channel = match control {
        Ok(stream) => ControlChannel::new(stream),
        Err(error) => {
            warn!(%address, %error, "agent opened no control stream; link closed");
            return false;
        }
    };
    let name = match within(limit, "Hello", channel.receive()).await {
        Ok(Some(ControlMessage::Hello { version, agent })) if version == PROTOCOL_VERSION => agent,
        Ok(Some(ControlMessage::Hello { version, .. })) => {
            warn!(%address, version, "agent speaks another protocol version; link closed");
            let message = format!(
                "protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
            );
            channel.close_with_error(message, ERROR_LINGER).await;
            return false;
        }
        Ok(other) => {
            warn!(%address, message = ?other, "agent did not start with Hello; link closed");
            channel
                .close_with_error("expected Hello".into(), ERROR_LINGER)
                .await;
            return false;
        }
        Err(error) => {
            warn!(%address, %error, "agent link failed before Hello; link closed");
            if matches!(error, LinkError::Codec(_)) {
                channel
                    .close_with_error(error.to_string(), ERROR_LINGER)
                    .await;
            }
            return false;
        }
    };
    if channel
        .send(&ControlMessage::Welcome {
            version: PROTOCOL_VERSION,
        })
        .await
        .is_err()
    {
        return false;
    }
    let id = shared.next_agent.fetch_add(1, Ordering::Relaxed);
    let label = if name.is_empty() {
        address.to_string()
    } else {
        format!("{name:?} ({address})")
    };
    let kick = CancellationToken::new();
    lock(&shared.agents).insert(
        id,
        AgentEntry {
            stats: AgentStats {
                id,
                name,
                address: address.to_string(),
                mappings: Vec::new(),
            },
            kick: kick.clone(),
        },
    );
    info!(agent = %label, "agent connected");
    let mut registered: Vec<Arc<Mapping>> = Vec::new();
    let mut served = false;
    let mut attempts = 0;
    let reason = loop {
        let message = tokio::select! {
            () = shared.closing.cancelled() => break "the server is shutting down".to_owned(),
            () = kick.cancelled() => {
                channel
                    .close_with_error("closed by the server's operator".into(), ERROR_LINGER)
                    .await;
                break "kicked by the operator".to_owned();
            }
            message = channel.receive() => message,
        };
        match message {
            Ok(Some(ControlMessage::Register {
                mapping,
                proof,
                weight,
            })) => {
                attempts += 1;
                if attempts > MAX_REGISTRATIONS_PER_LINK {
                    channel
                        .close_with_error("too many registrations".into(), ERROR_LINGER)
                        .await;
                    break "too many registrations".to_owned();
                }
                let reply = register(
                    shared,
                    id,
                    link,
                    &label,
                    &mapping,
                    &TokenProof {
                        proof,
                        channel_binding,
                    },
                    weight,
                    &mut registered,
                )
                .await;
                if let Err(error) = channel.send(&reply).await {
                    break format!("control stream failed: {error}");
                }
            }
            Ok(Some(ControlMessage::Error { message })) => {
                break format!("the agent reported: {message:?}");
            }
            Ok(Some(other)) => {
                warn!(agent = %label, message = ?other, "unexpected control message; link closed");
                channel
                    .close_with_error("unexpected control message".into(), ERROR_LINGER)
                    .await;
                break "protocol violation".to_owned();
            }
            Ok(None) => {
                // A graceful leave: no new connections for this agent; those in flight get
                // the agent's grace period, after which it closes the link.
                for mapping in registered.drain(..) {
                    mapping.detach(id);
                    served = true;
                }
                channel.finish().await;
                let drained = async {
                    while link.ended().is_none() && link.stream_count() > 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                };
                tokio::select! {
                    () = drained => {}
                    () = shared.closing.cancelled() => {}
                    () = tokio::time::sleep(LEAVE_DRAIN_LIMIT) => {}
                }
                break "the agent left".to_owned();
            }
            Err(LinkError::Codec(error)) => {
                warn!(agent = %label, %error, "malformed control message; link closed");
                channel
                    .close_with_error(format!("malformed control message: {error}"), ERROR_LINGER)
                    .await;
                break "malformed control message".to_owned();
            }
            Err(error) => break format!("link lost: {error}"),
        }
    };
    for mapping in &registered {
        mapping.detach(id);
    }
    lock(&shared.agents).remove(&id);
    info!(agent = %label, %reason, "agent disconnected");
    served || !registered.is_empty()
}

/// A `Register`'s proof of the mapping token, and the link it must be bound to.
struct TokenProof<'a> {
    proof: [u8; 32],
    channel_binding: &'a [u8; 32],
}

/// Handles one `Register`: the reply to send.
#[allow(clippy::too_many_arguments)]
async fn register(
    shared: &Arc<Shared>,
    id: AgentId,
    link: &MuxLink,
    label: &str,
    name: &str,
    token: &TokenProof<'_>,
    weight: u16,
    registered: &mut Vec<Arc<Mapping>>,
) -> ControlMessage {
    let refuse = |reason: RefuseReason, message: String| {
        warn!(agent = %label, mapping = ?name, %reason, "{message}");
        ControlMessage::Refused {
            mapping: name.to_owned(),
            reason,
            message,
        }
    };
    let Some(mapping) = shared.mappings.get(name) else {
        return refuse(
            RefuseReason::UnknownMapping,
            format!("the server has no mapping {name:?}"),
        );
    };
    if !mapping
        .token
        .verify_register_proof(name, token.channel_binding, &token.proof)
    {
        return refuse(
            RefuseReason::WrongToken,
            format!("wrong token for mapping {name:?}"),
        );
    }
    match mapping.attach(shared, id, link, weight).await {
        Ok((address, agents)) => {
            registered.push(mapping.clone());
            if let Some(agent) = lock(&shared.agents).get_mut(&id) {
                agent.stats.mappings.push(name.to_owned());
            }
            info!(agent = %label, mapping = %name, public = %address, agents, "mapping registered");
            ControlMessage::Registered {
                mapping: name.to_owned(),
                public: address.to_string(),
            }
        }
        Err((reason, message)) => refuse(reason, message),
    }
}
