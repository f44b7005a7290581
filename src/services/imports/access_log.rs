//! Imports of web-server access logs (`crate::import::access_log`): each pageview line becomes a
//! hit through the domain command, appended to the property's hits stream.

use std::io::BufRead;
use std::net::IpAddr;

use chrono::Utc;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{uuid_v8, Counts, ImportError, Imports, Source, BATCH};
use crate::domain::enrich::is_bot;
use crate::domain::{Event, Geo, Hit, HitRequest, PropertyId, Protocol, RecordHits};
use crate::eventlog::EventData;
use crate::import::access_log::{self, Format, Kind};
use crate::services::PropertyRecord;

impl Imports {
    /// Imports an access log read from `reader` (the content `source` describes), calling
    /// `progress` after each append. Records the outcome on the import's row.
    pub async fn access_log(
        &self,
        id: Uuid,
        property: &PropertyRecord,
        format: Format,
        source: &Source,
        reader: impl BufRead,
        progress: impl FnMut(&Counts),
    ) -> Result<Counts, ImportError> {
        let outcome = self
            .run_access_log(id, property, format, source, reader, progress)
            .await;
        self.finish(id, outcome).await
    }

    async fn run_access_log(
        &self,
        id: Uuid,
        property: &PropertyRecord,
        format: Format,
        source: &Source,
        mut reader: impl BufRead,
        mut progress: impl FnMut(&Counts),
    ) -> Result<Counts, ImportError> {
        let property_id = PropertyId::new(property.id);
        let salt = self.salt(property.id, &source.content_hash).await?;
        let mut counts = Counts::default();
        let mut batch: Vec<EventData> = Vec::with_capacity(BATCH);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let read = reader.read_until(b'\n', &mut buf)?;
            if read == 0 {
                break;
            }
            counts.read_bytes += read as i64;
            counts.lines += 1;
            let text = String::from_utf8_lossy(&buf);
            let Some(line) = access_log::parse(text.trim_end_matches(['\n', '\r']), format) else {
                counts.invalid += 1;
                continue;
            };
            match line.kind() {
                Kind::Pageview => {}
                Kind::Asset => {
                    counts.assets += 1;
                    continue;
                }
                Kind::Redirect => {
                    counts.redirects += 1;
                    continue;
                }
                Kind::Error => {
                    counts.errors += 1;
                    continue;
                }
                Kind::Other => {
                    counts.other += 1;
                    continue;
                }
            }
            let at = line.time.with_timezone(&Utc);
            let url = if line.target.starts_with("http://") || line.target.starts_with("https://") {
                line.target.clone()
            } else {
                format!("https://{}{}", property.domain, line.target)
            };
            let request = HitRequest {
                name: Some("pageview".into()),
                url: Some(url),
                referrer: line.referrer.clone(),
                occurred_at: Some(at),
                ..HitRequest::default()
            };
            // The hit happened when the server logged it: that is also when it was received.
            let Ok(hit) = Hit::parse(request, at) else {
                counts.invalid += 1;
                continue;
            };
            let ip: Option<IpAddr> = line.client.parse().ok();
            let geo = match (&self.geo, ip) {
                (Some(db), Some(ip)) => db.lookup(ip),
                _ => Geo::default(),
            };
            // A client logged by host name is keyed by its name, salted the same way.
            let key_salt = match ip {
                Some(_) => salt.clone(),
                None => [salt.as_slice(), line.client.as_bytes()].concat(),
            };
            if line.user_agent.as_deref().is_some_and(is_bot) {
                counts.bots += 1;
            }
            counts.pageviews += 1;
            for e in (RecordHits {
                hit,
                properties: vec![property_id],
                protocol: Protocol::AccessLog,
                user_agent: line.user_agent,
                ip,
                geo,
                salt: key_salt,
                received_at: at,
            })
            .handle()
            {
                let event_id = event_id(property.id, &source.content_hash, counts.lines);
                batch.push(EventData::from_event(
                    event_id,
                    &Event::HitRecorded(Box::new(e)),
                )?);
            }
            if batch.len() >= BATCH {
                self.append(property_id.hits_stream(), &mut batch).await?;
                self.record_progress(id, &counts).await?;
                progress(&counts);
            }
        }
        self.append(property_id.hits_stream(), &mut batch).await?;
        progress(&counts);
        Ok(counts)
    }

    /// The salt of this property's imports of this content: made once, at random.
    async fn salt(&self, property: Uuid, content_hash: &[u8; 32]) -> Result<Vec<u8>, ImportError> {
        let fresh: Vec<u8> = [Uuid::new_v4(), Uuid::new_v4()]
            .iter()
            .flat_map(|u| u.into_bytes())
            .collect();
        sqlx::query(
            "INSERT INTO import_salts (property_id, content_hash, salt) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(property)
        .bind(content_hash.as_slice())
        .bind(&fresh)
        .execute(&self.pool)
        .await?;
        Ok(sqlx::query_scalar(
            "SELECT salt FROM import_salts WHERE property_id = $1 AND content_hash = $2",
        )
        .bind(property)
        .bind(content_hash.as_slice())
        .fetch_one(&self.pool)
        .await?)
    }
}

/// The id of the event of line `line` (1-based) of a file: the same for every import of it.
fn event_id(property: Uuid, content_hash: &[u8; 32], line: i64) -> Uuid {
    let mut h = Sha256::new();
    h.update(property.as_bytes());
    h.update(content_hash);
    h.update(line.to_le_bytes());
    uuid_v8(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_depend_on_property_content_and_line_only() {
        let (p, q) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_eq!(event_id(p, &a, 7), event_id(p, &a, 7));
        assert_ne!(event_id(p, &a, 7), event_id(p, &a, 8));
        assert_ne!(event_id(p, &a, 7), event_id(q, &a, 7));
        assert_ne!(event_id(p, &a, 7), event_id(p, &b, 7));
        assert_eq!(event_id(p, &a, 7).get_version_num(), 8);
    }
}
