//! [`Registration`]: what a server tells the dispatcher about itself.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Whether a registered server takes new clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    /// Takes new clients.
    #[default]
    Online,
    /// Finishing with its clients; sent no new ones.
    Draining,
    /// Registered but not serving.
    Offline,
}

impl ServerState {
    /// The state's wire code.
    pub fn code(self) -> u8 {
        match self {
            Self::Online => 0,
            Self::Draining => 1,
            Self::Offline => 2,
        }
    }

    /// The state of wire code `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Online),
            1 => Some(Self::Draining),
            2 => Some(Self::Offline),
            _ => None,
        }
    }
}

/// One server of one type (ZServer4D: a `ManagerServer` entry — a server's type, addresses
/// and load).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Free-form service type: `"logic"`, `"db"`, `"files"`, `"payment"`, …
    pub service_type: String,
    /// The server's id, unique within its type.
    pub id: String,
    /// Where clients reach it (IPv4 and IPv6, several allowed).
    pub addresses: Vec<SocketAddr>,
    /// How much load it takes (any unit; the same for every server of the type).
    pub capacity: u64,
    /// Its current load, in the unit of `capacity`.
    pub load: u64,
    /// Whether it takes new clients.
    pub state: ServerState,
    /// Its key's fingerprint (`sha3-256:<hex>`), for clients to pin; empty if none.
    pub fingerprint: String,
}

/// Longest type or id, bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Most addresses in one registration.
pub const MAX_ADDRESSES: usize = 16;

impl Registration {
    /// A registration of server `id` of `service_type` at `addresses`, online, with
    /// `capacity` and no load.
    pub fn new(
        service_type: impl Into<String>,
        id: impl Into<String>,
        addresses: impl IntoIterator<Item = SocketAddr>,
        capacity: u64,
    ) -> Self {
        Self {
            service_type: service_type.into(),
            id: id.into(),
            addresses: addresses.into_iter().collect(),
            capacity,
            load: 0,
            state: ServerState::Online,
            fingerprint: String::new(),
        }
    }

    /// Checks the bounds: names 1 to [`MAX_NAME_LEN`] bytes of printable ASCII without
    /// spaces or `/`, 1 to [`MAX_ADDRESSES`] addresses, a capacity above zero.
    pub fn check(&self) -> Result<(), String> {
        for (what, name) in [("type", &self.service_type), ("id", &self.id)] {
            let ok = !name.is_empty()
                && name.len() <= MAX_NAME_LEN
                && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
            if !ok {
                return Err(format!(
                    "the {what} must be 1 to {MAX_NAME_LEN} printable ASCII characters without spaces or '/'"
                ));
            }
        }
        if self.addresses.is_empty() || self.addresses.len() > MAX_ADDRESSES {
            return Err(format!("1 to {MAX_ADDRESSES} addresses, please"));
        }
        if self.capacity == 0 {
            return Err("a capacity above zero, please".to_owned());
        }
        Ok(())
    }

    /// Load relative to capacity, for choosing the least-loaded server.
    pub fn load_ratio(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        {
            self.load as f64 / self.capacity.max(1) as f64
        }
    }
}

/// The least-loaded online server among `servers`: lowest load relative to capacity, ties
/// broken by id so every dispatcher answers alike.
pub fn best<'a>(servers: impl IntoIterator<Item = &'a Registration>) -> Option<&'a Registration> {
    servers
        .into_iter()
        .filter(|server| server.state == ServerState::Online)
        .min_by(|a, b| {
            a.load_ratio()
                .total_cmp(&b.load_ratio())
                .then_with(|| a.id.cmp(&b.id))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: &str, load: u64, capacity: u64) -> Registration {
        let mut server = Registration::new("logic", id, ["127.0.0.1:1".parse().unwrap()], capacity);
        server.load = load;
        server
    }

    #[test]
    fn the_best_is_the_least_loaded_online_one_with_a_stable_tie_break() {
        let mut servers = vec![
            server("b", 50, 100),
            server("a", 10, 10),
            server("c", 5, 100),
        ];
        assert_eq!(best(&servers).unwrap().id, "c");
        servers[2].state = ServerState::Draining;
        assert_eq!(best(&servers).unwrap().id, "b");
        servers.push(server("a2", 100, 200));
        assert_eq!(best(&servers).unwrap().id, "a2", "0.5 ties with b; a2 < b");
        for server in &mut servers {
            server.state = ServerState::Offline;
        }
        assert!(best(&servers).is_none());
    }

    #[test]
    fn bounds_are_checked() {
        assert!(server("x", 0, 1).check().is_ok());
        assert!(server("", 0, 1).check().is_err());
        assert!(server("a b", 0, 1).check().is_err());
        assert!(server("a/b", 0, 1).check().is_err());
        assert!(server(&"x".repeat(200), 0, 1).check().is_err());
        assert!(server("x", 0, 0).check().is_err());
        let mut many = server("x", 0, 1);
        many.addresses = vec!["127.0.0.1:1".parse().unwrap(); 17];
        assert!(many.check().is_err());
        for state in [
            ServerState::Online,
            ServerState::Draining,
            ServerState::Offline,
        ] {
            assert_eq!(ServerState::from_code(state.code()), Some(state));
        }
        assert_eq!(ServerState::from_code(9), None);
    }
}
