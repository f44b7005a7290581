//! Domain value types. Each one is a newtype with a `parse` that can fail, so that a value of the
//! type is valid by construction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::DomainError;

/// The id of a property (one merchant site). Its event streams are `property-<id>`, `hits-<id>`
/// and `imports-<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PropertyId(Uuid);

impl PropertyId {
    pub fn new(id: Uuid) -> Self {
        Self(id)
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| DomainError::InvalidPropertyId)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The stream holding the property aggregate's events.
    pub fn property_stream(&self) -> String {
        format!("{}{}", PROPERTY_STREAM_PREFIX, self.0)
    }

    /// The stream holding the property's hits.
    pub fn hits_stream(&self) -> String {
        format!("{}{}", HITS_STREAM_PREFIX, self.0)
    }

    /// The stream holding the property's imported aggregates.
    pub fn imports_stream(&self) -> String {
        format!("{}{}", IMPORTS_STREAM_PREFIX, self.0)
    }
}

impl fmt::Display for PropertyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

pub const PROPERTY_STREAM_PREFIX: &str = "property-";
pub const HITS_STREAM_PREFIX: &str = "hits-";
pub const IMPORTS_STREAM_PREFIX: &str = "imports-";
pub const DOMAIN_STREAM_PREFIX: &str = "domain-";

/// A site's host name as the tracker reports it: lower case, no scheme, no path, no port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Domain(String);

impl Domain {
    pub const MAX_LEN: usize = 253;

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.split('.').all(valid_label) {
            return Err(DomainError::InvalidDomain);
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stream whose existence reserves this domain for one property.
    pub fn claim_stream(&self) -> String {
        format!("{}{}", DOMAIN_STREAM_PREFIX, self.0)
    }
}

impl TryFrom<String> for Domain {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Domain> for String {
    fn from(d: Domain) -> Self {
        d.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IANA time zone name such as `Europe/Berlin` or `Asia/Kolkata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timezone(chrono_tz::Tz);

impl Timezone {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        chrono_tz::Tz::from_str(s.trim())
            .map(Self)
            .map_err(|_| DomainError::InvalidTimezone)
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.0
    }
}

impl Default for Timezone {
    fn default() -> Self {
        Self(chrono_tz::UTC)
    }
}

impl TryFrom<String> for Timezone {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Timezone> for String {
    fn from(t: Timezone) -> Self {
        t.0.name().to_owned()
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// A human name for a property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PropertyName(String);

impl PropertyName {
    pub const MAX_CHARS: usize = 120;

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > Self::MAX_CHARS || s.chars().any(char::is_control) {
            return Err(DomainError::InvalidPropertyName);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PropertyName {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<PropertyName> for String {
    fn from(n: PropertyName) -> Self {
        n.0
    }
}

/// Credentials handed out when a property is registered. They are generated outside the domain
/// (they need randomness) and validated here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyCredentials {
    /// GA4-style measurement id, `G-` followed by 10 upper-case letters or digits.
    pub measurement_id: String,
    /// Secret for server-side protocols (GA4 Measurement Protocol).
    pub api_secret: String,
    /// Bearer token that reads this property's reports.
    pub read_key: String,
}

impl PropertyCredentials {
    /// Whether `id` has the shape of a measurement id (`G-` and 10 upper-case letters or digits),
    /// so that anything else is refused without a lookup.
    pub fn is_measurement_id(id: &str) -> bool {
        id.strip_prefix("G-").is_some_and(|rest| {
            rest.len() == 10
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_ids_have_one_shape() {
        assert!(PropertyCredentials::is_measurement_id("G-AB12CD34EF"));
        for bad in [
            "",
            "G-",
            "G-ab12cd34ef",
            "G-AB12CD34E",
            "X-AB12CD34EF",
            "G-AB12CD34E\0",
        ] {
            assert!(!PropertyCredentials::is_measurement_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn domains_are_normalised_and_validated() {
        assert_eq!(
            Domain::parse(" Shop.Example. ").unwrap().as_str(),
            "shop.example"
        );
        assert_eq!(Domain::parse("localhost").unwrap().as_str(), "localhost");
        for bad in [
            "",
            "http://shop.example",
            "shop.example/path",
            "-a.example",
            "a..b",
            "a b",
        ] {
            assert_eq!(
                Domain::parse(bad),
                Err(DomainError::InvalidDomain),
                "{bad:?}"
            );
        }
        assert!(Domain::parse(&"a".repeat(254)).is_err());
    }

    #[test]
    fn timezones_are_iana_names() {
        assert_eq!(
            Timezone::parse("Asia/Kolkata").unwrap().to_string(),
            "Asia/Kolkata"
        );
        assert_eq!(
            Timezone::parse("Mars/Olympus"),
            Err(DomainError::InvalidTimezone)
        );
    }

    #[test]
    fn property_ids_name_their_streams() {
        let id = PropertyId::parse("0190c7e6-5b8f-7000-8000-000000000001").unwrap();
        assert_eq!(
            id.hits_stream(),
            "hits-0190c7e6-5b8f-7000-8000-000000000001"
        );
        assert_eq!(
            id.property_stream(),
            "property-0190c7e6-5b8f-7000-8000-000000000001"
        );
        assert_eq!(
            PropertyId::parse("nope"),
            Err(DomainError::InvalidPropertyId)
        );
    }

    #[test]
    fn property_names_are_bounded() {
        assert!(PropertyName::parse("Shop").is_ok());
        assert!(PropertyName::parse("  ").is_err());
        assert!(PropertyName::parse(&"x".repeat(121)).is_err());
    }
}
