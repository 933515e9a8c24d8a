//! Replication to PostgreSQL while the server runs: the [`store::pg::Replicator`] on a task
//! of its own, its status fed to the metrics, and its part in a graceful shutdown.
//!
//! ```text
//! Server::run ── start ──► replicator task   journal ──(durable entries)──► PostgreSQL
//!                          status watcher    ReplicationStatus → vigie_replication_lag_entries,
//!                                                                vigie_replication_connected
//! shutdown: listeners drain → journal closes (closing seal) → catch up: wait while the
//!           replicator is connected and behind the journal's final head, at most
//!           postgresql.shutdown_catch_up_ms → stop the replicator (a batch in flight rolls
//!           back; the next start copies it again) → both tasks awaited
//! ```
//!
//! PostgreSQL being down never stops ingest: the journal is the durable buffer, the
//! replicator retries with backoff and logs (with the lag); this module does not log the
//! same facts again, only the catch-up after a lag the replicator warned about.

use std::time::Duration;

use store::journal::Journal;
use store::pg::{ReplicationStatus, Replicator, error_chain};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::PostgresqlConfig;
use crate::metrics::Metrics;

/// The running replicator and its status watcher.
#[derive(Debug)]
pub(crate) struct Replication {
    stop: CancellationToken,
    status: watch::Receiver<ReplicationStatus>,
    replicator: JoinHandle<()>,
    watcher: JoinHandle<()>,
    catch_up: Duration,
}

impl Replication {
    /// Starts replicating `journal` as `config` says, feeding `metrics`.
    pub(crate) fn start(config: &PostgresqlConfig, journal: Journal, metrics: &Metrics) -> Self {
        let replicator_config = config.replicator();
        let lag_warn = replicator_config.lag_warn_entries;
        let replicator = Replicator::new(replicator_config, journal);
        let status = replicator.status();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let replicator = tokio::spawn(async move {
            // The replicator logs its permanent error itself ("replication stopped"); the
            // journal keeps accepting, and the metrics show it disconnected.
            if let Err(e) = replicator.run(token.cancelled_owned()).await {
                tracing::debug!(error = %error_chain(&e), "replicator task ended");
            }
        });
        let watcher = tokio::spawn(watch_status(status.clone(), metrics.clone(), lag_warn));
        tracing::info!("replication to PostgreSQL started");
        Replication {
            stop,
            status,
            replicator,
            watcher,
            catch_up: Duration::from_millis(config.shutdown_catch_up_ms),
        }
    }

    /// Once the journal is closed at `final_next_seq`: lets the replicator copy what is
    /// left while it is connected (at most `shutdown_catch_up_ms`), then stops it and waits
    /// for both tasks.
    ///
    /// # Errors
    /// The name of a task that panicked.
    pub(crate) async fn stop(mut self, final_next_seq: u64) -> Result<(), &'static str> {
        let caught_up = |s: &ReplicationStatus| {
            !s.connected || s.position.is_some_and(|p| p.next_seq >= final_next_seq)
        };
        let waited = tokio::time::timeout(self.catch_up, async {
            self.status.wait_for(caught_up).await.map(|_| ())
        })
        .await;
        let status = self.status.borrow().clone();
        let replicated = status.position.map_or(0, |p| p.next_seq);
        match waited {
            Ok(Ok(_)) if replicated >= final_next_seq => {
                tracing::info!(
                    next_seq = replicated,
                    "replication caught up with the journal"
                );
            }
            _ => tracing::warn!(
                next_seq = replicated,
                journal_next_seq = final_next_seq,
                lag_entries = final_next_seq.saturating_sub(replicated),
                connected = status.connected,
                "replication stopped behind the journal; the next start catches up"
            ),
        }
        self.stop.cancel();
        self.replicator.await.map_err(|_| "replicator")?;
        self.watcher.await.map_err(|_| "replication status")?;
        Ok(())
    }
}

/// Feeds the metrics from the status until the replicator is gone.
async fn watch_status(
    mut status: watch::Receiver<ReplicationStatus>,
    metrics: Metrics,
    lag_warn: u64,
) {
    let mut behind = false;
    loop {
        let s = status.borrow_and_update().clone();
        metrics
            .replication_lag
            .set(i64::try_from(s.lag_entries).unwrap_or(i64::MAX));
        metrics.replication_connected.set(i64::from(s.connected));
        // The replicator warns while the lag is high; say once when it is gone.
        if s.lag_entries >= lag_warn {
            behind = true;
        } else if behind && s.connected && s.lag_entries == 0 {
            behind = false;
            tracing::info!(lag_entries = 0, "replication caught up");
        }
        if status.changed().await.is_err() {
            break;
        }
    }
    metrics.replication_connected.set(0);
}
