//! The GA4 Data API's dimension and metric names that footfall answers, what each is in the query
//! model, and how its values are written. `getMetadata` lists this catalogue; the README's table
//! documents it.

use crate::query::{Dimension, Grain, Metric};

/// How a GA4 dimension is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DimKind {
    /// `date`: `YYYYMMDD`.
    Date,
    /// `dateHour`: `YYYYMMDDHH`.
    DateHour,
    /// `hour`: `HH`, within one day.
    Hour,
    /// `minutesAgo` (realtime): `00`–`59`.
    MinutesAgo,
    /// A dimension of the query model whose values are written as they are kept (empty: `(not
    /// set)`).
    Plain(&'static str),
    /// `eventName`: pageviews are `page_view`.
    EventName,
    /// `deviceCategory`: `desktop`, `mobile`, `tablet`.
    Device,
}

impl DimKind {
    pub fn is_time(self) -> bool {
        matches!(
            self,
            Self::Date | Self::DateHour | Self::Hour | Self::MinutesAgo
        )
    }

    /// The grain of a time dimension (`hour` alone: the hour of the day over the range).
    pub fn grain(self) -> Option<Grain> {
        match self {
            Self::Date => Some(Grain::Day),
            Self::DateHour => Some(Grain::Hour),
            Self::Hour => Some(Grain::HourOfDay),
            Self::MinutesAgo => Some(Grain::Minute),
            _ => None,
        }
    }

    /// The query model's dimension of a non-time dimension.
    pub fn dimension(self) -> Option<Dimension> {
        match self {
            Self::Plain(name) => {
                // Any range: only time dimensions depend on it.
                let range =
                    crate::query::DateRange::days(chrono::NaiveDate::MIN, chrono::NaiveDate::MIN);
                Dimension::parse(name, &range)
            }
            Self::EventName => Some(Dimension::Name),
            Self::Device => Some(Dimension::Visit("device")),
            _ => None,
        }
    }

    /// A stored value as GA4 writes it.
    pub fn output(self, stored: &str) -> String {
        match (self, stored) {
            (_, "") => NOT_SET.to_owned(),
            (Self::EventName, "pageview") => PAGE_VIEW.to_owned(),
            (Self::Device, d) => d.to_lowercase(),
            (_, v) => v.to_owned(),
        }
    }

    /// A GA4 value as it is stored, for exact comparisons.
    pub fn stored(self, value: &str) -> String {
        match (self, value) {
            (_, NOT_SET) => String::new(),
            (Self::EventName, PAGE_VIEW) => "pageview".to_owned(),
            (Self::Device, d) => {
                let mut c = d.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            }
            (_, v) => v.to_owned(),
        }
    }
}

/// GA4's value for an unset dimension.
pub const NOT_SET: &str = "(not set)";
const PAGE_VIEW: &str = "page_view";

pub struct GaDimension {
    pub api: &'static str,
    pub ui: &'static str,
    pub description: &'static str,
    pub category: &'static str,
    pub kind: DimKind,
    /// Whether realtime reports may use it (and only they, for `minutesAgo`).
    pub realtime: Realtime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realtime {
    Both,
    Only,
    Never,
}

/// How a metric's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// As the model counts it.
    Count,
    /// A percentage of the model, as a fraction 0–1.
    Fraction,
    /// As the model gives it (seconds, ratios, revenue).
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricSource {
    Model(Metric, Scale),
    /// Events that complete one of the property's goals.
    KeyEvents,
}

pub struct GaMetric {
    pub api: &'static str,
    pub ui: &'static str,
    pub description: &'static str,
    pub category: &'static str,
    /// `TYPE_INTEGER`, `TYPE_FLOAT`, `TYPE_SECONDS`, `TYPE_CURRENCY`.
    pub ty: &'static str,
    pub source: MetricSource,
    pub realtime: bool,
}

const fn dim(
    api: &'static str,
    ui: &'static str,
    category: &'static str,
    kind: DimKind,
    realtime: Realtime,
    description: &'static str,
) -> GaDimension {
    GaDimension {
        api,
        ui,
        description,
        category,
        kind,
        realtime,
    }
}

pub const DIMENSIONS: &[GaDimension] = &[
    dim("date", "Date", "Time", DimKind::Date, Realtime::Never,
        "The date of the event, formatted as YYYYMMDD, in the property's time zone."),
    dim("dateHour", "Date + hour (YYYYMMDDHH)", "Time", DimKind::DateHour, Realtime::Never,
        "The combined values of date and hour formatted as YYYYMMDDHH."),
    dim("hour", "Hour", "Time", DimKind::Hour, Realtime::Never,
        "The two-digit hour of the day that the event was logged (00 to 23), over every day of the range."),
    dim("minutesAgo", "Realtime minutes ago", "Time", DimKind::MinutesAgo, Realtime::Only,
        "The number of minutes ago that an event was collected. 00 is the current minute."),
    dim("pagePath", "Page path", "Page / screen", DimKind::Plain("event:page"), Realtime::Both,
        "The portion of the URL between the hostname and the query string."),
    dim("pagePathPlusQueryString", "Page path + query string", "Page / screen", DimKind::Plain("event:page"), Realtime::Both,
        "The same as pagePath: footfall keeps no query strings."),
    dim("hostName", "Hostname", "Page / screen", DimKind::Plain("event:hostname"), Realtime::Both,
        "The subdomain and domain names of a URL."),
    dim("landingPage", "Landing page", "Page / screen", DimKind::Plain("visit:entry_page"), Realtime::Never,
        "The page path of the first pageview in a session."),
    dim("eventName", "Event name", "Event", DimKind::EventName, Realtime::Both,
        "The name of the event; pageviews are page_view."),
    dim("sessionSource", "Session source", "Traffic source", DimKind::Plain("visit:source"), Realtime::Never,
        "The source that initiated a session (a search engine, site or utm_source)."),
    dim("sessionMedium", "Session medium", "Traffic source", DimKind::Plain("visit:utm_medium"), Realtime::Never,
        "The utm_medium that initiated a session."),
    dim("sessionCampaignName", "Session campaign", "Traffic source", DimKind::Plain("visit:utm_campaign"), Realtime::Never,
        "The utm_campaign that initiated a session."),
    dim("sessionDefaultChannelGroup", "Session default channel group", "Traffic source", DimKind::Plain("visit:channel"), Realtime::Never,
        "The session's default channel group, with GA4's group names (Direct, Organic Search, Referral, …)."),
    dim("country", "Country", "Geography", DimKind::Plain("visit:country_name"), Realtime::Both,
        "The country of the visit, in English."),
    dim("countryId", "Country ID", "Geography", DimKind::Plain("visit:country"), Realtime::Both,
        "The country of the visit, as an ISO 3166-1 alpha-2 code."),
    dim("region", "Region", "Geography", DimKind::Plain("visit:region_name"), Realtime::Never,
        "The geographic region of the visit."),
    dim("city", "City", "Geography", DimKind::Plain("visit:city_name"), Realtime::Both,
        "The city of the visit."),
    dim("deviceCategory", "Device category", "Platform / device", DimKind::Device, Realtime::Both,
        "The type of device: desktop, mobile or tablet."),
    dim("browser", "Browser", "Platform / device", DimKind::Plain("visit:browser"), Realtime::Never,
        "The browser used to view the site."),
    dim("operatingSystem", "Operating system", "Platform / device", DimKind::Plain("visit:os"), Realtime::Never,
        "The operating system of the visitor's device."),
];

#[allow(clippy::too_many_arguments)]
const fn metric(
    api: &'static str,
    ui: &'static str,
    category: &'static str,
    ty: &'static str,
    source: MetricSource,
    realtime: bool,
    description: &'static str,
) -> GaMetric {
    GaMetric {
        api,
        ui,
        description,
        category,
        ty,
        source,
        realtime,
    }
}

use MetricSource::Model;

pub const METRICS: &[GaMetric] = &[
    metric("activeUsers", "Active users", "User", "TYPE_INTEGER", Model(Metric::Visitors, Scale::Count), true,
        "The number of distinct visitors (daily-salted, cookieless identifiers)."),
    metric("totalUsers", "Total users", "User", "TYPE_INTEGER", Model(Metric::Visitors, Scale::Count), false,
        "The number of distinct visitors; the same as activeUsers."),
    metric("sessions", "Sessions", "Session", "TYPE_INTEGER", Model(Metric::Visits, Scale::Count), false,
        "The number of sessions (visits) that began in the range."),
    metric("screenPageViews", "Views", "Page / screen", "TYPE_INTEGER", Model(Metric::Pageviews, Scale::Count), true,
        "The number of pageviews."),
    metric("eventCount", "Event count", "Event", "TYPE_INTEGER", Model(Metric::Events, Scale::Count), true,
        "The number of events, pageviews included."),
    metric("engagedSessions", "Engaged sessions", "Session", "TYPE_INTEGER", Model(Metric::EngagedSessions, Scale::Count), false,
        "Sessions that lasted longer than 10 seconds, had a key event, or had 2 or more pageviews."),
    metric("engagementRate", "Engagement rate", "Session", "TYPE_FLOAT", Model(Metric::EngagementRate, Scale::Fraction), false,
        "Engaged sessions divided by sessions, a fraction 0–1 (to 0.001)."),
    metric("bounceRate", "Bounce rate", "Session", "TYPE_FLOAT", Model(Metric::BounceRate, Scale::Fraction), false,
        "Sessions with one pageview and no interaction, divided by sessions, a fraction 0–1 (to 0.01)."),
    metric("averageSessionDuration", "Average session duration", "Session", "TYPE_SECONDS", Model(Metric::VisitDuration, Scale::Plain), false,
        "The average duration of sessions, in whole seconds."),
    metric("screenPageViewsPerSession", "Views per session", "Page / screen", "TYPE_FLOAT", Model(Metric::ViewsPerVisit, Scale::Plain), false,
        "Pageviews per session, to 0.01."),
    metric("keyEvents", "Key events", "Event", "TYPE_INTEGER", MetricSource::KeyEvents, true,
        "The number of events that complete one of the property's goals."),
    metric("totalRevenue", "Total revenue", "Revenue", "TYPE_CURRENCY", Model(Metric::TotalRevenue, Scale::Plain), false,
        "The sum of the revenue attached to events, to 0.01."),
];

pub fn dimension(api: &str) -> Option<&'static GaDimension> {
    DIMENSIONS.iter().find(|d| d.api == api)
}

pub fn metric_named(api: &str) -> Option<&'static GaMetric> {
    METRICS.iter().find(|m| m.api == api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_maps_onto_the_query_model() {
        for d in DIMENSIONS {
            assert!(
                d.kind.grain().is_some() || d.kind.dimension().is_some(),
                "{}",
                d.api
            );
        }
    }

    #[test]
    fn values_round_trip_between_ga4_and_storage() {
        for (kind, ga, stored) in [
            (DimKind::EventName, "page_view", "pageview"),
            (DimKind::EventName, "signup", "signup"),
            (DimKind::Device, "tablet", "Tablet"),
            (DimKind::Plain("visit:country"), NOT_SET, ""),
        ] {
            assert_eq!(kind.stored(ga), stored);
            assert_eq!(kind.output(stored), ga);
        }
    }
}
