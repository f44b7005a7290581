//! The `hits` projection's writer: it loads the state a batch's fold starts from, remembers what
//! batches changed, and writes each batch's [`Delta`] through [`Store`]; in a backlog it folds the
//! next batch while it writes the one before.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::PgConnection;

use super::{fold, late_hits, properties_of, visitors};
use crate::domain::enrich::Visit;
use crate::domain::session::Session;
use crate::domain::{Event, PropertyId};
use crate::eventlog::{Position, RecordedEvent};
use crate::projections::{decode_all, ProjectionError, ProjectionWriter};
use crate::readmodel::rows::{Delta, PropKeys, Site};
use crate::readmodel::store::Store;

pub(super) struct Writer {
    store: Store,
    caches: Caches,
    /// The next batch, folded while this one was written (the caches hold its outcome).
    ahead: Option<Folded>,
}

/// What a writer remembers between batches, so that most batches need no lookup. It holds only
/// committed state or state of the batches in hand: after any error the runner drops the writer.
struct Caches {
    sites: HashMap<PropertyId, Site>,
    /// Each visitor's latest visit as this writer folded it.
    sessions: HashMap<(PropertyId, i64), Session>,
    /// About the bytes `sessions` holds.
    sessions_bytes: usize,
    /// The bytes `sessions` may hold; past them it drops the older half (see
    /// [`Caches::evict_sessions`]).
    max_sessions_bytes: usize,
    /// The prop keys rolled up for the properties seen so far.
    prop_keys: PropKeys,
    /// About the bytes `prop_keys` holds.
    prop_keys_bytes: usize,
    /// Whether `prop_keys` holds the keys of every property this partition has stored keys for
    /// (as `complete` says of the visits, until this cache overflows).
    prop_keys_complete: bool,
    /// Whether `sessions` holds every visitor this partition has stored but those in `evicted`,
    /// so that any other visitor it lacks has no visit yet (a rebuild's writer, from the start).
    /// Unknown until the first batch.
    complete: Option<bool>,
    /// The visitors (by [`evicted_key`]) whose visits a complete cache dropped to stay within its
    /// bytes: of those it lacks, only they are looked up. Two visitors may share a key; the other
    /// one is then looked up too, and found to have no visit.
    evicted: HashSet<u64>,
}

/// The visitors a complete cache remembers having dropped at most (about 16 MiB); past them it is
/// no longer complete, and looks up every visitor it lacks.
const MAX_EVICTED_VISITORS: usize = 1 << 20;

/// The bytes of prop keys a writer remembers at most; past them it forgets all and loads them
/// again.
const MAX_CACHED_PROP_KEY_BYTES: usize = 16 << 20;

/// About what a remembered visit holds in memory.
fn session_bytes(s: &Session) -> usize {
    let attributes: usize = s.attributes().iter().map(|a| a.len()).sum();
    std::mem::size_of::<Session>() + std::mem::size_of::<Visit>() + attributes + 64
}

/// A visitor's key in [`Caches::evicted`]: the visitor key (a hash already) mixed with the
/// property's.
fn evicted_key(&(property, visitor): &(PropertyId, i64)) -> u64 {
    visitor as u64 ^ property.as_uuid().as_u64_pair().0
}

/// A batch folded ahead, while the batch before it was written.
struct Folded {
    first: Position,
    last: Position,
    len: usize,
    delta: Delta,
}

impl Folded {
    fn of(&self, events: &[RecordedEvent]) -> bool {
        events.len() == self.len
            && events.first().map(|e| e.position) == Some(self.first)
            && events.last().map(|e| e.position) == Some(self.last)
    }
}

impl Writer {
    pub(super) fn new(store: Store, projection: &super::HitsProjection) -> Self {
        Self {
            store,
            caches: Caches {
                sites: HashMap::new(),
                prop_keys: PropKeys::new(projection.max_prop_keys),
                prop_keys_bytes: 0,
                prop_keys_complete: false,
                sessions: HashMap::new(),
                sessions_bytes: 0,
                max_sessions_bytes: projection.max_cached_visit_bytes,
                complete: None,
                evicted: HashSet::new(),
            },
            ahead: None,
        }
    }

    /// Folds a batch from the state the database and the caches hold.
    async fn load_and_fold(
        &mut self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<Delta, ProjectionError> {
        let events = decode_all(events)?;
        let latest = self.load(tx, &events).await?;
        let earlier = self
            .store
            .load_earlier_sessions(tx, &late_hits(&events))
            .await?;
        self.caches.fold(events, latest, earlier).await
    }

    /// Loads into the caches what they lack of the state a batch's fold starts from (its
    /// properties' settings and rolled-up prop keys), and returns its visitors' latest visits.
    ///
    /// It may run before the batch before it is written: what that batch's fold changed is in the
    /// caches until it is (see [`Caches::fold`]), so what is looked up here is what that batch
    /// did not change.
    async fn load(
        &mut self,
        tx: &mut PgConnection,
        events: &[(u64, Event)],
    ) -> Result<HashMap<(PropertyId, i64), Session>, ProjectionError> {
        let (store, c) = (&mut self.store, &mut self.caches);
        let unknown = properties_of(events, |h| !c.sites.contains_key(&h.property_id));
        c.sites.extend(store.load_sites(tx, &unknown).await?);
        let unknown = properties_of(events, |h| {
            !h.props.is_empty() && !c.prop_keys.by_property.contains_key(&h.property_id)
        });
        c.prop_keys_bytes += 64 * unknown.len();
        c.prop_keys
            .by_property
            .extend(store.load_prop_keys(tx, &unknown).await?);
        let keys = visitors(events);
        if c.complete.is_none() {
            c.complete = Some(!store.applied_any(tx).await?);
            c.prop_keys_complete = c.complete == Some(true);
        }
        let missing: Vec<_> = keys.iter().filter(|k| c.must_load(k)).copied().collect();
        let mut latest = store.load_latest_sessions(tx, &missing).await?;
        latest.extend(c.cached(&keys));
        Ok(latest)
    }
}

impl Caches {
    /// The decoded events of a batch that can be folded before the one before it is written:
    /// what it needs from the database, that batch did not change. That holds for visitors and
    /// properties (the caches keep what a batch changed until it is written), not for the prop
    /// keys of a cache that forgot them, nor for the earlier visits of late hits.
    fn foldable(&self, events: &[RecordedEvent]) -> Option<Vec<(u64, Event)>> {
        // An event that does not decode is for the batch's own turn to report (and park).
        let events = decode_all(events).ok()?;
        let known = events.iter().all(|(_, e)| match e {
            Event::HitRecorded(h) => {
                h.props.is_empty()
                    || self.prop_keys_complete
                    || self.prop_keys.by_property.contains_key(&h.property_id)
            }
            _ => true,
        });
        (known && late_hits(&events).is_empty()).then_some(events)
    }

    /// Whether a visitor's latest visit must be looked up: the cache lacks it and cannot vouch that
    /// there is none.
    fn must_load(&self, key: &(PropertyId, i64)) -> bool {
        !self.sessions.contains_key(key)
            && (self.complete != Some(true) || self.evicted.contains(&evicted_key(key)))
    }

    /// The latest visits of these visitors that the cache holds.
    fn cached<'a>(
        &'a self,
        keys: &'a [(PropertyId, i64)],
    ) -> impl Iterator<Item = ((PropertyId, i64), Session)> + 'a {
        keys.iter()
            .filter_map(|k| self.sessions.get(k).map(|s| (*k, s.clone())))
    }

    /// The fold, on the blocking pool: it is pure CPU work (tens of milliseconds for a large
    /// batch), so the actors and connections sharing this thread are not held up. The caches
    /// take what it changed; a fold that failed (a panic) leaves them empty.
    async fn fold(
        &mut self,
        events: Vec<(u64, Event)>,
        latest: HashMap<(PropertyId, i64), Session>,
        earlier: HashMap<(PropertyId, i64), Vec<Session>>,
    ) -> Result<Delta, ProjectionError> {
        let mut sites = std::mem::take(&mut self.sites);
        let max_prop_keys = self.prop_keys.max;
        let mut keys = std::mem::replace(&mut self.prop_keys, PropKeys::new(max_prop_keys));
        let folded = tokio::task::spawn_blocking(move || {
            let delta = fold(&events, &mut sites, &mut keys, latest, earlier);
            (delta, sites, keys)
        })
        .await;
        let (mut delta, sites, keys) = match folded {
            Ok(folded) => folded,
            Err(e) => {
                self.forget();
                return Err(e.into());
            }
        };
        self.sites = sites;
        self.prop_keys = keys;
        self.prop_keys_bytes += delta
            .prop_keys
            .iter()
            .map(|(_, k)| k.len() + 32)
            .sum::<usize>();
        if self.prop_keys_bytes > MAX_CACHED_PROP_KEY_BYTES {
            self.forget_prop_keys();
        }
        // Room is made before the batch's visits go in, so that they stay until it is written.
        let latest = std::mem::take(&mut delta.latest);
        let incoming: usize = latest.values().map(session_bytes).sum();
        if self.sessions_bytes + incoming > self.max_sessions_bytes {
            self.evict_sessions();
        }
        for (key, session) in latest {
            self.sessions_bytes += session_bytes(&session);
            if let Some(old) = self.sessions.insert(key, session) {
                self.sessions_bytes -= session_bytes(&old);
            }
        }
        Ok(delta)
    }

    /// Drops the half of the visitors whose latest visit ended first (those least likely to come
    /// back, in a log's order). A complete cache remembers who they were, and stays complete while
    /// it can remember them all.
    fn evict_sessions(&mut self) {
        if self.sessions.is_empty() {
            return;
        }
        let mut ends: Vec<_> = self.sessions.values().map(|s| s.last_at).collect();
        let middle = ends.len() / 2;
        let cutoff = *ends.select_nth_unstable(middle).1;
        let complete = self.complete == Some(true);
        let (bytes, evicted) = (&mut self.sessions_bytes, &mut self.evicted);
        self.sessions.retain(|key, s| {
            let keep = s.last_at >= cutoff;
            if !keep {
                *bytes -= session_bytes(s);
                if complete {
                    evicted.insert(evicted_key(key));
                }
            }
            keep
        });
        if self.sessions_bytes > self.max_sessions_bytes * 3 / 4 {
            // Most visits ended at one time: none of them is the likelier to come back.
            self.forget_sessions();
        } else if self.evicted.len() > MAX_EVICTED_VISITORS {
            self.evicted = HashSet::new();
            self.complete = Some(false);
        }
    }

    fn forget_prop_keys(&mut self) {
        self.prop_keys.by_property.clear();
        self.prop_keys_bytes = 0;
        self.prop_keys_complete = false;
    }

    fn forget_sessions(&mut self) {
        self.sessions.clear();
        self.sessions_bytes = 0;
        self.evicted = HashSet::new();
        self.complete = Some(false);
    }

    /// Forgets everything: only the database holds what was written.
    fn forget(&mut self) {
        self.sites.clear();
        self.forget_prop_keys();
        self.forget_sessions();
    }
}

#[async_trait]
impl ProjectionWriter for Writer {
    async fn apply(
        &mut self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        self.apply_before(tx, events, &[]).await.map(|_| ())
    }

    /// Writes the batch; when the next one can be folded before it is written (see
    /// [`Caches::foldable`]: a rebuild's batches, as a rule), what that fold needs is looked up
    /// first and the fold runs meanwhile, so that the fold's CPU and the database's writes overlap
    /// instead of taking turns.
    async fn apply_before(
        &mut self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
        next: &[RecordedEvent],
    ) -> Result<bool, ProjectionError> {
        let delta = match self.ahead.take() {
            Some(folded) if folded.of(events) => folded.delta,
            stale => {
                if stale.is_some() {
                    // The caches hold a batch that was folded and not written (another came
                    // first).
                    self.caches.forget();
                }
                self.load_and_fold(tx, events).await?
            }
        };
        let ahead = match (next.first(), next.last()) {
            (Some(first), Some(last)) => self
                .caches
                .foldable(next)
                .map(|decoded| (first.position, last.position, decoded)),
            _ => None,
        };
        match ahead {
            Some((first, last, decoded)) => {
                let latest = self.load(tx, &decoded).await?;
                let (written, folded) = tokio::join!(
                    self.store.write(tx, &delta),
                    self.caches.fold(decoded, latest, HashMap::new())
                );
                written?;
                // A next batch whose fold failed is folded again in its turn, where the failure
                // is its own (and parks its event), not this batch's.
                self.ahead = folded.ok().map(|delta| Folded {
                    first,
                    last,
                    len: next.len(),
                    delta,
                });
            }
            None => self.store.write(tx, &delta).await?,
        }
        metrics::counter!(crate::telemetry::PROPS_NOT_ROLLED_UP).increment(delta.props_refused);
        Ok(self.ahead.is_some())
    }
}
