//! The page's assets, embedded in the binary: the page needs no network
//! beyond this server. `app.js` is compiled from `web/app.ts` by the
//! TypeScript compiler (`web/build.sh`); CI rebuilds it and fails if the
//! result differs from the committed file, so what is served is what the
//! repository builds.

use axum::http::header;
use axum::response::IntoResponse;

/// The page.
pub(crate) const INDEX_HTML: &str = include_str!("../web/index.html");
/// Its script (compiled TypeScript).
pub(crate) const APP_JS: &str = include_str!("../web/app.js");
/// Its style sheet.
pub(crate) const STYLE_CSS: &str = include_str!("../web/style.css");

pub(crate) async fn serve(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type)], body)
}
