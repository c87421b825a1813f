use std::process::ExitCode;

use clap::Parser;
use purser::cli::{self, Cli};
use purser::config::Config;

/// How long the process waits, after serving stopped, for tasks still running.
const RUNTIME_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn main() -> ExitCode {
    // TLS for RPC, Redis and trace export runs on ring; install it before any client exists.
    purser_chain::rails::ensure_crypto_provider();
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("purser: {err}");
            return ExitCode::from(2);
        }
    };
    // Telemetry first, outside the runtime (its exporter's HTTP client requires that).
    let telemetry =
        match purser::telemetry::init(&config.telemetry, cli.command.log_filter_override()) {
            Ok(telemetry) => telemetry,
            Err(err) => {
                eprintln!("purser: cannot start logging: {err:#}");
                return ExitCode::from(2);
            }
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("purser: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli::run(cli.command, config, &mut std::io::stdout()));
    // Serving drained or gave up on its connections within the grace period already; what is
    // left (a task stuck in a blocking call) must not hold the process.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("purser: {err:#}");
            ExitCode::FAILURE
        }
    }
}
