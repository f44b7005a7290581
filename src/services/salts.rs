//! Daily salts for visitor keys, shared by every node through PostgreSQL. A salt lives for the UTC
//! day it was made for; salts older than two days are deleted, after which nobody can link a visitor
//! key to the IP address and user agent it came from.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Days, NaiveDate, Utc};
use sqlx::PgPool;

/// The salt in use and the day it belongs to.
type DaySalt = Option<(NaiveDate, Arc<[u8]>)>;

#[derive(Clone)]
pub struct Salts {
    pool: PgPool,
    current: Arc<Mutex<DaySalt>>,
}

impl Salts {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            current: Arc::new(Mutex::new(None)),
        }
    }

    /// The salt of `now`'s UTC day, made on first use by whichever node asks first.
    pub async fn for_day(&self, now: DateTime<Utc>) -> Result<Arc<[u8]>, sqlx::Error> {
        let day = now.date_naive();
        if let Some((d, salt)) = &*self.current.lock().unwrap_or_else(|e| e.into_inner()) {
            if *d == day {
                return Ok(salt.clone());
            }
        }
        let fresh: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
            .iter()
            .flat_map(|u| u.into_bytes())
            .collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO visitor_salts (day, salt) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING",
        )
        .bind(day)
        .bind(&fresh)
        .execute(&mut *tx)
        .await?;
        let salt: Vec<u8> = sqlx::query_scalar("SELECT salt FROM visitor_salts WHERE day = $1")
            .bind(day)
            .fetch_one(&mut *tx)
            .await?;
        if let Some(oldest_kept) = day.checked_sub_days(Days::new(1)) {
            sqlx::query("DELETE FROM visitor_salts WHERE day < $1")
                .bind(oldest_kept)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let salt: Arc<[u8]> = salt.into();
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((day, salt.clone()));
        Ok(salt)
    }
}
