//! The domain's events as they travel through the log: a type name, a schema version and data.
//! Hits, billions of them, are written in the compact binary encoding of [`super::codec`]
//! (`HitRecorded` version 2); the rare property events as JSON (version 1). Decoding upcasts old
//! schema versions (JSON hits of version 1), and fails with a typed error, never a panic.

use super::{
    AggregatesImported, DomainClaimed, FunnelsSet, GoalsSet, HitRecorded, HostnamesAllowed,
    ImportDeleted, PropertyRegistered, SharedLinkCreated, SharedLinkRevoked,
};
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    PropertyRegistered(PropertyRegistered),
    DomainClaimed(DomainClaimed),
    HitRecorded(Box<HitRecorded>),
    HostnamesAllowed(HostnamesAllowed),
    GoalsSet(GoalsSet),
    FunnelsSet(FunnelsSet),
    SharedLinkCreated(SharedLinkCreated),
    SharedLinkRevoked(SharedLinkRevoked),
    AggregatesImported(AggregatesImported),
    ImportDeleted(ImportDeleted),
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    #[error("event type `{event_type}` has no schema version {version}")]
    UnknownVersion { event_type: String, version: u16 },
    #[error("event data does not match its schema: {0}")]
    Data(#[from] serde_json::Error),
    #[error("event data does not match its binary schema: {0}")]
    Binary(#[from] super::codec::CodecError),
}

impl Event {
    pub const PROPERTY_REGISTERED: &'static str = "PropertyRegistered";
    pub const DOMAIN_CLAIMED: &'static str = "DomainClaimed";
    pub const HIT_RECORDED: &'static str = "HitRecorded";
    pub const HOSTNAMES_ALLOWED: &'static str = "HostnamesAllowed";
    pub const GOALS_SET: &'static str = "GoalsSet";
    pub const FUNNELS_SET: &'static str = "FunnelsSet";
    pub const SHARED_LINK_CREATED: &'static str = "SharedLinkCreated";
    pub const SHARED_LINK_REVOKED: &'static str = "SharedLinkRevoked";
    pub const AGGREGATES_IMPORTED: &'static str = "AggregatesImported";
    pub const IMPORT_DELETED: &'static str = "ImportDeleted";

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::PropertyRegistered(_) => Self::PROPERTY_REGISTERED,
            Self::DomainClaimed(_) => Self::DOMAIN_CLAIMED,
            Self::HitRecorded(_) => Self::HIT_RECORDED,
            Self::HostnamesAllowed(_) => Self::HOSTNAMES_ALLOWED,
            Self::GoalsSet(_) => Self::GOALS_SET,
            Self::FunnelsSet(_) => Self::FUNNELS_SET,
            Self::SharedLinkCreated(_) => Self::SHARED_LINK_CREATED,
            Self::SharedLinkRevoked(_) => Self::SHARED_LINK_REVOKED,
            Self::AggregatesImported(_) => Self::AGGREGATES_IMPORTED,
            Self::ImportDeleted(_) => Self::IMPORT_DELETED,
        }
    }

    /// The schema version new events are written with: 2 for hits (binary), 1 for the others
    /// (JSON).
    pub fn schema_version(&self) -> u16 {
        match self {
            Self::HitRecorded(_) => 2,
            _ => 1,
        }
    }

    /// The event's data as its [`Event::schema_version`] stores it.
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            Self::HitRecorded(e) => Ok(super::codec::encode_hit(e)),
            other => other.to_json().map(String::into_bytes),
        }
    }

    /// The event's data as JSON text (what the admin API shows, whatever the stored encoding).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        match self {
            Self::PropertyRegistered(e) => serde_json::to_string(e),
            Self::DomainClaimed(e) => serde_json::to_string(e),
            Self::HitRecorded(e) => serde_json::to_string(e),
            Self::HostnamesAllowed(e) => serde_json::to_string(e),
            Self::GoalsSet(e) => serde_json::to_string(e),
            Self::FunnelsSet(e) => serde_json::to_string(e),
            Self::SharedLinkCreated(e) => serde_json::to_string(e),
            Self::SharedLinkRevoked(e) => serde_json::to_string(e),
            Self::AggregatesImported(e) => serde_json::to_string(e),
            Self::ImportDeleted(e) => serde_json::to_string(e),
        }
    }

    /// Decodes stored data of any known schema version into the current shape.
    pub fn decode(event_type: &str, version: u16, data: &[u8]) -> Result<Self, DecodeError> {
        fn v1<T: DeserializeOwned>(
            event_type: &str,
            version: u16,
            data: &[u8],
        ) -> Result<T, DecodeError> {
            match version {
                1 => Ok(serde_json::from_slice(data)?),
                _ => Err(DecodeError::UnknownVersion {
                    event_type: event_type.to_owned(),
                    version,
                }),
            }
        }
        match event_type {
            Self::PROPERTY_REGISTERED => {
                v1(event_type, version, data).map(Self::PropertyRegistered)
            }
            Self::DOMAIN_CLAIMED => v1(event_type, version, data).map(Self::DomainClaimed),
            // Version 1 is the JSON of the first releases, upcast by reading it.
            Self::HIT_RECORDED if version == 2 => {
                Ok(Self::HitRecorded(Box::new(super::codec::decode_hit(data)?)))
            }
            Self::HIT_RECORDED => {
                v1(event_type, version, data).map(|e| Self::HitRecorded(Box::new(e)))
            }
            Self::HOSTNAMES_ALLOWED => v1(event_type, version, data).map(Self::HostnamesAllowed),
            Self::GOALS_SET => v1(event_type, version, data).map(Self::GoalsSet),
            Self::FUNNELS_SET => v1(event_type, version, data).map(Self::FunnelsSet),
            Self::SHARED_LINK_CREATED => v1(event_type, version, data).map(Self::SharedLinkCreated),
            Self::SHARED_LINK_REVOKED => v1(event_type, version, data).map(Self::SharedLinkRevoked),
            Self::AGGREGATES_IMPORTED => {
                v1(event_type, version, data).map(Self::AggregatesImported)
            }
            Self::IMPORT_DELETED => v1(event_type, version, data).map(Self::ImportDeleted),
            other => Err(DecodeError::UnknownType(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Domain, PropertyId};

    #[test]
    fn events_round_trip_through_their_stored_form() {
        use crate::domain::{Funnel, Goal, PropertyName, SharedLink};
        let property_id = PropertyId::parse("0190c7e6-5b8f-7000-8000-000000000001").unwrap();
        let page = Goal {
            event: None,
            page: Some("/".into()),
        };
        let events = [
            Event::DomainClaimed(DomainClaimed {
                domain: Domain::parse("shop.example").unwrap(),
                property_id,
            }),
            Event::GoalsSet(GoalsSet {
                property_id,
                goals: vec![page.clone()],
            }),
            Event::FunnelsSet(FunnelsSet {
                property_id,
                funnels: vec![Funnel {
                    name: "F".into(),
                    steps: vec![page.clone(), page],
                }],
            }),
            Event::SharedLinkCreated(SharedLinkCreated {
                property_id,
                link: SharedLink {
                    id: uuid::Uuid::from_u128(1),
                    name: PropertyName::parse("Team").unwrap(),
                    token: "t".into(),
                    created_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                },
            }),
            Event::SharedLinkRevoked(SharedLinkRevoked {
                property_id,
                link_id: uuid::Uuid::from_u128(1),
            }),
            Event::AggregatesImported(AggregatesImported {
                property_id,
                import_id: uuid::Uuid::from_u128(2),
                table: crate::domain::ImportedTable::OperatingSystems,
                day: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
                rows: vec![crate::domain::ImportedRow {
                    labels: vec!["GNU/Linux".into(), "6".into()],
                    counts: crate::domain::ImportedCounts {
                        visitors: 3,
                        visits: 4,
                        ..Default::default()
                    },
                }],
            }),
            Event::ImportDeleted(ImportDeleted {
                property_id,
                import_id: uuid::Uuid::from_u128(2),
            }),
        ];
        for event in events {
            let data = event.encode().unwrap();
            let back = Event::decode(event.type_name(), event.schema_version(), &data).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn unknown_types_versions_and_bad_data_are_typed_errors() {
        assert!(matches!(
            Event::decode("Nope", 1, b"null"),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            Event::decode(Event::DOMAIN_CLAIMED, 9, b"null"),
            Err(DecodeError::UnknownVersion { version: 9, .. })
        ));
        assert!(matches!(
            Event::decode(Event::DOMAIN_CLAIMED, 1, br#"{"domain": 5}"#),
            Err(DecodeError::Data(_))
        ));
    }
}
