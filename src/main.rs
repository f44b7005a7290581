use std::collections::HashMap;

use clap::Parser;
use footfall::cli::{self, Cli, Command};
use footfall::config::Config;
use footfall::telemetry;

/// glibc's allocator spent a third of the server's CPU under load (perf, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs a command that is a client of a running footfall: it needs no configuration.
fn run_client(run: impl std::future::Future<Output = Result<(), cli::CliError>>) -> ! {
    telemetry::init_logs(false);
    let system = actix_web::rt::System::new();
    let code = match system.block_on(run) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("footfall: {e}");
            1
        }
    };
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::process::exit(code);
}

fn main() {
    let mut cli = Cli::parse();
    cli.command = match cli.command {
        Command::Loadgen(args) => run_client(cli::loadgen(args)),
        Command::DemoTraffic(args) => run_client(cli::demo_traffic(args)),
        other => other,
    };
    let mut env: HashMap<String, String> = std::env::vars().collect();
    if let Command::Serve { roles: Some(roles) } = &cli.command {
        env.insert("FOOTFALL_ROLES".into(), roles.join(","));
    }
    let config = match Config::load(cli.config.as_deref(), &env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("footfall: configuration error: {e}");
            std::process::exit(2);
        }
    };
    telemetry::init_logs(config.log_json);
    telemetry::metrics();
    // The runtime is kept until the process exits: tearing it down would drop the actors' pooled
    // connections outside it.
    let system = actix_web::rt::System::new();
    let code = match system.block_on(cli::run(cli.command, config)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "footfall failed");
            eprintln!("footfall: {e}");
            1
        }
    };
    // The command is done (a server has drained by now).
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::process::exit(code)
}
