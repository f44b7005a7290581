//! The merchant dashboard: a single page (`assets/dashboard/`, Preact + htm + uPlot, vendored by
//! `scripts/vendor-js`) embedded in the binary (see [`super::assets`]). It is a client of the
//! public query and admin APIs only. The page is served for `/dashboard`, `/dashboard/{domain}`,
//! `/share/{domain}` and `/admin`; its files live under `/dashboard/assets/{hash}/`.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::assets::{embedded, Bundle, CSS, JS, MARKDOWN};
use super::ApiError;

/// Every file of the page but the shell (a test checks that none is missing).
const FILES: &[(&str, &[u8], &str)] = &[
    embedded!("dashboard", "app.js", JS),
    embedded!("dashboard", "api.js", JS),
    embedded!("dashboard", "report.js", JS),
    embedded!("dashboard", "graph.js", JS),
    embedded!("dashboard", "funnel.js", JS),
    embedded!("dashboard", "admin.js", JS),
    embedded!("dashboard", "style.css", CSS),
    embedded!("dashboard", "vendor/preact-htm.js", JS),
    embedded!("dashboard", "vendor/uPlot.iife.min.js", JS),
    embedded!("dashboard", "vendor/uPlot.min.css", CSS),
    embedded!("dashboard", "vendor/LICENSES.md", MARKDOWN),
];
const SHELL: &str = include_str!("../../assets/dashboard/index.html");

/// The page's security headers: nothing loads from elsewhere, and no URL (a shared link's token)
/// leaks through `Referer`.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'self'";

fn bundle() -> &'static Bundle {
    static BUNDLE: OnceLock<Bundle> = OnceLock::new();
    BUNDLE.get_or_init(|| Bundle::new("/dashboard/assets", FILES, SHELL))
}

/// The total gzipped size of the page and its files, in bytes (the budget is 150 KB).
pub fn gzipped_size() -> usize {
    let b = bundle();
    b.shell.gzip.len() + b.files.iter().map(|(_, a)| a.gzip.len()).sum::<usize>()
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(root))
        .route("/dashboard", web::get().to(page))
        .route("/dashboard/assets/{hash}/{path:.*}", web::get().to(file))
        .route("/dashboard/{domain}", web::get().to(page))
        .route("/share/{domain}", web::get().to(page))
        .route("/admin", web::get().to(page));
}

async fn root() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/dashboard"))
        .finish()
}

/// The page. Each URL is routed by the page itself, so one shell serves them all.
async fn page(req: HttpRequest) -> HttpResponse {
    bundle().page(&req, CSP)
}

async fn file(
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    bundle().file(&req, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_dashboard_folder_is_embedded() {
        crate::api::assets::assert_all_embedded("dashboard", FILES);
    }

    #[test]
    fn the_page_and_its_files_fit_the_budget_and_the_shell_names_hashed_assets() {
        let size = gzipped_size();
        assert!(size <= 150 * 1024, "{size} bytes gzipped");
        let b = bundle();
        let shell = String::from_utf8_lossy(&b.shell.body);
        assert!(!shell.contains("{{ASSETS}}"));
        for (path, _) in [("app.js", ()), ("style.css", ())] {
            assert!(shell.contains(&format!("/dashboard/assets/{}/{path}", b.hash)));
        }
    }
}
