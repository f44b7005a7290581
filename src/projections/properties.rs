//! The `properties` read model: one row per registered property. Collection resolves domains,
//! measurement ids and property ids through it; the query APIs check read keys against it.

use async_trait::async_trait;
use sqlx::PgConnection;

use super::{decode_all, table, Generation, Projection, ProjectionError, ProjectionWriter};
use crate::domain::{Event, FunnelsSet, GoalsSet, HostnamesAllowed, PropertyRegistered};
use crate::eventlog::{RecordedEvent, StreamFilter};

pub const NAME: &str = "properties";

/// A change to the read model.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new property, with the position it was recorded at.
    Registered(PropertyRegistered, u64),
    Hostnames(HostnamesAllowed),
    Goals(GoalsSet),
    Funnels(FunnelsSet),
}

/// Pure fold: the changes a batch makes, in order.
pub fn fold(events: &[RecordedEvent]) -> Result<Vec<Change>, ProjectionError> {
    Ok(decode_all(events)?
        .into_iter()
        .filter_map(|(position, e)| match e {
            Event::PropertyRegistered(p) => Some(Change::Registered(p, position)),
            Event::HostnamesAllowed(h) => Some(Change::Hostnames(h)),
            Event::GoalsSet(g) => Some(Change::Goals(g)),
            Event::FunnelsSet(f) => Some(Change::Funnels(f)),
            _ => None,
        })
        .collect())
}

pub struct PropertiesProjection;

impl Projection for PropertiesProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self) -> StreamFilter {
        StreamFilter::categories(&["property"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["properties"]
    }

    fn ddl(&self, g: Generation) -> Vec<String> {
        let t = table("properties", g);
        vec![format!(
            "CREATE TABLE {t} (
                id             uuid        PRIMARY KEY,
                domain         text        NOT NULL UNIQUE,
                timezone       text        NOT NULL,
                name           text        NOT NULL,
                measurement_id text        NOT NULL UNIQUE,
                api_secret     text        NOT NULL,
                read_key       text        NOT NULL UNIQUE,
                registered_at  timestamptz NOT NULL,
                hostnames      text[]      NOT NULL DEFAULT '{{}}',
                goals          jsonb       NOT NULL DEFAULT '[]',
                funnels        jsonb       NOT NULL DEFAULT '[]',
                position       bigint      NOT NULL
            )"
        )]
    }

    /// 2: goals. 3: funnels (a column that property lookups do not read, so they go on while a
    /// node that brings it rebuilds the read model).
    fn schema_version(&self) -> i32 {
        3
    }

    fn writer(&self, g: Generation, _partition: i32) -> Box<dyn ProjectionWriter> {
        Box::new(Writer {
            table: table("properties", g),
        })
    }
}

struct Writer {
    table: String,
}

#[async_trait]
impl ProjectionWriter for Writer {
    async fn apply(
        &mut self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for change in fold(events)? {
            match change {
                Change::Registered(p, position) => {
                    sqlx::query(&format!(
                        "INSERT INTO {} (id, domain, timezone, name, measurement_id, api_secret, read_key, \
                         registered_at, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (id) DO NOTHING",
                        self.table
                    ))
                    .bind(p.property_id.as_uuid())
                    .bind(p.domain.as_str())
                    .bind(p.timezone.to_string())
                    .bind(p.name.as_str())
                    .bind(&p.credentials.measurement_id)
                    .bind(&p.credentials.api_secret)
                    .bind(&p.credentials.read_key)
                    .bind(p.registered_at)
                    .bind(position as i64)
                    .execute(&mut *tx)
                    .await?;
                }
                Change::Hostnames(h) => {
                    sqlx::query(&format!(
                        "UPDATE {} SET hostnames = $2 WHERE id = $1",
                        self.table
                    ))
                    .bind(h.property_id.as_uuid())
                    .bind(&h.hostnames)
                    .execute(&mut *tx)
                    .await?;
                }
                Change::Funnels(f) => {
                    sqlx::query(&format!(
                        "UPDATE {} SET funnels = $2 WHERE id = $1",
                        self.table
                    ))
                    .bind(f.property_id.as_uuid())
                    .bind(sqlx::types::Json(&f.funnels))
                    .execute(&mut *tx)
                    .await?;
                }
                Change::Goals(g) => {
                    sqlx::query(&format!(
                        "UPDATE {} SET goals = $2 WHERE id = $1",
                        self.table
                    ))
                    .bind(g.property_id.as_uuid())
                    .bind(sqlx::types::Json(&g.goals))
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Domain, DomainClaimed, PropertyCredentials, PropertyId, PropertyName, Timezone,
    };
    use crate::projections::recorded_property_event as recorded;

    #[test]
    fn registrations_become_rows_and_other_events_are_ignored() {
        let id = PropertyId::parse("0190c7e6-5b8f-7000-8000-000000000001").unwrap();
        let domain = Domain::parse("shop.example").unwrap();
        let registered = PropertyRegistered {
            property_id: id,
            domain: domain.clone(),
            timezone: Timezone::parse("Asia/Kolkata").unwrap(),
            name: PropertyName::parse("Shop").unwrap(),
            credentials: PropertyCredentials {
                measurement_id: "G-ABCDEFGHIJ".into(),
                api_secret: "s".into(),
                read_key: "r".into(),
            },
            session_timeout_minutes: None,
            registered_at: chrono::Utc::now(),
        };
        let events = [
            recorded(
                1,
                &Event::DomainClaimed(DomainClaimed {
                    domain,
                    property_id: id,
                }),
            ),
            recorded(2, &Event::PropertyRegistered(registered.clone())),
        ];
        assert_eq!(
            fold(&events).unwrap(),
            vec![Change::Registered(registered, 2)]
        );
    }

    #[test]
    fn an_undecodable_event_stops_the_fold_with_its_position() {
        let mut bad = recorded(
            7,
            &Event::DomainClaimed(DomainClaimed {
                domain: Domain::parse("a.example").unwrap(),
                property_id: PropertyId::parse("0190c7e6-5b8f-7000-8000-000000000001").unwrap(),
            }),
        );
        bad.data = b"{}".to_vec();
        assert!(matches!(
            fold(&[bad]),
            Err(ProjectionError::Decode { position: 7, .. })
        ));
    }
}
