//! Query APIs: thin adapters from each API's shape to the one [`Query`](crate::query::Query) model.
//! What they share — authorisation, date ranges, time labels, error mapping — lives here.

mod compare;
mod export;
mod funnel;
mod ga4;
pub mod v1;
pub mod v2;

use std::sync::Arc;

use actix_web::{web, HttpRequest};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::client::read;
use super::{bearer, ApiError, AppState};
use crate::domain::Domain;
use crate::query::engine::EngineError;
use crate::query::{DateRange, Grain, QueryError};
use crate::services::PropertyRecord;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v2/query", read(web::post().to(v2::query)))
        .route("/api/v2/prop-keys", read(web::get().to(v2::prop_keys)))
        .route("/api/v2/funnel", read(web::post().to(funnel::funnel)))
        .route("/api/v2/funnels", read(web::get().to(funnel::list)))
        .route(
            "/api/v1/stats/realtime/visitors",
            read(web::get().to(v1::realtime_visitors)),
        )
        .route(
            "/api/v1/stats/aggregate",
            read(web::get().to(v1::aggregate)),
        )
        .route(
            "/api/v1/stats/timeseries",
            read(web::get().to(v1::timeseries)),
        )
        .route(
            "/api/v1/stats/breakdown",
            read(web::get().to(v1::breakdown)),
        )
        .route("/api/v1/stats/bots", read(web::get().to(v1::bots)))
        .route("/api/v1/export", read(web::get().to(export::export)));
    ga4::routes(cfg);
}

/// A property the caller may read: the bearer token is that property's read key, one of its live
/// shared links, or the admin token. Anything else is `401`, whether or not the site exists, so keys reveal nothing about
/// other tenants.
pub struct Site {
    pub property: Arc<PropertyRecord>,
    pub tz: Tz,
}

impl Site {
    pub async fn authorize(
        req: &HttpRequest,
        state: &AppState,
        site_id: &str,
    ) -> Result<Self, ApiError> {
        Self::open(bearer(req), state, site_id).await
    }

    /// [`Self::authorize`] with the bearer token as given (GraphQL reads it once per request).
    pub async fn open(
        token: Option<&str>,
        state: &AppState,
        site_id: &str,
    ) -> Result<Self, ApiError> {
        let token = token.ok_or_else(ApiError::unauthorized)?;
        let property = match Domain::parse(site_id) {
            Ok(domain) => state.properties.by_domain(&domain).await?,
            Err(_) => None,
        };
        match property {
            Some(p) if Self::opens(state, token, &p).await? => Ok(Self::new(p)),
            Some(_) => Err(ApiError::unauthorized()),
            None if state.is_admin(Some(token)) => Err(ApiError::not_found(
                "site_not_found",
                format!("no property `{site_id}`"),
            )),
            None => Err(ApiError::unauthorized()),
        }
    }

    /// Whether `token` opens `property`: the admin token, its read key, or one of its live shared
    /// links (a shared link's token opens its one property).
    pub(super) async fn opens(
        state: &AppState,
        token: &str,
        property: &PropertyRecord,
    ) -> Result<bool, sqlx::Error> {
        if state.is_admin(Some(token))
            || super::constant_time_eq(property.read_key.as_bytes(), token.as_bytes())
        {
            return Ok(true);
        }
        Ok(state.properties.shared_by_token(token).await? == Some(property.id))
    }

    pub(super) fn new(property: Arc<PropertyRecord>) -> Self {
        let tz = property.timezone.parse::<Tz>().unwrap_or(chrono_tz::UTC);
        Self { property, tz }
    }

    pub fn today(&self) -> NaiveDate {
        Utc::now().with_timezone(&self.tz).date_naive()
    }

    pub fn first_day(&self) -> NaiveDate {
        self.property
            .registered_at
            .with_timezone(&self.tz)
            .date_naive()
    }

    /// A named period relative to `date` (default today). `realtime` is the last 30 minutes,
    /// the current one included.
    pub fn period(
        &self,
        field: &str,
        name: &str,
        date: Option<NaiveDate>,
    ) -> Result<DateRange, QueryError> {
        if name == "realtime" {
            use chrono::Timelike;
            let now = Utc::now().with_timezone(&self.tz).naive_local();
            let minute = now.with_second(0).and_then(|t| t.with_nanosecond(0));
            let end = minute.unwrap_or(now) + Duration::minutes(1);
            return Ok(DateRange {
                from: end - Duration::minutes(30),
                to: end,
            });
        }
        DateRange::named(name, date.unwrap_or_else(|| self.today()), self.first_day())
            .ok_or_else(|| QueryError::new(field, format!("unknown period `{name}`")))
    }

    /// `[from, to]`, each a date or an ISO 8601 datetime with an offset; both ends inclusive.
    pub fn explicit_range(
        &self,
        field: &str,
        from: &str,
        to: &str,
    ) -> Result<DateRange, QueryError> {
        let local = |s: &str, i: usize| -> Result<NaiveDateTime, QueryError> {
            let invalid = || {
                QueryError::new(
                    format!("{field}[{i}]"),
                    "expected YYYY-MM-DD or an ISO 8601 datetime within the years 1 to 9999",
                )
            };
            if let Ok(day) = s.parse::<NaiveDate>() {
                // An end date includes its whole day.
                let day = if i == 1 { day.succ_opt() } else { Some(day) };
                return day
                    .map(|d| d.and_time(chrono::NaiveTime::MIN))
                    .ok_or_else(invalid);
            }
            DateTime::<FixedOffset>::parse_from_rfc3339(s)
                .ok()
                .and_then(|t| {
                    t.with_timezone(&self.tz)
                        .naive_local()
                        .checked_add_signed(Duration::seconds(i as i64))
                })
                .ok_or_else(invalid)
        };
        Ok(DateRange {
            from: local(from, 0)?,
            to: local(to, 1)?,
        })
    }

    /// A range as the answers echo it: `[first second, last second]`, ISO 8601 with the offset.
    pub fn iso_range(&self, range: &DateRange) -> serde_json::Value {
        serde_json::json!([
            self.iso(range.from),
            self.iso(range.to - Duration::seconds(1))
        ])
    }

    /// A local time as an ISO 8601 datetime with the property's offset.
    pub fn iso(&self, t: NaiveDateTime) -> String {
        self.tz
            .from_local_datetime(&t)
            .earliest()
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| t.to_string())
    }
}

/// Every time label of a range at a grain, as the engine formats them.
pub fn time_labels(range: &DateRange, grain: Grain) -> Vec<String> {
    use chrono::{Datelike, Months, Timelike};
    if grain == Grain::HourOfDay {
        // Every hour of the day once the range spans a day; else the hours it covers.
        let mut hours: Vec<String> = time_labels(range, Grain::Hour)
            .iter()
            .filter_map(|t| t.get(11..13).map(str::to_owned))
            .collect();
        hours.sort();
        hours.dedup();
        return hours;
    }
    let start = match grain {
        Grain::Minute => range
            .from
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(range.from),
        Grain::Hour => range
            .from
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .unwrap_or(range.from),
        Grain::Day => range.from.date().and_time(chrono::NaiveTime::MIN),
        Grain::Week => {
            let d = range.from.date();
            (d - Duration::days(d.weekday().num_days_from_monday() as i64))
                .and_time(chrono::NaiveTime::MIN)
        }
        Grain::Month => range
            .from
            .date()
            .with_day(1)
            .unwrap_or(range.from.date())
            .and_time(chrono::NaiveTime::MIN),
        Grain::HourOfDay => unreachable!("answered above"),
    };
    let mut labels = Vec::new();
    let mut t = start;
    while t < range.to && labels.len() < 10_000 {
        labels.push(match grain {
            Grain::Minute | Grain::Hour => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            _ => t.format("%Y-%m-%d").to_string(),
        });
        t = match grain {
            Grain::Minute => t + Duration::minutes(1),
            Grain::Hour => t + Duration::hours(1),
            Grain::Day => t + Duration::days(1),
            Grain::Week => t + Duration::days(7),
            Grain::Month => t.checked_add_months(Months::new(1)).unwrap_or(range.to),
            Grain::HourOfDay => unreachable!("answered above"),
        };
    }
    labels
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        ApiError::bad_request("invalid_query", e.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(q) => q.into(),
            EngineError::Database(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_cover_the_range_at_each_grain() {
        let r = DateRange::days("2026-11-01".parse().unwrap(), "2026-11-03".parse().unwrap());
        assert_eq!(
            time_labels(&r, Grain::Day),
            vec!["2026-11-01", "2026-11-02", "2026-11-03"]
        );
        assert_eq!(time_labels(&r, Grain::Hour).len(), 72);
        assert_eq!(
            time_labels(&r, Grain::Week),
            vec!["2026-10-26", "2026-11-02"]
        );
        assert_eq!(time_labels(&r, Grain::Month), vec!["2026-11-01"]);
    }
}
