//! [`RegistryEntries`]: an entry pool taken from the registry.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use zs::EntrySource;

use crate::DispatchClient;

/// An entry pool from the dispatcher's HostQuery: the addresses of the registrations whose
/// `type/id` match `pattern`, asked again before every StableIO link
/// ([`zs::ClientBuilder::connect_pool`]). The pattern must select entries of one server
/// (its interfaces, or relays in front of it): a session resumes only in the process that
/// holds it.
#[derive(Debug, Clone)]
pub struct RegistryEntries {
    dispatcher: Arc<zs::Client>,
    pattern: String,
}

impl RegistryEntries {
    /// The entries matching `pattern`, asked of the dispatcher at the other end of
    /// `dispatcher`.
    pub fn new(dispatcher: Arc<zs::Client>, pattern: impl Into<String>) -> Self {
        Self {
            dispatcher,
            pattern: pattern.into(),
        }
    }
}

impl EntrySource for RegistryEntries {
    fn entries(&self) -> BoxFuture<'_, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move {
            let hosts = DispatchClient::new(self.dispatcher.peer())
                .query_hosts(&self.pattern)
                .await
                .map_err(io::Error::other)?;
            hosts
                .iter()
                .map(|host| {
                    host.parse()
                        .map_err(|_| io::Error::other(format!("the registry gave {host:?}")))
                })
                .collect()
        })
    }
}
