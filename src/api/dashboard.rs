//! The merchant dashboard: a single page (`assets/dashboard/`, Preact + htm + uPlot, vendored by
//! `scripts/vendor-js`) embedded in the binary. It is a client of the public query and admin APIs
//! only. The page is served for `/dashboard`, `/dashboard/{domain}`, `/share/{domain}` and
//! `/admin`; its files live under `/dashboard/assets/{hash}/`, where the hash of all of them makes
//! every URL immutable. Answers carry an ETag (`304` when it matches) and are gzipped for clients
//! that accept it.

use std::io::Write;
use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

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

/// A file ready to serve: plain and gzipped.
struct Asset {
    body: Vec<u8>,
    gzip: Vec<u8>,
    content_type: &'static str,
}

struct Bundle {
    /// Hex prefix of the SHA-256 of every file: part of every asset URL.
    hash: String,
    shell: Asset,
    files: Vec<(&'static str, Asset)>,
}

fn asset(body: Vec<u8>, content_type: &'static str) -> Asset {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let gzip = encoder
        .write_all(&body)
        .and_then(|_| encoder.finish())
        .unwrap_or_default();
    Asset {
        body,
        gzip,
        content_type,
    }
}

fn bundle() -> &'static Bundle {
    static BUNDLE: OnceLock<Bundle> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let mut digest = Sha256::new();
        for (path, bytes, _) in FILES {
            digest.update(path.as_bytes());
            digest.update(bytes);
        }
        digest.update(SHELL.as_bytes());
        let hash: String = digest.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let shell = SHELL.replace("{{ASSETS}}", &format!("/dashboard/assets/{hash}"));
        Bundle {
            shell: asset(shell.into_bytes(), "text/html; charset=utf-8"),
            files: FILES
                .iter()
                .map(|(path, bytes, t)| (*path, asset(bytes.to_vec(), t)))
                .collect(),
            hash,
        }
    })
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
    let b = bundle();
    serve(&req, &b.shell, &format!("\"shell-{}\"", b.hash), "no-cache")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .finish_with(&req, &b.shell)
}

async fn file(
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (hash, path) = path.into_inner();
    let b = bundle();
    let (_, asset) = b
        .files
        .iter()
        .find(|(p, _)| *p == path)
        .ok_or_else(|| ApiError::not_found("not_found", "no such dashboard file"))?;
    // A page from before an upgrade asks for an old hash: it gets today's file, not for keeps.
    let cache = if hash == b.hash {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok(serve(&req, asset, &format!("\"{}\"", b.hash), cache)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .finish_with(&req, asset))
}

/// A response being built for an asset: `304` if the client has it, else the body to come.
struct Reply {
    builder: actix_web::HttpResponseBuilder,
    not_modified: bool,
}

impl Reply {
    fn insert_header(mut self, h: impl actix_web::http::header::TryIntoHeaderPair) -> Self {
        self.builder.insert_header(h);
        self
    }

    fn finish_with(mut self, req: &HttpRequest, asset: &Asset) -> HttpResponse {
        if self.not_modified {
            return self.builder.finish();
        }
        let gzip = req
            .headers()
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
        if gzip && !asset.gzip.is_empty() {
            self.builder
                .insert_header((header::CONTENT_ENCODING, "gzip"))
                .body(asset.gzip.clone())
        } else {
            self.builder.body(asset.body.clone())
        }
    }
}

fn serve(req: &HttpRequest, asset: &Asset, etag: &str, cache: &str) -> Reply {
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut builder = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    builder
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((header::CACHE_CONTROL, cache.to_owned()))
        .insert_header((header::ETAG, etag.to_owned()))
        .insert_header((header::VARY, "Accept-Encoding"));
    Reply {
        builder,
        not_modified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_dashboard_folder_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/dashboard");
        let mut on_disk = vec![];
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let rel = path
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    if rel != "index.html" {
                        on_disk.push(rel);
                    }
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(p, _, _)| (*p).to_owned()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
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
