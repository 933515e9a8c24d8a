//! `auditor verify --postgres-url`: the chain as PostgreSQL holds it, intact then tampered.
//!
//! Needs the PostgreSQL server the test suite uses (127.0.0.1:5432, user postgres, or
//! `VIGIE_TEST_PG`); when it is unreachable the test fails and says so.

mod common;

use std::process::Command;

fn server() -> String {
    std::env::var("VIGIE_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_owned())
}

async fn admin(sql: &str) {
    let url = format!("{} dbname=postgres", server());
    let (client, conn) = store::pg::connect(&url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is unreachable at `{url}` ({e}): this test needs a real server")
    });
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(client);
    conn.abort();
}

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
    let name = format!(
        "vigie_test_auditor_{}_{}",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000
    );
    admin(&format!("CREATE DATABASE {name}")).await;
    let url = format!("{} dbname={name}", server());

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
    admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}
