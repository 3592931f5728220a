//! The web UI: one HTML page, a script and a style sheet, embedded in the binary and served
//! under the route prefix. The script (`ui/app.js`) reads the API; the path names the page;
//! the page's title is `--web.page-title`.

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

use super::ApiState;

/// The paths that show a page of the UI.
const PAGES: [&str; 9] =
    ["/query", "/graph", "/targets", "/alerts", "/rules", "/status", "/tsdb-status", "/config", "/flags"];

/// The UI's routes under `base` (`""` or `/prefix`): its pages, its assets, and `base/` (and
/// `base` itself) redirecting to the query page. Pages are titled `title`.
pub fn routes(base: &str, title: &str) -> Router<ApiState> {
    let page = include_str!("ui/index.html").replace("{{PREFIX}}", base).replace("{{TITLE}}", &escape_html(title));
    let home = format!("{base}/query");
    let to_home = move || {
        let home = home.clone();
        async move { (StatusCode::FOUND, [(header::LOCATION, home)]) }
    };
    let js = || async { asset("text/javascript; charset=utf-8", include_str!("ui/app.js")) };
    let css = || async { asset("text/css; charset=utf-8", include_str!("ui/style.css")) };
    let mut router = Router::new()
        .route(&format!("{base}/"), get(to_home.clone()))
        .route(&format!("{base}/static/app.js"), get(js))
        .route(&format!("{base}/static/style.css"), get(css));
    if !base.is_empty() {
        router = router.route(base, get(to_home));
    }
    for path in PAGES {
        let page = page.clone();
        router = router.route(&format!("{base}{path}"), get(move || async move { Html(page) }));
    }
    router
}

/// `text` safe inside an HTML element or a quoted attribute.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
}
