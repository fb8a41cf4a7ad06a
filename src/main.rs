use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use chartvault::cli::{
    self, AuditCommand, Cli, Command, RetentionCommand, TokenCommand, UserCommand,
};
use chartvault::config::LogFormat;
use chartvault::startup::{disable_core_dumps, shutdown_signal, Application, Worker};

fn main() -> anyhow::Result<ExitCode> {
    // A decoder process (see `chartvault_ocr::Sandbox`): nothing else runs first.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == chartvault::config::DecoderConfig::CHILD_ARG)
    {
        std::process::exit(chartvault_ocr::serve_child());
    }
    // Tesseract with OpenMP threads is several times slower here: one engine per core.
    // libgomp reads this variable only when it loads, so scripts/serve.sh exports it; the
    // OCR pool also turns OpenMP off on each engine thread. Set here for child processes.
    if std::env::var_os("OMP_THREAD_LIMIT").is_none() {
        std::env::set_var("OMP_THREAD_LIMIT", "1");
    }
    // Every command may hold keys or decrypted records in memory (serve, verify, backup,
    // restore, keys, user administration, and the clients' answers): no core dumps, before
    // anything else runs.
    if let Err(error) = disable_core_dumps() {
        eprintln!("warning: could not disable core dumps: {error}");
    }
    let cli = Cli::parse();
    // `serve` reads its settings before it logs anything: they say how to log.
    let (default_level, log_format) = match &cli.command {
        Command::Serve { data, .. } | Command::Worker { data } => {
            match cli::load_config(cli.config.as_deref(), data) {
                Ok(config) => ("info", config.server.log_format),
                Err(error) => {
                    eprintln!("error: {error:#}");
                    return Ok(ExitCode::from(2));
                }
            }
        }
        _ => ("warn", LogFormat::Text),
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colours only for a person at a terminal, never into the journal or a file.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match log_format {
        // One JSON object per line: the event's fields at the top level, no ANSI colours.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Text => logs.init(),
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_path = cli.config.as_deref();
    if let Command::Verify { data, json } = &cli.command {
        let config = match cli::load_config(config_path, data) {
            Ok(config) => config,
            Err(error) => {
                eprintln!("error: {error:#}");
                return Ok(ExitCode::from(2));
            }
        };
        return Ok(ExitCode::from(cli::verify(&config, *json).await));
    }
    if let Command::Audit(AuditCommand::Verify { data, json }) = &cli.command {
        let config = match cli::load_config(config_path, data) {
            Ok(config) => config,
            Err(error) => {
                eprintln!("error: {error:#}");
                return Ok(ExitCode::from(2));
            }
        };
        return Ok(ExitCode::from(cli::audit_verify(&config, *json).await));
    }
    run_command(cli).await.map(|()| ExitCode::SUCCESS)
}

async fn run_command(cli: Cli) -> anyhow::Result<()> {
    let config_path = cli.config.as_deref();
    match cli.command {
        Command::Serve { data, listen } => {
            let mut config = cli::load_config(config_path, &data)?;
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            let app = Application::build(config).await?;
            if let Some(token) = &app.first_admin_token {
                // A log line (JSON when the logs are), the token itself on stdout only.
                tracing::warn!("first start: created user 'admin'; its token is on standard output, shown once");
                println!("admin token: {token}");
            }
            if let Some(addr) = app.hl7_addr() {
                println!("hl7 mllp on {addr}");
            }
            println!("listening on {}", app.url());
            app.run_until(shutdown_signal()).await
        }
        Command::Worker { data } => {
            let config = cli::load_config(config_path, &data)?;
            let worker = Worker::build(config).await?;
            worker.run_until(shutdown_signal()).await
        }
        Command::Init { data, admin } => {
            let config = cli::load_config(config_path, &data)?;
            let token = cli::init(&config, &admin).await?;
            eprintln!(
                "initialised the archive in {}. The token of '{admin}' (shown once, keep it safe):",
                config.data_dir.display()
            );
            println!("{token}");
            Ok(())
        }
        Command::User(UserCommand::Add { name, role, data }) => {
            let config = cli::load_config(config_path, &data)?;
            let token = cli::user_add(&config, &name, role).await?;
            println!("{token}");
            Ok(())
        }
        Command::User(UserCommand::Disable { name, data }) => {
            let config = cli::load_config(config_path, &data)?;
            cli::user_disable(&config, &name).await
        }
        Command::Token(TokenCommand::Create { name, data }) => {
            let config = cli::load_config(config_path, &data)?;
            let token = cli::token_create(&config, &name).await?;
            println!("{token}");
            Ok(())
        }
        Command::Token(TokenCommand::Revoke { id, user, data }) => {
            let config = cli::load_config(config_path, &data)?;
            cli::token_revoke(&config, id.as_deref(), user.as_deref()).await
        }
        Command::Ingest {
            files,
            metadata,
            client,
        } => cli::ingest(&files, &metadata, &client).await,
        Command::Keys(command) => {
            let report = cli::keys(config_path, command).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Retention(RetentionCommand::Run { apply, client }) => {
            let report = cli::retention_run(apply, &client).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Search {
            query_file,
            limit,
            client,
        } => cli::search(&query_file, limit, &client).await,
        Command::Verify { .. } | Command::Audit(_) => unreachable!("handled in run"),
        Command::Backup { dest, data } => {
            let config = cli::load_config(config_path, &data)?;
            let summary = chartvault::ops::backup::backup(&config, &dest).await?;
            eprintln!("{}", summary.describe());
            Ok(())
        }
        Command::MigrateStore { to, data } => {
            let source = cli::load_config(config_path, &data)?;
            let target = cli::load_config(Some(&to), &data)?;
            let moved = cli::migrate_store(&source, &target).await?;
            println!("{}", serde_json::to_string_pretty(&moved)?);
            if moved.verify_errors > 0 {
                anyhow::bail!("the target does not verify: {}", moved.verify_summary);
            }
            Ok(())
        }
        Command::Restore {
            src,
            data_dir,
            legacy_backup,
        } => {
            let mut config = cli::load_config(config_path, &cli::DataDirArg { data_dir: None })?;
            config.data_dir = data_dir;
            let summary =
                chartvault::ops::backup::restore_with(&config, &src, legacy_backup).await?;
            eprintln!("{}", summary.describe());
            Ok(())
        }
    }
}
