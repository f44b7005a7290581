//! Collection: the one path every protocol adapter takes. It validates the hit, resolves the target
//! properties, lets the domain decide the events, and waits until the Appender has made them
//! durable.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use chrono::Utc;

use super::{Properties, PropertyRecord, Salts};
use crate::domain::geo::GeoDb;
use crate::domain::{
    hostname_allowed, Domain, DomainError, Event, Geo, Hit, HitRequest, PropertyId, Protocol,
    RecordHits,
};
use crate::eventlog::appender::{submit, AppendRejected, Appender};
use crate::eventlog::EventData;
use crate::telemetry;

/// Who sent a hit, as far as the request tells. The IP is used and forgotten.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// 400: the hit is invalid.
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// 400: no registered property has any of the given domains.
    #[error("no property is registered for domain `{0}`")]
    UnknownDomain(String),
    /// 400: a hit may name at most [`MAX_DOMAINS`] domains (each costs a lookup).
    #[error("a hit names {0} domains; at most {MAX_DOMAINS} are accepted")]
    TooManyDomains(usize),
    /// 400: the page's host is not allowed to send hits to the property.
    #[error("hits from host `{0}` are not accepted for this property")]
    HostnameNotAllowed(String),
    /// 503: the appender refused or failed the batch (nothing written); 500 when its outcome is
    /// unknown.
    #[error(transparent)]
    NotAppended(#[from] AppendRejected),
    /// 503: the read model or salts could not be read.
    #[error("database unavailable")]
    Database(#[from] sqlx::Error),
    /// 500: an event could not be serialised (a bug).
    #[error("event encoding failed: {0}")]
    Encode(#[from] serde_json::Error),
}

impl CollectError {
    /// Stable code, used for the API error and as a metrics label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(e) => e.code(),
            Self::UnknownDomain(_) => "unknown_domain",
            Self::TooManyDomains(_) => "too_many_domains",
            Self::HostnameNotAllowed(_) => "hostname_not_allowed",
            Self::NotAppended(AppendRejected::Overloaded) => "overloaded",
            Self::NotAppended(AppendRejected::Unavailable) | Self::Database(_) => "unavailable",
            Self::NotAppended(AppendRejected::Unknown) => "outcome_unknown",
            Self::Encode(_) => "internal_error",
        }
    }
}

/// The most domains one Plausible hit may name (it is recorded for each).
pub const MAX_DOMAINS: usize = 10;

#[derive(Clone)]
pub struct Collector {
    properties: Properties,
    salts: Salts,
    appender: Addr<Appender>,
    ack_timeout: Duration,
    geo: Option<Arc<GeoDb>>,
}

impl Collector {
    pub fn new(
        properties: Properties,
        salts: Salts,
        appender: Addr<Appender>,
        ack_timeout: Duration,
        geo: Option<Arc<GeoDb>>,
    ) -> Self {
        Self {
            properties,
            salts,
            appender,
            ack_timeout,
            geo,
        }
    }

    /// Resolves a comma-separated list of domains to their properties. Unknown ones are dropped;
    /// if none is known the hit is refused with `unknown_domain`.
    pub async fn resolve_domains(
        &self,
        domains: &str,
    ) -> Result<Vec<Arc<PropertyRecord>>, CollectError> {
        let named: Vec<&str> = domains
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect();
        if named.len() > MAX_DOMAINS {
            return Err(CollectError::TooManyDomains(named.len()));
        }
        let mut found: Vec<Arc<PropertyRecord>> = Vec::new();
        for raw in named {
            let Ok(domain) = Domain::parse(raw) else {
                continue;
            };
            if let Some(p) = self.properties.by_domain(&domain).await? {
                if !found.iter().any(|f| f.id == p.id) {
                    found.push(p);
                }
            }
        }
        if found.is_empty() {
            return Err(CollectError::UnknownDomain(
                domains.trim().chars().take(200).collect(),
            ));
        }
        Ok(found)
    }

    /// The properties that accept a browser hit from the page at `url`: their domain, its
    /// subdomains, or their allowed hostnames. Refused with `hostname_not_allowed` if none does.
    pub fn browser_targets(
        properties: &[Arc<PropertyRecord>],
        url: Option<&str>,
    ) -> Result<Vec<PropertyId>, CollectError> {
        // Without an http(s) URL there is no host to check: the domain refuses such hits.
        let Some(host) = url
            .and_then(|u| url::Url::parse(u).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .and_then(|u| u.host_str().map(str::to_owned))
        else {
            return Ok(properties.iter().map(|p| PropertyId::new(p.id)).collect());
        };
        let allowed: Vec<PropertyId> = properties
            .iter()
            .filter(|p| hostname_allowed(&p.domain, &p.hostnames, &host))
            .map(|p| PropertyId::new(p.id))
            .collect();
        if allowed.is_empty() && !properties.is_empty() {
            return Err(CollectError::HostnameNotAllowed(host));
        }
        Ok(allowed)
    }

    /// Records one hit for each property; returns once the events are durable in the log.
    pub async fn record(
        &self,
        protocol: Protocol,
        properties: Vec<PropertyId>,
        request: HitRequest,
        client: Client,
    ) -> Result<usize, CollectError> {
        let recorded = self
            .record_all(protocol, vec![(properties, request)], client)
            .await?;
        Ok(recorded.events)
    }

    /// Records the hits of one request, each for its properties, in **one** append: every valid
    /// hit is durable in the log when this returns `Ok`, and none is when it returns an error.
    /// Invalid hits are left out and returned; when no hit is valid, the first one's error is.
    pub async fn record_all(
        &self,
        protocol: Protocol,
        hits: Vec<(Vec<PropertyId>, HitRequest)>,
        client: Client,
    ) -> Result<Recorded, CollectError> {
        let received_at = Utc::now();
        let mut valid = Vec::with_capacity(hits.len());
        let mut refused = Vec::new();
        for (properties, request) in hits {
            match Hit::parse(request, received_at) {
                Ok(hit) => valid.push((properties, hit)),
                Err(e) => refused.push(e),
            }
        }
        if valid.is_empty() {
            if let Some(first) = refused.into_iter().next() {
                return Err(first.into());
            }
            return Ok(Recorded::default());
        }
        let salt = self.salts.for_day(received_at).await?;
        // Geo is resolved here, where the IP address is known; only the result is kept.
        let geo = match (&self.geo, client.ip) {
            (Some(db), Some(ip)) => db.lookup(ip),
            _ => Geo::default(),
        };
        let mut encoded = Vec::new();
        for (properties, hit) in valid {
            let events = RecordHits {
                hit,
                properties,
                protocol,
                user_agent: client.user_agent.clone(),
                ip: client.ip,
                geo: geo.clone(),
                salt: salt.to_vec(),
                received_at,
            }
            .handle();
            for e in events {
                let stream = e.property_id.hits_stream();
                encoded.push((stream, EventData::new(&Event::HitRecorded(Box::new(e)))?));
            }
        }
        let events = encoded.len();
        if events > 0 {
            submit(&self.appender, encoded, self.ack_timeout).await?;
        }
        Ok(Recorded { events, refused })
    }
}

/// What [`Collector::record_all`] appended, and the hits it left out as invalid.
#[derive(Debug, Default)]
pub struct Recorded {
    pub events: usize,
    pub refused: Vec<DomainError>,
}

/// Counts a collection outcome under fixed labels.
pub fn count_outcome(protocol: Protocol, result: Result<usize, &CollectError>) {
    match result {
        Ok(n) => metrics::counter!(telemetry::HITS_RECEIVED, "protocol" => protocol.as_str())
            .increment(n as u64),
        Err(e) => {
            metrics::counter!(telemetry::HITS_REJECTED, "protocol" => protocol.as_str(), "code" => e.code())
                .increment(1)
        }
    }
}
