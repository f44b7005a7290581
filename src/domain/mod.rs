//! Pure domain logic: commands, events, aggregates and processing rules. No I/O and no async.

pub mod codec;
pub mod enrich;
pub mod events;
pub mod geo;
pub mod hit;
pub mod imported;
pub mod property;
pub mod session;
pub mod values;

pub use events::{DecodeError, Event};
pub use hit::{
    clean_text, Geo, Hit, HitRecorded, HitRequest, Protocol, RecordHits, ReportedDevice, Revenue,
    VisitorKey,
};
pub use imported::{
    AggregatesImported, ImportAggregates, ImportDeleted, ImportedCounts, ImportedRow, ImportedTable,
};
pub use property::{
    hostname_allowed, AllowHostnames, CreateSharedLink, DomainClaimed, Funnel, FunnelsSet, Goal,
    GoalsSet, HostnamesAllowed, Property, PropertyRegistered, RegisterProperty, RevokeSharedLink,
    SetFunnels, SetGoals, SharedLink, SharedLinkCreated, SharedLinkRevoked,
};
pub use values::{
    Domain, PropertyCredentials, PropertyId, PropertyName, Timezone, PROPERTY_STREAM_PREFIX,
};

/// Everything the domain can refuse. Each variant states the HTTP status it maps to and carries a
/// stable snake_case code (see [`DomainError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// 400: not a UUID.
    #[error("property id is not a valid UUID")]
    InvalidPropertyId,
    /// 400: not a host name such as `shop.example`.
    #[error("domain must be a host name such as shop.example")]
    InvalidDomain,
    /// 400: not an IANA time zone name.
    #[error("timezone must be an IANA time zone name such as Europe/Berlin")]
    InvalidTimezone,
    /// 400: empty, too long, or has control characters.
    #[error("name must be 1 to 120 printable characters")]
    InvalidPropertyName,
    /// 409: the aggregate already exists.
    #[error("property is already registered")]
    PropertyAlreadyRegistered,
    /// 400: a required field is absent or empty.
    #[error("field `{0}` is required")]
    MissingField(&'static str),
    /// 400: the event name is longer than 120 characters.
    #[error("event name must be at most 120 characters")]
    NameTooLong,
    /// 400: the URL is longer than 2,000 characters.
    #[error("url must be at most 2000 characters")]
    UrlTooLong,
    /// 400: the URL does not parse, or its scheme is not http(s).
    #[error("url must be an absolute http(s) URL")]
    InvalidUrl,
    /// 400: the referrer is longer than 2,000 characters.
    #[error("referrer must be at most 2000 characters")]
    ReferrerTooLong,
    /// 400: more than 30 custom props.
    #[error("at most 30 custom props are allowed")]
    TooManyProps,
    /// 400: a prop key or value is empty or too long.
    #[error("prop keys must be 1 to 300 characters and values at most 2000 characters")]
    InvalidProps,
    /// 400: revenue without a 3-letter currency or a decimal amount.
    #[error("revenue needs a 3-letter currency code and a decimal amount")]
    InvalidRevenue,
    /// 400: a short text field (title, language, screen, ids) is too long.
    #[error("field `{0}` is too long")]
    FieldTooLong(&'static str),
    /// 404: no property has this id.
    #[error("property is not registered")]
    PropertyNotRegistered,
    /// 400: a hostname of the allow-list is not a host name (or `*.` and one), or there are over 100.
    #[error("hostnames must be at most 100 host names, each optionally prefixed with `*.`")]
    InvalidHostnames,
    /// 400: a goal is neither one event name nor one page pattern, or there are over 100.
    #[error("goals must be at most 100, each {{\"event\": name}} or {{\"page\": \"/path*\"}}")]
    InvalidGoals,
    /// 400: a funnel has no name or a duplicate one, or not 2 to 8 valid steps, or there are
    /// over 50.
    #[error("funnels must be at most 50, each {{\"name\", \"steps\"}} with a unique name (1 to 120 characters) and 2 to 8 steps, each {{\"event\": name}} or {{\"page\": \"/path*\"}}")]
    InvalidFunnels,
    /// 400: the property already has [`Property::MAX_SHARED_LINKS`] shared links.
    #[error("a property has at most 100 shared links; revoke one first")]
    TooManySharedLinks,
    /// 404: the property has no such shared link (or it was revoked).
    #[error("no such shared link")]
    SharedLinkNotFound,
    /// 400: the session timeout is not 1 to 1,440 minutes.
    #[error("session_timeout_minutes must be 1 to 1440")]
    InvalidSessionTimeout,
    /// 400: the hit's timestamp is too far in the past or in the future.
    #[error("timestamp is outside the accepted window")]
    TimestampOutOfRange,
}

impl DomainError {
    /// Stable machine-readable code, part of the public API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPropertyId => "invalid_property_id",
            Self::InvalidDomain => "invalid_domain",
            Self::InvalidTimezone => "invalid_timezone",
            Self::InvalidPropertyName => "invalid_name",
            Self::PropertyAlreadyRegistered => "property_exists",
            Self::MissingField(_) => "missing_field",
            Self::NameTooLong => "name_too_long",
            Self::UrlTooLong => "url_too_long",
            Self::InvalidUrl => "invalid_url",
            Self::ReferrerTooLong => "referrer_too_long",
            Self::TooManyProps => "too_many_props",
            Self::InvalidProps => "invalid_props",
            Self::InvalidRevenue => "invalid_revenue",
            Self::FieldTooLong(_) => "field_too_long",
            Self::TimestampOutOfRange => "timestamp_out_of_range",
            Self::PropertyNotRegistered => "property_not_found",
            Self::InvalidHostnames => "invalid_hostnames",
            Self::InvalidSessionTimeout => "invalid_session_timeout",
            Self::InvalidGoals => "invalid_goals",
            Self::InvalidFunnels => "invalid_funnels",
            Self::TooManySharedLinks => "too_many_shared_links",
            Self::SharedLinkNotFound => "shared_link_not_found",
        }
    }
}
