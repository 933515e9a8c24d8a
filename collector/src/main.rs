//! The `collector` binary: flags, logging, and the subcommands of the ingest service.

mod import;

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use store::journal::{self, Journal, JournalConfig};

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
            eprintln!("error: {e:#}");
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

fn serve(config: collector::config::Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("collector")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
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
