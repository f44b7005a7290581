//! All wiring happens here: database, event log, actors, services and the HTTP server.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Arbiter};
use actix_web::dev::{Server, Service};
use actix_web::http::ConnectionType;
use actix_web::{web, App, HttpServer};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};
use tokio::signal::unix::{signal, SignalKind};

use crate::api::{self, AppState};
use crate::config::{Config, EventLogKind, Role};
use crate::domain::geo::GeoDb;
use crate::eventlog::appender::Appender;
use crate::eventlog::postgres::PgEventLog;
use crate::eventlog::EventLog;
use crate::projections::{self, generations, ProjectionManager, RollupMerger};
use crate::services::{Collector, Properties, Salts};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid DATABASE_URL: {0}")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error("cannot reach the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("event log: {0}")]
    EventLog(#[from] crate::eventlog::EventLogError),
    #[error("FOOTFALL_GEOIP_DB {path}: {reason}")]
    GeoIp { path: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// The GeoIP database, if one is configured; a configured one that cannot be read stops startup.
pub fn geo_db(config: &Config) -> Result<Option<std::sync::Arc<GeoDb>>, StartupError> {
    let Some(path) = &config.geoip_db else {
        return Ok(None);
    };
    let err = |reason: String| StartupError::GeoIp {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let db = GeoDb::from_bytes(bytes).map_err(err)?;
    tracing::info!(path = %path.display(), "GeoIP database loaded");
    Ok(Some(std::sync::Arc::new(db)))
}

/// How many blocks ahead a query's bitmap heap scans ask the kernel for (`effective_io_concurrency`,
/// PostgreSQL's default 1). A cold breakdown reads its rows from about a thousand scattered blocks
/// of a rollup: one at a time, the current days' page rows of the quick profile's busiest property
/// took 33 ms to read; asking for them ahead, 10–17 ms. Set on each query connection rather than in
/// its startup options: a server without `posix_fadvise` (macOS) refuses any value but 0, and then
/// keeps its own.
const QUERY_PREFETCH: &str = "SET effective_io_concurrency = 128";

/// A database pool of `size` connections to `url`, with the configured timeouts; `prefetch` for
/// the query pools ([`QUERY_PREFETCH`]).
fn pool_on(
    config: &Config,
    workload: &str,
    url: &str,
    size: u32,
    settings: &[(&str, String)],
    prefetch: bool,
) -> Result<PgPool, StartupError> {
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()
        .map_err(StartupError::DatabaseUrl)?
        // Every statement is planned for its parameters: a generic plan of the log's
        // `position > $1 … LIMIT $2` reads is a parallel scan of the whole log. And no JIT: its
        // compile time is longer than our queries. A statement whose connection this process has
        // closed (a read abandoned by its client: `query::reads::Held`) ends within half a second
        // instead of running on for no one.
        .options([
            ("plan_cache_mode", "force_custom_plan"),
            ("jit", "off"),
            ("client_connection_check_interval", "500"),
        ])
        // Names the process and the workload in `pg_stat_activity` (which node leads which
        // projection, say): `footfall/<pid>/<workload>`.
        .application_name(&format!("footfall/{}/{workload}", std::process::id()));
    let options = options.options(settings.iter().map(|(k, v)| (*k, v.as_str())));
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(config.db_timeout);
    let pool = if prefetch {
        pool.after_connect(|conn, _| {
            Box::pin(async move {
                if let Err(e) = conn.execute(QUERY_PREFETCH).await {
                    tracing::debug!(error = %e, "the server keeps its effective_io_concurrency");
                }
                Ok(())
            })
        })
    } else {
        pool
    };
    Ok(pool.connect_lazy_with(options))
}

/// The admin pool: what commands and migrations use.
pub fn pool(config: &Config) -> Result<PgPool, StartupError> {
    pool_on(
        config,
        "admin",
        &config.database_url,
        config.pools.admin,
        &[],
        false,
    )
}

/// One pool per workload, so that none can take another's connections. Pools connect lazily: a
/// node opens only those its roles use.
#[derive(Clone)]
pub struct Pools {
    pub append: PgPool,
    pub project: PgPool,
    /// Statements on it are cancelled after `FOOTFALL_QUERY_TIMEOUT_MS`.
    pub query: PgPool,
    /// One query pool per read replica (`FOOTFALL_QUERY_DATABASE_URL`).
    pub replicas: Vec<PgPool>,
    pub admin: PgPool,
}

impl Pools {
    pub fn new(config: &Config) -> Result<Self, StartupError> {
        let (sizes, primary) = (config.pools, config.database_url.as_str());
        let query = [(
            "statement_timeout",
            config.query_timeout.as_millis().to_string(),
        )];
        Ok(Self {
            append: pool_on(config, "append", primary, sizes.append, &[], false)?,
            // A node frozen inside a transaction (the manager's, holding the generations lock;
            // the merger's) holds up the other nodes' switches and merges: its session ends after
            // 30 s, as a frozen leader's does. Its commits do not wait for the disk: all it writes
            // is derived from the log, and each transaction holds its checkpoint (a runner's) or
            // the list of what it merged (the merger's) with its writes, so a commit lost in a
            // crash (at most the last few hundred milliseconds') is done again, exactly once.
            // PostgreSQL waits for the disk anyway where a transaction drops tables.
            project: pool_on(
                config,
                "project",
                primary,
                sizes.project,
                &[
                    ("idle_in_transaction_session_timeout", "30s".into()),
                    ("synchronous_commit", "off".into()),
                ],
                false,
            )?,
            query: pool_on(config, "query", primary, sizes.query, &query, true)?,
            replicas: config
                .query_database_urls
                .iter()
                .map(|url| pool_on(config, "query", url, sizes.query, &query, true))
                .collect::<Result<_, _>>()?,
            admin: pool(config)?,
        })
    }
}

/// Applies the embedded migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), StartupError> {
    sqlx::migrate!("./migrations").run(pool).await?;
    crate::eventlog::postgres::convert_legacy_events(pool).await?;
    Ok(())
}

/// The configured event-log adapter (on the append pool).
fn event_log(config: &Config, pool: &PgPool) -> Result<Arc<dyn EventLog>, StartupError> {
    Ok(match &config.event_log {
        EventLogKind::Postgres => Arc::new(PgEventLog::with_timeouts(
            pool.clone(),
            crate::eventlog::postgres::AppendTimeouts {
                // A batch gives up on a held lock about when its callers would have.
                lock: config.appender.ack_timeout,
                statement: config.appender.ack_timeout * 2,
            },
        )),
        #[cfg(feature = "kurrentdb")]
        EventLogKind::KurrentDb { url } => {
            Arc::new(crate::eventlog::kurrentdb::KurrentEventLog::connect(url)?)
        }
        // Config::load refuses `kurrentdb` in builds without the adapter.
        #[cfg(not(feature = "kurrentdb"))]
        EventLogKind::KurrentDb { .. } => {
            return Err(crate::eventlog::EventLogError::Unavailable(
                "built without the kurrentdb feature".into(),
            )
            .into())
        }
    })
}

/// The parts of footfall that commands and the server share.
pub struct Core {
    pub pools: Pools,
    pub log: Arc<dyn EventLog>,
    pub properties: Properties,
}

impl Core {
    /// Connects, migrates, and starts the projection runners (they run on one node at a time).
    pub async fn start(config: &Config, project: bool) -> Result<Self, StartupError> {
        let pools = Pools::new(config)?;
        migrate(&pools.admin).await?;
        let log = event_log(config, &pools.append)?;
        for p in projections::all() {
            generations::ensure_live(&pools.admin, &*p, config.projection_partitions).await?;
        }
        if project {
            let hits = projections::hits::HitsProjection {
                max_prop_keys: config.max_prop_keys,
                ..Default::default()
            };
            ProjectionManager::new(
                projections::configured(hits),
                log.clone(),
                pools.project.clone(),
            )
            .start();
            RollupMerger::new(pools.project.clone(), log.clone()).start();
        }
        let properties = Properties::new(
            log.clone(),
            pools.append.clone(),
            config.property_cache_bytes,
        );
        Ok(Self {
            pools,
            log,
            properties,
        })
    }
}

pub struct Application {
    server: Server,
    port: u16,
    appender: Addr<Appender>,
    /// The appender's thread (see [`Application::build`]).
    appender_thread: Arbiter,
    /// Set on SIGTERM/SIGINT: every answer from then on closes its connection.
    closing: Arc<AtomicBool>,
}

/// After SIGTERM, how long the node keeps serving, each answer with `Connection: close`, before it
/// stops accepting. A keep-alive client or proxy sends nothing more on a connection whose answer
/// said close, so a request written just before the signal is answered, not dropped unread when
/// the connection is closed. Shorter than a second: connections opened a second after SIGTERM are
/// not served.
const CLOSE_WINDOW: Duration = Duration::from_millis(500);

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        crate::telemetry::metrics();
        let core = Core::start(&config, config.has_role(Role::Project)).await?;
        core.properties.follow_changes().await?;
        // The appender has a thread of its own. On the main thread, beside the projection runners
        // (reading and decoding batches of the log, encoding their writes) and the merger, its
        // batches queued behind whatever they were doing: at 5,000 hits/s that thread is busy
        // about 60 % of the time (requests' p99 there: median 51 ms, against 38 on a thread of its
        // own; BENCHMARKS.md).
        let appender_thread = Arbiter::new();
        let appender = {
            let (log, config) = (core.log.clone(), config.appender);
            Appender::start_in_arbiter(&appender_thread.handle(), move |_| {
                Appender::new(log, config)
            })
        };
        let geo = geo_db(&config)?;
        let collector = Collector::new(
            core.properties.clone(),
            Salts::new(core.pools.append.clone()),
            appender.clone(),
            config.appender.ack_timeout,
            geo.clone(),
        );
        let state = web::Data::new(AppState {
            collector,
            imports: crate::services::Imports::new(core.log.clone(), core.pools.admin.clone(), geo),
            properties: core.properties,
            log: core.log,
            reports: crate::query::cache::Reports::new(
                crate::query::reads::Reads::new(core.pools.query.clone(), core.pools.replicas),
                config.report_cache_bytes,
            ),
            query_pool: core.pools.query,
            pool: core.pools.admin,
            admin_token: config.admin_token.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            projection_partitions: config.projection_partitions,
        });
        if state.admin_token.is_none() && config.has_role(Role::Admin) {
            tracing::warn!("FOOTFALL_ADMIN_TOKEN is not set: the admin API refuses every request");
        }

        let listener = TcpListener::bind(config.listen).map_err(|source| StartupError::Listen {
            addr: config.listen.to_string(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                addr: config.listen.to_string(),
                source,
            })?;
        let roles = config.roles.clone();
        let closing = Arc::new(AtomicBool::new(false));
        let closing_in_app = closing.clone();
        let server = HttpServer::new(move || {
            let roles = roles.clone();
            let closing = closing_in_app.clone();
            App::new()
                .wrap_fn(move |req, service| {
                    let answer = service.call(req);
                    let closing = closing.clone();
                    async move {
                        let mut answer = answer.await?;
                        if closing.load(Ordering::Relaxed) {
                            let head = answer.response_mut().head_mut();
                            head.set_connection_type(ConnectionType::Close);
                        }
                        Ok(answer)
                    }
                })
                .app_data(state.clone())
                .configure(move |cfg| api::routes(cfg, &roles))
                .default_service(web::to(api::not_found))
        })
        .on_connect(api::client::on_connect)
        .listen(listener)
        .map_err(|source| StartupError::Listen {
            addr: config.listen.to_string(),
            source,
        })?
        .workers(config.workers)
        .disable_signals()
        // On SIGTERM, requests already received get this long to be answered; a request waits at
        // most the append timeout in the queue and a batch's lock timeout after it, so 10 s
        // covers them with the defaults (5 s each), and the process is gone within 10 s.
        .shutdown_timeout(10)
        .run();
        tracing::info!(addr = %port, roles = ?config.roles, "footfall serving");
        Ok(Self {
            server,
            port: port.port(),
            appender,
            appender_thread,
            closing,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM; then answers with `Connection: close` for [`CLOSE_WINDOW`],
    /// stops accepting, drains in-flight requests (each one waits for its hits to be durable) and
    /// returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (handle, closing) = (self.server.handle(), self.closing);
        actix_web::rt::spawn(async move {
            let mut terminate = match signal(SignalKind::terminate()) {
                Ok(terminate) => terminate,
                Err(e) => return tracing::error!(error = %e, "cannot listen for SIGTERM"),
            };
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("stopping: answers close their connections, then draining");
            closing.store(true, Ordering::Relaxed);
            tokio::time::sleep(CLOSE_WINDOW).await;
            handle.stop(true).await;
        });
        let result = self.server.await;
        // Every request was answered, so no batch is pending.
        drop(self.appender);
        self.appender_thread.stop();
        if self.appender_thread.join().is_err() {
            tracing::error!("the appender's thread panicked");
        }
        result
    }
}
