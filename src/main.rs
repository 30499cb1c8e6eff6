//! The `giftcodes` binary: parse the command line, then serve, migrate, probe or print the spec.
use clap::Parser;
use giftcodes::config::{Cli, Command};

/// mimalloc instead of the system allocator: each claim allocates and frees many small
/// buffers (HTTP, JSON, the round's lists), and glibc's malloc took about a sixth of the
/// service's CPU at saturation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` print and exit successfully.
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("giftcodes: {}", first.trim_start_matches("error: "));
            return std::process::ExitCode::from(2);
        }
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = cli.settings.worker_threads {
        runtime.worker_threads(usize::from(threads));
    }
    match runtime.build() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(err) => {
            eprintln!("giftcodes: could not start the runtime: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the command the command line asked for.
async fn run(cli: Cli) -> std::process::ExitCode {
    let command = cli.command.unwrap_or(Command::Serve);
    let result: Result<(), Box<dyn std::error::Error>> = match command {
        Command::Openapi => {
            print!("{}", giftcodes::api::openapi_yaml());
            Ok(())
        }
        Command::Healthcheck => giftcodes::healthcheck::probe(cli.settings.listen)
            .await
            .map_err(Into::into),
        Command::Migrate => {
            giftcodes::telemetry::init(&cli.settings.log_format);
            giftcodes::startup::migrate(&cli.settings)
                .await
                .map_err(Into::into)
        }
        Command::Serve => {
            giftcodes::telemetry::init(&cli.settings.log_format);
            giftcodes::startup::serve(cli.settings)
                .await
                .map_err(Into::into)
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("giftcodes: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
