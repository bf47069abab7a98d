//! Who a connection belongs to ([`User`]) and which commands need one ([`Requirement`]).
//!
//! ZServer4D's dual-tunnel servers refuse a client's commands until it has logged in and
//! linked its tunnels (`TunnelLink`). Here a connection carries an optional [`User`], set by
//! whatever decides logins (the accounts service, or the application's own check — the
//! original's `VirtualAuth`) with [`Peer::set_user`](crate::Peer::set_user); a command or a
//! whole namespace can require one ([`Commands::require`](crate::Commands::require)), and
//! the connection's driver refuses the call with `UNAUTHENTICATED` (no user) or
//! `PERMISSION_DENIED` (a user without the role) before the handler runs.

use std::sync::Arc;

use crate::dispatch::status::Status;

/// The user a connection is logged in as (ZServer4D: the dual-tunnel client's `UserID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    name: Arc<str>,
    roles: Arc<[String]>,
}

impl User {
    /// A user called `name` with `roles` (e.g. `admin`).
    pub fn new(name: impl Into<Arc<str>>, roles: impl IntoIterator<Item = String>) -> Self {
        Self {
            name: name.into(),
            roles: roles.into_iter().collect(),
        }
    }

    /// The user's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The user's roles.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Whether the user has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }
}

/// What a command asks of the caller before its handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// Any logged-in user.
    Login,
    /// A logged-in user with this role.
    Role(String),
}

impl Requirement {
    /// `Ok` if the user logged in on `peer` meets the requirement; otherwise the status the
    /// caller gets. A plain login requirement reads one flag, not the user.
    pub(crate) fn check_peer<S>(&self, peer: &crate::Peer<S>, command: &str) -> Result<(), Status> {
        match self {
            Requirement::Login if peer.is_logged_in() => Ok(()),
            _ => peer.with_user(|user| self.check(user, command)),
        }
    }

    /// `Ok` if `user` meets the requirement; otherwise the status the caller gets.
    pub(crate) fn check(&self, user: Option<&User>, command: &str) -> Result<(), Status> {
        let Some(user) = user else {
            return Err(Status::unauthenticated(format!(
                "{command:?} needs a logged-in user"
            )));
        };
        match self {
            Requirement::Login => Ok(()),
            Requirement::Role(role) if user.has_role(role) => Ok(()),
            Requirement::Role(role) => Err(Status::permission_denied(format!(
                "{command:?} needs the role {role:?}"
            ))),
        }
    }
}

/// Which commands a requirement covers: one name, or every name under a prefix (`"chat.*"`
/// covers `chat.say` and `chat.room.join`).
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pattern: String,
    pub(crate) requirement: Requirement,
}

impl Rule {
    pub(crate) fn new(pattern: &str, requirement: Requirement) -> Self {
        Self {
            pattern: pattern.to_owned(),
            requirement,
        }
    }

    pub(crate) fn covers(&self, name: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == self.pattern,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StatusCode;

    #[test]
    fn requirements_refuse_with_the_right_status() {
        let ann = User::new("ann", ["admin".to_owned()]);
        let bob = User::new("bob", []);
        let login = Requirement::Login;
        let admin = Requirement::Role("admin".into());
        assert_eq!(
            login.check(None, "x").unwrap_err().code(),
            StatusCode::UNAUTHENTICATED
        );
        assert!(login.check(Some(&bob), "x").is_ok());
        assert!(admin.check(Some(&ann), "x").is_ok());
        assert_eq!(
            admin.check(Some(&bob), "x").unwrap_err().code(),
            StatusCode::PERMISSION_DENIED
        );
        assert_eq!(
            admin.check(None, "x").unwrap_err().code(),
            StatusCode::UNAUTHENTICATED
        );
    }

    #[test]
    fn rules_cover_names_or_prefixes() {
        let one = Rule::new("chat.say", Requirement::Login);
        let all = Rule::new("chat.*", Requirement::Login);
        assert!(one.covers("chat.say") && !one.covers("chat.says"));
        assert!(all.covers("chat.say") && all.covers("chat.room.join"));
        assert!(!all.covers("chats.x") && !all.covers("chat"));
    }
}
