//! The collector with `[postgresql]`: events in over RELP/TLS, replicated while the server
//! runs, verified in PostgreSQL after a graceful stop; ingest goes on while PostgreSQL is
//! unreachable; `collector migrate`. Needs a real PostgreSQL (see `store::pg::testing`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use collector::config::{Config, PostgresqlConfig};
use common::{Pki, Relp, Running, config, entries, message, metric, tls_connect};
use proto::relp::Command;
use store::journal::{VERIFIER_FILE, VerifierKeys};
use store::pg::testing::TestDb;

fn dirs() -> (tempfile::TempDir, std::path::PathBuf, Pki) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("journal");
    let pki = Pki::new(&tmp.path().join("pki"));
    (tmp, data, pki)
}

fn with_pg(mut config: Config, url: &str) -> Config {
    let mut pg = PostgresqlConfig::new(url);
    pg.poll_interval_ms = 20;
    pg.retry_max_ms = 200;
    pg.connect_timeout_ms = 2_000;
    config.postgresql = Some(pg);
    config.check().unwrap();
    config
}

/// Sends `n` messages over RELP/TLS and checks each is answered `200`.
async fn send_relp(server: &Running, pki: &Pki, from: usize, n: usize) {
    let connector = pki.connector(Some(&pki.source));
    let mut relp = Relp::new(tls_connect(&connector, server.relp()).await.unwrap());
    relp.open().await;
    for i in from..from + n {
        relp.send(Command::Syslog, message(i).as_bytes()).await;
    }
    for i in 0..n {
        let (_, rsp) = relp.response().await.expect("answer");
        assert!(rsp.is_ok(), "message {i}: {rsp:?}");
    }
    relp.send(Command::Close, b"").await;
    relp.recv().await.expect("close answered");
}

/// Waits until the metrics say the replicator is `connected` with `lag` (or panics).
async fn wait_metrics(server: &Running, connected: bool, lag_zero: bool) -> String {
    for _ in 0..500 {
        let text = server.metrics.render();
        let c = metric(&text, "vigie_replication_connected", &[]);
        let lag = metric(&text, "vigie_replication_lag_entries", &[]);
        if (c == 1.0) == connected && (lag == 0.0) == lag_zero {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "replication metrics never reached connected={connected} lag_zero={lag_zero}:\n{}",
        server.metrics.render()
    );
}

/// Verifies the chain as PostgreSQL holds it and checks it holds the whole journal.
async fn assert_pg_holds_journal(db: &TestDb, data: &Path, events: usize) {
    let keys = VerifierKeys::read(&data.join(VERIFIER_FILE)).unwrap();
    let client = db.client().await;
    let report = store::pg::verify_chain(&client, keys.chain_id, keys.verify_keys())
        .await
        .unwrap();
    assert!(report.is_intact(), "PostgreSQL chain: {report:?}");
    let journal = entries(data);
    assert_eq!(report.records, journal.len() as u64, "every journal entry");
    assert!(
        journal.last().is_some_and(|(seal, _)| *seal),
        "the journal ends with its closing seal"
    );
    assert_eq!(report.unsealed_tail, None, "the closing seal is replicated");
    let row = client
        .query_one(
            "SELECT count(*) FROM entries WHERE chain_id = $1 AND entry_type = 'event'",
            &[&&keys.chain_id[..]],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), events as i64, "every event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relp_events_are_replicated_and_the_chain_verifies_in_postgresql() {
    let db = TestDb::new().await;
    let (_tmp, data, pki) = dirs();
    let server = Running::start(with_pg(config(&data, &pki), &db.url)).await;
    send_relp(&server, &pki, 0, 300).await;
    let text = wait_metrics(&server, true, true).await;
    assert!(text.contains("vigie_replication_lag_entries 0"), "{text}");
    server.stop().await.unwrap();
    assert_pg_holds_journal(&db, &data, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_goes_on_while_postgresql_is_down_and_catches_up_later() {
    let db = TestDb::new().await;
    let (_tmp, data, pki) = dirs();
    // Nothing listens on port 1: every connection attempt fails at once.
    let down = "host=127.0.0.1 port=1 user=postgres dbname=nothing";
    let server = Running::start(with_pg(config(&data, &pki), down)).await;
    send_relp(&server, &pki, 0, 100).await;
    let text = wait_metrics(&server, false, false).await;
    assert!(
        metric(&text, "vigie_replication_lag_entries", &[]) >= 100.0,
        "{text}"
    );
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("no catch-up wait while PostgreSQL is down")
        .unwrap();
    assert_eq!(common::events(&data).len(), 100);

    // PostgreSQL back: the next run copies the backlog, then what comes.
    let server = Running::start(with_pg(config(&data, &pki), &db.url)).await;
    send_relp(&server, &pki, 100, 50).await;
    wait_metrics(&server, true, true).await;
    server.stop().await.unwrap();
    assert_pg_holds_journal(&db, &data, 150).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_command_creates_the_schema_then_finds_it_current() {
    let db = TestDb::new().await;
    let migrate = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_collector"))
            .args(["migrate", "--postgres-url", &db.url])
            .env_remove("VIGIE_CONFIG")
            .output()
            .unwrap()
    };
    let out = migrate();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("from version 0 to {}", store::pg::SCHEMA_VERSION)),
        "{stdout}"
    );
    assert!(stdout.contains("partitions created: entries_p"), "{stdout}");
    let out = migrate();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("is current"), "{stdout}");
    let client = db.client().await;
    assert_eq!(
        store::pg::schema_version(&client).await.unwrap(),
        store::pg::SCHEMA_VERSION
    );
}

#[test]
fn migrate_without_a_database_is_a_usage_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_collector"))
        .arg("migrate")
        .env_remove("VIGIE_CONFIG")
        .env_remove("VIGIE_POSTGRES_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--postgres-url"));
}

#[test]
fn check_config_refuses_a_retention_below_the_charter() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(&tmp.path().join("pki"));
    let mut text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/collector-postgresql.toml"),
    )
    .unwrap();
    text = text
        .replace(
            "/etc/vigie/tls/collector.pem",
            pki.server_cert.to_str().unwrap(),
        )
        .replace(
            "/etc/vigie/tls/collector.key",
            pki.server_key.to_str().unwrap(),
        )
        .replace(
            "/etc/vigie/tls/sources-ca.pem",
            pki.ca_file.to_str().unwrap(),
        );
    let path = tmp.path().join("c.toml");
    std::fs::write(
        &path,
        text.replace("retention_months = 18", "retention_months = 12"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_collector"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("charter 001 art. 41"), "{stderr}");
}
