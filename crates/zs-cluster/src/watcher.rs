//! [`DispatchWatcher`]: a client's receiver of registry changes.

use tokio::sync::mpsc;
use zs::dispatch::{Namespace, Service, Status};
use zs::{Context, DataFrame};

use crate::service::NAMESPACE;
use crate::{Change, Registration};

/// Changes a client may hold unread before further ones are dropped (with a warning).
pub const WATCH_QUEUE: usize = 1024;

/// Receives the registry changes a client asked for with
/// [`DispatchClient::watch`](crate::DispatchClient::watch). Install it on the client before
/// connecting; read the changes from the receiver [`DispatchWatcher::new`] returns.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let (watcher, mut changes) = zs_cluster::DispatchWatcher::new();
/// let mut builder = zs::Client::builder();
/// builder.install(watcher);
/// let client = builder.connect("127.0.0.1:4930").await?;
/// zs_cluster::DispatchClient::new(client.peer()).watch("logic").await?;
/// while let Some(change) = changes.recv().await {
///     println!("{change:?}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DispatchWatcher {
    sender: mpsc::Sender<Change>,
}

impl DispatchWatcher {
    /// A watcher, and where its changes arrive (at most [`WATCH_QUEUE`] unread).
    pub fn new() -> (Self, mpsc::Receiver<Change>) {
        let (sender, receiver) = mpsc::channel(WATCH_QUEUE);
        (Self { sender }, receiver)
    }
}

fn decode(frame: &DataFrame) -> Result<Change, String> {
    let mut reader = frame.reader();
    match reader.read_u8().map_err(|error| error.to_string())? {
        0 => {
            let json = reader.read_str().map_err(|error| error.to_string())?;
            let registration: Registration =
                serde_json::from_str(json).map_err(|error| error.to_string())?;
            Ok(Change::Up(registration))
        }
        1 => Ok(Change::Down {
            service_type: reader.read_string().map_err(|error| error.to_string())?,
            id: reader.read_string().map_err(|error| error.to_string())?,
        }),
        other => Err(format!("unknown change kind {other}")),
    }
}

impl<S: Send + Sync + 'static> Service<S> for DispatchWatcher {
    fn namespace(&self) -> &str {
        NAMESPACE
    }

    fn install(self, commands: &mut Namespace<'_, S>) {
        let sender = self.sender;
        commands.register_direct_stream("changed", move |_ctx: Context<S>, frame: DataFrame| {
            let sender = sender.clone();
            async move {
                let change = decode(&frame).map_err(Status::invalid_argument)?;
                if sender.try_send(change).is_err() {
                    tracing::warn!("registry change dropped: the watcher's queue is full");
                }
                Ok(())
            }
        });
    }
}
