//! The `footfall` command line: `serve`, `migrate`, `property`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::domain::Domain;
use crate::eventlog::EventLogError;
use crate::import::access_log::Format;
use crate::projections::{self, generations, generations::RebuildError};
use crate::services::imports::{decompressed, Archive, Source};
use crate::services::{Imports, RegisterError};
use crate::startup::{self, Application, Core};

#[derive(Parser)]
#[command(name = "footfall", version, about = "Event-sourced web analytics")]
pub struct Cli {
    /// A file of KEY=VALUE lines; environment variables override it.
    #[arg(long, global = true, env = "FOOTFALL_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Migrate the database, then serve HTTP (and run projections, with the `project` role).
    Serve {
        /// Roles of this node: collect, project, query, admin (default: all). Overrides FOOTFALL_ROLES.
        #[arg(long, value_delimiter = ',')]
        roles: Option<Vec<String>>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage properties.
    #[command(subcommand)]
    Property(PropertyCommand),
    /// Drive a running footfall with realistic traffic and report throughput and latency.
    Loadgen(LoadgenArgs),
    /// Fill a demo property of a running footfall with a few days of synthetic traffic (once), and
    /// print its dashboard URL.
    DemoTraffic(DemoTrafficArgs),
    /// Import history into a property.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Rebuild a projection's read models from the event log, without downtime, with a progress
    /// bar. The rebuild runs on whichever node leads it: a running server, or this command.
    Rebuild {
        /// The projection: `hits`, `properties` or `shared_links`.
        name: String,
    },
}

#[derive(clap::Args)]
pub struct LoadgenArgs {
    /// The footfall to load.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Registers the properties it needs (`p<i>.loadgen.example`) with this token.
    #[arg(long, env = "FOOTFALL_ADMIN_TOKEN")]
    pub admin_token: String,
    /// Properties to spread traffic over (Zipf-distributed).
    #[arg(long, default_value_t = 100_000)]
    pub properties: usize,
    /// Closed loop: clients sending without pause.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Open loop: hits per second on a fixed schedule (instead of --concurrency).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds to run.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Stop after this many hits.
    #[arg(long)]
    pub hits: Option<u64>,
    /// Protocol mix.
    #[arg(long, value_delimiter = ',', default_value = "plausible,umami,gtag")]
    pub protocols: Vec<crate::loadgen::Wire>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The traffic: `typical` or `high-cardinality`.
    #[arg(long, default_value = "typical")]
    pub traffic: crate::loadgen::Mix,
    /// Props under random keys added to every custom event.
    #[arg(long, default_value_t = 0)]
    pub random_prop_keys: usize,
    /// Give every page URL a random query string of about 800 characters (GA4 takes page URLs of up
    /// to 1,000).
    #[arg(long)]
    pub long_urls: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct DemoTrafficArgs {
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    #[arg(long, env = "FOOTFALL_ADMIN_TOKEN")]
    pub admin_token: String,
    #[arg(long, default_value = "demo.localhost")]
    pub domain: String,
    /// Days back to fill, 1 to 3.
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    #[arg(long, default_value_t = 150)]
    pub visits_per_day: u32,
    /// Send nothing; only print the dashboard URL.
    #[arg(long)]
    pub no_traffic: bool,
}

/// Sends the demo traffic; like the load generator, it is a client and needs no configuration.
pub async fn demo_traffic(args: DemoTrafficArgs) -> Result<(), CliError> {
    let out = crate::demo::run(crate::demo::Options {
        url: args.url.trim_end_matches('/').to_owned(),
        admin_token: args.admin_token,
        domain: args.domain,
        days: args.days,
        visits_per_day: args.visits_per_day,
        no_traffic: args.no_traffic,
    })
    .await?;
    writeln!(std::io::stdout(), "{out}")?;
    Ok(())
}

/// Runs the load generator; it needs no database, so no configuration.
pub async fn loadgen(args: LoadgenArgs) -> Result<(), CliError> {
    let report = crate::loadgen::run(crate::loadgen::Options {
        url: args.url.trim_end_matches('/').to_owned(),
        admin_token: args.admin_token,
        properties: args.properties,
        concurrency: args.concurrency,
        rate: args.rate,
        duration: std::time::Duration::from_secs_f64(args.duration.max(0.0)),
        hits: args.hits,
        protocols: args.protocols,
        seed: args.seed,
        traffic: args.traffic,
        random_prop_keys: args.random_prop_keys,
        long_urls: args.long_urls,
    })
    .await?;
    if args.json {
        print_json(&report)
    } else {
        writeln!(std::io::stdout(), "{}", report.text())?;
        Ok(())
    }
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Import nginx or Apache access logs: successful GETs of pages become pageviews, by their own
    /// time. Files may be gzipped; `-` reads standard input. Importing a file again changes nothing.
    AccessLog {
        #[arg(long)]
        domain: String,
        /// `combined`, `common` or `json`.
        #[arg(long, default_value = "combined")]
        format: String,
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Import Plausible's CSV export (a zip, a folder of its CSV files, or one of them) as
    /// imported aggregates, which queries include with `include.imports`. Importing the same
    /// export again changes nothing.
    PlausibleCsv {
        #[arg(long)]
        domain: String,
        #[arg(required = true)]
        path: String,
    },
}

#[derive(Subcommand)]
pub enum PropertyCommand {
    /// Register a property and print it as JSON.
    Add {
        #[arg(long)]
        domain: String,
        #[arg(long, default_value = "UTC")]
        timezone: String,
        #[arg(long)]
        name: Option<String>,
        /// Minutes without a hit that end a visit (default 30).
        #[arg(long)]
        session_timeout_minutes: Option<u32>,
        /// If the domain is taken, print the existing property instead of failing.
        #[arg(long)]
        if_absent: bool,
    },
    /// Print properties as JSON.
    List {
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Startup(#[from] startup::StartupError),
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
    #[error(transparent)]
    Log(#[from] EventLogError),
    #[error(transparent)]
    Loadgen(#[from] crate::loadgen::LoadgenError),
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    #[error(transparent)]
    Import(#[from] crate::services::ImportError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Archive(#[from] crate::services::imports::ArchiveError),
    #[error("no projection `{0}` (known: hits, imported, properties, shared_links)")]
    UnknownProjection(String),
}

pub async fn run(command: Command, config: Config) -> Result<(), CliError> {
    match command {
        Command::Loadgen(args) => loadgen(args).await?,
        Command::DemoTraffic(args) => demo_traffic(args).await?,
        Command::Serve { .. } => {
            Application::build(config)
                .await?
                .run_until_stopped()
                .await?
        }
        Command::Migrate => {
            startup::migrate(&startup::pool(&config)?).await?;
            tracing::info!("migrations applied");
        }
        Command::Property(PropertyCommand::Add {
            domain,
            timezone,
            name,
            session_timeout_minutes,
            if_absent,
        }) => {
            // Runs the properties projection too (it waits if a server already leads it), so the
            // property is usable as soon as this returns.
            let core = Core::start(&config, true).await?;
            let property = match core
                .properties
                .register(&domain, &timezone, name.as_deref(), session_timeout_minutes)
                .await
            {
                Err(RegisterError::DomainTaken(_)) if if_absent => {
                    let domain = Domain::parse(&domain).map_err(RegisterError::from)?;
                    match core.properties.by_domain(&domain).await? {
                        Some(existing) => (*existing).clone(),
                        None => return Err(RegisterError::DomainTaken(domain.to_string()).into()),
                    }
                }
                other => other?,
            };
            print_json(&property)?;
        }
        Command::Rebuild { name } => {
            let projection =
                projections::by_name(&name).ok_or(CliError::UnknownProjection(name))?;
            let core = Core::start(&config, true).await?;
            let generation = generations::start_rebuild(
                &core.pools.admin,
                &*projection,
                config.projection_partitions,
            )
            .await?;
            tracing::info!(
                projection = projection.name(),
                generation,
                "rebuild started"
            );
            rebuild_progress(&core, projection.name(), generation).await?;
        }
        Command::Import(ImportCommand::AccessLog {
            domain,
            format,
            files,
        }) => {
            let format = Format::parse(&format)
                .ok_or_else(|| CliError::Usage(format!("unknown format `{format}`")))?;
            let core = Core::start(&config, false).await?;
            let property = core
                .properties
                .by_domain(&Domain::parse(&domain).map_err(RegisterError::from)?)
                .await?
                .ok_or_else(|| CliError::Usage(format!("no property `{domain}`")))?;
            let imports = Imports::new(
                core.log.clone(),
                core.pools.admin.clone(),
                startup::geo_db(&config)?,
            );
            for file in files {
                let (source, reader) = open_log(&file)?;
                let id = imports.begin(&property, "access_log", &source).await?;
                let started = std::time::Instant::now();
                let mut err = std::io::stderr();
                let counts = imports
                    .access_log(id, &property, format, &source, reader, |c| {
                        let rate = c.lines as f64 / started.elapsed().as_secs_f64().max(1e-3);
                        let _ = write!(
                            err,
                            "\r{file}: {} lines, {} pageviews, {rate:.0} lines/s   ",
                            c.lines, c.pageviews
                        );
                    })
                    .await?;
                let _ = writeln!(err);
                let seconds = started.elapsed().as_secs_f64();
                print_json(
                    &serde_json::json!({"import": id, "file": file, "counts": counts,
                    "seconds": seconds, "lines_per_second": counts.lines as f64 / seconds.max(1e-9)}),
                )?;
            }
        }
        Command::Import(ImportCommand::PlausibleCsv { domain, path }) => {
            let archive = if std::path::Path::new(&path).is_dir() {
                Archive::from_dir(std::path::Path::new(&path))?
            } else {
                Archive::from_bytes(&path, &std::fs::read(&path)?)?
            };
            let core = Core::start(&config, false).await?;
            let property = core
                .properties
                .by_domain(&Domain::parse(&domain).map_err(RegisterError::from)?)
                .await?
                .ok_or_else(|| CliError::Usage(format!("no property `{domain}`")))?;
            let imports = Imports::new(core.log.clone(), core.pools.admin.clone(), None);
            let id = imports.begin_aggregates(&property, &archive).await?;
            let mut err = std::io::stderr();
            let counts = imports
                .plausible_csv(id, &property, &archive, |c| {
                    let _ = write!(err, "\r{path}: {} files, {} rows   ", c.files, c.lines);
                })
                .await?;
            let _ = writeln!(err);
            print_json(&serde_json::json!({"import": id, "path": path, "counts": counts}))?;
        }
        Command::Property(PropertyCommand::List { limit }) => {
            let core = Core::start(&config, false).await?;
            print_json(&core.properties.list(None, limit).await?)?;
        }
    }
    Ok(())
}

/// Draws a progress bar on stderr until the new generation is live.
async fn rebuild_progress(core: &Core, name: &str, generation: i32) -> Result<(), CliError> {
    let mut err = std::io::stderr().lock();
    loop {
        let head = core.log.head().await?.position;
        let status = generations::status(&core.pools.admin, head).await?;
        let Some(p) = status.iter().find(|p| p.name == name) else {
            return Err(CliError::UnknownProjection(name.to_owned()));
        };
        match &p.rebuild {
            Some(r) if r.generation == generation => {
                let done = if p.head == 0 {
                    1.0
                } else {
                    r.checkpoint as f64 / p.head as f64
                };
                let filled = (done * 30.0).round() as usize;
                let eta = r
                    .eta_seconds
                    .map_or_else(|| "?".to_owned(), |s| format!("{s:.0}s"));
                write!(
                    err,
                    "\r[{}{}] {:5.1}%  {}/{} events  {:.0} events/s  ETA {eta}   ",
                    "#".repeat(filled.min(30)),
                    "-".repeat(30 - filled.min(30)),
                    done * 100.0,
                    r.checkpoint,
                    p.head,
                    r.events_per_second
                )?;
            }
            _ if p.generation >= generation => {
                writeln!(
                    err,
                    "\rrebuilt `{name}`: generation {} is live at position {}{}",
                    p.generation,
                    p.checkpoint,
                    " ".repeat(40)
                )?;
                return Ok(());
            }
            _ => {}
        }
        err.flush()?;
        tokio::time::sleep(std::time::Duration::from_millis(250)).await; // refresh interval
    }
}

/// A log file (or `-`, standard input) with its content hash, decompressed if gzipped. A file is
/// read twice (its hash first, then its lines), so it never has to fit in memory; standard input
/// is read into memory.
fn open_log(file: &str) -> Result<(Source, Box<dyn std::io::BufRead>), CliError> {
    use std::io::Read;
    if file == "-" {
        let mut all = Vec::new();
        std::io::stdin().lock().read_to_end(&mut all)?;
        let source = Source::read(file, decompressed(std::io::Cursor::new(&all))?)?;
        return Ok((source, decompressed(std::io::Cursor::new(all))?));
    }
    let source = Source::read(file, decompressed(std::fs::File::open(file)?)?)?;
    Ok((source, decompressed(std::fs::File::open(file)?)?))
}

fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}
