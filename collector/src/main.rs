//! The `collector` binary: flags, logging, and the subcommands of the ingest service.

mod import;

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use store::journal::{self, Journal, JournalConfig};

/// mimalloc rather than the system allocator: entries are allocated on the connection
/// threads and freed on the journal's writer thread, which glibc's malloc serves through
/// a lock per arena (`perf` showed its lock waits; over syslog/TLS the collector's CPU per
/// event went from 2.50 to 2.33 s per million with mimalloc, same binary, same run).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The remote-maintenance connection journal's collector.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The journal's directory (created by `init`, or on first use).
    #[arg(
        long,
        global = true,
        env = "VIGIE_DATA_DIR",
        default_value = "vigie-data"
    )]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates an empty journal with new keys; prints where the verifier's key is.
    Init,
    /// Files connection events given as JSON lines (a file, or `-` for standard input).
    Import {
        /// The JSON-lines file.
        file: PathBuf,
    },
    /// Runs the ingest server until SIGTERM or SIGINT (then drains, seals and exits 0).
    Run(ServeArgs),
    /// Checks a configuration file (and the overrides given) without starting anything.
    CheckConfig(ServeArgs),
    /// Brings the PostgreSQL schema up to date and creates the monthly partitions of this
    /// month and the next three; prints the schema version before and after.
    Migrate(PgArgs),
    /// Retention: with --dry-run, prints which PostgreSQL partitions and journal segments
    /// would go; without, applies it (the collector must be stopped: the journal's lock
    /// tells): writes the retention-cut seals, drops the partitions, drops the segments.
    Retention(RetentionArgs),
    /// Generates a development CA, a server certificate (localhost, 127.0.0.1) and one
    /// source certificate under DATA_DIR/dev-pki, and prints an rsyslog snippet.
    DevCerts {
        /// The source name the client certificate carries (CN and SAN DNS name).
        #[arg(long, default_value = "source.localdomain")]
        source: String,
        /// Syslog-over-TLS port the snippet points at.
        #[arg(long, default_value_t = 6514)]
        syslog_port: u16,
        /// RELP-over-TLS port the snippet points at.
        #[arg(long, default_value_t = 2514)]
        relp_port: u16,
    },
}

/// The configuration file and the values that override it.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The TOML configuration (see deploy/collector.toml).
    #[arg(long, short, env = "VIGIE_CONFIG")]
    config: PathBuf,
    /// Only check the configuration, as `check-config` does.
    #[arg(long)]
    check_config: bool,
    /// Overrides `syslog_tls.listen` (comma-separated addresses).
    #[arg(long, value_delimiter = ',')]
    syslog_tls_listen: Option<Vec<std::net::SocketAddr>>,
    /// Overrides `relp_tls.listen`.
    #[arg(long, value_delimiter = ',')]
    relp_tls_listen: Option<Vec<std::net::SocketAddr>>,
    /// Overrides `syslog_tcp.listen`.
    #[arg(long, value_delimiter = ',')]
    syslog_tcp_listen: Option<Vec<std::net::SocketAddr>>,
    /// Overrides `https.listen`.
    #[arg(long, value_delimiter = ',')]
    https_listen: Option<Vec<std::net::SocketAddr>>,
    /// Overrides `metrics.listen`.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Overrides `postgresql.url` (turns replication on with default settings if the file
    /// has no `[postgresql]`).
    #[arg(long, env = "VIGIE_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<String>,
}

/// What `retention` works on.
#[derive(Debug, clap::Args)]
struct RetentionArgs {
    #[command(flatten)]
    pg: PgArgs,
    /// Only print what would go.
    #[arg(long)]
    dry_run: bool,
    /// Rolling months kept (default: `postgresql.retention_months`, else 18; less than
    /// 18 is refused).
    #[arg(long)]
    retention_months: Option<u32>,
}

/// Where the PostgreSQL ledger is: a URL, or the configuration's `[postgresql]`.
#[derive(Debug, clap::Args)]
struct PgArgs {
    /// The TOML configuration whose `[postgresql]` names the database (and whose
    /// `data_dir` is the journal).
    #[arg(long, short, env = "VIGIE_CONFIG")]
    config: Option<PathBuf>,
    /// The PostgreSQL URL (wins over the configuration's).
    #[arg(long, env = "VIGIE_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<String>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", store::error_chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            if args.check_config {
                return check_config(&args, &cli.data_dir);
            }
            serve(load_config(&args, &cli.data_dir)?)
        }
        Command::CheckConfig(args) => check_config(&args, &cli.data_dir),
        Command::Migrate(args) => migrate(&args, &cli.data_dir),
        Command::Retention(args) => retention(&args, &cli.data_dir),
        Command::DevCerts {
            source,
            syslog_port,
            relp_port,
        } => dev_certs(&cli.data_dir, &source, syslog_port, relp_port),
        Command::Init => {
            init(&cli.data_dir)?;
            Ok(())
        }
        Command::Import { file } => {
            let entries = if file.as_os_str() == "-" {
                import::parse(io::stdin().lock(), "<stdin>")?
            } else {
                let f =
                    File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
                import::parse(BufReader::new(f), &file.display().to_string())?
            };
            if !cli.data_dir.join(journal::VERIFIER_FILE).exists() && is_empty(&cli.data_dir) {
                init(&cli.data_dir)?;
            }
            let (journal, recovery) = Journal::open(JournalConfig::new(&cli.data_dir))
                .with_context(|| {
                    format!("cannot open the journal in {}", cli.data_dir.display())
                })?;
            if let Some(torn) = &recovery.torn_tail {
                eprintln!(
                    "recovered: discarded a torn tail of {} bytes in {}",
                    torn.discarded_bytes,
                    torn.segment.display()
                );
            }
            let filed = import::file(&journal, entries)?;
            let head = journal.head();
            journal.close().context("cannot close the journal")?;
            println!(
                "filed {filed} events durably in {}; the chain now holds seq 0..={} and ends with a seal",
                cli.data_dir.display(),
                head.next_seq,
            );
            Ok(())
        }
    }
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

fn init(dir: &Path) -> anyhow::Result<()> {
    let keys = journal::init(dir)
        .with_context(|| format!("cannot create a journal in {}", dir.display()))?;
    println!(
        "created journal {} in {}\nverifier key: {} (move it off this host; `auditor verify` needs it)\nseal public key: {}",
        hex::encode(keys.chain_id),
        dir.display(),
        dir.join(journal::VERIFIER_FILE).display(),
        hex::encode(keys.public_key),
    );
    Ok(())
}

/// Whether `--data-dir` or `VIGIE_DATA_DIR` was given (then it wins over the file).
fn data_dir_given() -> bool {
    std::env::var_os("VIGIE_DATA_DIR").is_some()
        || std::env::args_os().any(|a| {
            a.to_str()
                .is_some_and(|a| a == "--data-dir" || a.starts_with("--data-dir="))
        })
}

fn load_config(args: &ServeArgs, data_dir: &Path) -> anyhow::Result<collector::config::Config> {
    let mut config = collector::config::Config::load(&args.config)?;
    config.apply(collector::config::Overrides {
        data_dir: data_dir_given().then(|| data_dir.to_path_buf()),
        syslog_tls_listen: args.syslog_tls_listen.clone(),
        relp_tls_listen: args.relp_tls_listen.clone(),
        syslog_tcp_listen: args.syslog_tcp_listen.clone(),
        https_listen: args.https_listen.clone(),
        metrics_listen: args.metrics_listen,
        postgres_url: args.postgres_url.clone(),
    })?;
    Ok(config)
}

/// Checks the file, the overrides and, when `[tls]` names files, that they make a TLS
/// configuration.
fn check_config(args: &ServeArgs, data_dir: &Path) -> anyhow::Result<()> {
    let config = load_config(args, data_dir)?;
    if let Some(files) = &config.tls {
        collector::tls::server_config(files)?;
    }
    println!("{}: ok", args.config.display());
    Ok(())
}

/// The configuration (with `--data-dir` applied) if one is given, and the PostgreSQL URL
/// from the flag or its `[postgresql]`.
fn pg_target(
    args: &PgArgs,
    data_dir: &Path,
) -> anyhow::Result<(Option<collector::config::Config>, Option<String>)> {
    let config = match &args.config {
        Some(path) => {
            let mut config = collector::config::Config::load(path)?;
            config.apply(collector::config::Overrides {
                data_dir: data_dir_given().then(|| data_dir.to_path_buf()),
                postgres_url: args.postgres_url.clone(),
                ..collector::config::Overrides::default()
            })?;
            Some(config)
        }
        None => None,
    };
    let url = args.postgres_url.clone().or_else(|| {
        config
            .as_ref()
            .and_then(|c| c.postgresql.as_ref())
            .map(|p| p.url.clone())
    });
    Ok((config, url))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("collector")
        .build()
        .context("cannot start the async runtime")
}

fn migrate(args: &PgArgs, data_dir: &Path) -> anyhow::Result<()> {
    let (_, url) = pg_target(args, data_dir)?;
    let url = url.context(
        "no PostgreSQL to migrate: give --postgres-url, or --config with a [postgresql] section",
    )?;
    runtime()?.block_on(async {
        let (mut client, connection) = store::pg::connect(&url)
            .await
            .context("cannot connect to PostgreSQL")?;
        let report = store::pg::migrate(&mut client)
            .await
            .context("cannot migrate the schema")?;
        let created = store::pg::ensure_partitions(&client, time::OffsetDateTime::now_utc(), 3)
            .await
            .context("cannot create the monthly partitions")?;
        drop(client);
        let _ = connection.await;
        if report.applied.is_empty() {
            println!("schema version {} is current", report.to);
        } else {
            println!(
                "schema migrated from version {} to {} (applied {:?})",
                report.from, report.to, report.applied
            );
        }
        let names: Vec<String> = created.iter().map(|m| m.partition_name()).collect();
        if names.is_empty() {
            println!("partitions: this month and the next three exist");
        } else {
            println!("partitions created: {}", names.join(", "));
        }
        Ok(())
    })
}

fn retention(args: &RetentionArgs, data_dir: &Path) -> anyhow::Result<()> {
    let (config, url) = pg_target(&args.pg, data_dir)?;
    let pg = config.as_ref().and_then(|c| c.postgresql.as_ref());
    let months = args
        .retention_months
        .or(pg.map(|p| p.retention_months))
        .unwrap_or(store::pg::MIN_RETENTION_MONTHS);
    let policy = store::pg::RetentionPolicy::new(months)?;
    let defaults = collector::config::PostgresqlConfig::new(String::new());
    let limits = pg.unwrap_or(&defaults).replicator().limits;
    let request = collector::retention::Request {
        journal: match &config {
            Some(c) => c.journal_config(),
            None => JournalConfig::new(data_dir),
        },
        policy,
        postgresql: url.map(|url| collector::retention::PgTarget { url, limits }),
        now: time::OffsetDateTime::now_utc(),
    };
    let outcome = runtime()?.block_on(async {
        if args.dry_run {
            collector::retention::dry_run(&request).await
        } else {
            collector::retention::apply(&request).await
        }
    })?;
    print!("{outcome}");
    Ok(())
}

fn serve(config: collector::config::Config) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let shutdown = collector::shutdown::signals().context("cannot install signal handlers")?;
        collector::server::run(config, shutdown).await?;
        Ok(())
    })
}

fn dev_certs(
    data_dir: &Path,
    source: &str,
    syslog_port: u16,
    relp_port: u16,
) -> anyhow::Result<()> {
    if is_empty(data_dir) {
        init(data_dir)?;
    }
    let dir = data_dir.join("dev-pki");
    let (pki, made) = collector::devcerts::ensure(&dir, source)?;
    if made {
        println!("generated a development PKI in {}", dir.display());
    } else {
        println!(
            "the development PKI in {} already exists; kept",
            dir.display()
        );
    }
    println!(
        "\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\n",
        pki.server_cert_file.display(),
        pki.server_key_file.display(),
        pki.ca_file.display()
    );
    println!(
        "{}",
        collector::devcerts::rsyslog_snippet(&pki, "localhost", syslog_port, relp_port)
    );
    Ok(())
}
