//! JSON over HTTPS with a real TLS client and real certificates: per-event status,
//! answered once durable, idempotent retries (also across a restart), and the limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use collector::config::HttpsConfig;
use common::*;
use proto::model::EventKind;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn with_https(config: &mut collector::config::Config) {
    config.https = Some(HttpsConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        max_body_bytes: 64 * 1024,
        max_events_per_request: 100,
        max_requests_in_flight_per_source: 1,
        body_timeout_ms: 5_000,
        ..HttpsConfig::default()
    });
}

/// Sends one request and returns the status code and body.
async fn request(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, serde_json::Value)> {
    let mut s = tls_connect(connector, addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    s.flush().await?;
    let mut response = Vec::new();
    s.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    ))
}

fn statuses(body: &serde_json::Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_answered_once_durable_with_a_status_per_event() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("journal");
    let pki = Pki::new(&tmp.path().join("pki"));
    let mut config = config(&data, &pki);
    with_https(&mut config);
    let server = Running::start(config.clone()).await;
    let addr = server.addrs.https[0];
    let connector = pki.connector(Some(&pki.source));

    let batch = serde_json::json!({ "events": [
        { "id": "e-1", "message": message(1) },
        { "id": "e-2", "tenant": "CHU-Y", "app_name": "sshd",
          "message": "Failed password for carol from 198.51.100.4 port 2222 ssh2" },
        { "id": "e-3", "event": { "what": "something no profile knows" } },
        { "id": "e-4", "tenant": "CHU-Z", "message": "not for us" },
        { "id": "e-5", "message": "x", "event": {} },
        { "no_id": true },
        { "id": "e-1", "message": "same id twice in one batch" }
    ]})
    .to_string();
    let (code, body) = request(&connector, addr, "POST", "/v1/events", &batch)
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        statuses(&body),
        [
            "stored",
            "stored",
            "stored",
            "rejected",
            "rejected",
            "rejected",
            "duplicate"
        ],
        "{body}"
    );
    assert!(
        body["results"][3]["error"]
            .as_str()
            .unwrap()
            .contains("CHU-Z")
    );
    assert_eq!(body["stored"], 3);
    // Answered means durable: the events are in the journal's files already.
    let stored = events(&data);
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0].account.as_deref(), Some("user1"));
    assert_eq!(stored[1].kind.name(), "auth_failure");
    assert_eq!(stored[1].tenant, "CHU-Y");
    assert_eq!(stored[2].kind, EventKind::Unmapped);
    // The raw evidence is the event's JSON as sent.
    assert!(String::from_utf8_lossy(&stored[2].raw).contains("\"id\":\"e-3\""));

    // A retry of the same ids is not stored twice; a new id is.
    let retry = serde_json::json!({ "events": [
        { "id": "e-1", "message": message(1) },
        { "id": "e-6", "message": message(6) }
    ]})
    .to_string();
    let (code, body) = request(&connector, addr, "POST", "/v1/events", &retry)
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(statuses(&body), ["duplicate", "stored"]);
    server.stop().await.unwrap();

    // Still a duplicate after a restart: the ids are rebuilt from the journal.
    let server = Running::start(config).await;
    let addr = server.addrs.https[0];
    let (code, body) = request(&connector, addr, "POST", "/v1/events", &retry)
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(statuses(&body), ["duplicate", "duplicate"], "{body}");
    server.stop().await.unwrap();
    assert_eq!(events(&data).len(), 4);
    verify(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_bad_requests_get_clear_http_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("journal");
    let pki = Pki::new(&tmp.path().join("pki"));
    let mut config = config(&data, &pki);
    with_https(&mut config);
    let server = Running::start(config).await;
    let addr = server.addrs.https[0];
    let connector = pki.connector(Some(&pki.source));

    let big = format!(
        r#"{{"events":[{{"id":"a","message":"{}"}}]}}"#,
        "x".repeat(70_000)
    );
    let (code, _) = request(&connector, addr, "POST", "/v1/events", &big)
        .await
        .unwrap();
    assert_eq!(code, 413, "body over max_body_bytes");
    // Chunked, with no length announced: refused once over the limit, and the rest read
    // so that the answer reaches a client still sending.
    let mut s = tls_connect(&connector, addr).await.unwrap();
    s.write_all(b"POST /v1/events HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("2000\r\n{}\r\n", "x".repeat(0x2000));
    for _ in 0..24 {
        s.write_all(chunk.as_bytes()).await.unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    s.flush().await.unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("max_body_bytes"), "{response}");
    let many: Vec<_> = (0..101)
        .map(|i| serde_json::json!({"id": format!("m{i}"), "message": "m"}))
        .collect();
    let many = serde_json::json!({ "events": many }).to_string();
    let (code, body) = request(&connector, addr, "POST", "/v1/events", &many)
        .await
        .unwrap();
    assert_eq!(code, 413, "{body}");
    let (code, _) = request(&connector, addr, "POST", "/v1/events", "{not json")
        .await
        .unwrap();
    assert_eq!(code, 400);
    let (code, _) = request(&connector, addr, "GET", "/v1/events", "")
        .await
        .unwrap();
    assert_eq!(code, 405);
    let (code, _) = request(&connector, addr, "POST", "/elsewhere", "{}")
        .await
        .unwrap();
    assert_eq!(code, 404);

    // A request whose body is still coming holds the source's only slot: 429 for another.
    let mut slow = tls_connect(&connector, addr).await.unwrap();
    slow.write_all(
        b"POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"ev",
    )
    .await
    .unwrap();
    slow.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (code, _) = request(&connector, addr, "POST", "/v1/events", r#"{"events":[]}"#)
        .await
        .unwrap();
    assert_eq!(code, 429);
    drop(slow);

    // Without a client certificate: refused.
    let anonymous = pki.connector(None);
    assert!(
        request(&anonymous, addr, "POST", "/v1/events", r#"{"events":[]}"#)
            .await
            .is_err()
    );

    let text = server.metrics.render();
    assert_eq!(
        metric(
            &text,
            "vigie_events_rejected_total",
            &["reason=\"too_many_requests\""]
        ),
        1.0
    );
    assert!(
        metric(
            &text,
            "vigie_events_rejected_total",
            &["reason=\"body_too_large\""]
        ) >= 1.0
    );
    server.stop().await.unwrap();
    assert!(events(&data).is_empty());
}
