//! The `shared_links` read model: one row per live shared link, found by its token when a
//! dashboard (or any report query) presents it. Revoking a link deletes its row.

use async_trait::async_trait;
use sqlx::PgConnection;

use super::{decode_all, table, Generation, Projection, ProjectionError, ProjectionWriter};
use crate::domain::{Event, SharedLinkCreated, SharedLinkRevoked};
use crate::eventlog::{RecordedEvent, StreamFilter};

pub const NAME: &str = "shared_links";

/// A change to the read model.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Created(SharedLinkCreated),
    Revoked(SharedLinkRevoked),
}

/// Pure fold: the changes a batch makes, in order.
pub fn fold(events: &[RecordedEvent]) -> Result<Vec<Change>, ProjectionError> {
    Ok(decode_all(events)?
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::SharedLinkCreated(c) => Some(Change::Created(c)),
            Event::SharedLinkRevoked(r) => Some(Change::Revoked(r)),
            _ => None,
        })
        .collect())
}

pub struct SharedLinksProjection;

impl Projection for SharedLinksProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self) -> StreamFilter {
        StreamFilter::categories(&["property"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["shared_links"]
    }

    fn ddl(&self, g: Generation) -> Vec<String> {
        let t = table("shared_links", g);
        vec![
            format!(
                "CREATE TABLE {t} (
                    id          uuid        PRIMARY KEY,
                    property_id uuid        NOT NULL,
                    name        text        NOT NULL,
                    token       text        NOT NULL UNIQUE,
                    created_at  timestamptz NOT NULL
                )"
            ),
            format!("CREATE INDEX ON {t} (property_id, created_at)"),
        ]
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn writer(&self, g: Generation, _partition: i32) -> Box<dyn ProjectionWriter> {
        Box::new(Writer {
            table: table("shared_links", g),
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
                Change::Created(c) => {
                    sqlx::query(&format!(
                        "INSERT INTO {} (id, property_id, name, token, created_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                        self.table
                    ))
                    .bind(c.link.id)
                    .bind(c.property_id.as_uuid())
                    .bind(c.link.name.as_str())
                    .bind(&c.link.token)
                    .bind(c.link.created_at)
                    .execute(&mut *tx)
                    .await?;
                }
                Change::Revoked(r) => {
                    sqlx::query(&format!("DELETE FROM {} WHERE id = $1", self.table))
                        .bind(r.link_id)
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
    use crate::domain::{GoalsSet, PropertyId, PropertyName, SharedLink};
    use crate::projections::recorded_property_event as recorded;

    #[test]
    fn creations_and_revocations_become_changes_in_order() {
        let property_id = PropertyId::parse("0190c7e6-5b8f-7000-8000-000000000001").unwrap();
        let created = SharedLinkCreated {
            property_id,
            link: SharedLink {
                id: uuid::Uuid::from_u128(1),
                name: PropertyName::parse("Team").unwrap(),
                token: "token".into(),
                created_at: chrono::Utc::now(),
            },
        };
        let revoked = SharedLinkRevoked {
            property_id,
            link_id: created.link.id,
        };
        let events = [
            recorded(
                1,
                &Event::GoalsSet(GoalsSet {
                    property_id,
                    goals: vec![],
                }),
            ),
            recorded(2, &Event::SharedLinkCreated(created.clone())),
            recorded(3, &Event::SharedLinkRevoked(revoked.clone())),
        ];
        assert_eq!(
            fold(&events).unwrap(),
            vec![Change::Created(created), Change::Revoked(revoked)]
        );
    }
}
