//! [`Service`]: a set of commands under one namespace, installed in one call.

use std::future::Future;

use crate::dispatch::context::{AppState, Context};
use crate::dispatch::registry::{Commands, command_kinds};

/// A service: commands under one namespace, installed on a server (or a client) with
/// [`Server::install`](crate::Server::install) or
/// [`ClientBuilder::install`](crate::ClientBuilder::install). The file service, BatchStream
/// and the services to come (accounts, ZDB, dispatch) are all services; the connection
/// driver knows none of them. Each comes with a typed client (e.g.
/// [`FileClient`](crate::services::files::FileClient),
/// [`BatchClient`](crate::services::batch::BatchClient)) that calls its commands.
///
/// ZServer4D builds its services as subclasses of the dual-tunnel servers; here a service is
/// a value that registers handlers, and state lives in the service (captured by its
/// handlers) or in [`Context::app_state`].
///
/// ```
/// use zs::{Namespace, Service, Status};
///
/// struct Greeter;
///
/// impl<S: Send + Sync + 'static> Service<S> for Greeter {
///     fn namespace(&self) -> &str {
///         "greeter"
///     }
///     fn install(self, commands: &mut Namespace<'_, S>) {
///         // Registered as "greeter.hello".
///         commands.register_console("hello", |_ctx, name: String| async move {
///             if name.is_empty() {
///                 return Err(Status::invalid_argument("a name, please"));
///             }
///             Ok(format!("hello, {name}"))
///         });
///     }
/// }
/// ```
pub trait Service<S = ()> {
    /// The namespace: every command is registered as `"{namespace}.{name}"`.
    fn namespace(&self) -> &str;

    /// Registers the service's commands.
    fn install(self, commands: &mut Namespace<'_, S>);
}

/// The command table as a service sees it: names are prefixed with the service's
/// namespace.
#[derive(Debug)]
pub struct Namespace<'a, S> {
    commands: &'a mut Commands<S>,
    app: &'a mut AppState,
    prefix: String,
}

impl<'a, S: Send + Sync + 'static> Namespace<'a, S> {
    /// Installs `service` into `commands` (and `app`) under its namespace.
    pub(crate) fn install(
        commands: &'a mut Commands<S>,
        app: &'a mut AppState,
        service: impl Service<S>,
    ) {
        let prefix = format!("{}.", service.namespace());
        let mut namespace = Namespace {
            commands,
            app,
            prefix,
        };
        service.install(&mut namespace);
    }

    /// The full name of `name` in this namespace.
    pub fn qualified(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Makes commands of this namespace need `requirement` (see
    /// [`Commands::require`](crate::Commands::require)): `pattern` is a command name in the
    /// namespace, or `"*"` for all of them.
    pub fn require(&mut self, pattern: &str, requirement: crate::Requirement) -> &mut Self {
        let pattern = self.qualified(pattern);
        self.commands.require(&pattern, requirement);
        self
    }

    /// Adds `state` to the application state of the server or client the service is
    /// installed on, as [`Server::with_state`](crate::Server::with_state) does: handlers
    /// reach it with [`Context::app_state`], and on a client the application reaches it
    /// with [`Client::app_state`](crate::Client::app_state) (how a typed client finds the
    /// state of the service it goes with). One value per type; a later value of the same
    /// type replaces the earlier one.
    pub fn insert_app_state<T: Send + Sync + 'static>(&mut self, state: T) -> &mut Self {
        self.app.insert(state);
        self
    }
}

/// One `register_*` method that prefixes the name with the namespace.
macro_rules! register_method {
    ($name:ident, $variant:ident, $input:ty, $output:ty, $doc:literal) => {
        #[doc = $doc]
        pub fn $name<F, Fut>(&mut self, name: &str, handler: F) -> &mut Self
        where
            F: Fn(Context<S>, $input) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<$output, crate::Status>> + Send + 'static,
        {
            let name = self.qualified(name);
            self.commands.$name(&name, handler);
            self
        }
    };
}

impl<S: Send + Sync + 'static> Namespace<'_, S> {
    command_kinds!(register_method);
}
