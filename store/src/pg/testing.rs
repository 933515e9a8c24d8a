//! A throwaway database per test, on the PostgreSQL server the test suite uses (feature
//! `testing`; for tests only).
//!
//! The server is `host=127.0.0.1 port=5432 user=postgres`, or `VIGIE_TEST_PG`. Each
//! [`TestDb`] has a random name and is dropped with its value, so tests never share state
//! and run in parallel. When the server is unreachable the test panics and says so: tests
//! that need a real server fail, they never skip.
#![allow(clippy::panic)]

use tokio_postgres::{Client, NoTls};

/// The server the tests use, without a database name.
pub fn server() -> String {
    std::env::var("VIGIE_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_owned())
}

/// A session on the server's `postgres` database.
///
/// # Panics
/// When the server is unreachable, naming it and how to start it.
pub async fn admin() -> Client {
    let url = format!("{} dbname=postgres", server());
    let (client, conn) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is unreachable at `{url}` ({}): these tests need a real server \
                 (start it with `pg_ctlcluster --skip-systemctl-redirect 15 main start`, \
                 or point VIGIE_TEST_PG at one)",
                super::error_chain(&e)
            )
        });
    tokio::spawn(conn);
    client
}

/// A database with a random name, dropped with this value.
#[derive(Debug)]
pub struct TestDb {
    /// The database's name.
    pub name: String,
    /// Its connection string.
    pub url: String,
}

impl TestDb {
    /// Creates a database with a random name.
    ///
    /// # Panics
    /// When the server is unreachable or refuses to create it.
    pub async fn new() -> TestDb {
        let mut rnd = [0u8; 8];
        if let Err(e) = getrandom::fill(&mut rnd) {
            panic!("no randomness for a database name: {e}");
        }
        let name = format!("vigie_test_{}", hex::encode(rnd));
        admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let url = format!("{} dbname={name}", server());
        TestDb { name, url }
    }

    /// A new session on the database.
    ///
    /// # Panics
    /// When it cannot connect.
    pub async fn client(&self) -> Client {
        let (client, conn) = super::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url));
        drop(conn);
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime: use a thread of its own with its own runtime.
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let _ = admin()
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
        if done.is_err() {
            eprintln!("test database {} not dropped", self.name);
        }
    }
}
