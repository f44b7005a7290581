//! The merchant dashboard: a single page (`assets/dashboard/`, Preact + htm + uPlot, vendored by
//! `scripts/vendor-js`) embedded in the binary (see [`super::assets`]). It is a client of the
//! public query and admin APIs only. The page is served for `/dashboard`, `/dashboard/{domain}`,
//! `/share/{domain}` and `/admin`; its files live under `/dashboard/assets/{hash}/`.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::assets::Bundle;
use super::ApiError;

/// A file of `assets/dashboard/`: its path there (and under the assets prefix), its bytes, its type.
macro_rules! asset_file {
    ($path:literal, $type:expr) => {
        (
            $path,
            include_bytes!(concat!("../../assets/dashboard/", $path)).as_slice(),
            $type,
        )
    };
}

/// Every file of the page but the shell (a test checks that none is missing).
const FILES: &[(&str, &[u8], &str)] = &[
    asset_file!("app.js", JS),
    asset_file!("api.js", JS),
    asset_file!("report.js", JS),
    asset_file!("graph.js", JS),
    asset_file!("funnel.js", JS),
    asset_file!("admin.js", JS),
    asset_file!("style.css", CSS),
    asset_file!("vendor/preact-htm.js", JS),
    asset_file!("vendor/uPlot.iife.min.js", JS),
    asset_file!("vendor/uPlot.min.css", CSS),
    asset_file!("vendor/LICENSES.md", "text/markdown; charset=utf-8"),
];
const SHELL: &str = include_str!("../../assets/dashboard/index.html");
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

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
    let (hash, path) = path.into_inner();
    bundle()
        .file(&req, &hash, &path)
        .ok_or_else(|| ApiError::not_found("not_found", "no such dashboard file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_dashboard_folder_is_embedded() {
        let mut embedded: Vec<String> = FILES.iter().map(|(p, _, _)| (*p).to_owned()).collect();
        embedded.sort();
        assert_eq!(
            super::super::assets::files_on_disk("dashboard", "index.html"),
            embedded
        );
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
