//! A throwaway PostgreSQL database per test (as in `store/tests/pg_common`).
//!
//! PostgreSQL must be reachable (by default `host=127.0.0.1 port=5432 user=postgres`, or
//! `VIGIE_TEST_PG`): when it is not, the test fails and says so; it never skips.

use tokio_postgres::{Client, NoTls};

/// The server the tests use, without a database name.
pub fn server() -> String {
    std::env::var("VIGIE_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_owned())
}

async fn admin() -> Client {
    let url = format!("{} dbname=postgres", server());
    let (client, conn) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is unreachable at `{url}` ({}): these tests need a real server \
                 (start it with `pg_ctlcluster --skip-systemctl-redirect 15 main start`, \
                 or point VIGIE_TEST_PG at one)",
                store::pg::error_chain(&e)
            )
        });
    tokio::spawn(conn);
    client
}

/// A database with a random name, dropped with this value.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).unwrap();
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
    pub async fn client(&self) -> Client {
        let (client, conn) = store::pg::connect(&self.url)
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
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
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
