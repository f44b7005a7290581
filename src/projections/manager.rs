//! The [`ProjectionManager`] keeps a [`ProjectionRunner`] alive for every partition of every live
//! or building generation, switches a caught-up rebuild in, drops retired tables, and beats for
//! this node (see [`super::leadership`]).

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use sqlx::{PgConnection, PgPool};

use super::generations::{self, Generation, RETIRED_GRACE};
use super::leadership::{Team, HEARTBEAT, RETRY_INTERVAL};
use super::runner::{ProjectionRunner, Slot};
use super::Projection;
use crate::eventlog::EventLog;

/// Keeps the projections of this node running.
pub struct ProjectionManager {
    projections: Vec<Arc<dyn Projection>>,
    log: Arc<dyn EventLog>,
    pool: PgPool,
    runners: HashMap<(&'static str, Generation, i32), Addr<ProjectionRunner>>,
    busy: bool,
    team: Team,
}

impl ProjectionManager {
    pub fn new(
        projections: Vec<Arc<dyn Projection>>,
        log: Arc<dyn EventLog>,
        pool: PgPool,
    ) -> Self {
        Self {
            projections,
            log,
            pool,
            runners: HashMap::new(),
            busy: false,
            team: Team::new(),
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let (projections, pool) = (self.projections.clone(), self.pool.clone());
        let work = async move {
            for p in &projections {
                if let Err(e) = generations::switch_if_caught_up(&pool, &**p).await {
                    tracing::warn!(projection = p.name(), error = %e, "generation switch failed");
                }
                if let Err(e) = generations::drop_retired(&pool, &**p, RETIRED_GRACE).await {
                    tracing::warn!(projection = p.name(), error = %e, "dropping retired tables failed");
                }
            }
            match crate::eventlog::postgres::analyze_if_stale(&pool).await {
                Ok(true) => tracing::info!("event log statistics refreshed"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot refresh the event log's statistics"),
            }
            generations::list(&pool).await
        };
        ctx.spawn(work.into_actor(self).map(|wanted, act, _| {
            act.busy = false;
            let wanted = match wanted {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read projection generations");
                    return;
                }
            };
            act.runners.retain(|_, addr| addr.connected());
            for row in wanted {
                // Generations built for another version of the code are not run here.
                let Some(p) = act.projections.iter().find(|p| {
                    p.name() == row.projection && p.schema_version() == row.schema_version
                }) else {
                    continue;
                };
                for partition in 0..row.partitions {
                    act.runners
                        .entry((p.name(), row.generation, partition))
                        .or_insert_with(|| {
                            ProjectionRunner {
                                slot: Slot {
                                    projection: p.clone(),
                                    generation: row.generation,
                                    partition,
                                    partitions: row.partitions,
                                },
                                log: act.log.clone(),
                                pool: act.pool.clone(),
                                team: act.team.clone(),
                            }
                            .start()
                        });
                }
            }
        }));
    }
}

impl Actor for ProjectionManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.spawn(heartbeat(self.team.clone(), self.pool.clone()).into_actor(self));
        self.tick(ctx);
        ctx.run_interval(RETRY_INTERVAL, |act, ctx| act.tick(ctx));
    }
}

/// Beats for this node from a connection of its own, for as long as the manager runs.
async fn heartbeat(team: Team, pool: PgPool) {
    let mut conn: Option<PgConnection> = None;
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        let beat = match conn.as_mut() {
            Some(c) => team.beat(c).await,
            None => match pool.acquire().await {
                Ok(c) => team.beat(conn.insert(c.detach())).await,
                Err(e) => Err(e),
            },
        };
        if let Err(e) = beat {
            tracing::warn!(error = %e, "projection node heartbeat failed");
            conn = None;
        }
    }
}
