//! [`accept`]: one TCP accept with the back-off every listener of ours needs.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long to wait after a failed accept before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts the next TCP connection, or returns `None` once `stop` is cancelled.
///
/// A failed accept (out of file descriptors, out of memory) is logged and retried after a
/// short pause instead of spinning: the listener itself stays usable, and connections that
/// close meanwhile free what the next accept needs. `what` names the listener in the log.
/// Used by the zs server and by XNat's public and agent ports.
pub async fn accept(
    listener: &TcpListener,
    stop: &CancellationToken,
    what: &str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(accepted) => return Some(accepted),
            Err(error) => {
                tracing::warn!(%error, listener = what, "accept failed; retrying shortly");
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
}
