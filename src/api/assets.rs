//! Web pages embedded in the binary (the dashboard, GraphiQL): a shell and its files, served under
//! a prefix with the hash of all of them, so every file URL is immutable. Answers carry an ETag
//! (`304` when it matches) and are gzipped for clients that accept it.

use std::io::Write;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::ApiError;

/// A file of `assets/<dir>/`: its path there (and under the page's prefix), its bytes, its type.
macro_rules! embedded {
    ($dir:literal, $path:literal, $type:expr) => {
        (
            $path,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/assets/",
                $dir,
                "/",
                $path
            ))
            .as_slice(),
            $type,
        )
    };
}
pub(crate) use embedded;

pub const JS: &str = "text/javascript; charset=utf-8";
pub const CSS: &str = "text/css; charset=utf-8";
pub const MARKDOWN: &str = "text/markdown; charset=utf-8";

/// A file ready to serve: plain and gzipped.
pub struct Asset {
    pub body: Vec<u8>,
    pub gzip: Vec<u8>,
    content_type: &'static str,
}

/// A page's shell (`{{ASSETS}}` replaced by the files' URL prefix) and its files.
pub struct Bundle {
    /// Hex prefix of the SHA-256 of every file: part of every file's URL.
    pub hash: String,
    pub shell: Asset,
    pub files: Vec<(&'static str, Asset)>,
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

impl Bundle {
    /// `files` are `(path, bytes, content type)`, served at `{prefix}/{hash}/{path}`.
    pub fn new(prefix: &str, files: &[(&'static str, &[u8], &'static str)], shell: &str) -> Self {
        let mut digest = Sha256::new();
        for (path, bytes, _) in files {
            digest.update(path.as_bytes());
            digest.update(bytes);
        }
        digest.update(shell.as_bytes());
        let hash: String = digest.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let shell = shell.replace("{{ASSETS}}", &format!("{prefix}/{hash}"));
        Self {
            shell: asset(shell.into_bytes(), "text/html; charset=utf-8"),
            files: files
                .iter()
                .map(|(path, bytes, t)| (*path, asset(bytes.to_vec(), t)))
                .collect(),
            hash,
        }
    }

    /// The shell, with the page's content security policy: nothing loads from elsewhere, and no
    /// URL (a shared link's token) leaks through `Referer`.
    pub fn page(&self, req: &HttpRequest, csp: &str) -> HttpResponse {
        serve(
            req,
            &self.shell,
            &format!("\"shell-{}\"", self.hash),
            "no-cache",
        )
        .insert_header((header::CONTENT_SECURITY_POLICY, csp.to_owned()))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .finish_with(req, &self.shell)
    }

    /// `GET {prefix}/{hash}/{path}`: a file, or `404 not_found`.
    pub fn file(
        &self,
        req: &HttpRequest,
        path: web::Path<(String, String)>,
    ) -> Result<HttpResponse, ApiError> {
        let (hash, path) = path.into_inner();
        let (_, asset) = self
            .files
            .iter()
            .find(|(p, _)| *p == path)
            .ok_or_else(|| ApiError::not_found("not_found", "no such file"))?;
        // A page from before an upgrade asks for an old hash: it gets today's file, not for keeps.
        let cache = if hash == self.hash {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        Ok(serve(req, asset, &format!("\"{}\"", self.hash), cache)
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .finish_with(req, asset))
    }
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

/// Checks that `files` are every file under `assets/<dir>` but the shell, `index.html`.
#[cfg(test)]
pub fn assert_all_embedded(dir: &str, files: &[(&str, &[u8], &str)]) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(dir);
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
    let mut embedded: Vec<String> = files.iter().map(|(p, _, _)| (*p).to_owned()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded);
}
