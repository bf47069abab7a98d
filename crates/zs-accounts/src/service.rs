//! [`AccountService`]: register, log in and out, change passwords, administer accounts,
//! and know which connections each user has.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;
use zs::dispatch::{Namespace, Service, Status};
use zs::{Context, DataFrame, Peer, Requirement, User};
use zs_wire::dataframe::DataFrameReader;

use crate::limit::{LimitConfig, Limiter, LoginLimits};
use crate::{AccountError, Accounts};

/// The service's namespace.
pub const NAMESPACE: &str = "__zs.accounts";
/// The role that may administer accounts.
pub const ADMIN_ROLE: &str = "admin";

/// What happens when a user logs in while already logged in on another connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecondLogin {
    /// Both connections stay (several devices).
    #[default]
    Allow,
    /// The older connections are closed, as ZServer4D's dual-tunnel server does.
    CloseOlder,
}

/// What became of a message sent to a user by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered to this many of the user's connections.
    Delivered(usize),
    /// The user is not logged in: queued for their next login.
    Queued,
}

/// How the service behaves.
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// Whether anyone may register (otherwise only an admin adds users).
    pub open_registration: bool,
    /// What a second login of the same user does.
    pub second_login: SecondLogin,
    /// Failed logins, per user name and per address.
    pub logins: LimitConfig,
    /// Registrations allowed from one address per [`Self::registration_window`].
    pub registrations_per_window: u32,
    /// See [`Self::registrations_per_window`].
    pub registration_window: Duration,
    /// Most offline messages waiting for one user; past it, senders get
    /// `RESOURCE_EXHAUSTED`.
    pub offline_per_user: usize,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            open_registration: true,
            second_login: SecondLogin::Allow,
            logins: LimitConfig::default(),
            registrations_per_window: 10,
            registration_window: Duration::from_secs(3600),
            offline_per_user: 1000,
        }
    }
}

struct Inner<S> {
    accounts: Accounts,
    config: AccountsConfig,
    failures: LoginLimits,
    registrations: Mutex<Limiter>,
    /// Logged-in connections by user name, oldest first.
    online: Mutex<HashMap<String, Vec<Peer<S>>>>,
    /// Connections whose end is watched (to take them out of `online`).
    watched: Mutex<HashSet<u64>>,
    /// For the admin listener: logins, failed logins, logins refused while locked out.
    counters: [std::sync::atomic::AtomicU64; 3],
}

/// What the accounts service counted ([`AccountService::metrics`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AccountMetrics {
    /// Successful logins.
    pub logins: u64,
    /// Logins refused for a wrong name or password, or a disabled account.
    pub login_failures: u64,
    /// Logins refused because the name or address was locked out after failures.
    pub lockouts: u64,
    /// Users logged in now (on at least one connection).
    pub users_online: u64,
}

const LOGINS: usize = 0;
const FAILURES: usize = 1;
const LOCKOUTS: usize = 2;

impl<S> Inner<S> {
    /// Takes connection `peer` out of user `name`'s connections.
    fn forget(&self, name: &str, peer: u64) {
        let mut online = lock(&self.online);
        if let Some(peers) = online.get_mut(name) {
            peers.retain(|known| known.id() != peer);
            if peers.is_empty() {
                online.remove(name);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The accounts service (ZServer4D's dual-tunnel server's user side: `UserRegister`,
/// `UserLogin`, `ChangePasswd`, `GetOnlineList`), installed on a server with
/// [`Server::install`](zs::Server::install); [`AccountClient`](crate::AccountClient) calls
/// it. A successful login sets the connection's [`User`], which commands marked with
/// [`Commands::require`](zs::Commands::require) need. Clones share everything.
///
/// Commands (namespace `__zs.accounts`, DataFrames in and out):
///
/// | command | input | reply | needs |
/// |---|---|---|---|
/// | `register` | `[name, password]` | `[]` | open registration |
/// | `login` | `[name, password]` | `[name, role*]` | |
/// | `logout` | `[]` | `[]` | |
/// | `whoami` | `[]` | `[]` or `[name, role*]` | |
/// | `passwd` | `[old, new]` | `[]` | login |
/// | `time` | `[]` | `[unix_micros: i64]` (the original's cadencer) | |
/// | `send` | `[to, command, message: DataFrame]` | `[delivered_to: u64, queued: bool]` | login |
/// | `admin.add` | `[name, password, role*]` | `[]` | role `admin` |
/// | `admin.list` | `[]` | `[name, disabled: bool, created: u64, roles: String]*` | role `admin` |
/// | `admin.disable` | `[name, disabled: bool]` | `[]` | role `admin` |
/// | `admin.delete` | `[name]` | `[existed: bool]` | role `admin` |
/// | `admin.online` | `[]` | `[name, connections: u64]*` | role `admin` |
///
/// Errors: `UNAUTHENTICATED` (wrong name or password — one message for both — or a
/// disabled account), `RESOURCE_EXHAUSTED` (too many failures: "try again in N s"; too many
/// registrations), `ALREADY_EXISTS`, `NOT_FOUND`, `INVALID_ARGUMENT`, `PERMISSION_DENIED`.
pub struct AccountService<S = ()> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for AccountService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S> std::fmt::Debug for AccountService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountService")
            .field("accounts", &self.inner.accounts)
            .finish_non_exhaustive()
    }
}

/// Reads a string argument.
pub(crate) fn string(reader: &mut DataFrameReader<'_>) -> Result<String, Status> {
    reader
        .read_string()
        .map_err(|error| Status::invalid_argument(error.to_string()))
}

pub(crate) fn user_frame(user: &User) -> DataFrame {
    user.roles()
        .iter()
        .fold(DataFrame::new().with(user.name()), |frame, role| {
            frame.with(role.as_str())
        })
}

impl<S: Send + Sync + 'static> AccountService<S> {
    /// Logins, failures, lockouts and users online, for the admin listener.
    pub fn metrics(&self) -> AccountMetrics {
        let load =
            |which: usize| self.inner.counters[which].load(std::sync::atomic::Ordering::Relaxed);
        AccountMetrics {
            logins: load(LOGINS),
            login_failures: load(FAILURES),
            lockouts: load(LOCKOUTS),
            users_online: lock(&self.inner.online).len() as u64,
        }
    }

    /// The service over `accounts`.
    pub fn new(accounts: Accounts, config: AccountsConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                accounts,
                failures: LoginLimits::new(config.logins),
                // Each registration counts as a "failure": the last one allowed locks the
                // address for the window.
                registrations: Mutex::new(Limiter::new(LimitConfig {
                    free_failures: config.registrations_per_window.saturating_sub(1),
                    first_lockout: config.registration_window,
                    max_lockout: config.registration_window,
                    window: config.registration_window,
                    max_keys: config.logins.max_keys,
                })),
                config,
                online: Mutex::new(HashMap::new()),
                watched: Mutex::new(HashSet::new()),
                counters: Default::default(),
            }),
        }
    }

    /// The accounts served.
    pub fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    /// The connections user `name` is logged in on, oldest first (ZServer4D: finding a
    /// user's `TPeerIO` by `UserID`).
    pub fn connections_of(&self, name: &str) -> Vec<Peer<S>> {
        lock(&self.inner.online)
            .get(name)
            .map(|peers| {
                peers
                    .iter()
                    .filter(|peer| !peer.is_closed())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Users logged in now, with their connection counts, by name.
    pub fn online(&self) -> Vec<(String, usize)> {
        let mut online: Vec<(String, usize)> = lock(&self.inner.online)
            .iter()
            .map(|(name, peers)| (name.clone(), peers.len()))
            .collect();
        online.sort();
        online
    }

    /// Runs `job` on the accounts, on the blocking pool (Argon2id is slow on purpose).
    async fn blocking_raw<R: Send + 'static>(
        &self,
        job: impl FnOnce(&Accounts) -> Result<R, AccountError> + Send + 'static,
    ) -> Result<R, AccountError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || job(&inner.accounts))
            .await
            .map_err(|error| AccountError::Storage(format!("account task failed: {error}")))?
    }

    /// [`Self::blocking_raw`], its error as the caller's status.
    async fn blocking<R: Send + 'static>(
        &self,
        job: impl FnOnce(&Accounts) -> Result<R, AccountError> + Send + 'static,
    ) -> Result<R, Status> {
        self.blocking_raw(job)
            .await
            .map_err(AccountError::into_status)
    }

    fn address_key(ip: IpAddr) -> String {
        format!("addr:{ip}")
    }

    async fn register(&self, ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        if !self.inner.config.open_registration {
            return Err(
                AccountError::RegistrationRefused("registration is closed".into()).into_status(),
            );
        }
        let mut reader = input.reader();
        let name = string(&mut reader)?;
        let password = Zeroizing::new(string(&mut reader)?);
        crate::store::check_name(&name).map_err(AccountError::into_status)?;
        crate::store::check_password(&password).map_err(AccountError::into_status)?;
        let key = Self::address_key(ctx.peer().remote_addr().ip());
        if let Some(wait) = lock(&self.inner.registrations).wait(&key, Instant::now()) {
            return Err(AccountError::RegistrationRefused(format!(
                "too many from this address; try again in {} s",
                wait.as_secs().max(1)
            ))
            .into_status());
        }
        self.blocking(move |accounts| accounts.add(&name, &password, &[]))
            .await?;
        lock(&self.inner.registrations).fail(&key, Instant::now());
        Ok(DataFrame::new())
    }

    async fn login(&self, ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        let mut reader = input.reader();
        let name = string(&mut reader)?;
        let password = Zeroizing::new(string(&mut reader)?);
        let address = ctx.peer().remote_addr().ip();
        if let Some(wait) = self.inner.failures.wait(&name, address) {
            self.count(LOCKOUTS);
            return Err(AccountError::TryLater(wait).into_status());
        }
        let checked = {
            let name = name.clone();
            self.blocking_raw(move |accounts| accounts.verify(&name, &password))
                .await
        };
        let user = match checked {
            Ok(user) => user,
            Err(error @ (AccountError::WrongLogin | AccountError::Disabled(_))) => {
                self.inner.failures.failed(&name, address);
                self.count(FAILURES);
                return Err(error.into_status());
            }
            Err(error) => return Err(error.into_status()),
        };
        self.inner.failures.succeeded(&name, address);
        self.count(LOGINS);
        let frame = user_frame(&user);
        self.logged_in(ctx.peer(), user);
        self.deliver_pending(ctx.peer(), &name);
        Ok(frame)
    }

    fn count(&self, which: usize) {
        self.inner.counters[which].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records that `peer` is now `user`, applying the second-login policy.
    fn logged_in(&self, peer: &Peer<S>, user: User) {
        self.logged_out(peer);
        let name = user.name().to_owned();
        peer.set_user(Some(user));
        let older: Vec<Peer<S>> = {
            let mut online = lock(&self.inner.online);
            let peers = online.entry(name).or_default();
            peers.retain(|known| !known.is_closed());
            let older = match self.inner.config.second_login {
                SecondLogin::Allow => Vec::new(),
                SecondLogin::CloseOlder => std::mem::take(peers),
            };
            peers.push(peer.clone());
            older
        };
        for old in older {
            old.set_user(None);
            tokio::spawn(async move {
                old.close("logged in elsewhere").await;
            });
        }
        // Forget the connection when it ends: one watcher per connection, however often it
        // logs in.
        if lock(&self.inner.watched).insert(peer.id()) {
            let weak = Arc::downgrade(&self.inner);
            let peer = peer.clone();
            tokio::spawn(async move {
                peer.closed().await;
                if let Some(inner) = weak.upgrade() {
                    lock(&inner.watched).remove(&peer.id());
                    if let Some(user) = peer.user() {
                        inner.forget(user.name(), peer.id());
                    }
                }
            });
        }
    }

    fn logged_out(&self, peer: &Peer<S>) {
        let Some(user) = peer.user() else {
            return;
        };
        peer.set_user(None);
        self.inner.forget(user.name(), peer.id());
    }

    /// Calls `command` with `[from, message]` on each connection user `to` is logged in on
    /// here; how many answered. Nothing is queued.
    pub async fn deliver_online(
        &self,
        from: &str,
        to: &str,
        command: &str,
        message: &DataFrame,
    ) -> usize {
        let connections = self.connections_of(to);
        if connections.is_empty() {
            return 0;
        }
        let frame = DataFrame::new().with(from).with(message.clone());
        let mut delivered = 0;
        for peer in connections {
            if peer.call_stream(command, &frame).await.is_ok() {
                delivered += 1;
            }
        }
        delivered
    }

    /// Sends `message` from `from` to user `to` (ZServer4D: sending to a user by name): a
    /// stream call of `command` with `[from, message]` on each of `to`'s connections; when
    /// none takes it, it waits in the offline queue (at most
    /// [`AccountsConfig::offline_per_user`]) for `to`'s next login, which gets waiting
    /// messages in the order they were sent. `to` must be an account.
    pub async fn send_to_user(
        &self,
        from: &str,
        to: &str,
        command: &str,
        message: DataFrame,
    ) -> Result<Delivery, AccountError> {
        let delivered = self.deliver_online(from, to, command, &message).await;
        if delivered > 0 {
            return Ok(Delivery::Delivered(delivered));
        }
        let (from, to, command) = (from.to_owned(), to.to_owned(), command.to_owned());
        let max = self.inner.config.offline_per_user;
        self.blocking_raw(move |accounts| {
            if !accounts.exists(&to)? {
                return Err(AccountError::NoSuchUser(to));
            }
            accounts.offline().push(&to, &from, &command, message, max)
        })
        .await?;
        Ok(Delivery::Queued)
    }

    /// Delivers what waits for `name` to `peer`, oldest first; each message leaves the
    /// queue once the connection has answered it, so a connection lost meanwhile loses
    /// nothing.
    fn deliver_pending(&self, peer: &Peer<S>, name: &str) {
        let service = self.clone();
        let (peer, name) = (peer.clone(), name.to_owned());
        tokio::spawn(async move {
            let pending = {
                let name = name.clone();
                service
                    .blocking_raw(move |accounts| accounts.offline().pending(&name))
                    .await
            };
            let pending = match pending {
                Ok(pending) => pending,
                Err(error) => {
                    tracing::error!(%error, user = %name, "cannot read offline messages");
                    return;
                }
            };
            for queued in pending {
                let frame = DataFrame::new()
                    .with(queued.from.as_str())
                    .with(queued.message);
                if let Err(error) = peer.call_stream(&queued.command, &frame).await {
                    tracing::debug!(%error, user = %name, "offline delivery stopped");
                    return;
                }
                let id = queued.id;
                if let Err(error) = service
                    .blocking_raw(move |accounts| accounts.offline().remove(id))
                    .await
                {
                    tracing::error!(%error, "cannot remove a delivered offline message");
                    return;
                }
            }
        });
    }

    async fn passwd(&self, ctx: &Context<S>, input: DataFrame) -> Result<DataFrame, Status> {
        let user = ctx.require_user()?;
        let mut reader = input.reader();
        let old = Zeroizing::new(string(&mut reader)?);
        let new = Zeroizing::new(string(&mut reader)?);
        let name = user.name().to_owned();
        self.blocking(move |accounts| {
            accounts.verify(&name, &old)?;
            accounts.set_password(&name, &new)
        })
        .await?;
        Ok(DataFrame::new())
    }

    async fn admin_add(&self, input: DataFrame) -> Result<DataFrame, Status> {
        let mut reader = input.reader();
        let name = string(&mut reader)?;
        let password = Zeroizing::new(string(&mut reader)?);
        let mut roles = Vec::new();
        while reader.peek().is_some() {
            roles.push(string(&mut reader)?);
        }
        self.blocking(move |accounts| accounts.add(&name, &password, &roles))
            .await?;
        Ok(DataFrame::new())
    }
}

/// The `time` command's reply: the server's clock in microseconds since the Unix epoch.
pub(crate) fn time_frame() -> DataFrame {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        });
    DataFrame::new().with(micros)
}

/// Registers one handler that calls `method` on the service.
macro_rules! handler {
    ($namespace:expr, $service:expr, $name:literal, |$svc:ident, $ctx:ident, $input:ident| $body:expr) => {{
        let $svc = $service.clone();
        $namespace.register_stream($name, move |$ctx, $input: DataFrame| {
            let $svc = $svc.clone();
            async move { $body }
        });
    }};
}

impl<S: Send + Sync + 'static> Service<S> for AccountService<S> {
    fn namespace(&self) -> &str {
        NAMESPACE
    }

    fn install(self, commands: &mut Namespace<'_, S>) {
        handler!(commands, self, "register", |svc, ctx, input| svc
            .register(&ctx, input)
            .await);
        handler!(commands, self, "login", |svc, ctx, input| svc
            .login(&ctx, input)
            .await);
        handler!(commands, self, "logout", |svc, ctx, _input| {
            svc.logged_out(ctx.peer());
            Ok(DataFrame::new())
        });
        handler!(commands, self, "whoami", |_svc, ctx, _input| {
            Ok(ctx
                .user()
                .map_or_else(DataFrame::new, |user| user_frame(&user)))
        });
        handler!(commands, self, "passwd", |svc, ctx, input| svc
            .passwd(&ctx, input)
            .await);
        handler!(
            commands,
            self,
            "time",
            |_svc, _ctx, _input| Ok(time_frame())
        );
        handler!(commands, self, "send", |svc, ctx, input| {
            let from = ctx.require_user()?;
            let mut reader = input.reader();
            let to = string(&mut reader)?;
            let command = string(&mut reader)?;
            let message = reader
                .read_frame()
                .map_err(|error| Status::invalid_argument(error.to_string()))?;
            let delivery = svc
                .send_to_user(from.name(), &to, &command, message)
                .await
                .map_err(AccountError::into_status)?;
            Ok(match delivery {
                Delivery::Delivered(count) => DataFrame::new().with(count as u64).with(false),
                Delivery::Queued => DataFrame::new().with(0u64).with(true),
            })
        });
        handler!(commands, self, "admin.add", |svc, _ctx, input| svc
            .admin_add(input)
            .await);
        handler!(commands, self, "admin.list", |svc, _ctx, _input| {
            let accounts = svc.blocking(|accounts| accounts.list()).await?;
            Ok(accounts
                .into_iter()
                .fold(DataFrame::new(), |frame, account| {
                    frame
                        .with(account.name)
                        .with(account.disabled)
                        .with(account.created)
                        .with(account.roles.join(","))
                }))
        });
        handler!(commands, self, "admin.disable", |svc, _ctx, input| {
            let mut reader = input.reader();
            let name = string(&mut reader)?;
            let disabled = reader
                .read_bool()
                .map_err(|error| Status::invalid_argument(error.to_string()))?;
            let target = name.clone();
            svc.blocking(move |accounts| accounts.set_disabled(&target, disabled))
                .await?;
            if disabled {
                for peer in svc.connections_of(&name) {
                    svc.logged_out(&peer);
                }
            }
            Ok(DataFrame::new())
        });
        handler!(commands, self, "admin.delete", |svc, _ctx, input| {
            let name = string(&mut input.reader())?;
            let target = name.clone();
            let existed = svc
                .blocking(move |accounts| accounts.remove(&target))
                .await?;
            for peer in svc.connections_of(&name) {
                svc.logged_out(&peer);
            }
            Ok(DataFrame::new().with(existed))
        });
        handler!(commands, self, "admin.online", |svc, _ctx, _input| {
            Ok(svc
                .online()
                .into_iter()
                .fold(DataFrame::new(), |frame, (name, count)| {
                    frame.with(name).with(count as u64)
                }))
        });
        commands.require("passwd", Requirement::Login);
        commands.require("send", Requirement::Login);
        commands.require("admin.*", Requirement::Role(ADMIN_ROLE.to_owned()));
    }
}
