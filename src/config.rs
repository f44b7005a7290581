//! Configuration: an optional file of `KEY=VALUE` lines overlaid by environment variables, with the
//! same keys (`DATABASE_URL`, `FOOTFALL_*`). Validated once, at startup. `Config::load` takes the
//! environment as an argument so that tests can inject it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{key} has an invalid value `{value}`: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot read config file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// What a node does. `serve --roles` picks a subset; by default a node does everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Collect,
    Project,
    Query,
    Admin,
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "collect" => Ok(Self::Collect),
            "project" => Ok(Self::Project),
            "query" => Ok(Self::Query),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown role `{other}` (collect, project, query, admin)"
            )),
        }
    }
}

/// Which adapter holds the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventLogKind {
    /// The `events` table in `DATABASE_URL` (the default).
    Postgres,
    /// An EventStoreDB/KurrentDB server (builds with the `kurrentdb` feature).
    KurrentDb { url: String },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    /// `FOOTFALL_QUERY_DATABASE_URL`: streaming read replicas (comma-separated) that answer
    /// reports; appends, projections and everything else stay on `DATABASE_URL`.
    pub query_database_urls: Vec<String>,
    /// `FOOTFALL_EVENT_LOG`: `postgres` (default) or `kurrentdb` with `FOOTFALL_KURRENTDB_URL`.
    pub event_log: EventLogKind,
    pub listen: SocketAddr,
    /// Bearer token for `/api/admin`. Without one, the admin API refuses every request.
    pub admin_token: Option<String>,
    pub roles: Vec<Role>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub workers: usize,
    /// Connections of each workload's pool, so that none can take another's.
    pub pools: PoolSizes,
    /// `FOOTFALL_QUERY_TIMEOUT_MS` (default 10 s): the longest a report's statement may run; a
    /// query that takes longer is answered `503 query_timeout`.
    pub query_timeout: Duration,
    /// `FOOTFALL_PROPERTY_CACHE_MB` (default 64): the bytes a node's property cache may hold.
    pub property_cache_bytes: usize,
    /// `FOOTFALL_REPORT_CACHE_MB` (default 256): the bytes of shared report answers a node keeps.
    pub report_cache_bytes: usize,
    /// `FOOTFALL_PROJECTION_PARTITIONS` (1–64, default: the cores): how many runners build a
    /// partitioned projection's new generations. A running generation keeps the count it was
    /// created with; a rebuild takes the new one.
    pub projection_partitions: i32,
    /// `FOOTFALL_MAX_PROP_KEYS` (0–1000, default 50): the distinct prop keys per property (and
    /// projection partition) whose values get rollups; the others stay in the enriched hits.
    pub max_prop_keys: usize,
    /// How long to wait for a database connection before answering 503.
    pub db_timeout: Duration,
    pub appender: AppenderConfig,
    pub log_json: bool,
    /// `FOOTFALL_GEOIP_DB`: a MaxMind-format city database; without one, geo stays empty.
    pub geoip_db: Option<std::path::PathBuf>,
}

/// `FOOTFALL_DB_POOL_{APPEND,PROJECT,QUERY,ADMIN}`: connections per workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSizes {
    /// Appends to the log, and collection's lookups of properties and salts.
    pub append: u32,
    /// Projection batches and the rollup merger (each runner's lock connection comes on top).
    pub project: u32,
    /// Reports.
    pub query: u32,
    /// The admin API, health checks, imports and exports.
    pub admin: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct AppenderConfig {
    /// Most events in one append transaction.
    pub max_batch: usize,
    /// Longest a hit waits for companions before its batch is written.
    pub max_wait: Duration,
    /// Requests that may queue for the appender before collection answers 503.
    pub queue_capacity: usize,
    /// Longest a request waits for its hit to be durable before it gets 503.
    pub ack_timeout: Duration,
}

impl Default for AppenderConfig {
    fn default() -> Self {
        Self {
            max_batch: 5000,
            max_wait: Duration::from_millis(2),
            queue_capacity: 50_000,
            ack_timeout: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// Reads `file` (if given) and overlays `env`.
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut vars = match file {
            Some(path) => parse_file(path)?,
            None => HashMap::new(),
        };
        vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let get = |key: &str| vars.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());

        let database_url = get("DATABASE_URL")
            .ok_or(ConfigError::Missing("DATABASE_URL"))?
            .to_owned();
        let listen = parse_or(
            get("FOOTFALL_LISTEN"),
            "FOOTFALL_LISTEN",
            "127.0.0.1:8000".parse().ok(),
        )?;
        let roles = match get("FOOTFALL_ROLES") {
            None => vec![Role::Collect, Role::Project, Role::Query, Role::Admin],
            Some(v) => v
                .split(',')
                .map(Role::from_str)
                .collect::<Result<_, _>>()
                .map_err(|reason| invalid("FOOTFALL_ROLES", v, reason))?,
        };
        let trusted_proxies = match get("FOOTFALL_TRUSTED_PROXIES") {
            None => vec![],
            Some(v) => v
                .split(',')
                .map(|c| parse_cidr(c.trim()))
                .collect::<Result<_, _>>()
                .map_err(|reason| invalid("FOOTFALL_TRUSTED_PROXIES", v, reason))?,
        };
        let defaults = AppenderConfig::default();
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let event_log = match get("FOOTFALL_EVENT_LOG") {
            None | Some("postgres") => EventLogKind::Postgres,
            Some("kurrentdb") if !cfg!(feature = "kurrentdb") => {
                return Err(invalid(
                    "FOOTFALL_EVENT_LOG",
                    "kurrentdb",
                    "this build has no KurrentDB adapter (cargo build --features kurrentdb)".into(),
                ))
            }
            Some("kurrentdb") => EventLogKind::KurrentDb {
                url: get("FOOTFALL_KURRENTDB_URL")
                    .ok_or(ConfigError::Missing("FOOTFALL_KURRENTDB_URL"))?
                    .to_owned(),
            },
            Some(v) => {
                return Err(invalid(
                    "FOOTFALL_EVENT_LOG",
                    v,
                    "postgres or kurrentdb".into(),
                ))
            }
        };
        Ok(Self {
            database_url,
            query_database_urls: get("FOOTFALL_QUERY_DATABASE_URL")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|u| !u.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            event_log,
            listen,
            admin_token: get("FOOTFALL_ADMIN_TOKEN").map(str::to_owned),
            geoip_db: get("FOOTFALL_GEOIP_DB").map(std::path::PathBuf::from),
            roles,
            trusted_proxies,
            workers: parse_or(get("FOOTFALL_WORKERS"), "FOOTFALL_WORKERS", Some(workers))?,
            pools: PoolSizes {
                append: pool_size(
                    get("FOOTFALL_DB_POOL_APPEND"),
                    "FOOTFALL_DB_POOL_APPEND",
                    16,
                )?,
                project: pool_size(
                    get("FOOTFALL_DB_POOL_PROJECT"),
                    "FOOTFALL_DB_POOL_PROJECT",
                    8,
                )?,
                query: pool_size(get("FOOTFALL_DB_POOL_QUERY"), "FOOTFALL_DB_POOL_QUERY", 16)?,
                admin: pool_size(get("FOOTFALL_DB_POOL_ADMIN"), "FOOTFALL_DB_POOL_ADMIN", 4)?,
            },
            query_timeout: millis(
                get("FOOTFALL_QUERY_TIMEOUT_MS"),
                "FOOTFALL_QUERY_TIMEOUT_MS",
                10_000,
            )?,
            property_cache_bytes: megabytes(
                get("FOOTFALL_PROPERTY_CACHE_MB"),
                "FOOTFALL_PROPERTY_CACHE_MB",
                64,
            )?,
            report_cache_bytes: megabytes(
                get("FOOTFALL_REPORT_CACHE_MB"),
                "FOOTFALL_REPORT_CACHE_MB",
                256,
            )?,
            projection_partitions: within(
                get("FOOTFALL_PROJECTION_PARTITIONS"),
                "FOOTFALL_PROJECTION_PARTITIONS",
                workers.clamp(1, 64) as i32,
                1..=64,
            )?,
            max_prop_keys: within(
                get("FOOTFALL_MAX_PROP_KEYS"),
                "FOOTFALL_MAX_PROP_KEYS",
                crate::readmodel::schema::DEFAULT_MAX_PROP_KEYS,
                0..=1000,
            )?,
            db_timeout: millis(
                get("FOOTFALL_DB_TIMEOUT_MS"),
                "FOOTFALL_DB_TIMEOUT_MS",
                3000,
            )?,
            appender: AppenderConfig {
                max_batch: parse_or(
                    get("FOOTFALL_APPEND_MAX_BATCH"),
                    "FOOTFALL_APPEND_MAX_BATCH",
                    Some(defaults.max_batch),
                )?,
                max_wait: millis(
                    get("FOOTFALL_APPEND_MAX_WAIT_MS"),
                    "FOOTFALL_APPEND_MAX_WAIT_MS",
                    2,
                )?,
                queue_capacity: parse_or(
                    get("FOOTFALL_APPEND_QUEUE"),
                    "FOOTFALL_APPEND_QUEUE",
                    Some(defaults.queue_capacity),
                )?,
                ack_timeout: millis(
                    get("FOOTFALL_APPEND_TIMEOUT_MS"),
                    "FOOTFALL_APPEND_TIMEOUT_MS",
                    5000,
                )?,
            },
            log_json: match get("FOOTFALL_LOG_FORMAT") {
                None | Some("text") => false,
                Some("json") => true,
                Some(v) => return Err(invalid("FOOTFALL_LOG_FORMAT", v, "text or json".into())),
            },
        })
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

fn invalid(key: &'static str, value: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_owned(),
        reason,
    }
}

fn parse_or<T: FromStr>(
    v: Option<&str>,
    key: &'static str,
    default: Option<T>,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match v {
        Some(v) => v
            .parse()
            .map_err(|e: T::Err| invalid(key, v, e.to_string())),
        None => default.ok_or(ConfigError::Missing(key)),
    }
}

/// A number in `range`, or `default` when unset.
fn within<T>(
    v: Option<&str>,
    key: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let n = parse_or(v, key, Some(default))?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(invalid(
            key,
            &n.to_string(),
            format!("{} to {}", range.start(), range.end()),
        ))
    }
}

fn pool_size(v: Option<&str>, key: &'static str, default: u32) -> Result<u32, ConfigError> {
    match parse_or(v, key, Some(default))? {
        0 => Err(invalid(key, "0", "at least 1".into())),
        n => Ok(n),
    }
}

fn megabytes(v: Option<&str>, key: &'static str, default: usize) -> Result<usize, ConfigError> {
    parse_or(v, key, Some(default)).map(|mb: usize| mb.saturating_mul(1 << 20))
}

fn millis(v: Option<&str>, key: &'static str, default: u64) -> Result<Duration, ConfigError> {
    parse_or(v, key, Some(default)).map(Duration::from_millis)
}

/// A CIDR, or a bare address meaning just that host.
fn parse_cidr(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is not a CIDR"))
}

fn parse_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
        path: path.display().to_string(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_apply_and_database_url_is_required() {
        assert!(matches!(
            Config::load(None, &env(&[])),
            Err(ConfigError::Missing("DATABASE_URL"))
        ));
        let c = Config::load(None, &env(&[("DATABASE_URL", "postgres://x")])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.roles.len(), 4);
        assert!(c.admin_token.is_none());
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = Config::load(
            None,
            &env(&[
                ("DATABASE_URL", "postgres://x"),
                ("FOOTFALL_ROLES", "collect,bake"),
            ]),
        )
        .unwrap_err();
        assert!(matches!(
            e,
            ConfigError::Invalid {
                key: "FOOTFALL_ROLES",
                ..
            }
        ));
        let e = Config::load(
            None,
            &env(&[
                ("DATABASE_URL", "postgres://x"),
                ("FOOTFALL_TRUSTED_PROXIES", "10.0.0.0/33"),
            ]),
        )
        .unwrap_err();
        assert!(matches!(
            e,
            ConfigError::Invalid {
                key: "FOOTFALL_TRUSTED_PROXIES",
                ..
            }
        ));
    }

    #[test]
    fn the_event_log_adapter_is_chosen_by_name() {
        let c = Config::load(None, &env(&[("DATABASE_URL", "x")])).unwrap();
        assert_eq!(c.event_log, EventLogKind::Postgres);
        let e = Config::load(
            None,
            &env(&[("DATABASE_URL", "x"), ("FOOTFALL_EVENT_LOG", "mongo")]),
        )
        .unwrap_err();
        assert!(matches!(
            e,
            ConfigError::Invalid {
                key: "FOOTFALL_EVENT_LOG",
                ..
            }
        ));
        let kurrent = Config::load(
            None,
            &env(&[("DATABASE_URL", "x"), ("FOOTFALL_EVENT_LOG", "kurrentdb")]),
        );
        if cfg!(feature = "kurrentdb") {
            assert!(matches!(
                kurrent,
                Err(ConfigError::Missing("FOOTFALL_KURRENTDB_URL"))
            ));
        } else {
            assert!(matches!(
                kurrent,
                Err(ConfigError::Invalid {
                    key: "FOOTFALL_EVENT_LOG",
                    ..
                })
            ));
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let path = std::env::temp_dir().join(format!("footfall-{}.env", uuid::Uuid::new_v4()));
        std::fs::write(
            &path,
            "# comment\nDATABASE_URL=postgres://file\nFOOTFALL_LISTEN=0.0.0.0:9000\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), &env(&[("FOOTFALL_LISTEN", "127.0.0.1:1")])).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(c.database_url, "postgres://file");
        assert_eq!(c.listen.to_string(), "127.0.0.1:1");
    }

    #[test]
    fn trusted_proxies_take_cidrs_and_addresses() {
        let c = Config::load(
            None,
            &env(&[
                ("DATABASE_URL", "x"),
                ("FOOTFALL_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(c.trusted_proxies[1].contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap()));
    }
}
