//! The `auditor` binary: what RSSIs and compliance auditors run against the ledger.
//!
//! It only parses flags, sets up logging and calls the library; exit codes: 0 clean,
//! 1 findings or verification failure, 2 usage or runtime error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use auditor::audit::{self, Ledger, RunOptions};
use auditor::declare::{self, Filer, Origin};
use auditor::finding::{Lang, Severity};
use auditor::ledger::Source;
use auditor::report::{self, Format};
use auditor::rules::RuleConfig;
use auditor::time_fmt::parse_instant;
use clap::{Args, Parser, Subcommand};
use proto::model::{DeclarationBody, Schedule, Window};
use time::OffsetDateTime;

/// The remote-maintenance connection journal's auditor.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verifies a journal's chain, or an export bundle: exit 0 when intact, 1 with the
    /// diagnosis otherwise.
    Verify {
        /// The journal's directory.
        #[arg(long, env = "VIGIE_DATA_DIR", default_value = "vigie-data")]
        journal: PathBuf,
        /// The verifier key file written by `collector init` (default: `verifier.key` in
        /// the journal's directory, for a key not yet moved off the host). With --bundle,
        /// one per chain of the bundle (repeatable).
        #[arg(long)]
        key: Vec<PathBuf>,
        /// Verify this export bundle instead of a journal.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Verify the chain as this PostgreSQL database holds it (the chain named by
        /// --key) instead of a journal.
        #[arg(long, env = "VIGIE_POSTGRES_URL", conflicts_with = "bundle")]
        postgres_url: Option<String>,
    },
    /// Files a declaration into the auditor's ledger.
    Declare {
        #[command(flatten)]
        filer: FilerArgs,
        #[command(subcommand)]
        what: Declare,
    },
    /// Conformance report: every connection checked against the declarations in force.
    Report {
        #[command(flatten)]
        read: ReadArgs,
        /// The establishment.
        #[arg(long)]
        tenant: String,
        /// Only this vendor.
        #[arg(long)]
        vendor: Option<String>,
        /// json, csv or html.
        #[arg(long, default_value = "html")]
        format: Format,
        /// fr or en.
        #[arg(long, default_value = "fr")]
        lang: Lang,
    },
    /// A vendor's connection journal (csv or json), and optionally its export bundle.
    Journal {
        #[command(flatten)]
        read: ReadArgs,
        /// The establishment (all when absent).
        #[arg(long)]
        tenant: Option<String>,
        /// The vendor.
        #[arg(long)]
        vendor: String,
        /// csv or json.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Also write the export bundle (line-based JSON) to this file.
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
    /// Serves the HTTP API and the pages (HTTPS) until interrupted (SIGINT, SIGTERM).
    Serve {
        /// The configuration file (see deploy/auditor.toml).
        #[arg(
            long,
            env = "VIGIE_AUDITOR_CONFIG",
            default_value = "/etc/vigie/auditor.toml"
        )]
        config: PathBuf,
        /// Serve plain HTTP instead of HTTPS: refused unless `listen` is a loopback
        /// address (tests, or behind a local TLS-terminating proxy).
        #[arg(long)]
        insecure_loopback: bool,
    },
    /// Prints the SHA-256 of a token read from standard input, for the users file.
    TokenHash,
}

#[derive(Debug, Args)]
struct FilerArgs {
    /// The auditor's own journal directory (created on first use).
    #[arg(long, env = "VIGIE_LEDGER")]
    ledger: PathBuf,
    /// The establishment.
    #[arg(long)]
    tenant: String,
    /// Who files (default: $USER).
    #[arg(long, env = "USER")]
    by: String,
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// The auditor's own journal (declarations; access to reports is recorded there).
    #[arg(long, env = "VIGIE_LEDGER")]
    ledger: PathBuf,
    /// A collector's journal of connection events (repeatable).
    #[arg(long = "events", required_unless_present = "postgres_url")]
    events: Vec<PathBuf>,
    /// Read the connection events from this PostgreSQL database (every chain the
    /// collectors replicate there) as well as from any --events journal.
    #[arg(long, env = "VIGIE_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// A verifier key file (repeatable), matched to chains by the chain id it names: the
    /// chains read from PostgreSQL are checked end to end with theirs.
    #[arg(long = "key")]
    keys: Vec<PathBuf>,
    /// Start of the period: RFC 3339 or Paris local `YYYY-MM-DD[THH:MM]`.
    #[arg(long)]
    from: String,
    /// End of the period (excluded).
    #[arg(long)]
    to: String,
    /// Who asks (recorded in the ledger; default: $USER).
    #[arg(long, env = "USER")]
    by: String,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Skip the end-to-end verification of the chains.
    #[arg(long)]
    no_chain_check: bool,
    /// Largest clock skew accepted, in seconds.
    #[arg(long, default_value_t = 300)]
    max_skew_seconds: i64,
    /// A source silent longer than this is reported, in hours.
    #[arg(long, default_value_t = 24)]
    silent_after_hours: i64,
}

#[derive(Debug, Subcommand)]
enum Declare {
    /// Registers a vendor.
    Vendor {
        #[arg(long)]
        vendor: String,
        /// Legal name.
        #[arg(long)]
        name: String,
    },
    /// Declares the vendor's whole staff list from a CSV file.
    Staff {
        #[arg(long)]
        vendor: String,
        /// The CSV file (see the `staff_csv` module for its columns).
        #[arg(long)]
        csv: PathBuf,
    },
    /// Declares a departure.
    Departure {
        #[arg(long)]
        vendor: String,
        #[arg(long)]
        person: String,
        /// From when the person may no longer connect.
        #[arg(long)]
        effective: String,
    },
    /// Grants a maintenance window, one-off (--start/--end) or recurring (--rrule).
    Window {
        #[command(flatten)]
        window: WindowArgs,
        #[arg(long)]
        id: String,
        #[arg(long)]
        reason: String,
        /// One-off: opening instant.
        #[arg(long, requires = "end", conflicts_with = "rrule")]
        start: Option<String>,
        /// One-off: closing instant.
        #[arg(long)]
        end: Option<String>,
        /// Recurring: the RRULE, e.g. `FREQ=WEEKLY;BYDAY=TU`.
        #[arg(long, requires_all = ["first_start", "duration"])]
        rrule: Option<String>,
        /// Recurring: local date-time of the first opening, `YYYY-MM-DDTHH:MM`.
        #[arg(long)]
        first_start: Option<String>,
        /// Recurring: length of each opening (`4h`, `90m`, `1h30m`, `3600s`).
        #[arg(long)]
        duration: Option<String>,
        /// Recurring: IANA zone.
        #[arg(long, default_value = "Europe/Paris")]
        zone: String,
    },
    /// Grants the windows of an iCalendar file.
    WindowsIcs {
        #[command(flatten)]
        window: WindowArgs,
        /// The .ics file.
        #[arg(long)]
        file: PathBuf,
        /// Reason for events without SUMMARY.
        #[arg(long, default_value = "maintenance")]
        reason: String,
    },
    /// Cancels a window.
    Cancel {
        #[arg(long)]
        vendor: String,
        #[arg(long)]
        window: String,
        #[arg(long)]
        reason: String,
    },
    /// Declares an emergency.
    Emergency {
        #[arg(long)]
        vendor: String,
        #[arg(long)]
        person: Option<String>,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        start: String,
        #[arg(long)]
        end: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        ticket: Option<String>,
    },
    /// Files an intervention report.
    InterventionReport {
        #[arg(long)]
        vendor: String,
        #[arg(long)]
        window: Option<String>,
        #[arg(long)]
        start: String,
        #[arg(long)]
        end: String,
        /// Nature of the operations.
        #[arg(long)]
        nature: String,
        /// Persons who intervened (repeatable).
        #[arg(long = "person", required = true)]
        persons: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct WindowArgs {
    #[arg(long)]
    vendor: String,
    /// Who approved it.
    #[arg(long)]
    approver: String,
    #[arg(long)]
    ticket: Option<String>,
    /// Only these persons (repeatable).
    #[arg(long = "person")]
    persons: Vec<String>,
    /// Only these targets (repeatable).
    #[arg(long = "target")]
    targets: Vec<String>,
}

enum Outcome {
    Clean,
    Findings,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", store::error_chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn instant(field: &str, text: &str) -> anyhow::Result<OffsetDateTime> {
    parse_instant(text).ok_or_else(|| {
        auditor::AuditError::arg(
            field,
            format!(
                "invalid instant {text:?}: expected RFC 3339 or YYYY-MM-DD[THH:MM] (Paris time)"
            ),
        )
        .into()
    })
}

fn duration_seconds(text: &str) -> anyhow::Result<u32> {
    let bad = || {
        auditor::AuditError::arg(
            "duration",
            format!("invalid duration {text:?}: expected e.g. 4h, 90m, 1h30m"),
        )
    };
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match c {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad().into()),
        };
    }
    if !num.is_empty() {
        return Err(bad().into());
    }
    u32::try_from(total).map_err(|_| bad().into())
}

fn output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

fn serve(config: &Path, insecure_loopback: bool) -> anyhow::Result<Outcome> {
    let config = auditor::config::Config::read(config)?;
    let transport = auditor::http::Transport::from_config(&config, insecure_loopback)?;
    let listen = config.listen;
    let app = auditor::http::App::new(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr().context("no local address")?;
        tracing::warn!(%addr, tls = !insecure_loopback, "auditor serving");
        eprintln!("listening on {addr}");
        auditor::http::run(listener, transport, app, shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    Ok(Outcome::Clean)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Serve {
            config,
            insecure_loopback,
        } => serve(&config, insecure_loopback),
        Command::TokenHash => {
            let mut token = String::new();
            std::io::stdin()
                .read_line(&mut token)
                .context("cannot read the token")?;
            let token = token.trim_end_matches(['\n', '\r']);
            if token.is_empty() {
                return Err(auditor::AuditError::arg("token", "empty").into());
            }
            println!("{}", auditor::access::token_sha256_hex(token));
            Ok(Outcome::Clean)
        }
        Command::Verify {
            journal,
            key,
            bundle,
            postgres_url,
        } => {
            let mut out = std::io::stdout().lock();
            if let Some(url) = postgres_url {
                let [key] = key.as_slice() else {
                    return Err(auditor::AuditError::arg(
                        "key",
                        "--postgres-url needs exactly one --key: the chain's verifier key",
                    )
                    .into());
                };
                let outcome = verify_postgres(&url, key)?;
                outcome.print(&mut out).context("cannot print the report")?;
                return Ok(if outcome.is_intact() {
                    Outcome::Clean
                } else {
                    Outcome::Findings
                });
            }
            if let Some(bundle) = bundle {
                let keys = key
                    .iter()
                    .map(|k| {
                        store::journal::VerifierKeys::read(k).with_context(|| {
                            format!("cannot read the verifier key {}", k.display())
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let outcome = auditor::export::verify_bundle(&bundle, &keys)?;
                outcome.print(&mut out).context("cannot print the report")?;
                return Ok(if outcome.is_intact() {
                    Outcome::Clean
                } else {
                    Outcome::Findings
                });
            }
            if key.len() > 1 {
                return Err(auditor::AuditError::arg("key", "one key for a journal").into());
            }
            let key = key
                .into_iter()
                .next()
                .unwrap_or_else(|| journal.join(store::journal::VERIFIER_FILE));
            let outcome = auditor::verify::journal(&journal, &key)?;
            outcome.print(&mut out).context("cannot print the report")?;
            Ok(if outcome.is_intact() {
                Outcome::Clean
            } else {
                Outcome::Findings
            })
        }
        Command::Declare { filer, what } => {
            let filer = Filer {
                ledger: filer.ledger,
                tenant: filer.tenant,
                filed_by: filer.by,
                filed_at: OffsetDateTime::now_utc(),
            };
            let batch = declaration(what)?;
            let n = batch.len();
            let seqs = declare::file(&filer, batch)?;
            println!(
                "filed {n} declaration(s) in {}: seq {}",
                filer.ledger.display(),
                seqs.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(Outcome::Clean)
        }
        Command::Report {
            read,
            tenant,
            vendor,
            format,
            lang,
        } => {
            let (ledger, mut cfg, opts) = reading(&read)?;
            cfg.tenant = Some(tenant.clone());
            cfg.vendor.clone_from(&vendor);
            let audit = audit::run(&ledger, cfg, opts)?;
            // Recorded before anything is handed out: no report without its trace.
            let scope = format!(
                "tenant={tenant} vendor={} from={} to={}",
                vendor.as_deref().unwrap_or("*"),
                read.from,
                read.to
            );
            record(&read, &tenant, "report", &scope)?;
            let now = OffsetDateTime::now_utc();
            let mut out = output(read.out.as_deref())?;
            report::write(&audit, format, lang, now, &mut out)?;
            out.flush().context("cannot write the report")?;
            let breach = audit.findings.iter().any(|f| f.severity > Severity::Info);
            Ok(if breach {
                Outcome::Findings
            } else {
                Outcome::Clean
            })
        }
        Command::Journal {
            read,
            tenant,
            vendor,
            format,
            bundle,
        } => {
            if format != "csv" && format != "json" {
                return Err(auditor::AuditError::arg(
                    "format",
                    format!("unknown format {format:?}: expected csv or json"),
                )
                .into());
            }
            let (ledger, mut cfg, opts) = reading(&read)?;
            cfg.tenant.clone_from(&tenant);
            cfg.vendor = Some(vendor.clone());
            let (from, to) = (cfg.from, cfg.to);
            let audit = audit::run_journal(&ledger, cfg, opts.progress)?;
            // Recorded before anything is handed out: no export without its trace.
            let scope = format!(
                "vendor={vendor} tenant={} from={} to={}{}",
                tenant.as_deref().unwrap_or("*"),
                read.from,
                read.to,
                if bundle.is_some() { " bundle" } else { "" }
            );
            record(
                &read,
                tenant.as_deref().unwrap_or("*"),
                "journal_export",
                &scope,
            )?;
            let mut out = output(read.out.as_deref())?;
            if format == "csv" {
                auditor::export::journal_csv(&audit.sessions, &mut out)?;
            } else {
                auditor::export::journal_json(&audit.sessions, &mut out)?;
            }
            out.flush().context("cannot write the journal")?;
            if let Some(path) = &bundle {
                let mut file = output(Some(path))?;
                let stats = auditor::export::write_bundle(
                    &ledger,
                    auditor::export::BundleScope {
                        vendor: &vendor,
                        tenant: tenant.as_deref(),
                        from,
                        to,
                        sessions: &audit.sessions,
                    },
                    OffsetDateTime::now_utc(),
                    &mut file,
                )?;
                file.flush().context("cannot write the bundle")?;
                eprintln!(
                    "bundle {}: {} entries in full, {} as digests",
                    path.display(),
                    stats.full,
                    stats.redacted
                );
            }
            Ok(Outcome::Clean)
        }
    }
}

fn reading(read: &ReadArgs) -> anyhow::Result<(Ledger, RuleConfig, RunOptions)> {
    let from = instant("from", &read.from)?;
    let to = instant("to", &read.to)?;
    if to <= from {
        return Err(auditor::AuditError::arg("to", "the period ends before it starts").into());
    }
    let declarations = Source::journal(&read.ledger);
    let mut events: Vec<Source> = read.events.iter().map(Source::journal).collect();
    if let Some(url) = &read.postgres_url {
        // The auditor's own chain is read from its journal, even if it is replicated too.
        let own = declarations.chain_id().ok();
        events.extend(Source::postgres_chains(url, own.as_slice())?);
    }
    let ledger = Ledger {
        declarations: vec![declarations],
        events,
        keys: Vec::new(),
        chain_keys: read.keys.clone(),
    };
    let mut cfg = RuleConfig::new(from, to);
    cfg.max_skew = time::Duration::seconds(read.max_skew_seconds);
    cfg.silent_after = time::Duration::hours(read.silent_after_hours);
    let opts = RunOptions {
        check_chains: !read.no_chain_check,
        ..RunOptions::default()
    };
    Ok((ledger, cfg, opts))
}

fn record(read: &ReadArgs, tenant: &str, action: &str, scope: &str) -> anyhow::Result<()> {
    let filer = Filer {
        ledger: read.ledger.clone(),
        tenant: tenant.to_owned(),
        filed_by: read.by.clone(),
        filed_at: OffsetDateTime::now_utc(),
    };
    declare::record_access(&filer, action, scope)
        .with_context(|| format!("cannot record the {action} in {}", read.ledger.display()))?;
    Ok(())
}

fn window_template(w: WindowArgs, reason: String, schedule: Schedule) -> Window {
    Window {
        id: String::new(),
        vendor: w.vendor,
        reason,
        ticket: w.ticket,
        approver: w.approver,
        persons: w.persons,
        targets: w.targets,
        schedule,
    }
}

fn declaration(what: Declare) -> anyhow::Result<Vec<(Origin, DeclarationBody)>> {
    let cl = Origin::command_line;
    Ok(match what {
        Declare::Vendor { vendor, name } => {
            vec![(cl(), DeclarationBody::VendorRegistered { vendor, name })]
        }
        Declare::Staff { vendor, csv } => {
            let text = std::fs::read_to_string(&csv).map_err(|e| auditor::AuditError::Io {
                path: csv.clone(),
                source: e,
            })?;
            let persons = auditor::staff_csv::parse(&csv.display().to_string(), &text)?;
            vec![(
                Origin {
                    file: csv.display().to_string(),
                    line: 1,
                },
                DeclarationBody::StaffList { vendor, persons },
            )]
        }
        Declare::Departure {
            vendor,
            person,
            effective,
        } => vec![(
            cl(),
            DeclarationBody::Departure {
                vendor,
                person,
                effective_at: instant("effective", &effective)?,
            },
        )],
        Declare::Window {
            window,
            id,
            reason,
            start,
            end,
            rrule,
            first_start,
            duration,
            zone,
        } => {
            let schedule = match (start, end, rrule, first_start, duration) {
                (Some(s), Some(e), None, _, _) => Schedule::OneOff {
                    starts_at: instant("start", &s)?,
                    ends_at: instant("end", &e)?,
                },
                (None, None, Some(rrule), Some(first), Some(d)) => Schedule::Recurring {
                    zone,
                    first_start_local: first,
                    duration_seconds: duration_seconds(&d)?,
                    rrule,
                },
                _ => {
                    return Err(auditor::AuditError::arg(
                        "schedule",
                        "give --start and --end, or --rrule, --first-start and --duration",
                    )
                    .into());
                }
            };
            let mut w = window_template(window, reason, schedule);
            w.id = id;
            vec![(cl(), DeclarationBody::WindowGranted(w))]
        }
        Declare::WindowsIcs {
            window,
            file,
            reason,
        } => {
            let text = std::fs::read_to_string(&file).map_err(|e| auditor::AuditError::Io {
                path: file.clone(),
                source: e,
            })?;
            let template = window_template(
                window,
                reason,
                Schedule::OneOff {
                    starts_at: OffsetDateTime::UNIX_EPOCH,
                    ends_at: OffsetDateTime::UNIX_EPOCH,
                },
            );
            declare::windows_from_ics(&file.display().to_string(), &text, &template)?
        }
        Declare::Cancel {
            vendor,
            window,
            reason,
        } => vec![(
            cl(),
            DeclarationBody::WindowCancelled {
                vendor,
                window_id: window,
                reason,
            },
        )],
        Declare::Emergency {
            vendor,
            person,
            target,
            start,
            end,
            reason,
            ticket,
        } => vec![(
            cl(),
            DeclarationBody::Emergency {
                vendor,
                person,
                target,
                starts_at: instant("start", &start)?,
                ends_at: instant("end", &end)?,
                reason,
                ticket,
            },
        )],
        Declare::InterventionReport {
            vendor,
            window,
            start,
            end,
            nature,
            persons,
        } => vec![(
            cl(),
            DeclarationBody::InterventionReport {
                vendor,
                window_id: window,
                started_at: instant("start", &start)?,
                ended_at: instant("end", &end)?,
                nature,
                persons,
            },
        )],
    })
}

/// Verifies the chain of `key` as the PostgreSQL database at `url` holds it.
fn verify_postgres(url: &str, key: &Path) -> anyhow::Result<auditor::verify::Outcome> {
    let keys = store::journal::VerifierKeys::read(key)
        .with_context(|| format!("cannot read the verifier key {}", key.display()))?;
    let chain = Source::postgres(url, keys.chain_id);
    if !Source::postgres_chains(url, &[])?.contains(&chain) {
        return Err(auditor::AuditError::arg(
            "key",
            format!(
                "chain {} (the key's) is not in this database: nothing was replicated from it",
                hex::encode(keys.chain_id)
            ),
        )
        .into());
    }
    let ledger = Ledger {
        chain_keys: vec![key.to_path_buf()],
        ..Ledger::default()
    };
    Ok(auditor::verify::source(&ledger, &chain)?)
}
