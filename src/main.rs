//! The `gregor` binary: parse the command line (or the Kafka script name it
//! was invoked by), then run the chosen role. Exit codes: 0 success,
//! 1 runtime failure, 2 bad configuration or usage.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gregor::config::{self, ConfigSources, LogFormat};
use tokio::sync::watch;

/// An Apache Kafka-compatible broker, coordinator and tools in one binary.
#[derive(Parser, Debug)]
#[command(name = "gregor", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker (with an embedded coordinator unless one is named).
    Broker(BrokerArgs),
    /// Run the cluster coordinator (ZooKeeper's role) as its own process.
    Coordinator(gregor::cluster::http::CoordinatorArgs),
    /// Exit 0 when the admin HTTP listener reports healthy (for Docker).
    Healthcheck {
        /// Admin listener to probe.
        #[arg(long, default_value = "127.0.0.1:9644")]
        address: String,
    },
    /// kafka-topics.sh: create, list, describe, alter and delete topics.
    #[command(disable_help_flag = true)]
    Topics(ToolArgs),
    /// kafka-console-producer.sh: publish lines from stdin to a topic.
    #[command(disable_help_flag = true)]
    ConsoleProducer(ToolArgs),
    /// kafka-console-consumer.sh: print records from a topic.
    #[command(disable_help_flag = true)]
    ConsoleConsumer(ToolArgs),
    /// kafka-consumer-groups.sh: list, describe, reset and delete groups.
    #[command(disable_help_flag = true)]
    ConsumerGroups(ToolArgs),
    /// kafka-delete-records.sh: delete a partition's records up to an offset.
    #[command(disable_help_flag = true)]
    DeleteRecords(ToolArgs),
    /// kafka-leader-election.sh: move leadership to the preferred replicas.
    #[command(disable_help_flag = true)]
    LeaderElection(ToolArgs),
    /// kafka-reassign-partitions.sh: move partitions between brokers.
    #[command(disable_help_flag = true)]
    ReassignPartitions(ToolArgs),
    /// kafka-configs.sh: describe topic and broker configs, alter topic configs.
    #[command(disable_help_flag = true)]
    Configs(ToolArgs),
    /// kafka-acls.sh: add, list and remove ACLs.
    #[command(disable_help_flag = true)]
    Acls(ToolArgs),
    /// kafka-metadata-quorum.sh: describe the coordinator quorum.
    #[command(disable_help_flag = true)]
    MetadataQuorum(ToolArgs),
    /// kafka-storage.sh: format a KRaft node's data directory.
    #[command(disable_help_flag = true)]
    Storage(ToolArgs),
    /// Certificates for TLS listeners: `security init DIR`.
    #[command(subcommand)]
    Security(SecurityCommand),
    /// Stop the running `broker` or `coordinator` (the server-stop scripts).
    #[command(disable_help_flag = true)]
    ServerStop(ToolArgs),
}

#[derive(Subcommand, Debug)]
enum SecurityCommand {
    /// Write a private CA, broker, coordinator and client certificates,
    /// and server/client properties fragments for TLS into DIR.
    Init(gregor::cli::SecurityInitArgs),
}

/// A tool's own arguments, parsed by `gregor::cli` with Kafka's flags.
#[derive(clap::Args, Debug)]
struct ToolArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<std::ffi::OsString>,
}

#[derive(clap::Args, Debug)]
struct BrokerArgs {
    /// A server.properties (or .yml/.yaml) file.
    config: Option<std::path::PathBuf>,
    /// Set a config key, as kafka-server-start.sh does: --override key=value.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Data directory (log.dirs).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// Listeners, e.g. PLAINTEXT://0.0.0.0:9092 (listeners).
    #[arg(long, value_name = "LISTENERS")]
    listeners: Option<String>,
    /// Advertised listeners (advertised.listeners).
    #[arg(long, value_name = "LISTENERS")]
    advertised_listeners: Option<String>,
    /// Admin HTTP address (admin.listener), e.g. 127.0.0.1:9644.
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
}

impl BrokerArgs {
    fn overrides(&self) -> Result<Vec<(String, String)>, config::ConfigError> {
        let mut pairs = Vec::new();
        for raw in &self.overrides {
            pairs.push(config::parse_override(raw)?);
        }
        let named = [
            ("log.dirs", &self.data_dir),
            ("listeners", &self.listeners),
            ("advertised.listeners", &self.advertised_listeners),
            ("admin.listener", &self.admin),
        ];
        for (key, value) in named {
            if let Some(value) = value {
                pairs.push((key.to_string(), value.clone()));
            }
        }
        Ok(pairs)
    }
}

/// Kafka's script names, so links to this binary work as they do in a
/// Kafka download (and inside a scratch image, with no shell).
fn args_for_invoked_name() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked = args
        .first()
        .and_then(|a| {
            std::path::Path::new(a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let inserted: &[&str] = match invoked.trim_end_matches(".sh") {
        "kafka-server-start" => &["broker"],
        "kafka-topics" => &["topics"],
        "kafka-console-producer" => &["console-producer"],
        "kafka-console-consumer" => &["console-consumer"],
        "kafka-consumer-groups" => &["consumer-groups"],
        "kafka-delete-records" => &["delete-records"],
        "kafka-leader-election" => &["leader-election"],
        "kafka-reassign-partitions" => &["reassign-partitions"],
        "kafka-configs" => &["configs"],
        "kafka-acls" => &["acls"],
        "kafka-metadata-quorum" => &["metadata-quorum"],
        "kafka-storage" => &["storage"],
        "zookeeper-server-start" => &["coordinator"],
        "kafka-server-stop" => &["server-stop", "broker"],
        "zookeeper-server-stop" => &["server-stop", "coordinator"],
        _ => &[],
    };
    for (i, arg) in inserted.iter().enumerate() {
        args.insert(1 + i, arg.into());
    }
    args
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(args_for_invoked_name()) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Healthcheck { address } => match gregor::admin_http::probe(&address) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("gregor healthcheck: {error}");
                ExitCode::from(1)
            }
        },
        Command::Broker(args) => run_broker(args),
        Command::Coordinator(args) => run_coordinator(args),
        Command::Topics(t) => gregor::cli::run(gregor::cli::Tool::Topics, t.args),
        Command::ConsoleProducer(t) => gregor::cli::run(gregor::cli::Tool::ConsoleProducer, t.args),
        Command::ConsoleConsumer(t) => gregor::cli::run(gregor::cli::Tool::ConsoleConsumer, t.args),
        Command::ConsumerGroups(t) => gregor::cli::run(gregor::cli::Tool::ConsumerGroups, t.args),
        Command::DeleteRecords(t) => gregor::cli::run(gregor::cli::Tool::DeleteRecords, t.args),
        Command::LeaderElection(t) => gregor::cli::run(gregor::cli::Tool::LeaderElection, t.args),
        Command::ReassignPartitions(t) => {
            gregor::cli::run(gregor::cli::Tool::ReassignPartitions, t.args)
        }
        Command::Configs(t) => gregor::cli::run(gregor::cli::Tool::Configs, t.args),
        Command::Acls(t) => gregor::cli::run(gregor::cli::Tool::Acls, t.args),
        Command::MetadataQuorum(t) => gregor::cli::run(gregor::cli::Tool::MetadataQuorum, t.args),
        Command::Storage(t) => gregor::cli::run(gregor::cli::Tool::Storage, t.args),
        Command::Security(SecurityCommand::Init(args)) => match gregor::cli::security_init(&args) {
            Ok(written) => {
                for path in written {
                    println!("{}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("gregor security init: {error}");
                ExitCode::from(1)
            }
        },
        Command::ServerStop(t) => gregor::cli::run(gregor::cli::Tool::ServerStop, t.args),
    }
}

fn run_broker(args: BrokerArgs) -> ExitCode {
    let sources = match args.overrides() {
        Ok(overrides) => ConfigSources {
            file: args.config.clone(),
            env: ConfigSources::process_env(),
            overrides,
        },
        Err(error) => return config_error(error),
    };
    init_tracing(LogFormat::Text, &sources);
    let settings = match config::load(&sources) {
        Ok(settings) => settings,
        Err(error) => return config_error(error),
    };
    serve("gregor", |shutdown| gregor::node::run(settings, shutdown))
}

fn run_coordinator(args: gregor::cluster::http::CoordinatorArgs) -> ExitCode {
    let env = ConfigSources::process_env();
    let sources = ConfigSources {
        file: None,
        env: env.clone(),
        overrides: Vec::new(),
    };
    init_tracing(LogFormat::Text, &sources);
    let settings = match args.load(&env) {
        Ok(settings) => settings,
        Err(error) => return config_error(error),
    };
    serve("gregor coordinator", |shutdown| {
        gregor::cluster::http::run(settings, shutdown)
    })
}

/// Runs a server until SIGTERM/SIGINT: the async runtime, the signal
/// handlers, and exit 1 with one line naming the failure.
fn serve<F, Fut, E>(name: &str, server: F) -> ExitCode
where
    F: FnOnce(watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let shutdown = match shutdown_on_signals() {
        Ok(shutdown) => shutdown,
        Err(error) => {
            eprintln!("{name}: cannot install signal handlers: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(server(shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {error}");
            ExitCode::from(1)
        }
    }
}

fn config_error(error: config::ConfigError) -> ExitCode {
    eprintln!("gregor: {error}");
    ExitCode::from(2)
}

/// Logs go to stderr; the level comes from GREGOR_LOG or RUST_LOG (default
/// info), the format from GREGOR_LOG_FORMAT (text or json).
fn init_tracing(default_format: LogFormat, sources: &ConfigSources) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("GREGOR_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = sources
        .env
        .iter()
        .find(|(k, _)| k == "GREGOR_LOG_FORMAT")
        .map(|(_, v)| v.eq_ignore_ascii_case("json"))
        .unwrap_or(matches!(default_format, LogFormat::Json));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a terminal: `docker logs` and files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// SIGTERM or SIGINT turns the returned flag true (graceful stop); a second
/// signal exits at once.
fn shutdown_on_signals() -> std::io::Result<watch::Receiver<bool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let (tx, rx) = watch::channel(false);
    std::thread::spawn(move || {
        let mut received = 0;
        for signal in signals.forever() {
            received += 1;
            if received > 1 {
                eprintln!("gregor: second signal {signal}, exiting now");
                std::process::exit(130);
            }
            tracing::info!(signal, "shutdown requested");
            let _ = tx.send(true);
        }
    });
    Ok(rx)
}
