//! The HTTP side: routes, the bearer-token check, the history sampler.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Request, State as Extract};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::part::{Action, ActionError, MetricsOut, Part, ServerInfo, State};

/// The dashboard, embedded: the binary needs nothing from the internet.
const DASHBOARD: &str = include_str!("../assets/dashboard.html");

/// Samples kept for the charts: ten minutes at one a second.
const HISTORY: usize = 600;
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The dashboard lists at most this many peers (`peers_total` tells how many there are).
const MAX_PEER_ROWS: usize = 500;

/// One point of the charts: totals at a moment.
#[derive(Debug, Clone, Copy, Serialize)]
struct Sample {
    time_ms: u64,
    connections_open: u64,
    calls: u64,
    call_errors: u64,
    bytes_in: u64,
    bytes_out: u64,
}

/// What every request handler shares.
#[derive(Clone)]
pub(crate) struct App {
    inner: Arc<Inner>,
}

struct Inner {
    parts: Vec<Arc<dyn Part>>,
    token: Option<String>,
    info: ServerInfo,
    started: Instant,
    registry: Registry,
    history: Mutex<VecDeque<Sample>>,
}

/// `prometheus-client`'s view of the parts: encoded on each scrape.
struct Parts(Vec<Arc<dyn Part>>);

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Parts").field(&self.0.len()).finish()
    }
}

impl Collector for Parts {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut out = MetricsOut::new(&mut encoder);
        for part in &self.0 {
            part.metrics(&mut out)?;
        }
        Ok(())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl App {
    pub(crate) fn new(parts: Vec<Arc<dyn Part>>, token: Option<String>, info: ServerInfo) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Parts(parts.clone())));
        Self {
            inner: Arc::new(Inner {
                parts,
                token,
                info,
                started: Instant::now(),
                registry,
                history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            }),
        }
    }

    fn state(&self) -> State {
        let mut state = State {
            time_ms: now_ms(),
            server: Some(ServerInfo {
                uptime_seconds: self.inner.started.elapsed().as_secs(),
                ..self.inner.info.clone()
            }),
            ..State::default()
        };
        for part in &self.inner.parts {
            part.state(&mut state);
        }
        if let Some(peers) = &mut state.peers {
            state.peers_total = Some(peers.len());
            peers.truncate(MAX_PEER_ROWS);
        }
        state
    }

    fn sample(&self) -> Sample {
        let mut sample = Sample {
            time_ms: now_ms(),
            connections_open: 0,
            calls: 0,
            call_errors: 0,
            bytes_in: 0,
            bytes_out: 0,
        };
        for overview in self.inner.parts.iter().filter_map(|part| part.overview()) {
            sample.connections_open += overview.connections_open;
            sample.calls += overview.calls;
            sample.call_errors += overview.call_errors;
            sample.bytes_in += overview.bytes_in;
            sample.bytes_out += overview.bytes_out;
        }
        sample
    }

    fn act(&self, action: &Action) -> Response {
        let outcome = self
            .inner
            .parts
            .iter()
            .find_map(|part| part.act(action))
            .unwrap_or_else(|| {
                Err(ActionError::NotFound(
                    "nothing here serves that action".into(),
                ))
            });
        match outcome {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(error @ ActionError::NotFound(_)) => {
                error_response(StatusCode::NOT_FOUND, &error.to_string())
            }
        }
    }
}

fn error_response(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Serves until `stop`; samples the history meanwhile.
pub(crate) async fn serve(listener: TcpListener, app: App, stop: CancellationToken) {
    let sampler = tokio::spawn(sample_history(app.clone(), stop.clone()));
    let router = router(app);
    let shutdown = stop.clone();
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::warn!(%error, "admin listener failed");
    }
    stop.cancel();
    let _ = sampler.await;
}

async fn sample_history(app: App, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let sample = app.sample();
        let mut history = app
            .inner
            .history
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(sample);
    }
}

pub(crate) fn router(app: App) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/state", get(state))
        .route("/api/history", get(history))
        .route("/api/peers/{id}/close", post(close_peer))
        .route("/api/nat/mappings/{name}/{switch}", post(switch_mapping))
        .route("/api/nat/agents/{id}/kick", post(kick_agent))
        .route_layer(middleware::from_fn_with_state(app.clone(), authorize))
        .layer(middleware::map_response(no_store));
    Router::new()
        .route("/", get(dashboard))
        .merge(protected)
        .fallback(not_found)
        // Actions carry no body; nothing here needs more than this.
        .layer(DefaultBodyLimit::max(4096))
        .with_state(app)
}

/// Checks `Authorization: Bearer <token>` in constant time; no token configured, no check.
async fn authorize(Extract(app): Extract<App>, request: Request, next: Next) -> Response {
    let Some(token) = &app.inner.token else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let valid =
        presented.is_some_and(|presented| bool::from(presented.as_bytes().ct_eq(token.as_bytes())));
    if valid {
        return next.run(request).await;
    }
    let mut response = error_response(
        StatusCode::UNAUTHORIZED,
        if presented.is_some() {
            "wrong admin token"
        } else {
            "an admin token is required (Authorization: Bearer ...)"
        },
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "no such page")
}

async fn metrics(Extract(app): Extract<App>) -> Response {
    let mut text = String::new();
    if let Err(error) =
        prometheus_client::encoding::prometheus_text::encode(&mut text, &app.inner.registry)
    {
        tracing::warn!(%error, "cannot encode the metrics");
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics",
        );
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
    );
    (headers, text).into_response()
}

async fn state(Extract(app): Extract<App>) -> Response {
    axum::Json(app.state()).into_response()
}

async fn history(Extract(app): Extract<App>) -> Response {
    let history: Vec<Sample> = app
        .inner
        .history
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .copied()
        .collect();
    axum::Json(history).into_response()
}

/// Runs `action` on a path segment that must be a number; a clear 400 otherwise.
fn with_number(app: &App, segment: &str, what: &str, action: fn(u64) -> Action) -> Response {
    match segment.parse() {
        Ok(number) => app.act(&action(number)),
        Err(_) => error_response(
            StatusCode::BAD_REQUEST,
            &format!("{what} must be a number, not {segment:?}"),
        ),
    }
}

async fn close_peer(Extract(app): Extract<App>, Path(id): Path<String>) -> Response {
    with_number(&app, &id, "a peer id", Action::ClosePeer)
}

async fn switch_mapping(
    Extract(app): Extract<App>,
    Path((name, switch)): Path<(String, String)>,
) -> Response {
    let enabled = match switch.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return error_response(StatusCode::NOT_FOUND, "use .../enable or .../disable"),
    };
    app.act(&Action::SetMappingEnabled(name, enabled))
}

async fn kick_agent(Extract(app): Extract<App>, Path(id): Path<String>) -> Response {
    with_number(&app, &id, "an agent id", Action::KickAgent)
}
