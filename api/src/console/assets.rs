//! The console's vendored assets: htmx and its SSE extension (from the npm packages
//! `htmx.org` and `htmx-ext-sse`, minified as published; licences beside them in
//! `api/assets/console/`), the console's own stylesheet and its own small script
//! (`console.js`: closes a page's live streams when the browser leaves it). Served by shiplog, so the
//! console works with no internet; cached for a year, since every URL carries
//! [`super::layout::ASSET_VERSION`].

use crate::error::ApiError;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

const HTMX: &[u8] = include_bytes!("../../assets/console/htmx.min.js");
const HTMX_SSE: &[u8] = include_bytes!("../../assets/console/htmx-ext-sse.min.js");
const CSS: &[u8] = include_bytes!("../../assets/console/console.css");
const SCRIPT: &[u8] = include_bytes!("../../assets/console/console.js");

/// One asset by file name; an unknown one is a 404 problem.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "htmx.min.js" => (HTMX, "application/javascript; charset=utf-8"),
        "htmx-ext-sse.min.js" => (HTMX_SSE, "application/javascript; charset=utf-8"),
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (SCRIPT, "application/javascript; charset=utf-8"),
        _ => return ApiError::NoSuchResource(format!("no console asset {file:?}")).into_response(),
    };
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}
