//! Hits: the `RecordHits` command every collection protocol translates into, its validation, and
//! the `HitRecorded` event it produces.

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DomainError, PropertyId};

/// The name of a pageview in every protocol's translation.
pub const PAGEVIEW: &str = "pageview";
/// The name of an engagement ping: it extends its visit but is neither a pageview nor an event.
pub const ENGAGEMENT: &str = "engagement";

/// The wire protocol a hit arrived with. Kept on the event for diagnostics only; processing does
/// not depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Plausible,
    Ga4,
    Umami,
    Footfall,
    /// History imported from a web server's access log.
    AccessLog,
}

impl Protocol {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Plausible => "plausible",
            Self::Ga4 => "ga4",
            Self::Umami => "umami",
            Self::Footfall => "footfall",
            Self::AccessLog => "access_log",
        }
    }
}

/// A hit as a protocol adapter hands it over: fields already mapped to one vocabulary, not yet
/// validated. Wrong JSON types are the adapter's to reject; limits are the domain's.
#[derive(Debug, Clone, Default)]
pub struct HitRequest {
    pub name: Option<String>,
    pub url: Option<String>,
    pub referrer: Option<String>,
    pub title: Option<String>,
    pub screen: Option<String>,
    pub language: Option<String>,
    pub props: Vec<(String, String)>,
    /// `(currency, amount)` as sent.
    pub revenue: Option<(String, String)>,
    pub interactive: bool,
    pub hash_mode: bool,
    /// Engaged time reported with the hit, in milliseconds.
    pub engagement_ms: Option<u64>,
    pub client_id: Option<String>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    /// When the client says the hit happened; `None` means "now".
    pub occurred_at: Option<DateTime<Utc>>,
    /// The visitor's device as a server-side payload states it (GA4 Measurement Protocol's
    /// `device`); `None` lets the user agent tell.
    pub device: Option<ReportedDevice>,
    /// The visitor's location as a server-side payload states it (`user_location`); `None` lets
    /// the client's address tell.
    pub geo: Option<Geo>,
}

/// A device as a server-side payload describes it. Every field is optional: what is not said
/// stays unknown in reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedDevice {
    /// `desktop`, `mobile`, `tablet` (GA4's values; others are kept as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
}

impl ReportedDevice {
    /// Device fields are report dimensions: short, single-line text.
    pub const MAX_FIELD_CHARS: usize = 100;

    fn parse(self) -> Result<Option<Self>, DomainError> {
        let f = |v: Option<String>, field| capped(v, field, Self::MAX_FIELD_CHARS);
        let device = Self {
            category: f(self.category, "device.category")?,
            os: f(self.os, "device.operating_system")?,
            os_version: f(self.os_version, "device.operating_system_version")?,
            browser: f(self.browser, "device.browser")?,
            browser_version: f(self.browser_version, "device.browser_version")?,
            model: f(self.model, "device.model")?,
            brand: f(self.brand, "device.brand")?,
        };
        Ok((device != Self::default()).then_some(device))
    }
}

/// Text as every read model can hold it. Control characters (U+0000–U+001F, U+007F–U+009F) are
/// removed; tab, line feed and carriage return become a space. PostgreSQL cannot store NUL in
/// `text` or `jsonb` at all, and no report wants the others: a title with a line break is still
/// the same title, so collection normalises rather than refuses.
pub fn clean_text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .filter_map(|c| match c {
                '\t' | '\n' | '\r' => Some(' '),
                c if c.is_control() => None,
                c => Some(c),
            })
            .collect(),
    )
}

/// Revenue attached to a hit, with the amount kept as the exact decimal text that was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revenue {
    pub currency: String,
    pub amount: String,
}

impl Revenue {
    pub fn parse(currency: &str, amount: &str) -> Result<Self, DomainError> {
        let currency = currency.trim().to_ascii_uppercase();
        let amount = amount.trim();
        let digits = amount.strip_prefix('-').unwrap_or(amount);
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let valid_amount = !int.is_empty()
            && int.len() <= 15
            && frac.len() <= 6
            && all_digits(int)
            && all_digits(frac)
            && !(digits.contains('.') && frac.is_empty());
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) || !valid_amount
        {
            return Err(DomainError::InvalidRevenue);
        }
        Ok(Self {
            currency,
            amount: amount.to_owned(),
        })
    }
}

/// A validated hit, independent of property and client.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub name: String,
    pub url: String,
    pub referrer: Option<String>,
    pub title: Option<String>,
    pub screen: Option<String>,
    pub language: Option<String>,
    pub props: Vec<(String, String)>,
    pub revenue: Option<Revenue>,
    pub interactive: bool,
    pub hash_mode: bool,
    pub engagement_ms: Option<u64>,
    pub client_id: Option<String>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub device: Option<ReportedDevice>,
    pub geo: Option<Geo>,
}

impl Hit {
    pub const MAX_NAME_CHARS: usize = 120;
    pub const MAX_URL_CHARS: usize = 2000;
    pub const MAX_PROPS: usize = 30;
    pub const MAX_PROP_KEY_CHARS: usize = 300;
    pub const MAX_PROP_VALUE_CHARS: usize = 2000;
    /// A prop's key and value, in UTF-8 bytes, together: they are one key of a B-tree index in the
    /// read models, whose entries PostgreSQL caps at 2,704 bytes (a third of a page).
    pub const MAX_PROP_BYTES: usize = 2400;
    pub const MAX_SHORT_FIELD_CHARS: usize = 300;
    /// How far back a client may date a hit (GA4's Measurement Protocol allows 72 hours).
    pub const MAX_BACKDATE: Duration = Duration::hours(72);
    /// How far ahead of our clock a client may date a hit.
    pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

    /// Validates a request received at `received_at`.
    pub fn parse(req: HitRequest, received_at: DateTime<Utc>) -> Result<Self, DomainError> {
        let name = non_empty(req.name).ok_or(DomainError::MissingField("name"))?;
        if name.chars().count() > Self::MAX_NAME_CHARS {
            return Err(DomainError::NameTooLong);
        }
        let url = non_empty(req.url).ok_or(DomainError::MissingField("url"))?;
        if url.chars().count() > Self::MAX_URL_CHARS {
            return Err(DomainError::UrlTooLong);
        }
        match url::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            _ => return Err(DomainError::InvalidUrl),
        }
        let referrer = non_empty(req.referrer);
        if referrer
            .as_ref()
            .is_some_and(|r| r.chars().count() > Self::MAX_URL_CHARS)
        {
            return Err(DomainError::ReferrerTooLong);
        }
        if req.props.len() > Self::MAX_PROPS {
            return Err(DomainError::TooManyProps);
        }
        let mut props = Vec::with_capacity(req.props.len());
        for (key, value) in req.props {
            let key = clean_text(&key).trim().to_owned();
            let value = clean_text(&value).into_owned();
            let key_len = key.chars().count();
            if key_len == 0
                || key_len > Self::MAX_PROP_KEY_CHARS
                || value.chars().count() > Self::MAX_PROP_VALUE_CHARS
                || key.len() + value.len() > Self::MAX_PROP_BYTES
            {
                return Err(DomainError::InvalidProps);
            }
            if !value.is_empty() {
                props.push((key, value));
            }
        }
        let revenue = req
            .revenue
            .map(|(c, a)| Revenue::parse(&c, &a))
            .transpose()?;
        let occurred_at = req.occurred_at.unwrap_or(received_at);
        if occurred_at < received_at - Self::MAX_BACKDATE
            || occurred_at > received_at + Self::MAX_CLOCK_SKEW
        {
            return Err(DomainError::TimestampOutOfRange);
        }
        let device = req.device.map(ReportedDevice::parse).transpose()?.flatten();
        let geo = req.geo.map(Geo::parse).transpose()?.flatten();
        Ok(Self {
            name,
            url,
            referrer,
            title: short_field(req.title, "title")?,
            screen: short_field(req.screen, "screen")?,
            language: short_field(req.language, "language")?,
            props,
            revenue,
            interactive: req.interactive,
            hash_mode: req.hash_mode,
            engagement_ms: req.engagement_ms,
            client_id: short_field(req.client_id, "client_id")?,
            session_id: short_field(req.session_id, "session_id")?,
            user_id: short_field(req.user_id, "user_id")?,
            occurred_at,
            device,
            geo,
        })
    }
}

/// Cleaned ([`clean_text`]) and trimmed; `None` when nothing is left.
fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| clean_text(&s).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn capped(
    s: Option<String>,
    field: &'static str,
    max_chars: usize,
) -> Result<Option<String>, DomainError> {
    match non_empty(s) {
        Some(s) if s.chars().count() > max_chars => Err(DomainError::FieldTooLong(field)),
        s => Ok(s),
    }
}

fn short_field(s: Option<String>, field: &'static str) -> Result<Option<String>, DomainError> {
    capped(s, field, Hit::MAX_SHORT_FIELD_CHARS)
}

/// A pseudonymous visitor identifier: 64 bits of a salted hash, shown as 16 hex digits. It cannot be
/// turned back into the IP address it was derived from once the day's salt is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VisitorKey(u64);

impl VisitorKey {
    /// The key for a browser visitor without an id of its own:
    /// hash(daily salt, property, IP address, user agent).
    pub fn derive(salt: &[u8], property: PropertyId, ip: Option<IpAddr>, user_agent: &str) -> Self {
        let mut h = Sha256::new();
        h.update(salt);
        h.update(property.as_uuid().as_bytes());
        match ip {
            Some(IpAddr::V4(ip)) => h.update(ip.octets()),
            Some(IpAddr::V6(ip)) => h.update(ip.octets()),
            None => h.update([0u8]),
        }
        h.update(user_agent.as_bytes());
        Self::from_digest(h)
    }

    /// The key for a visitor identified by the client itself (a client id or user id): stable across
    /// days, and scoped to the property.
    pub fn from_client_id(property: PropertyId, client_id: &str) -> Self {
        let mut h = Sha256::new();
        h.update(property.as_uuid().as_bytes());
        h.update(b"client:");
        h.update(client_id.as_bytes());
        Self::from_digest(h)
    }

    fn from_digest(h: Sha256) -> Self {
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Self(u64::from_be_bytes(first))
    }

    pub fn as_u64(&self) -> u64 {
        self.0
    }

    /// The key with these 64 bits (as [`VisitorKey::as_u64`] gives them).
    pub fn from_u64(bits: u64) -> Self {
        Self(bits)
    }
}

impl TryFrom<String> for VisitorKey {
    type Error = std::num::ParseIntError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        u64::from_str_radix(&s, 16).map(Self)
    }
}

impl From<VisitorKey> for String {
    fn from(k: VisitorKey) -> Self {
        format!("{:016x}", k.0)
    }
}

/// Geo location resolved at collection time. Empty when no GeoIP database is configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_name: Option<String>,
    /// ISO 3166-2 code, such as `GB-ENG`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_name: Option<String>,
    /// GeoNames id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city_name: Option<String>,
}

impl Geo {
    /// A location a payload states (not one resolved from an address): codes and names are
    /// report dimensions, so short, single-line text.
    fn parse(self) -> Result<Option<Self>, DomainError> {
        let f = |v: Option<String>, field| capped(v, field, ReportedDevice::MAX_FIELD_CHARS);
        let geo = Self {
            country: f(self.country, "user_location.country_id")?.map(|c| c.to_ascii_uppercase()),
            country_name: f(self.country_name, "user_location.country_name")?,
            region: f(self.region, "user_location.region_id")?.map(|r| r.to_ascii_uppercase()),
            region_name: f(self.region_name, "user_location.region_name")?,
            city: f(self.city, "user_location.city_id")?,
            city_name: f(self.city_name, "user_location.city")?,
        };
        Ok((geo != Self::default()).then_some(geo))
    }
}

/// Command: record one hit for each of the given properties.
#[derive(Debug, Clone)]
pub struct RecordHits {
    pub hit: Hit,
    pub properties: Vec<PropertyId>,
    pub protocol: Protocol,
    pub user_agent: Option<String>,
    /// Used only to derive the visitor key and geo; never stored.
    pub ip: Option<IpAddr>,
    pub geo: Geo,
    /// Today's salt for visitor keys.
    pub salt: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

impl RecordHits {
    /// User agents are capped, not refused: the header is not under the merchant's control.
    pub const MAX_USER_AGENT_CHARS: usize = 512;

    /// Decides the events: one `HitRecorded` per property, each with its own visitor key.
    pub fn handle(self) -> Vec<HitRecorded> {
        let user_agent = self
            .user_agent
            .map(|ua| {
                clean_text(&ua)
                    .trim()
                    .chars()
                    .take(Self::MAX_USER_AGENT_CHARS)
                    .collect::<String>()
            })
            .filter(|ua| !ua.is_empty());
        let hit = self.hit;
        self.properties
            .iter()
            .map(|&property_id| {
                let visitor_key = match hit.user_id.as_deref().or(hit.client_id.as_deref()) {
                    Some(id) => VisitorKey::from_client_id(property_id, id),
                    None => VisitorKey::derive(
                        &self.salt,
                        property_id,
                        self.ip,
                        user_agent.as_deref().unwrap_or(""),
                    ),
                };
                HitRecorded {
                    property_id,
                    occurred_at: hit.occurred_at,
                    received_at: self.received_at,
                    name: hit.name.clone(),
                    url: hit.url.clone(),
                    referrer: hit.referrer.clone(),
                    title: hit.title.clone(),
                    user_agent: user_agent.clone(),
                    screen: hit.screen.clone(),
                    language: hit.language.clone(),
                    visitor_key,
                    client_id: hit.client_id.clone(),
                    session_id: hit.session_id.clone(),
                    user_id: hit.user_id.clone(),
                    props: hit.props.clone(),
                    revenue: hit.revenue.clone(),
                    interactive: hit.interactive,
                    hash_mode: hit.hash_mode,
                    engagement_ms: hit.engagement_ms,
                    geo: hit.geo.clone().unwrap_or_else(|| self.geo.clone()),
                    device: hit.device.clone(),
                    protocol: self.protocol,
                }
            })
            .collect()
    }
}

/// Event: a hit was collected for a property. The raw fact, with everything processing needs, so
/// that read models can be rebuilt with fixed processing code. It never holds an IP address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HitRecorded {
    pub property_id: PropertyId,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub name: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    pub visitor_key: VisitorKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub props: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue: Option<Revenue>,
    pub interactive: bool,
    #[serde(default)]
    pub hash_mode: bool,
    /// Engaged time the client reports with this hit (engagement pings, GA4 `engagement_time_msec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement_ms: Option<u64>,
    #[serde(default)]
    pub geo: Geo,
    /// The device a server-side payload states; when present, reports take it instead of what
    /// the user agent says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<ReportedDevice>,
    pub protocol: Protocol,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn pageview() -> HitRequest {
        HitRequest {
            name: Some("pageview".into()),
            url: Some("https://shop.example/products?id=1".into()),
            interactive: true,
            ..Default::default()
        }
    }

    fn property(n: u8) -> PropertyId {
        PropertyId::parse(&format!("0190c7e6-5b8f-7000-8000-0000000000{n:02}")).unwrap()
    }

    #[test]
    fn a_valid_pageview_parses_and_defaults_to_now() {
        let hit = Hit::parse(pageview(), now()).unwrap();
        assert_eq!(hit.name, "pageview");
        assert_eq!(hit.occurred_at, now());
    }

    #[test]
    fn missing_and_oversized_fields_are_refused() {
        let with = |f: fn(&mut HitRequest)| {
            let mut r = pageview();
            f(&mut r);
            Hit::parse(r, now()).unwrap_err()
        };
        assert_eq!(with(|r| r.name = None), DomainError::MissingField("name"));
        assert_eq!(
            with(|r| r.name = Some("  ".into())),
            DomainError::MissingField("name")
        );
        assert_eq!(with(|r| r.url = None), DomainError::MissingField("url"));
        assert_eq!(
            with(|r| r.name = Some("x".repeat(121))),
            DomainError::NameTooLong
        );
        assert_eq!(
            with(|r| r.url = Some(format!("https://a.example/{}", "x".repeat(2000)))),
            DomainError::UrlTooLong
        );
        assert_eq!(
            with(|r| r.url = Some("javascript:alert(1)".into())),
            DomainError::InvalidUrl
        );
        assert_eq!(
            with(|r| r.url = Some("ftp://a.example/x".into())),
            DomainError::InvalidUrl
        );
        assert_eq!(
            with(|r| r.url = Some("/relative".into())),
            DomainError::InvalidUrl
        );
        assert_eq!(
            with(|r| r.props = (0..31).map(|i| (format!("k{i}"), "v".into())).collect()),
            DomainError::TooManyProps
        );
        assert_eq!(
            with(|r| r.props = vec![(" ".into(), "v".into())]),
            DomainError::InvalidProps
        );
        assert_eq!(
            with(|r| r.revenue = Some(("EURO".into(), "1".into()))),
            DomainError::InvalidRevenue
        );
        assert_eq!(
            with(|r| r.occurred_at = Some(now() - Duration::hours(73))),
            DomainError::TimestampOutOfRange
        );
    }

    #[test]
    fn exactly_thirty_props_and_120_char_names_are_accepted() {
        let mut r = pageview();
        r.name = Some("é".repeat(120));
        r.props = (0..30).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(Hit::parse(r, now()).unwrap().props.len(), 30);
    }

    #[test]
    fn control_characters_are_removed_from_every_text_field() {
        assert_eq!(clean_text("plain é 🙂"), "plain é 🙂");
        assert_eq!(clean_text("a\u{0}b\u{7f}c\u{85}d\u{1b}"), "abcd");
        assert_eq!(clean_text("line\nbreak\ttab\r"), "line break tab ");
        let mut r = pageview();
        r.name = Some("Sign\u{0}up".into());
        r.url = Some("https://shop.example/\u{0}a".into());
        r.title = Some("Two\nlines".into());
        r.props = vec![
            ("k\u{0}".into(), "v\u{0}".into()),
            ("\u{0}".into(), "x".into()),
        ];
        assert_eq!(
            Hit::parse(r.clone(), now()).unwrap_err(),
            DomainError::InvalidProps,
            "a key of control characters only is empty"
        );
        r.props.pop();
        let hit = Hit::parse(r, now()).unwrap();
        assert_eq!(hit.name, "Signup");
        assert_eq!(hit.url, "https://shop.example/a");
        assert_eq!(hit.title.as_deref(), Some("Two lines"));
        assert_eq!(hit.props, vec![("k".to_owned(), "v".to_owned())]);
    }

    #[test]
    fn a_prop_fits_one_index_key() {
        let mut r = pageview();
        // 600 four-byte characters: within 2,000 characters, over 2,400 bytes with the key.
        r.props = vec![("k".into(), "🙂".repeat(600))];
        assert_eq!(
            Hit::parse(r.clone(), now()).unwrap_err(),
            DomainError::InvalidProps
        );
        r.props = vec![("k".into(), "🙂".repeat(599))];
        assert!(Hit::parse(r, now()).is_ok());
    }

    #[test]
    fn reported_devices_and_places_are_kept_only_when_they_say_something() {
        let mut r = pageview();
        r.device = Some(ReportedDevice {
            category: Some(" mobile\n".into()),
            ..ReportedDevice::default()
        });
        r.geo = Some(Geo::default());
        let hit = Hit::parse(r.clone(), now()).unwrap();
        assert_eq!(hit.device.unwrap().category.as_deref(), Some("mobile"));
        assert_eq!(hit.geo, None);
        r.device = Some(ReportedDevice {
            model: Some("x".repeat(101)),
            ..ReportedDevice::default()
        });
        assert_eq!(
            Hit::parse(r, now()).unwrap_err(),
            DomainError::FieldTooLong("device.model")
        );
    }

    #[test]
    fn revenue_keeps_the_exact_decimal() {
        assert_eq!(
            Revenue::parse("eur", "1322.22").unwrap(),
            Revenue {
                currency: "EUR".into(),
                amount: "1322.22".into()
            }
        );
        for bad in ["", "1.", "abc", "1e5", "1.1234567"] {
            assert!(Revenue::parse("EUR", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn one_event_per_property_with_property_scoped_visitor_keys() {
        let cmd = RecordHits {
            hit: Hit::parse(pageview(), now()).unwrap(),
            properties: vec![property(1), property(2)],
            protocol: Protocol::Plausible,
            user_agent: Some("Mozilla/5.0".into()),
            ip: Some("203.0.113.9".parse().unwrap()),
            geo: Geo::default(),
            salt: vec![7; 32],
            received_at: now(),
        };
        let events = cmd.clone().handle();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].property_id, property(1));
        assert_ne!(events[0].visitor_key, events[1].visitor_key);
        // Same inputs, same key; another salt (another day), another key.
        assert_eq!(cmd.clone().handle()[0].visitor_key, events[0].visitor_key);
        let other_day = RecordHits {
            salt: vec![8; 32],
            ..cmd
        };
        assert_ne!(other_day.handle()[0].visitor_key, events[0].visitor_key);
    }

    #[test]
    fn hit_recorded_never_serialises_an_ip() {
        let ip = "203.0.113.9";
        let event = RecordHits {
            hit: Hit::parse(pageview(), now()).unwrap(),
            properties: vec![property(1)],
            protocol: Protocol::Plausible,
            user_agent: None,
            ip: Some(ip.parse().unwrap()),
            geo: Geo::default(),
            salt: vec![1; 32],
            received_at: now(),
        }
        .handle()
        .remove(0);
        let json = serde_json::to_string(&event).unwrap();
        assert!(!json.contains(ip));
        let back: HitRecorded = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }
}
