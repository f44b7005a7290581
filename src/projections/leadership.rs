//! Which node leads which slot. A runner leads its slot while it holds the slot's advisory lock
//! on a connection of its own and renews its lease ([`lead`], [`take_lease`], [`renew_lease`]);
//! a standby ends a leader whose lease has lapsed. The project nodes alive share each
//! generation's slots evenly ([`Team`]): a node tries to lead a slot only while it leads fewer
//! than its share of the generation, and hands back its highest-numbered partitions while it
//! leads more (another node joined). So two project nodes each lead half of a rebuild's
//! partitions, and when one goes, the other takes its share.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::runner::Slot;
use super::Generation;

/// How often a standby runner tries to take over, and how often the manager looks around.
pub(super) const RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// How often a leader renews its lease, and how old a lease may grow before a standby ends the
/// leader's session and takes over.
const LEASE_RENEWAL: Duration = Duration::from_secs(1);
const LEASE_EXPIRY: Duration = Duration::from_secs(3);
/// How often a node beats; one whose last beat is older than [`LEASE_EXPIRY`] (or whose heartbeat
/// connection closed) no longer counts.
pub(super) const HEARTBEAT: Duration = Duration::from_millis(500);

/// This node among the project nodes: how many are alive, and which slots it leads.
#[derive(Clone)]
pub struct Team {
    node: Uuid,
    /// Project nodes alive, this one included, as last counted (0 before the first count).
    nodes: Arc<AtomicUsize>,
    led: Arc<Mutex<Led>>,
}

/// The partitions this node leads, per projection and generation.
type Led = HashMap<(&'static str, Generation), BTreeSet<i32>>;

impl Team {
    pub fn new() -> Self {
        Self {
            node: Uuid::now_v7(),
            nodes: Arc::default(),
            led: Arc::default(),
        }
    }

    /// The most partitions of a generation of `partitions` one node leads.
    fn share(&self, partitions: i32) -> usize {
        let nodes = self.nodes.load(Ordering::Relaxed).max(1);
        (partitions.max(1) as usize).div_ceil(nodes)
    }

    /// How many partitions of `slot`'s generation this node leads, and the highest of them.
    fn led(&self, slot: &Slot) -> (usize, Option<i32>) {
        let led = self.led.lock().unwrap_or_else(|e| e.into_inner());
        led.get(&(slot.name(), slot.generation))
            .map_or((0, None), |p| (p.len(), p.last().copied()))
    }

    /// Whether this node may try to lead `slot`: it leads less than its share of the generation.
    fn may_lead(&self, slot: &Slot) -> bool {
        self.led(slot).0 < self.share(slot.partitions)
    }

    /// Whether this node should hand `slot` back: it leads more than its share of the generation,
    /// and this is the highest-numbered partition it leads.
    pub(super) fn should_yield(&self, slot: &Slot) -> bool {
        let (count, highest) = self.led(slot);
        count > self.share(slot.partitions) && highest == Some(slot.partition)
    }

    /// Records that this node leads `slot` until the returned guard is dropped.
    pub(super) fn leading(&self, slot: &Slot) -> Leading {
        let mut led = self.led.lock().unwrap_or_else(|e| e.into_inner());
        led.entry((slot.name(), slot.generation))
            .or_default()
            .insert(slot.partition);
        Leading {
            team: self.clone(),
            slot: slot.clone(),
        }
    }

    /// Beats on `conn` (this node's own connection) and counts the nodes alive.
    pub(super) async fn beat(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let nodes: i64 = sqlx::query_scalar(
            "WITH beat AS (INSERT INTO projection_nodes (node, backend_pid, seen_at) \
               VALUES ($1, pg_backend_pid(), now()) ON CONFLICT (node) \
               DO UPDATE SET backend_pid = EXCLUDED.backend_pid, seen_at = EXCLUDED.seen_at) \
             SELECT 1 + count(*) FROM projection_nodes n JOIN pg_stat_activity a ON a.pid = n.backend_pid \
             WHERE n.node <> $1 AND n.seen_at > now() - make_interval(secs => $2)",
        )
        .bind(self.node)
        .bind(LEASE_EXPIRY.as_secs_f64())
        .fetch_one(&mut *conn)
        .await?;
        self.nodes.store(nodes.max(1) as usize, Ordering::Relaxed);
        sqlx::query("DELETE FROM projection_nodes WHERE seen_at < now() - interval '1 hour'")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// A slot this node leads, until dropped.
pub(super) struct Leading {
    team: Team,
    slot: Slot,
}

impl Drop for Leading {
    fn drop(&mut self) {
        let key = (self.slot.name(), self.slot.generation);
        let mut led = self.team.led.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(partitions) = led.get_mut(&key) {
            partitions.remove(&self.slot.partition);
            if partitions.is_empty() {
                led.remove(&key);
            }
        }
    }
}

/// Takes the slot's advisory lock on a connection of its own, waiting while another node holds
/// it, and ending the holder's session if its lease has expired.
pub(super) async fn lead(
    pool: &PgPool,
    slot: &Slot,
    team: &Team,
) -> Result<PgConnection, sqlx::Error> {
    let (key, g) = slot.lock_keys();
    loop {
        if !team.may_lead(slot) {
            tokio::time::sleep(RETRY_INTERVAL).await;
            continue;
        }
        let mut conn = pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1), $2)")
            .bind(&key)
            .bind(g)
            .fetch_one(&mut *conn)
            .await?;
        if got {
            // The lock lives as long as the session, so the connection leaves the pool: when the
            // runner stops, dropping it closes the session and frees the lock for another node.
            // If this node dies or its network half-opens, PostgreSQL's keepalives end the
            // session (and free the lock) within seconds; a leader stuck in a transaction or a
            // statement is ended by the timeouts.
            sqlx::query(
                "SELECT set_config('tcp_keepalives_idle', '2', false), \
                        set_config('tcp_keepalives_interval', '1', false), \
                        set_config('tcp_keepalives_count', '3', false), \
                        set_config('tcp_user_timeout', '5000', false), \
                        set_config('idle_in_transaction_session_timeout', '30s', false), \
                        set_config('statement_timeout', '10min', false)",
            )
            .execute(&mut *conn)
            .await?;
            return Ok(conn.detach());
        }
        // The holder is ended only if it still holds this very lock (a backend id can be
        // reused) and its lease is stale; `OFFSET 0` keeps those checks before the ending.
        let ended: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM (SELECT l.leader_pid AS pid FROM projection_leases l \
               JOIN pg_locks k ON k.locktype = 'advisory' AND k.granted AND k.pid = l.leader_pid \
                AND k.classid = hashtext($4)::oid AND k.objid = $2::oid AND k.objsubid = 2 \
               WHERE l.projection = $1 AND l.generation = $2 AND l.partition = $3 \
                AND l.renewed_at < now() - make_interval(secs => $5) OFFSET 0) stale \
             WHERE pg_terminate_backend(pid)",
        )
        .bind(slot.name())
        .bind(g)
        .bind(slot.partition)
        .bind(&key)
        .bind(LEASE_EXPIRY.as_secs_f64())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(pid) = ended {
            tracing::warn!(
                projection = slot.name(),
                generation = g,
                partition = slot.partition,
                leader_pid = pid,
                "the leader's lease expired: its session was ended, taking over"
            );
        }

        drop(conn);
        // An ended leader's lock frees as soon as its backend exits.
        tokio::time::sleep(if ended.is_some() {
            Duration::from_millis(50)
        } else {
            RETRY_INTERVAL
        })
        .await;
    }
}

/// Records this session as the slot's leader; returns its backend id.
pub(super) async fn take_lease(slot: &Slot, conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO projection_leases (projection, generation, partition, leader_pid, renewed_at) \
         VALUES ($1, $2, $3, pg_backend_pid(), now()) \
         ON CONFLICT (projection, generation, partition) \
         DO UPDATE SET leader_pid = excluded.leader_pid, renewed_at = excluded.renewed_at \
         RETURNING leader_pid",
    )
    .bind(slot.name())
    .bind(slot.generation)
    .bind(slot.partition)
    .fetch_one(&mut *conn)
    .await
}

/// Renews the lease every [`LEASE_RENEWAL`], from the pool (the lock connection may be busy with
/// a long batch). Never ends by itself: once the lease is lost to another node, the leader's
/// session has been ended and its work fails.
pub(super) async fn renew_lease<T>(pool: &PgPool, slot: &Slot, leader: i32) -> T {
    let mut tick = tokio::time::interval(LEASE_RENEWAL);
    loop {
        tick.tick().await;
        let renewed = sqlx::query(
            "UPDATE projection_leases SET renewed_at = now() \
             WHERE projection = $1 AND generation = $2 AND partition = $3 AND leader_pid = $4",
        )
        .bind(slot.name())
        .bind(slot.generation)
        .bind(slot.partition)
        .bind(leader)
        .execute(pool)
        .await;
        match renewed {
            Ok(r) if r.rows_affected() == 0 => {
                tracing::warn!(
                    projection = slot.name(),
                    generation = slot.generation,
                    partition = slot.partition,
                    "lease lost to another node"
                );
                return std::future::pending().await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(projection = slot.name(), error = %e, "cannot renew the lease")
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::projections::hits::HitsProjection;

    fn slot(partition: i32) -> Slot {
        Slot {
            projection: Arc::new(HitsProjection::default()),
            generation: 1,
            partition,
            partitions: 4,
        }
    }

    #[test]
    fn nodes_lead_their_share_and_hand_back_their_highest_partitions() {
        let team = Team::new();
        // Alone (or before the first count), a node leads every partition.
        let held: Vec<Leading> = (0..4).map(|p| team.leading(&slot(p))).collect();
        assert!((0..4).all(|p| !team.should_yield(&slot(p))));
        // A second node joins: the share is 2, and partitions 3 then 2 are handed back.
        team.nodes.store(2, Ordering::Relaxed);
        assert_eq!(
            (0..4)
                .map(|p| team.should_yield(&slot(p)))
                .collect::<Vec<_>>(),
            [false, false, false, true]
        );
        let mut held = held;
        drop(held.pop());
        assert!(team.should_yield(&slot(2)) && !team.may_lead(&slot(3)));
        drop(held.pop());
        assert!((0..2).all(|p| !team.should_yield(&slot(p))) && !team.may_lead(&slot(2)));
        // The other node goes: this one may lead the rest again.
        team.nodes.store(1, Ordering::Relaxed);
        assert!(team.may_lead(&slot(2)));
        // Three nodes, four partitions: at most two each.
        team.nodes.store(3, Ordering::Relaxed);
        assert_eq!(team.share(4), 2);
        assert_eq!(team.share(1), 1);
    }
}
