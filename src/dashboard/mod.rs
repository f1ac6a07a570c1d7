//! The web dashboard (`shoal daemon --dashboard-addr HOST:PORT`): server-rendered pages of the
//! swarm that keep themselves up to date.
//!
//! - Pages ([`pages`]) are rendered on the server from one store view each and work without
//!   JavaScript. Every live part of a page is a *fragment*: the same template function, served
//!   alone at `/fragments/...`.
//! - `/live` ([`live`]) is a server-sent event stream fed by the store's watch; each message
//!   names the fragments a commit made stale, and `dashboard.js` (hand-written, shipped in the
//!   binary, no build step) fetches those again and swaps them in.
//! - Who may open it is decided in [`auth`]: open on loopback only; elsewhere TLS with client
//!   certificates or a login token.
//!
//! Every manager serves it from its own replica; a worker answers with a page that says the
//! dashboard is on managers.

pub mod auth;
pub mod events;
pub mod live;
pub mod model;
pub mod pages;

#[cfg(test)]
mod tests;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use shoal_store::Store;

use crate::native::NativeState;
use auth::Access;
use events::Recent;

/// The dashboard's script, shipped in the binary.
pub const SCRIPT: &str = include_str!("assets/dashboard.js");
/// The dashboard's style sheet.
pub const STYLE: &str = include_str!("assets/dashboard.css");

/// What every handler of the dashboard shares.
#[derive(Clone)]
pub struct Dashboard<S> {
    /// Where the store comes from (the node in the daemon; a store in tests and benchmarks).
    pub source: S,
    /// The event feed.
    pub recent: Recent,
    /// Who may come in.
    pub access: Access,
}

impl<S: NativeState> Dashboard<S> {
    /// A dashboard over `source`; call [`Dashboard::start_feed`] to fill its event feed.
    pub fn new(source: S, access: Access) -> Self {
        Dashboard {
            source,
            recent: Recent::default(),
            access,
        }
    }

    /// Starts following the store for the event feed (for the life of the process).
    pub fn start_feed(&self) {
        tokio::spawn(self.recent.clone().follow(self.source.clone()));
    }
}

/// The dashboard's routes.
pub fn router<S: NativeState>(d: Dashboard<S>) -> Router {
    let protected = Router::new()
        .route("/", get(pages::overview::<S>))
        .route("/nodes", get(pages::nodes::<S>))
        .route("/services", get(pages::services::<S>))
        .route("/services/{id}", get(pages::service::<S>))
        .route("/stacks", get(pages::stacks::<S>))
        .route("/stacks/{name}", get(pages::stack::<S>))
        .route("/gitops", get(pages::gitops::<S>))
        .route("/events", get(pages::events::<S>))
        .route("/fragments/{name}", get(pages::fragment::<S>))
        .route("/fragments/service/{id}", get(pages::service_fragment::<S>))
        .route("/fragments/stack/{name}", get(pages::stack_fragment::<S>))
        .route("/live", get(live::live::<S>))
        .route("/logout", post(logout::<S>))
        .route_layer(axum::middleware::from_fn_with_state(
            d.clone(),
            require_login::<S>,
        ));
    Router::new()
        .merge(protected)
        .route("/login", get(login_form::<S>).post(login::<S>))
        .route("/assets/dashboard.js", get(script))
        .route("/assets/dashboard.css", get(style))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(d)
}

/// Serves the dashboard on `listener` until `shutdown` resolves.
pub async fn serve<S: NativeState, L: axum::serve::Listener>(
    d: Dashboard<S>,
    listener: L,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L::Addr: std::fmt::Debug,
{
    d.start_feed();
    axum::serve(listener, router(d))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(
            pages::message_page("Not found", "There is no such page on this dashboard.")
                .into_string(),
        ),
    )
        .into_response()
}

/// Headers every answer carries: the pages load only their own script and style, and cannot
/// be framed by another site.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    res
}

/// With a login token, every protected route needs an open session: pages send the browser
/// to the login form, fragments and the event stream answer 401 (the script then reloads,
/// which lands on the form).
async fn require_login<S: NativeState>(
    State(d): State<Dashboard<S>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = &d.access.token else {
        return next.run(req).await;
    };
    if auth::session_cookie(req.headers()).is_some_and(|c| token.session_valid(&c)) {
        return next.run(req).await;
    }
    let path = req.uri().path();
    if path.starts_with("/fragments/") || path == "/live" || path == "/logout" {
        return (StatusCode::UNAUTHORIZED, "log in first: /login").into_response();
    }
    let next_path: String = form_urlencoded::byte_serialize(
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .as_bytes(),
    )
    .collect();
    Redirect::to(&format!("/login?next={next_path}")).into_response()
}

/// Query of the login form.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// Where to go after logging in.
    pub next: Option<String>,
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// The token.
    pub token: String,
    /// Where to go after logging in.
    #[serde(default)]
    pub next: String,
}

/// Only paths on this site: never an open redirect to another host.
fn local_path(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

async fn login_form<S: NativeState>(
    State(d): State<Dashboard<S>>,
    Query(q): Query<LoginQuery>,
) -> Response {
    if d.access.token.is_none() {
        return Redirect::to("/").into_response();
    }
    let next = local_path(q.next.as_deref().unwrap_or("/"));
    Html(pages::login_page(next, None).into_string()).into_response()
}

async fn login<S: NativeState>(
    State(d): State<Dashboard<S>>,
    Form(f): Form<LoginForm>,
) -> Response {
    let Some(token) = &d.access.token else {
        return Redirect::to("/").into_response();
    };
    let next = local_path(&f.next);
    if !token.check(f.token.trim()).await {
        tracing::warn!("dashboard: a login with a wrong token was refused");
        return (
            StatusCode::UNAUTHORIZED,
            Html(
                pages::login_page(next, Some("That token is not this dashboard's.")).into_string(),
            ),
        )
            .into_response();
    }
    let cookie = auth::set_cookie(&token.open_session(), d.access.tls.is_some());
    let mut res = Redirect::to(next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

async fn logout<S: NativeState>(State(d): State<Dashboard<S>>, req: Request) -> Response {
    if let (Some(token), Some(c)) = (&d.access.token, auth::session_cookie(req.headers())) {
        token.close_session(&c);
    }
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie()) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// The store, or the page that says why this node has none (a worker, not in a swarm, ...).
pub(crate) async fn store_or_page<S: NativeState>(d: &Dashboard<S>) -> Result<Store, Response> {
    d.source.store().await.map_err(|e| {
        let not_manager = e.error.code == crate::native::wire::code::NOT_A_MANAGER;
        // The native API's message tells a worker from a node outside any swarm; its advice
        // is about API clients, so the dashboard says its own.
        let (title, text) = if not_manager && e.error.message.starts_with("this node is a worker") {
            (
                "The dashboard is served by managers",
                "This node is a worker: it holds no copy of the swarm's state. Open the dashboard on a manager \
                 started with --dashboard-addr (`docker node ls` on a manager lists the managers)."
                    .to_string(),
            )
        } else if not_manager {
            (
                "This node is not in a swarm",
                "Run `docker swarm init` (or join a swarm as a manager) against this node's API socket; \
                 the dashboard shows the swarm once this node is one of its managers."
                    .to_string(),
            )
        } else {
            ("The dashboard is not available", e.error.message.clone())
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Html(pages::message_page(title, &text).into_string()),
        )
            .into_response()
    })
}
