//! `auditor verify --postgres-url`: the chain as PostgreSQL holds it, intact then tampered.
//!
//! Needs the PostgreSQL server the test suite uses (`store::pg::testing`); when it is
//! unreachable the test fails and says so.

mod common;

use std::process::Command;

fn verify(url: &str, key: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_auditor"))
        .args(["verify", "--postgres-url", url, "--key"])
        .arg(key)
        .output()
        .expect("run auditor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reads_the_chain_from_postgresql_and_names_a_tampered_row() {
    let m = common::month();
    let db = store::pg::testing::TestDb::new().await;
    let url = db.url.clone();

    let (mut client, conn) = store::pg::connect(&url).await.expect("connect");
    store::pg::migrate(&mut client).await.expect("migrate");
    let reader = store::journal::JournalReader::open(&m.events).expect("events journal");
    store::pg::catch_up(&mut client, &reader, store::pg::BatchLimits::default())
        .await
        .expect("replicate");
    let key = m.events.join(store::journal::VERIFIER_FILE);

    let (code, out) = tokio::task::spawn_blocking({
        let (url, key) = (url.clone(), key.clone());
        move || verify(&url, &key)
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("intact:"), "{out}");

    // Someone with write access to the database rewrites one row's account.
    client
        .batch_execute(
            "UPDATE entries SET canonical = overlay(canonical placing '\\x58'::bytea from 20 for 1) \
             WHERE seq = 7",
        )
        .await
        .expect("tamper");
    let (code, out) = tokio::task::spawn_blocking({
        let (url, key) = (url.clone(), key.clone());
        move || verify(&url, &key)
    })
    .await
    .expect("join");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("seq 7: content altered"), "{out}");

    drop(client);
    conn.abort();
}
