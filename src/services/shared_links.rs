//! Shared links: a token that opens one property's dashboard read-only. Created and revoked as
//! events on the property's stream (like its goals); the `shared_links` read model finds a link by
//! its token, without a cache, so a revocation holds on every node as soon as it is projected.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::properties::{random_token, Properties, ALNUM};
use super::RegisterError;
use crate::domain::{
    CreateSharedLink, DomainError, Event, PropertyName, RevokeSharedLink, SharedLink,
};
use crate::projections::shared_links::NAME as SHARED_LINKS;

/// A live shared link as the read model holds it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SharedLinkRecord {
    pub id: Uuid,
    pub name: String,
    pub token: String,
    pub created_at: DateTime<Utc>,
}

impl Properties {
    /// Creates a shared link for the property (named `name`, or "Shared link").
    pub async fn create_shared_link(
        &self,
        property_id: Uuid,
        name: Option<&str>,
    ) -> Result<SharedLinkRecord, RegisterError> {
        let link = SharedLink {
            id: Uuid::now_v7(),
            name: PropertyName::parse(name.unwrap_or("Shared link"))?,
            token: random_token(32, ALNUM),
            created_at: Utc::now(),
        };
        let record = SharedLinkRecord {
            id: link.id,
            name: link.name.as_str().to_owned(),
            token: link.token.clone(),
            created_at: link.created_at,
        };
        self.decide_and_append(
            property_id,
            |p| {
                p.create_shared_link(CreateSharedLink { link })
                    .map(Event::SharedLinkCreated)
            },
            SHARED_LINKS,
        )
        .await?;
        Ok(record)
    }

    /// Revokes a live shared link of the property (`404 shared_link_not_found` otherwise).
    pub async fn revoke_shared_link(
        &self,
        property_id: Uuid,
        link_id: Uuid,
    ) -> Result<(), RegisterError> {
        self.decide_and_append(
            property_id,
            |p| {
                p.revoke_shared_link(RevokeSharedLink { link_id })
                    .map(Event::SharedLinkRevoked)
            },
            SHARED_LINKS,
        )
        .await
        .map(|_| ())
    }

    /// The property's live shared links, oldest first.
    pub async fn shared_links(
        &self,
        property_id: Uuid,
    ) -> Result<Vec<SharedLinkRecord>, RegisterError> {
        if self.by_id(&property_id.to_string()).await?.is_none() {
            return Err(DomainError::PropertyNotRegistered.into());
        }
        Ok(sqlx::query_as(
            "SELECT id, name, token, created_at FROM shared_links \
             WHERE property_id = $1 ORDER BY created_at, id",
        )
        .bind(property_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The property a live shared link's token opens.
    pub async fn shared_by_token(&self, token: &str) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar("SELECT property_id FROM shared_links WHERE token = $1")
            .bind(token)
            .fetch_optional(&self.pool)
            .await
    }
}
