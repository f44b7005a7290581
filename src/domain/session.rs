//! Sessionization: a visit is a visitor's run of hits with no gap longer than the session timeout.
//! Pure: a session's state and what one hit does to it.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::enrich::Visit;

/// A visit ends after this long without a hit, unless the property sets its own timeout.
pub const SESSION_TIMEOUT: Duration = Duration::minutes(30);

/// A visit with at most this many pageviews, and no other interaction, is a bounce.
pub const BOUNCE_MAX_PAGEVIEWS: i32 = 1;

/// A visit longer than this is engaged (GA4's rule, with 2+ pageviews or a conversion).
pub const ENGAGED_AFTER_SECS: i64 = 10;

/// A visit with at least this many pageviews is engaged.
pub const ENGAGED_MIN_PAGEVIEWS: i32 = 2;

/// What sessionization needs of a hit.
#[derive(Debug, Clone, Copy)]
pub struct SessionHit<'a> {
    /// Global position of the hit's event; the first hit's position is the session id.
    pub position: i64,
    pub at: DateTime<Utc>,
    pub is_pageview: bool,
    pub interactive: bool,
    /// A conversion (a purchase: an event with revenue) makes its visit engaged.
    pub conversion: bool,
    pub page: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub visitor_key: i64,
    pub started_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub pageviews: i32,
    pub events: i32,
    /// Interactive events other than pageviews (they keep a visit from being a bounce).
    pub interactive: i32,
    pub entry_page: String,
    pub exit_page: String,
    /// When the entry and exit pages were viewed (the first and the last pageview by time).
    pub entry_at: DateTime<Utc>,
    pub exit_at: DateTime<Utc>,
    pub conversions: i32,
    /// Acquisition, client and geo of the visit's first hit (shared: sessions are copied often).
    pub visit: Arc<Visit>,
}

impl Session {
    pub fn start(visitor_key: i64, hit: SessionHit<'_>, visit: Visit) -> Self {
        let mut s = Self {
            id: hit.position,
            visitor_key,
            started_at: hit.at,
            last_at: hit.at,
            pageviews: 0,
            events: 0,
            interactive: 0,
            entry_page: String::new(),
            exit_page: String::new(),
            entry_at: hit.at,
            exit_at: hit.at,
            conversions: 0,
            visit: Arc::new(visit),
        };
        s.count(hit);
        s
    }

    /// Whether a hit at `at` continues this visit.
    pub fn accepts(&self, at: DateTime<Utc>, timeout: Duration) -> bool {
        at >= self.started_at - timeout && at <= self.last_at + timeout
    }

    /// Adds a hit; `visit` describes it, and is asked for only if the hit becomes the first one.
    pub fn add(&mut self, hit: SessionHit<'_>, visit: impl FnOnce() -> Visit) {
        if hit.at < self.started_at {
            // A late hit from before the visit's start: the visit now starts, and is attributed,
            // with it.
            self.visit = Arc::new(visit());
        }
        self.count(hit);
    }

    fn count(&mut self, hit: SessionHit<'_>) {
        self.events += 1;
        self.conversions += i32::from(hit.conversion);
        if hit.is_pageview {
            self.pageviews += 1;
            if self.entry_page.is_empty() || hit.at < self.entry_at {
                self.entry_page = hit.page.to_owned();
                self.entry_at = hit.at;
            }
            if self.exit_page.is_empty() || hit.at >= self.exit_at {
                self.exit_page = hit.page.to_owned();
                self.exit_at = hit.at;
            }
        } else if hit.interactive {
            self.interactive += 1;
        }
        self.extend_to(hit.at);
    }

    /// Stretches the visit to `at` without counting a hit (engagement pings).
    pub fn extend_to(&mut self, at: DateTime<Utc>) {
        self.started_at = self.started_at.min(at);
        self.last_at = self.last_at.max(at);
    }

    /// A single-pageview visit with no interaction.
    pub fn is_bounce(&self) -> bool {
        self.pageviews <= BOUNCE_MAX_PAGEVIEWS && self.interactive == 0
    }

    pub fn duration_secs(&self) -> i64 {
        (self.last_at - self.started_at).num_seconds()
    }

    /// The value of a `visit:*` attribute (`entry_page`, `exit_page` or a [`Visit::COLUMNS`]
    /// column); empty for an unknown one.
    pub fn attribute(&self, column: &str) -> &str {
        Self::attribute_index(column).map_or("", |i| self.attributes()[i])
    }

    /// Every `visit:*` attribute's value: the [`Visit::COLUMNS`], then the entry and exit pages.
    pub fn attributes(&self) -> [&str; Visit::COLUMNS.len() + 2] {
        let visit = self.visit.values();
        std::array::from_fn(|i| match i.checked_sub(visit.len()) {
            None => visit[i],
            Some(0) => self.entry_page.as_str(),
            Some(_) => self.exit_page.as_str(),
        })
    }

    /// Where [`Session::attributes`] holds a `visit:*` attribute.
    pub fn attribute_index(column: &str) -> Option<usize> {
        match column {
            "entry_page" => Some(Visit::COLUMNS.len()),
            "exit_page" => Some(Visit::COLUMNS.len() + 1),
            _ => Visit::COLUMNS.iter().position(|c| *c == column),
        }
    }

    /// GA4's engaged session: longer than 10 seconds, 2+ pageviews, or a conversion.
    pub fn is_engaged(&self) -> bool {
        self.duration_secs() > ENGAGED_AFTER_SECS
            || self.pageviews >= ENGAGED_MIN_PAGEVIEWS
            || self.conversions > 0
    }
}

/// Applies a visitor's hit to their latest session: it continues it (no gap over `timeout`), or
/// starts a new one. Returns the session the hit belongs to. `visit` describes the hit; it is
/// computed only when the hit starts a visit.
pub fn sessionize(
    latest: Option<Session>,
    visitor_key: i64,
    hit: SessionHit<'_>,
    timeout: Duration,
    visit: impl FnOnce() -> Visit,
) -> Session {
    match latest {
        Some(mut s) if s.accepts(hit.at, timeout) => {
            s.add(hit, visit);
            s
        }
        _ => Session::start(visitor_key, hit, visit()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + min * 60, 0).unwrap()
    }

    fn view(position: i64, min: i64, page: &str) -> SessionHit<'_> {
        SessionHit {
            position,
            at: at(min),
            is_pageview: true,
            interactive: true,
            conversion: false,
            page,
        }
    }

    fn next(s: Session, hit: SessionHit<'_>) -> Session {
        sessionize(Some(s), 7, hit, SESSION_TIMEOUT, Visit::default)
    }

    fn first(hit: SessionHit<'_>) -> Session {
        sessionize(None, 7, hit, SESSION_TIMEOUT, Visit::default)
    }

    #[test]
    fn hits_within_thirty_minutes_make_one_visit() {
        let s = first(view(1, 0, "/a"));
        let s = next(s, view(2, 10, "/b"));
        let s = next(s, view(3, 40, "/c"));
        assert_eq!((s.id, s.pageviews, s.duration_secs()), (1, 3, 40 * 60));
        assert_eq!((s.entry_page.as_str(), s.exit_page.as_str()), ("/a", "/c"));
        assert!(!s.is_bounce());
    }

    #[test]
    fn a_31_minute_gap_starts_a_new_visit() {
        let s = first(view(1, 0, "/a"));
        let s = next(s, view(2, 31, "/b"));
        assert_eq!((s.id, s.pageviews, s.entry_page.as_str()), (2, 1, "/b"));
        assert!(s.is_bounce());
    }

    #[test]
    fn an_interactive_event_prevents_a_bounce_but_a_non_interactive_one_does_not() {
        let s = first(view(1, 0, "/a"));
        let quiet = SessionHit {
            position: 2,
            at: at(1),
            is_pageview: false,
            interactive: false,
            conversion: false,
            page: "/a",
        };
        let s = next(s, quiet);
        assert!(s.is_bounce());
        let click = SessionHit {
            interactive: true,
            position: 3,
            ..quiet
        };
        assert!(!next(s, click).is_bounce());
    }

    #[test]
    fn entry_and_exit_pages_are_the_first_and_last_pageviews_by_time() {
        let s = first(view(1, 0, "/a"));
        let purchase = SessionHit {
            position: 2,
            at: at(20),
            is_pageview: false,
            interactive: true,
            conversion: true,
            page: "/checkout",
        };
        let s = next(s, purchase);
        // A pageview at minute 10 that arrives after the purchase is still the last pageview.
        let s = next(s, view(3, 10, "/about"));
        assert_eq!(
            (s.entry_page.as_str(), s.exit_page.as_str()),
            ("/a", "/about")
        );
        assert_eq!((s.duration_secs(), s.conversions), (20 * 60, 1));
        assert!(s.is_engaged());
    }

    #[test]
    fn an_earlier_hit_within_the_window_extends_the_visit_backwards() {
        let s = first(view(1, 20, "/b"));
        let s = next(s, view(2, 5, "/a"));
        assert_eq!(
            (s.started_at, s.entry_page.as_str(), s.exit_page.as_str()),
            (at(5), "/a", "/b")
        );
    }
}
