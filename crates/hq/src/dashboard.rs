//! The dashboard's static files, embedded from `web/dist` at build time (read from disk in debug
//! builds), with a single-page-app fallback and a helpful page when the web build is missing.

use axum::http::{HeaderValue, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::AppError;

/// `web/dist`, as built by `npm run build` in `web/`.
#[derive(RustEmbed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
struct Assets;

/// Shown when HQ was built without the dashboard.
const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AgentRelay HQ</title></head>
<body style="font-family: system-ui, sans-serif; background: #0b0f17; color: #e5e7eb; padding: 3rem">
<h1>AgentRelay HQ is running</h1>
<p>This build does not include the dashboard. Build it with <code>make run</code>, or
<code>cd web &amp;&amp; npm install &amp;&amp; npm run build</code> and rebuild HQ.</p>
<p>The REST API and WebSockets work without it: see <code>docs/protocol.md</code>.</p>
</body></html>"#;

/// Serves a dashboard file, `index.html` for app routes, or a JSON 404 under `/api/`.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path.starts_with("api/") || path == "api" {
        return AppError::NotFound("no such route".to_owned()).into_response();
    }
    if let Some(response) = asset(path) {
        return response;
    }
    // Client-side routes: the app decides what to show.
    asset("index.html").unwrap_or_else(|| Html(NOT_BUILT).into_response())
}

fn asset(path: &str) -> Option<Response> {
    let path = if path.is_empty() { "index.html" } else { path };
    let file = Assets::get(path)?;
    let mime = file.metadata.mimetype().to_owned();
    // Vite fingerprints everything under assets/; index.html must be revalidated.
    let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut response = file.data.into_owned().into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Some(response)
}
