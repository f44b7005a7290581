//! Enrichment: pure functions that derive report dimensions from a hit's raw fields. Projections
//! call them, so fixing one and rebuilding fixes history.

use super::{Geo, HitRecorded};

mod acquisition;
mod client;
pub use acquisition::{Acquisition, Channel, DIRECT};
pub use client::{is_bot, Client, DeviceCategory};

#[cfg(test)]
mod tests;

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

/// What a visit is reported by, taken from its first hit: acquisition, client and geo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visit {
    pub acquisition: Acquisition,
    pub client: Client,
    pub geo: Geo,
}

impl Visit {
    /// The read-model columns of a visit, in the order of [`Visit::values`]; each is also the
    /// query API's `visit:<column>` dimension.
    pub const COLUMNS: [&'static str; 20] = [
        "source",
        "referrer",
        "channel",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "utm_term",
        "click_id",
        "device",
        "browser",
        "browser_version",
        "os",
        "os_version",
        "country",
        "country_name",
        "region",
        "region_name",
        "city",
        "city_name",
    ];

    /// A visit's attributes from its first hit; `client_of` parses the user agent: [`Client::of`],
    /// or a memo of it (user agents repeat).
    pub fn of<'a>(
        hit: &'a HitRecorded,
        own_domain: &str,
        client_of: impl FnOnce(&'a str) -> Client,
    ) -> Self {
        Self {
            acquisition: Acquisition::of(&hit.url, hit.referrer.as_deref(), own_domain),
            client: match &hit.device {
                Some(device) => Client::reported(device),
                None => client_of(hit.user_agent.as_deref().unwrap_or("")),
            },
            geo: hit.geo.clone(),
        }
    }

    pub fn values(&self) -> [&str; 20] {
        let (a, c, g) = (&self.acquisition, &self.client, &self.geo);
        fn o(v: &Option<String>) -> &str {
            v.as_deref().unwrap_or("")
        }
        [
            &a.source,
            &a.referrer,
            &a.channel,
            &a.utm_source,
            &a.utm_medium,
            &a.utm_campaign,
            &a.utm_content,
            &a.utm_term,
            &a.click_id,
            &c.device,
            &c.browser,
            &c.browser_version,
            &c.os,
            &c.os_version,
            o(&g.country),
            o(&g.country_name),
            o(&g.region),
            o(&g.region_name),
            o(&g.city),
            o(&g.city_name),
        ]
    }

    pub fn from_values(v: [String; 20]) -> Self {
        let [source, referrer, channel, utm_source, utm_medium, utm_campaign, utm_content, utm_term, click_id, device, browser, browser_version, os, os_version, country, country_name, region, region_name, city, city_name] =
            v;
        let o = |s: String| (!s.is_empty()).then_some(s);
        Self {
            acquisition: Acquisition {
                source,
                referrer,
                channel,
                utm_source,
                utm_medium,
                utm_campaign,
                utm_content,
                utm_term,
                click_id,
            },
            client: Client {
                browser,
                browser_version,
                os,
                os_version,
                device,
            },
            geo: Geo {
                country: o(country),
                country_name: o(country_name),
                region: o(region),
                region_name: o(region_name),
                city: o(city),
                city_name: o(city_name),
            },
        }
    }
}
