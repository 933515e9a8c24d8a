//! The `auditor` binary: what RSSIs and compliance auditors run against the ledger.

mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The remote-maintenance connection journal's auditor.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verifies a journal's chain: exit 0 when intact, 1 with the diagnosis otherwise.
    Verify {
        /// The journal's directory.
        #[arg(long, env = "VIGIE_DATA_DIR", default_value = "vigie-data")]
        journal: PathBuf,
        /// The verifier key file written by `collector init` (default: `verifier.key` in
        /// the journal's directory, for a key not yet moved off the host).
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify { journal, key } => {
            let key = key.unwrap_or_else(|| journal.join(store::journal::VERIFIER_FILE));
            match verify::journal(&journal, &key) {
                Ok(outcome) => {
                    let mut out = std::io::stdout().lock();
                    if let Err(e) = outcome.print(&mut out) {
                        eprintln!("error: cannot print the report: {e}");
                        return ExitCode::from(2);
                    }
                    if outcome.is_intact() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
