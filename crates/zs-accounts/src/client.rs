//! [`AccountClient`]: the typed client of an [`AccountService`](crate::AccountService).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zs::{CallError, DataFrame, Peer, User};

use crate::service::NAMESPACE;

/// What an [`AccountClient`] call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountClientError {
    /// The call failed, or the server answered with an error status (see
    /// [`CallError::status`]: `UNAUTHENTICATED` for a wrong login, `RESOURCE_EXHAUSTED` with
    /// "try again in N s", and so on).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The server's reply is not what the command returns.
    #[error("malformed reply: {0}")]
    Reply(String),
}

impl AccountClientError {
    /// The status code the server answered with, if it answered with an error.
    pub fn code(&self) -> Option<zs::StatusCode> {
        match self {
            Self::Call(call) => call.status().map(zs::Status::code),
            Self::Reply(_) => None,
        }
    }
}

fn reply<T>(result: Result<T, impl ToString>) -> Result<T, AccountClientError> {
    result.map_err(|error| AccountClientError::Reply(error.to_string()))
}

/// An account as an admin lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedAccount {
    /// The user name.
    pub name: String,
    /// Whether logins are refused.
    pub disabled: bool,
    /// When it was made, seconds since the Unix epoch.
    pub created: u64,
    /// Roles.
    pub roles: Vec<String>,
}

/// The server's clock as a client measured it (ZServer4D's cadencer sync).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerTime {
    /// The server's time when it answered.
    pub server: SystemTime,
    /// How far the server's clock is ahead of this one (negative: behind), assuming the
    /// request and the reply took equally long.
    pub offset: Duration,
    /// Whether the server is behind (the offset counts backwards).
    pub behind: bool,
    /// The round trip of the request.
    pub round_trip: Duration,
}

/// The account commands of the server at the other side of a connection.
///
/// ```no_run
/// # async fn demo(client: zs::Client) -> Result<(), zs_accounts::AccountClientError> {
/// let accounts = zs_accounts::AccountClient::new(client.peer());
/// accounts.register("ann", "correct horse battery").await?;
/// let me = accounts.login("ann", "correct horse battery").await?;
/// assert_eq!(me.name(), "ann");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AccountClient<'a, S = ()> {
    peer: &'a Peer<S>,
}

impl<S> Clone for AccountClient<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for AccountClient<'_, S> {}

fn user(frame: &DataFrame) -> Result<User, AccountClientError> {
    let mut reader = frame.reader();
    let name = reply(reader.read_string())?;
    let mut roles = Vec::new();
    while reader.peek().is_some() {
        roles.push(reply(reader.read_string())?);
    }
    Ok(User::new(name, roles))
}

impl<'a, S: Send + Sync + 'static> AccountClient<'a, S> {
    /// The accounts at the other side of `peer`.
    pub fn new(peer: &'a Peer<S>) -> Self {
        Self { peer }
    }

    async fn call(&self, name: &str, input: DataFrame) -> Result<DataFrame, AccountClientError> {
        Ok(self
            .peer
            .call_stream(&format!("{NAMESPACE}.{name}"), &input)
            .await?)
    }

    /// Makes an account (when the server allows registration).
    pub async fn register(&self, name: &str, password: &str) -> Result<(), AccountClientError> {
        self.call("register", DataFrame::new().with(name).with(password))
            .await
            .map(drop)
    }

    /// Logs this connection in as `name`; the user with its roles.
    pub async fn login(&self, name: &str, password: &str) -> Result<User, AccountClientError> {
        user(
            &self
                .call("login", DataFrame::new().with(name).with(password))
                .await?,
        )
    }

    /// Logs this connection out.
    pub async fn logout(&self) -> Result<(), AccountClientError> {
        self.call("logout", DataFrame::new()).await.map(drop)
    }

    /// Who this connection is logged in as.
    pub async fn whoami(&self) -> Result<Option<User>, AccountClientError> {
        let frame = self.call("whoami", DataFrame::new()).await?;
        if frame.is_empty() {
            Ok(None)
        } else {
            user(&frame).map(Some)
        }
    }

    /// Changes the logged-in user's password.
    pub async fn change_password(&self, old: &str, new: &str) -> Result<(), AccountClientError> {
        self.call("passwd", DataFrame::new().with(old).with(new))
            .await
            .map(drop)
    }

    /// Reads the server's clock and how far it is from this one.
    pub async fn server_time(&self) -> Result<ServerTime, AccountClientError> {
        let sent = Instant::now();
        let sent_at = SystemTime::now();
        let frame = self.call("time", DataFrame::new()).await?;
        let round_trip = sent.elapsed();
        let micros = reply(frame.reader().read_i64())?;
        let server =
            UNIX_EPOCH
                + Duration::from_micros(u64::try_from(micros).map_err(|_| {
                    AccountClientError::Reply(format!("a server time of {micros} µs"))
                })?);
        // The server read its clock half a round trip after we sent.
        let local = sent_at + round_trip / 2;
        let (offset, behind) = match server.duration_since(local) {
            Ok(ahead) => (ahead, false),
            Err(behind) => (behind.duration(), true),
        };
        Ok(ServerTime {
            server,
            offset,
            behind,
            round_trip,
        })
    }

    /// Sends `message` to user `to` (needs a login): their connections get a stream call of
    /// `command` with `[from, message]`, or, when they are not logged in, it waits for
    /// their next login.
    pub async fn send(
        &self,
        to: &str,
        command: &str,
        message: DataFrame,
    ) -> Result<crate::Delivery, AccountClientError> {
        let frame = self
            .call(
                "send",
                DataFrame::new().with(to).with(command).with(message),
            )
            .await?;
        let mut reader = frame.reader();
        let delivered = reply(reader.read_u64())?;
        let queued = reply(reader.read_bool())?;
        Ok(if queued {
            crate::Delivery::Queued
        } else {
            crate::Delivery::Delivered(usize::try_from(delivered).unwrap_or(usize::MAX))
        })
    }

    /// Adds a user (needs the `admin` role).
    pub async fn add_user(
        &self,
        name: &str,
        password: &str,
        roles: &[&str],
    ) -> Result<(), AccountClientError> {
        let frame = roles
            .iter()
            .fold(DataFrame::new().with(name).with(password), |frame, role| {
                frame.with(*role)
            });
        self.call("admin.add", frame).await.map(drop)
    }

    /// Every account (needs the `admin` role).
    pub async fn list_users(&self) -> Result<Vec<ListedAccount>, AccountClientError> {
        let frame = self.call("admin.list", DataFrame::new()).await?;
        let mut reader = frame.reader();
        let mut accounts = Vec::new();
        while reader.peek().is_some() {
            let name = reply(reader.read_string())?;
            let disabled = reply(reader.read_bool())?;
            let created = reply(reader.read_u64())?;
            let roles = reply(reader.read_string())?;
            accounts.push(ListedAccount {
                name,
                disabled,
                created,
                roles: roles
                    .split(',')
                    .filter(|role| !role.is_empty())
                    .map(str::to_owned)
                    .collect(),
            });
        }
        Ok(accounts)
    }

    /// Refuses (or again allows) `name`'s logins (needs the `admin` role); a disabled
    /// user's connections are logged out.
    pub async fn disable_user(&self, name: &str, disabled: bool) -> Result<(), AccountClientError> {
        self.call("admin.disable", DataFrame::new().with(name).with(disabled))
            .await
            .map(drop)
    }

    /// Removes user `name` (needs the `admin` role); whether it existed.
    pub async fn delete_user(&self, name: &str) -> Result<bool, AccountClientError> {
        let frame = self
            .call("admin.delete", DataFrame::new().with(name))
            .await?;
        reply(frame.reader().read_bool())
    }
}
