//! PostgreSQL unavailable, then available, then gone mid-stream and back: the journal keeps
//! accepting, the replicator reports its lag, catches up, and nothing is lost or doubled.
//!
//! The replicator reaches PostgreSQL through a loopback TCP proxy the test starts and
//! stops: while it is down the port refuses connections; stopping it cuts every open
//! session at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_common;

use std::time::Duration;

use pg_common::{TestDb, wait_for};
use store::journal::Journal;
use store::pg::{BatchLimits, Replicator, ReplicatorConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A loopback proxy to PostgreSQL on `port`, until the returned set is aborted.
async fn start_proxy(port: u16) -> JoinSet<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let mut set = JoinSet::new();
    set.spawn(async move {
        let mut sessions = JoinSet::new();
        // Sessions live in this task: aborting it drops them all.
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            sessions.spawn(async move {
                if let Ok(mut server) = TcpStream::connect(("127.0.0.1", 5432)).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    set
}

fn append_in_background(journal: &Journal, from: u64, n: u64) -> tokio::task::JoinHandle<()> {
    let journal = journal.clone();
    tokio::task::spawn_blocking(move || pg_common::append(&journal, from, n, 7_000))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_down_then_back_loses_nothing() {
    let db = TestDb::new().await;
    // A port where nothing listens (yet).
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let (keys, journal) = tokio::task::block_in_place(|| {
        pg_common::journal_with(&dir.path().join("journal"), 10_000, 0)
    });
    let mut config = ReplicatorConfig::new(format!(
        "host=127.0.0.1 port={port} user=postgres dbname={} connect_timeout=2",
        db.name
    ));
    config.limits = BatchLimits {
        max_rows: 4_000,
        max_bytes: 8 << 20,
    };
    config.retry_initial = Duration::from_millis(20);
    config.retry_max = Duration::from_millis(200);
    config.poll_interval = Duration::from_millis(10);
    config.lag_warn_entries = 1;
    let replicator = Replicator::new(config, journal.clone());
    let mut status = replicator.status();
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let running = tokio::spawn(replicator.run(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));

    // 1. PostgreSQL unreachable: the journal accepts, the lag shows.
    let appending = append_in_background(&journal, 10_000, 20_000);
    let down = wait_for(&mut status, "failures while down", |s| s.failures >= 3).await;
    assert!(!down.connected);
    assert!(
        down.last_error
            .as_deref()
            .unwrap_or("")
            .contains("cannot connect"),
        "{down:?}"
    );
    appending.await.unwrap();
    let journal_next = journal.head().next_seq;
    let lagging = wait_for(&mut status, "the lag to include the new entries", |s| {
        s.journal_next_seq == journal_next
    })
    .await;
    assert_eq!(lagging.lag_entries, journal_next, "nothing replicated yet");

    // 2. PostgreSQL reachable: the replicator migrates and catches up.
    let mut proxy = start_proxy(port).await;
    let caught_up = wait_for(&mut status, "catch-up", |s| {
        s.connected && s.position.is_some_and(|p| p.next_seq == journal_next)
    })
    .await;
    assert_eq!(caught_up.lag_entries, 0);

    // 3. Gone again mid-stream while entries keep coming, then back.
    let appending = append_in_background(&journal, 30_000, 40_000);
    wait_for(&mut status, "some progress", |s| {
        s.position.is_some_and(|p| p.next_seq > journal_next)
    })
    .await;
    proxy.abort_all();
    while proxy.join_next().await.is_some() {}
    let failures = status.borrow().failures;
    wait_for(&mut status, "a failure after the cut", |s| {
        s.failures > failures
    })
    .await;
    appending.await.unwrap();
    journal.seal_now().unwrap();
    let journal_next = journal.head().next_seq;
    let _proxy = start_proxy(port).await;
    wait_for(&mut status, "the second catch-up", |s| {
        s.connected && s.position.is_some_and(|p| p.next_seq == journal_next)
    })
    .await;

    stop_tx.send(true).unwrap();
    running.await.unwrap().unwrap();

    let client = db.client().await;
    let report = pg_common::assert_replicated_intact(&client, &keys, journal_next).await;
    assert_eq!(report.unsealed_tail, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_hangs_is_timed_out_and_retried() {
    // Accepts connections and never answers: a network that drops packets silently.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (_keys, journal) = tokio::task::block_in_place(|| {
        pg_common::journal_with(&dir.path().join("journal"), 100, 0)
    });
    let mut config = ReplicatorConfig::new(format!(
        "host=127.0.0.1 port={port} user=postgres dbname=postgres"
    ));
    config.connect_timeout = Duration::from_millis(100);
    config.retry_initial = Duration::from_millis(10);
    config.retry_max = Duration::from_millis(20);
    let replicator = Replicator::new(config, journal);
    let mut status = replicator.status();
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let running = tokio::spawn(replicator.run(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    let failing = wait_for(&mut status, "timeouts", |s| s.failures >= 3).await;
    assert!(!failing.connected);
    assert_eq!(failing.lag_entries, 101);
    assert!(
        failing
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("connect took longer than 100 ms"),
        "{failing:?}"
    );
    stop_tx.send(true).unwrap();
    running.await.unwrap().unwrap();
    hold.abort();
}
