//! Enrichment: pure functions that derive report dimensions from a hit's raw fields. Projections
//! call them, so fixing one and rebuilding fixes history.

/// Where a hit happened, as reports show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Host without a leading `www.`, lower case.
    pub hostname: String,
    /// Path without the query string; with `hash_mode`, the fragment too (`/#/cart`).
    pub pathname: String,
}

impl Page {
    pub fn of(url: &str, hash_mode: bool) -> Self {
        match url::Url::parse(url) {
            Ok(u) => {
                let host = u.host_str().unwrap_or("").to_ascii_lowercase();
                let hostname = host.strip_prefix("www.").unwrap_or(&host).to_owned();
                let mut pathname = u.path().to_owned();
                if hash_mode {
                    if let Some(fragment) = u.fragment().filter(|f| !f.is_empty()) {
                        pathname.push('#');
                        pathname.push_str(fragment);
                    }
                }
                Self { hostname, pathname }
            }
            // Collection only accepts absolute http(s) URLs; keep anything else visible as is.
            Err(_) => Self {
                hostname: String::new(),
                pathname: url.to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_drop_queries_and_www_and_keep_fragments_in_hash_mode() {
        assert_eq!(
            Page::of("https://WWW.Shop.example/a/b?utm_source=x#top", false),
            Page {
                hostname: "shop.example".into(),
                pathname: "/a/b".into()
            }
        );
        assert_eq!(
            Page::of("https://shop.example/#/cart?x=1", true).pathname,
            "/#/cart?x=1"
        );
        assert_eq!(Page::of("https://shop.example", false).pathname, "/");
        assert_eq!(
            Page::of("https://blog.shop.example/p", false).hostname,
            "blog.shop.example"
        );
    }
}
