//! [`VirtualAuth`]: logins the application decides itself (ZServer4D's `VirtualAuth`
//! dual-tunnel server), with the accounts service's wire commands.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use zeroize::Zeroizing;
use zs::dispatch::{Namespace, Service, Status};
use zs::{DataFrame, StatusCode, User};

use crate::limit::{LimitConfig, LoginLimits};
use crate::service::{NAMESPACE, string, time_frame, user_frame};

/// One login for the application to decide.
#[derive(Debug)]
pub struct LoginRequest {
    /// The name the client gave.
    pub name: String,
    /// The password (or token) the client gave; wiped when dropped.
    pub password: Zeroizing<String>,
    /// Where the client connects from.
    pub remote_addr: SocketAddr,
}

/// Logins decided by the application instead of stored accounts (ZServer4D: the
/// `VirtualAuth` servers, whose `UserAuth` event answers — possibly later, after asking
/// another server or a database — whether a client may log in). The hook gets each
/// [`LoginRequest`] and answers, when it is ready, with the [`User`] the connection becomes,
/// or a status (`UNAUTHENTICATED` to refuse). Clients use the same
/// [`AccountClient::login`](crate::AccountClient::login) as with stored accounts; `logout`,
/// `whoami` and `time` work too. Refusals count towards the same per-user and per-address
/// lockouts as stored accounts' wrong passwords.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use zs::{Status, User};
/// use zs_accounts::{LimitConfig, VirtualAuth};
///
/// let mut server = zs::Server::bind("127.0.0.1:4920").await?;
/// server.install(VirtualAuth::new(LimitConfig::default(), |login| async move {
///     // Ask whoever decides (another server, a database, a token check)...
///     if login.password.as_str() == "let me in" {
///         Ok(User::new(login.name, []))
///     } else {
///         Err(Status::unauthenticated("refused"))
///     }
/// }));
/// # Ok(()) }
/// ```
pub struct VirtualAuth<F> {
    hook: Arc<F>,
    limits: Arc<LoginLimits>,
}

impl<F> Clone for VirtualAuth<F> {
    fn clone(&self) -> Self {
        Self {
            hook: self.hook.clone(),
            limits: self.limits.clone(),
        }
    }
}

impl<F> std::fmt::Debug for VirtualAuth<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualAuth").finish_non_exhaustive()
    }
}

impl<F, Fut> VirtualAuth<F>
where
    F: Fn(LoginRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<User, Status>> + Send + 'static,
{
    /// Logins decided by `hook`, failures limited by `limits`.
    pub fn new(limits: LimitConfig, hook: F) -> Self {
        Self {
            hook: Arc::new(hook),
            limits: Arc::new(LoginLimits::new(limits)),
        }
    }
}

impl<S, F, Fut> Service<S> for VirtualAuth<F>
where
    S: Send + Sync + 'static,
    F: Fn(LoginRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<User, Status>> + Send + 'static,
{
    fn namespace(&self) -> &str {
        NAMESPACE
    }

    fn install(self, commands: &mut Namespace<'_, S>) {
        let auth = self;
        commands.register_stream("login", move |ctx, input: DataFrame| {
            let auth = auth.clone();
            async move {
                let mut reader = input.reader();
                let name = string(&mut reader)?;
                let password = Zeroizing::new(string(&mut reader)?);
                let remote_addr = ctx.peer().remote_addr();
                if let Some(wait) = auth.limits.wait(&name, remote_addr.ip()) {
                    return Err(crate::AccountError::TryLater(wait).into_status());
                }
                let request = LoginRequest {
                    name: name.clone(),
                    password,
                    remote_addr,
                };
                match (auth.hook)(request).await {
                    Ok(user) => {
                        auth.limits.succeeded(&name, remote_addr.ip());
                        let frame = user_frame(&user);
                        ctx.peer().set_user(Some(user));
                        Ok(frame)
                    }
                    Err(status) => {
                        if status.code() == StatusCode::UNAUTHENTICATED {
                            auth.limits.failed(&name, remote_addr.ip());
                        }
                        Err(status)
                    }
                }
            }
        });
        commands.register_stream("logout", |ctx, _input: DataFrame| async move {
            ctx.peer().set_user(None);
            Ok(DataFrame::new())
        });
        commands.register_stream("whoami", |ctx, _input: DataFrame| async move {
            Ok(ctx
                .user()
                .map_or_else(DataFrame::new, |user| user_frame(&user)))
        });
        commands.register_stream(
            "time",
            |_ctx, _input: DataFrame| async move { Ok(time_frame()) },
        );
    }
}
