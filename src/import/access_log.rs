//! Web-server access logs (nginx, Apache) as history: one line in, at most one pageview out.
//!
//! Formats: `common` (`%h %l %u [%t] "%r" %>s %b`), `combined` (common, then `"%{Referer}i"
//! "%{User-Agent}i"`, with anything after ignored), and `json` (one object per line, with nginx's
//! variable names: `remote_addr`, `time_iso8601` or `time_local`, `request` or `request_method` and
//! `request_uri`, `status`, `http_referer`, `http_user_agent`).
//!
//! A line is a pageview when it is a `GET` answered with a 2xx for a page, not an asset (an image,
//! a stylesheet, a script, a font, media, a download, a feed, `robots.txt`…). Redirects (3xx, `304`
//! included) and errors (4xx, 5xx) are counted, not recorded; so are other methods and assets.

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Common,
    Combined,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "common" => Some(Self::Common),
            "combined" => Some(Self::Combined),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// One request of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The client: an IP address, or a host name where the server logged one.
    pub client: String,
    pub time: DateTime<FixedOffset>,
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    pub status: u16,
    pub referrer: Option<String>,
    pub user_agent: Option<String>,
}

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pageview,
    Asset,
    Redirect,
    Error,
    /// Not a GET (HEAD, POST…), or a status outside 2xx–5xx.
    Other,
}

impl Line {
    pub fn kind(&self) -> Kind {
        match self.status {
            300..=399 => Kind::Redirect,
            400..=599 => Kind::Error,
            _ if self.method != "GET" => Kind::Other,
            200..=299 if is_asset(&self.target) => Kind::Asset,
            200..=299 => Kind::Pageview,
            _ => Kind::Other,
        }
    }
}

/// Files that are not pages, by extension (of the path, without its query).
const ASSET_EXTENSIONS: &[&str] = &[
    "css", "js", "mjs", "map", "json", "xml", "rss", "atom", "txt", "png", "jpg", "jpeg", "gif",
    "svg", "ico", "webp", "avif", "bmp", "tif", "tiff", "woff", "woff2", "ttf", "otf", "eot",
    "mp4", "webm", "ogg", "ogv", "mp3", "wav", "flac", "m4a", "mov", "avi", "pdf", "zip", "gz",
    "tgz", "bz2", "xz", "7z", "rar", "tar", "exe", "dmg", "msi", "deb", "rpm", "apk", "iso", "swf",
    "flv", "csv", "doc", "docx", "xls", "xlsx", "ppt", "pptx",
];

fn is_asset(target: &str) -> bool {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    match last.rsplit_once('.') {
        Some((_, ext)) => ASSET_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()),
        None => false,
    }
}

/// Parses one line; `None` for a line that is not a request of this format.
pub fn parse(line: &str, format: Format) -> Option<Line> {
    match format {
        Format::Json => parse_json(line),
        Format::Common | Format::Combined => parse_text(line, format == Format::Combined),
    }
}

/// A `"…"` field, with `\"` and `\\` escapes as nginx and Apache write them; returns it and the rest.
fn quoted(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start().strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                }
            }
            '"' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// The next space-separated token and the rest.
fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    Some(s.split_once(' ').unwrap_or((s, "")))
}

/// `-` means absent.
fn present(s: String) -> Option<String> {
    (!s.is_empty() && s != "-").then_some(s)
}

fn parse_text(line: &str, combined: bool) -> Option<Line> {
    let (client, rest) = token(line)?;
    let (_ident, rest) = token(rest)?;
    let (_user, rest) = token(rest)?;
    let rest = rest.trim_start().strip_prefix('[')?;
    let (time, rest) = rest.split_once(']')?;
    let time = DateTime::parse_from_str(time, "%d/%b/%Y:%H:%M:%S %z").ok()?;
    let (request, rest) = quoted(rest)?;
    let (status, rest) = token(rest)?;
    let status: u16 = status.parse().ok()?;
    let (_bytes, rest) = token(rest).unwrap_or(("-", ""));
    let (referrer, user_agent) = if combined {
        let (referrer, rest) = quoted(rest)?;
        let (user_agent, _) = quoted(rest)?;
        (present(referrer), present(user_agent))
    } else {
        (None, None)
    };
    let (method, target) = request_parts(&request)?;
    Some(Line {
        client: client.to_owned(),
        time,
        method,
        target,
        status,
        referrer,
        user_agent,
    })
}

/// `GET /path?q HTTP/1.1` → method and target.
fn request_parts(request: &str) -> Option<(String, String)> {
    let mut parts = request.split(' ');
    let method = parts.next().filter(|m| !m.is_empty())?;
    let target = parts.next().filter(|t| !t.is_empty())?;
    Some((method.to_owned(), target.to_owned()))
}

fn parse_json(line: &str) -> Option<Line> {
    let v: Value = serde_json::from_str(line).ok()?;
    let text = |keys: &[&str]| {
        keys.iter().find_map(|k| match v.get(*k)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let client = text(&["remote_addr", "client", "ip"])?;
    let time = match text(&["time_iso8601", "time", "timestamp"]) {
        Some(t) => DateTime::parse_from_rfc3339(&t).ok()?,
        None => DateTime::parse_from_str(&text(&["time_local"])?, "%d/%b/%Y:%H:%M:%S %z").ok()?,
    };
    let (method, target) = match text(&["request"]) {
        Some(r) => request_parts(&r)?,
        None => (
            text(&["request_method", "method"])?,
            text(&["request_uri", "uri", "path"])?,
        ),
    };
    Some(Line {
        client,
        time,
        method,
        target,
        status: text(&["status"])?.parse().ok()?,
        referrer: text(&["http_referer", "referrer", "referer"]).and_then(present),
        user_agent: text(&["http_user_agent", "user_agent"]).and_then(present),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_lines_with_escapes_offsets_and_extra_fields() {
        let l = parse(
            r#"proxy-435.dialup.xtra.co.nz - - [22/Apr/2009:18:52:51 +1200] "GET /gallery.php?section=a HTTP/1.1" 200 986 "https://r.example/" "Mozilla/5.0 \"quoted\"" "-""#,
            Format::Combined,
        )
        .unwrap();
        assert_eq!(l.client, "proxy-435.dialup.xtra.co.nz");
        assert_eq!(l.time.to_rfc3339(), "2009-04-22T18:52:51+12:00");
        assert_eq!(
            (l.method.as_str(), l.target.as_str()),
            ("GET", "/gallery.php?section=a")
        );
        assert_eq!(l.status, 200);
        assert_eq!(l.referrer.as_deref(), Some("https://r.example/"));
        assert_eq!(l.user_agent.as_deref(), Some("Mozilla/5.0 \"quoted\""));
        assert_eq!(l.kind(), Kind::Pageview);
    }

    #[test]
    fn common_and_json_lines() {
        let l = parse(
            r#"203.0.113.9 - alice [01/Nov/2026:10:00:00 -0500] "GET /a HTTP/2.0" 200 -"#,
            Format::Common,
        )
        .unwrap();
        assert_eq!(l.time.to_rfc3339(), "2026-11-01T10:00:00-05:00");
        assert_eq!((l.referrer, l.user_agent), (None, None));
        let j = parse(
            r#"{"remote_addr":"2001:db8::1","time_iso8601":"2026-11-01T10:00:00+01:00","request":"GET /b?x=1 HTTP/1.1","status":"200","http_referer":"-","http_user_agent":"curl/8"}"#,
            Format::Json,
        )
        .unwrap();
        assert_eq!(
            (j.client.as_str(), j.target.as_str(), j.status),
            ("2001:db8::1", "/b?x=1", 200)
        );
        assert_eq!(j.referrer, None);
        let j = parse(
            r#"{"remote_addr":"192.0.2.1","time_local":"01/Nov/2026:10:00:00 +0000","request_method":"POST","request_uri":"/api","status":201}"#,
            Format::Json,
        )
        .unwrap();
        assert_eq!(j.kind(), Kind::Other);
    }

    #[test]
    fn kinds_and_garbage() {
        let line = |method: &str, target: &str, status: u16| Line {
            client: "x".into(),
            time: DateTime::parse_from_rfc3339("2026-11-01T10:00:00Z").unwrap(),
            method: method.into(),
            target: target.into(),
            status,
            referrer: None,
            user_agent: None,
        };
        assert_eq!(line("GET", "/img/a.PNG?v=2", 200).kind(), Kind::Asset);
        assert_eq!(line("GET", "/blog/post.html", 200).kind(), Kind::Pageview);
        assert_eq!(line("GET", "/v1.2/docs", 200).kind(), Kind::Pageview);
        assert_eq!(line("GET", "/", 304).kind(), Kind::Redirect);
        assert_eq!(line("GET", "/", 302).kind(), Kind::Redirect);
        assert_eq!(line("GET", "/", 404).kind(), Kind::Error);
        assert_eq!(line("HEAD", "/", 200).kind(), Kind::Other);
        for garbage in [
            "",
            "-",
            "not a log line",
            "1.2.3.4 - - [bad] \"GET / HTTP/1.1\" 200 1",
            "{}",
        ] {
            assert_eq!(parse(garbage, Format::Combined), None, "{garbage}");
            assert_eq!(parse(garbage, Format::Json), None, "{garbage}");
        }
    }
}
