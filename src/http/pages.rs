//! The web pages (home, storefront, watch, studio, admin) and their assets, embedded in the
//! binary. Each page is a small HTML shell plus a plain JS module under `web/`; the modules talk
//! to the JSON API with the session cookie (see [`super::session`]).
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::access::visible_stream;
use super::error::ApiError;
use super::extract::MaybeAuth;

/// Scripts and styles only from this origin (no inline code), media from here and hls.js's
/// blob: URLs, product images from anywhere over https.
macro_rules! csp_base {
    () => {
        "default-src 'self'; script-src 'self'; style-src 'self'; \
         img-src 'self' https: data:; media-src 'self' blob:; connect-src 'self'; \
         worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    };
}

/// Every page but the embeddable player: never framed.
pub const CSP: &str = concat!(csp_base!(), "frame-ancestors 'none'");

/// The embeddable player's policy: framed only by `shop.embed_frame_ancestors` (validated at
/// load as `*`, `'self'` or origins, so nothing can end the directive).
fn embed_csp(ancestors: &[String]) -> String {
    format!("{}frame-ancestors {}", csp_base!(), ancestors.join(" "))
}

/// One embedded file: name under `/assets/`, content type, bytes.
struct Asset(&'static str, &'static str, &'static [u8]);

macro_rules! web {
    ($name:literal, $ty:expr) => {
        Asset(
            $name,
            $ty,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $name)),
        )
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// What a page loads besides its module.
#[derive(Clone, Copy, PartialEq)]
enum Extras {
    None,
    /// hls.js, where video plays.
    Video,
    /// hls.js and uPlot (the studio's charts).
    VideoAndCharts,
}

static ASSETS: &[Asset] = &[
    Asset(
        "hls.min.js",
        JS,
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/web/node_modules/hls.js/dist/hls.min.js"
        )),
    ),
    Asset(
        "uPlot.iife.min.js",
        JS,
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/web/node_modules/uplot/dist/uPlot.iife.min.js"
        )),
    ),
    Asset(
        "uPlot.min.css",
        CSS,
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/web/node_modules/uplot/dist/uPlot.min.css"
        )),
    ),
    web!("app.css", CSS),
    web!("common.js", JS),
    web!("player.js", JS),
    web!("home.js", JS),
    web!("storefront.js", JS),
    web!("watch.js", JS),
    web!("studio.js", JS),
    web!("host.js", JS),
    web!("golive.js", JS),
    web!("sales.js", JS),
    web!("admin.js", JS),
    web!("bell.js", JS),
    web!("cart.js", JS),
    web!("promo.js", JS),
    web!("follow.js", JS),
    web!("embed.js", JS),
];

/// The security headers every page and asset carries.
fn secured(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// An HTML document with the security headers.
fn html(body: String) -> Response {
    secured(
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
    )
}

/// The not-found page when the caller may not see the stream (exactly as for a missing one).
async fn unless_visible(
    state: &AppState,
    id: &str,
    who: &Option<crate::store::Principal>,
) -> Result<Option<Response>, ApiError> {
    match visible_stream(state, id, who).await {
        Ok(_) => Ok(None),
        Err(ApiError::NotFound) => Ok(Some(not_found())),
        Err(e) => Err(e),
    }
}

/// A page: the shell that loads `/assets/{module}.js` (and hls.js where video plays, uPlot where
/// charts are drawn).
fn page(title: &str, module: &str, extras: Extras) -> Response {
    let hls = match extras {
        Extras::None => "",
        Extras::Video => r#"<script src="/assets/hls.min.js"></script>"#,
        Extras::VideoAndCharts => {
            r#"<script src="/assets/hls.min.js"></script><script src="/assets/uPlot.iife.min.js"></script>"#
        }
    };
    let css = match extras {
        Extras::VideoAndCharts => {
            r#"<link rel="stylesheet" href="/assets/uPlot.min.css">
"#
        }
        _ => "",
    };
    let body = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · livefront</title>
<link rel="icon" href="data:,">
{css}<link rel="stylesheet" href="/assets/app.css">
</head>
<body>
<header class="top"><a class="brand" href="/">livefront</a><nav><a href="/studio">Studio</a><span id="bell-slot"></span></nav></header>
<main id="app" aria-live="polite"></main>
{hls}<script type="module" src="/assets/{module}.js"></script>
<script type="module" src="/assets/bell.js"></script>
</body>
</html>
"#
    );
    html(body)
}

/// What a missing page, an unknown creator and someone else's practice stream all answer.
fn not_found() -> Response {
    let html = "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
        <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
        <title>Not found · livefront</title>\n<link rel=\"icon\" href=\"data:,\">\n<link rel=\"stylesheet\" href=\"/assets/app.css\">\n\
        </head>\n<body>\n<header class=\"top\"><a class=\"brand\" href=\"/\">livefront</a></header>\n\
        <main id=\"app\"><h1 class=\"notfound\">Not found</h1><p>There is nothing here.</p></main>\n\
        </body>\n</html>\n";
    let mut r = secured(
        (
            StatusCode::NOT_FOUND,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            html,
        )
            .into_response(),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Home: live now, featured, one row per category, upcoming.
#[utoipa::path(get, path = "/", tag = "pages", responses((status = 200, description = "HTML")))]
pub async fn home() -> Response {
    page("Live shopping", "home", Extras::None)
}

/// A creator's storefront.
#[utoipa::path(get, path = "/@{handle}", tag = "pages", params(("handle" = String, Path)), responses((status = 200, description = "HTML"), (status = 404, description = "no such creator")))]
pub async fn storefront(
    State(state): State<AppState>,
    Path(handle): Path<String>,
) -> Result<Response, ApiError> {
    if !super::streams::valid_handle(&handle)
        || state.store.creator_by_handle(&handle).await?.is_none()
    {
        return Ok(not_found());
    }
    Ok(page(&format!("@{handle}"), "storefront", Extras::None))
}

/// The viewer page of a stream; someone else's practice stream answers like a missing one.
#[utoipa::path(get, path = "/watch/{id}", tag = "pages", params(("id" = String, Path)), responses((status = 200, description = "HTML"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn watch(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(hidden) = unless_visible(&state, &id, &who).await? {
        return Ok(hidden);
    }
    Ok(page("Watch", "watch", Extras::Video))
}

/// The embeddable player of a stream (video, carousel, add to cart): the only page that may be
/// framed, by `shop.embed_frame_ancestors`; it tells the page around it of add-to-cart taps with
/// a `livefront:add-to-cart` message.
#[utoipa::path(get, path = "/embed/{id}", tag = "pages", params(("id" = String, Path)), responses((status = 200, description = "HTML, framable by `shop.embed_frame_ancestors`"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn embed(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(hidden) = unless_visible(&state, &id, &who).await? {
        return Ok(hidden);
    }
    // Where the player posts its events (validated origins; escaped all the same).
    let origins = state
        .config
        .shop
        .embed_frame_ancestors
        .join(" ")
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;");
    let mut r = html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Live · livefront</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/app.css">
</head>
<body class="embedded">
<main id="app" aria-live="polite" data-parent-origins="{origins}"></main>
<script src="/assets/hls.min.js"></script><script type="module" src="/assets/embed.js"></script>
</body>
</html>
"#
    ));
    let csp = embed_csp(&state.config.shop.embed_frame_ancestors);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    Ok(r)
}

/// The creator studio.
#[utoipa::path(get, path = "/studio", tag = "pages", responses((status = 200, description = "HTML")))]
pub async fn studio() -> Response {
    page("Studio", "studio", Extras::VideoAndCharts)
}

/// Going live from a phone's browser (camera, microphone, WHIP) with the host's controls. Like
/// the studio, the page itself is the same for everyone: the creator's session decides what it
/// shows (the stream key only ever comes from the API, to its owner).
#[utoipa::path(get, path = "/studio/go-live/{stream}", tag = "pages", params(("stream" = String, Path)), responses((status = 200, description = "HTML")))]
pub async fn go_live(Path(_stream): Path<String>) -> Response {
    page("Go live", "golive", Extras::None)
}

/// Reports and takedowns.
#[utoipa::path(get, path = "/admin", tag = "pages", responses((status = 200, description = "HTML")))]
pub async fn admin() -> Response {
    page("Admin", "admin", Extras::None)
}

/// The Web Push service worker, at the root so that its scope covers every page.
#[utoipa::path(get, path = "/sw.js", tag = "pages", responses((status = 200, description = "the service worker (JavaScript)")))]
pub async fn service_worker() -> Response {
    secured(
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(JS))],
            SERVICE_WORKER,
        )
            .into_response(),
    )
}

const SERVICE_WORKER: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/sw.js"));

/// The pages' scripts and styles (and hls.js, uPlot), embedded at build time.
#[utoipa::path(get, path = "/assets/{file}", tag = "pages", params(("file" = String, Path)), responses((status = 200, description = "the file"), (status = 404, description = "no such asset")))]
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.0 == file) {
        Some(Asset(_, ty, bytes)) => secured(
            (
                [(header::CONTENT_TYPE, HeaderValue::from_static(ty))],
                *bytes,
            )
                .into_response(),
        ),
        None => not_found(),
    }
}
