//! The listeners against real TLS clients (tokio-rustls) with real certificates made in
//! the test: syslog over TLS, RELP over TLS, plain TCP, mutual TLS refusals, limits,
//! hostile input, graceful shutdown, metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use proto::model::{Entry, EventKind};
use proto::relp::Command;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

fn dirs() -> (tempfile::TempDir, std::path::PathBuf, Pki) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("journal");
    let pki = Pki::new(&tmp.path().join("pki"));
    (tmp, data, pki)
}

/// Reads until EOF or error; true if the server closed the connection within 10 s.
async fn closed_by_server<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> bool {
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_tls_octet_counted_messages_are_journaled_and_chained() {
    let (_tmp, data, pki) = dirs();
    let mut config = config(&data, &pki);
    // Small journal batches: one read is split into several group commits, in order.
    config.journal.max_batch_entries = 64;
    let server = Running::start(config).await;
    let connector = pki.connector(Some(&pki.source));
    let mut s = tls_connect(&connector, server.syslog()).await.unwrap();
    let mut out = Vec::new();
    for i in 0..500 {
        proto::framing::encode_octet_counted(message(i).as_bytes(), &mut out);
    }
    // An LF-framed message and a message no profile knows, on the same stream.
    out.extend_from_slice(b"<13>Mar  1 10:00:01 fw kernel: something else entirely\n");
    s.write_all(&out).await.unwrap();
    s.shutdown().await.unwrap();
    assert!(closed_by_server(&mut s).await);
    server.stop().await.unwrap();

    let events = events(&data);
    assert_eq!(events.len(), 501);
    for (i, e) in events.iter().take(500).enumerate() {
        assert_eq!(e.kind, EventKind::AuthSuccess, "event {i}");
        assert_eq!(e.source, SOURCE);
        assert_eq!(e.tenant, TENANT);
        assert_eq!(e.account.as_deref(), Some(format!("user{i}").as_str()));
        assert_eq!(e.raw, message(i).into_bytes());
    }
    assert_eq!(events[500].kind, EventKind::Unmapped);
    // The journal ends with the closing seal, and the whole chain verifies.
    assert!(entries(&data).last().unwrap().0, "last entry is a seal");
    verify(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relp_answers_200_only_once_durable() {
    let (_tmp, data, pki) = dirs();
    let server = Running::start(config(&data, &pki)).await;
    let connector = pki.connector(Some(&pki.source));
    let mut relp = Relp::new(tls_connect(&connector, server.relp()).await.unwrap());
    relp.open().await;
    let mut sent = Vec::new();
    for i in 0..300 {
        sent.push(relp.send(Command::Syslog, message(i).as_bytes()).await);
    }
    for (i, expected) in sent.iter().enumerate() {
        let (txnr, rsp) = relp.response().await.expect("answer");
        assert_eq!(txnr, *expected, "answers in order");
        assert!(rsp.is_ok(), "message {i}: {rsp:?}");
        if i == 0 || i == 299 {
            // Acknowledged: already in the journal's files, before any shutdown.
            let stored = events(&data);
            assert!(
                stored.len() > i,
                "ack {i} came before durability ({} stored)",
                stored.len()
            );
        }
    }
    let close = relp.send(Command::Close, b"").await;
    let (txnr, command, _) = relp.recv().await.expect("close answered");
    assert_eq!((txnr, command), (close, Command::Rsp));
    server.stop().await.unwrap();
    assert_eq!(events(&data).len(), 300);
    verify(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_or_unknown_client_certificates_are_refused() {
    let (_tmp, data, pki) = dirs();
    let server = Running::start(config(&data, &pki)).await;
    let msg = {
        let mut out = Vec::new();
        proto::framing::encode_octet_counted(message(1).as_bytes(), &mut out);
        out
    };
    // No client certificate.
    let no_cert = pki.connector(None);
    // A certificate for the right name from another CA.
    let other_ca = collector::devcerts::DevCa::new("rogue CA").unwrap();
    let rogue = other_ca.issue_client(SOURCE).unwrap();
    let wrong_ca = pki.connector(Some(&rogue));
    // A certificate from the right CA naming no configured source.
    let stranger = pki.ca.issue_client("stranger.example.org").unwrap();
    let unknown = pki.connector(Some(&stranger));
    for (what, connector) in [
        ("no cert", &no_cert),
        ("wrong CA", &wrong_ca),
        ("unknown", &unknown),
    ] {
        for addr in [server.syslog(), server.relp()] {
            // With TLS 1.3 the client may finish its side before the server refuses.
            if let Ok(mut s) = tls_connect(connector, addr).await {
                let _ = s.write_all(&msg).await;
                let _ = s.flush().await;
                assert!(
                    closed_by_server(&mut s).await,
                    "{what}: connection not closed"
                );
            }
        }
    }
    let text = server.metrics.render();
    assert_eq!(
        metric(&text, "vigie_tls_handshake_failures_total", &[]),
        4.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "vigie_connections_rejected_total",
            &["reason=\"unknown_source\""]
        ),
        2.0
    );
    server.stop().await.unwrap();
    assert!(events(&data).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_claiming_another_tenant_or_source_is_refused() {
    let (_tmp, data, pki) = dirs();
    let server = Running::start(config(&data, &pki)).await;
    let connector = pki.connector(Some(&pki.source));
    let mut relp = Relp::new(tls_connect(&connector, server.relp()).await.unwrap());
    relp.open().await;
    let ok = relp
        .send(
            Command::Syslog,
            br#"<86>1 - b sshd - - [vigie@32473 tenant="CHU-Y"] Accepted password for bob from 203.0.113.9 port 1 ssh2"#,
        )
        .await;
    let foreign = relp
        .send(
            Command::Syslog,
            br#"<86>1 - b sshd - - [vigie@32473 tenant="CHU-Z"] hello"#,
        )
        .await;
    let spoof = relp
        .send(
            Command::Syslog,
            br#"<86>1 - b sshd - - [vigie@32473 source="gw.chu-z.fr"] hello"#,
        )
        .await;
    let (t, r) = relp.response().await.unwrap();
    assert_eq!(t, ok);
    assert!(r.is_ok(), "{r:?}");
    let (t, r) = relp.response().await.unwrap();
    assert_eq!((t, r.code), (foreign, 500));
    assert!(r.text.contains("CHU-Z"), "{r:?}");
    let (t, r) = relp.response().await.unwrap();
    assert_eq!((t, r.code), (spoof, 500));

    // Over syslog/TLS there is no answer: the message is dropped and counted.
    let mut s = tls_connect(&connector, server.syslog()).await.unwrap();
    let mut out = Vec::new();
    proto::framing::encode_octet_counted(
        br#"<86>1 - b x - - [vigie@32473 tenant="CHU-Z"] hi"#,
        &mut out,
    );
    s.write_all(&out).await.unwrap();
    s.shutdown().await.unwrap();
    assert!(closed_by_server(&mut s).await);

    let text = server.metrics.render();
    assert_eq!(
        metric(
            &text,
            "vigie_events_rejected_total",
            &["reason=\"tenant_not_allowed\""]
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "vigie_events_rejected_total",
            &["reason=\"source_mismatch\""]
        ),
        1.0
    );
    server.stop().await.unwrap();
    let events = events(&data);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].tenant, "CHU-Y");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_close_only_their_connection() {
    let (_tmp, data, pki) = dirs();
    let server = Running::start(config(&data, &pki)).await;
    let connector = pki.connector(Some(&pki.source));

    let mut good = tls_connect(&connector, server.syslog()).await.unwrap();
    let mut relp_good = Relp::new(tls_connect(&connector, server.relp()).await.unwrap());
    relp_good.open().await;

    // Syslog: an octet count over max_frame_bytes (4096) is fatal to that connection.
    let mut bad = tls_connect(&connector, server.syslog()).await.unwrap();
    bad.write_all(b"5000 <13>1 - - - - - - ").await.unwrap();
    bad.write_all(&[b'x'; 100]).await.unwrap();
    assert!(
        closed_by_server(&mut bad).await,
        "oversized syslog frame: not closed"
    );

    // RELP: `rsp 500` naming the cap, then serverclose, then the connection is closed.
    let mut relp_bad = Relp::new(tls_connect(&connector, server.relp()).await.unwrap());
    relp_bad.open().await;
    let big = vec![b'a'; 5000];
    let t = relp_bad.send(Command::Syslog, &big).await;
    let (txnr, rsp) = relp_bad.response().await.expect("an error answer");
    assert_eq!((txnr, rsp.code), (t, 500));
    assert!(rsp.text.contains("4096"), "{rsp:?}");
    let (txnr, command, _) = relp_bad.recv().await.expect("serverclose");
    assert_eq!((txnr.get(), command), (0, Command::ServerClose));
    assert!(relp_bad.recv().await.is_none(), "closed after serverclose");

    // The other connections are unaffected.
    let mut out = Vec::new();
    proto::framing::encode_octet_counted(message(7).as_bytes(), &mut out);
    good.write_all(&out).await.unwrap();
    good.shutdown().await.unwrap();
    assert!(closed_by_server(&mut good).await);
    let t = relp_good.send(Command::Syslog, message(8).as_bytes()).await;
    let (txnr, rsp) = relp_good.response().await.unwrap();
    assert_eq!(txnr, t);
    assert!(rsp.is_ok());

    let text = server.metrics.render();
    assert_eq!(
        metric(
            &text,
            "vigie_events_rejected_total",
            &["reason=\"frame_too_large\""]
        ),
        2.0,
        "{text}"
    );
    server.stop().await.unwrap();
    assert_eq!(events(&data).len(), 2);
    verify(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_truncated_frames_and_half_open_connections_never_crash_the_server() {
    let (_tmp, data, pki) = dirs();
    let mut config = config(&data, &pki);
    for l in [
        config.syslog_tls.as_mut().unwrap(),
        config.relp_tls.as_mut().unwrap(),
    ] {
        l.idle_timeout_ms = 1500;
        l.frame_timeout_ms = 1000;
        l.handshake_timeout_ms = 1000;
    }
    let server = Running::start(config).await;
    let connector = pki.connector(Some(&pki.source));

    // Raw garbage instead of a TLS handshake.
    for addr in [server.syslog(), server.relp()] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let _ = tcp.write_all(&garbage).await;
        assert!(closed_by_server(&mut tcp).await);
    }
    // Half-open: TCP connected, no handshake; and TLS up, nothing sent.
    let mut silent_tcp = TcpStream::connect(server.syslog()).await.unwrap();
    let mut silent_tls = tls_connect(&connector, server.syslog()).await.unwrap();
    // Garbage inside TLS: not syslog, kept as unmapped events (LF-framed lines).
    let mut s = tls_connect(&connector, server.syslog()).await.unwrap();
    s.write_all(b"\x00\x01\x02 binary \xff\xfe junk\nnot even a pri\n")
        .await
        .unwrap();
    // A truncated octet-counted frame, then EOF.
    s.write_all(b"200 <13>1 - - - - - - only part")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    assert!(closed_by_server(&mut s).await);
    // A slow sender: a frame started and never finished.
    let mut slow = tls_connect(&connector, server.syslog()).await.unwrap();
    slow.write_all(b"100 <13>1 - - - - - - half").await.unwrap();
    // Garbage inside RELP.
    let mut r = tls_connect(&connector, server.relp()).await.unwrap();
    r.write_all(b"1 open x\n\n\xff\xff garbage\n")
        .await
        .unwrap();
    assert!(closed_by_server(&mut r).await);

    // Timeouts close the half-open and slow connections.
    assert!(
        closed_by_server(&mut silent_tcp).await,
        "no handshake: not closed"
    );
    assert!(closed_by_server(&mut silent_tls).await, "idle: not closed");
    assert!(closed_by_server(&mut slow).await, "slow sender: not closed");

    // The server still serves.
    let mut relp = Relp::new(tls_connect(&connector, server.relp()).await.unwrap());
    relp.open().await;
    let t = relp.send(Command::Syslog, message(1).as_bytes()).await;
    let (txnr, rsp) = relp.response().await.unwrap();
    assert_eq!(txnr, t);
    assert!(rsp.is_ok());

    let text = server.metrics.render();
    assert!(
        metric(
            &text,
            "vigie_events_rejected_total",
            &["reason=\"truncated\""]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "vigie_connections_failed_total",
            &["reason=\"idle\""]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "vigie_connections_failed_total",
            &["reason=\"frame\""]
        ) >= 1.0,
        "{text}"
    );
    server.stop().await.unwrap();
    let events = events(&data);
    assert_eq!(
        events.len(),
        3,
        "two garbage lines kept unmapped + one RELP message"
    );
    assert_eq!(events[0].kind, EventKind::Unmapped);
    assert_eq!(events[0].raw, b"\x00\x01\x02 binary \xff\xfe junk".to_vec());
    verify(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_answers_and_seals() {
    let (_tmp, data, pki) = dirs();
    let server = Running::start(config(&data, &pki)).await;
    let connector = pki.connector(Some(&pki.source));
    let mut relp = Relp::new(tls_connect(&connector, server.relp()).await.unwrap());
    relp.open().await;
    let mut sent = Vec::new();
    for i in 0..100 {
        sent.push(relp.send(Command::Syslog, message(i).as_bytes()).await);
    }
    // Wait for the first answer so the messages were read, then stop the server.
    let (first, rsp) = relp.response().await.unwrap();
    assert_eq!(first, sent[0]);
    assert!(rsp.is_ok());
    let stopping = tokio::spawn(server.stop());
    let mut acked = 1;
    let mut serverclose = false;
    while let Some((txnr, command, data)) = relp.recv().await {
        match command {
            Command::Rsp => {
                assert_eq!(txnr, sent[acked]);
                assert!(data.starts_with(b"200 OK"));
                acked += 1;
            }
            Command::ServerClose => serverclose = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    stopping.await.unwrap().unwrap();
    assert!(serverclose, "serverclose hint sent");
    let entries = entries(&data);
    let stored = entries.iter().filter(|(seal, _)| !seal).count();
    assert!(
        stored >= acked,
        "every acknowledged message is stored ({acked} acked, {stored} stored)"
    );
    assert!(entries.last().unwrap().0, "closing seal");
    verify(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_keeps_what_syslog_peers_already_sent() {
    let (_tmp, data, pki) = dirs();
    let server = Running::start(config(&data, &pki)).await;
    let connector = pki.connector(Some(&pki.source));
    let mut s = tls_connect(&connector, server.syslog()).await.unwrap();
    let mut out = Vec::new();
    for i in 0..200 {
        proto::framing::encode_octet_counted(message(i).as_bytes(), &mut out);
    }
    let mut last = Vec::new();
    proto::framing::encode_octet_counted(message(200).as_bytes(), &mut last);
    let (head, tail) = last.split_at(40);
    out.extend_from_slice(head);
    s.write_all(&out).await.unwrap();
    s.flush().await.unwrap();
    // Shutdown begins with 200 frames and a partial one sent; the rest of it follows.
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(tail).await.unwrap();
    s.flush().await.unwrap();
    assert!(closed_by_server(&mut s).await, "closed after draining");
    stopping.await.unwrap().unwrap();
    assert_eq!(events(&data).len(), 201);
    verify(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_accepts_only_allowed_addresses() {
    let (_tmp, data, pki) = dirs();
    let mut config = config(&data, &pki);
    let mut plain = listener("127.0.0.1:0");
    plain.allow = vec![collector::config::AllowedPeer {
        addr: "127.0.0.1".parse().unwrap(),
        source: SOURCE.into(),
    }];
    plain.listen = vec!["0.0.0.0:0".parse().unwrap()];
    config.syslog_tcp = Some(plain);
    config.check().unwrap();
    let server = Running::start(config).await;
    let port = server.addrs.syslog_tcp[0].port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // Allowed: LF-framed and octet-counted frames, detected per frame.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut out = message(1).into_bytes();
    proto::framing::encode_octet_counted(message(2).as_bytes(), &mut out);
    s.write_all(&out).await.unwrap();
    s.shutdown().await.unwrap();
    assert!(closed_by_server(&mut s).await);

    // Another address (127.0.0.2 is loopback too) is refused.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut denied = socket.connect(addr).await.unwrap();
    let _ = denied.write_all(message(3).as_bytes()).await;
    assert!(closed_by_server(&mut denied).await);

    let text = server.metrics.render();
    assert_eq!(
        metric(
            &text,
            "vigie_connections_rejected_total",
            &["reason=\"not_allowed\""]
        ),
        1.0
    );
    server.stop().await.unwrap();
    let events = events(&data);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].account.as_deref(), Some("user1"));
    assert_eq!(events[1].account.as_deref(), Some("user2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_are_enforced() {
    let (_tmp, data, pki) = dirs();
    let mut config = config(&data, &pki);
    config
        .syslog_tls
        .as_mut()
        .unwrap()
        .max_connections_per_source = 1;
    let server = Running::start(config).await;
    let connector = pki.connector(Some(&pki.source));
    let mut first = tls_connect(&connector, server.syslog()).await.unwrap();
    let mut out = Vec::new();
    proto::framing::encode_octet_counted(message(1).as_bytes(), &mut out);
    first.write_all(&out).await.unwrap();
    first.flush().await.unwrap();
    let open = || {
        metric(
            &server.metrics.render(),
            "vigie_connections_open",
            &["listener=\"syslog_tls\""],
        )
    };
    assert_eq!(open(), 1.0);
    let mut second = tls_connect(&connector, server.syslog()).await.unwrap();
    assert!(
        closed_by_server(&mut second).await,
        "second connection of the source refused"
    );
    first.shutdown().await.unwrap();
    assert!(closed_by_server(&mut first).await);
    let text = server.metrics.render();
    assert_eq!(
        metric(
            &text,
            "vigie_connections_rejected_total",
            &["reason=\"max_connections_per_source\""]
        ),
        1.0
    );
    // Served or refused, a connection is no longer counted open once it is over.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while open() != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} connections still counted open",
            open()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await.unwrap();
    assert_eq!(events(&data).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_prometheus_text() {
    let (_tmp, data, pki) = dirs();
    let server = Running::start(config(&data, &pki)).await;
    let connector = pki.connector(Some(&pki.source));
    let mut relp = Relp::new(tls_connect(&connector, server.relp()).await.unwrap());
    relp.open().await;
    relp.send(Command::Syslog, message(1).as_bytes()).await;
    relp.send(Command::Syslog, b"<13>1 - - - - - - nobody knows this")
        .await;
    assert!(relp.response().await.unwrap().1.is_ok());
    assert!(relp.response().await.unwrap().1.is_ok());

    let mut http = TcpStream::connect(server.addrs.metrics.unwrap())
        .await
        .unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    http.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    let src = format!("source=\"{SOURCE}\"");
    assert_eq!(
        metric(
            &body,
            "vigie_events_accepted_total",
            &[&src, "listener=\"relp_tls\""]
        ),
        2.0,
        "{body}"
    );
    assert_eq!(metric(&body, "vigie_events_unmapped_total", &[&src]), 1.0);
    // Both were answered, so both are durable.
    assert_eq!(
        metric(&body, "vigie_events_durable_total", &[]),
        2.0,
        "{body}"
    );
    assert!(metric(&body, "vigie_ack_latency_seconds_count", &[]) >= 1.0);
    assert!(metric(&body, "vigie_last_event_timestamp_seconds", &[&src]) > 1.7e9);
    // Both events went through at least one group commit, each timed.
    assert!(
        metric(&body, "vigie_journal_commit_entries_sum", &[]) >= 2.0,
        "{body}"
    );
    assert!(
        metric(&body, "vigie_journal_fsync_seconds_count", &[]) >= 1.0,
        "{body}"
    );
    server.stop().await.unwrap();
    let entries = entries(&data);
    assert!(matches!(entries[0].1, Entry::Event(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tls_files_a_development_pki_is_generated_and_used() {
    let (_tmp, data, pki) = dirs();
    let mut config = config(&data, &pki);
    config.tls = None;
    let server = Running::start(config).await;
    let dev = collector::devcerts::DevPki::in_dir(&data.join("dev-pki"));
    assert!(dev.exists(), "dev PKI generated under the data directory");
    let ca = std::fs::read_to_string(&dev.ca_file).unwrap();
    let source = collector::devcerts::Issued {
        cert_pem: std::fs::read_to_string(&dev.source_cert_file).unwrap(),
        key_pem: std::fs::read_to_string(&dev.source_key_file).unwrap(),
    };
    let mut relp = Relp::new(
        tls_connect(&connector(&ca, Some(&source)), server.relp())
            .await
            .unwrap(),
    );
    relp.open().await;
    let t = relp.send(Command::Syslog, message(1).as_bytes()).await;
    let (txnr, rsp) = relp.response().await.unwrap();
    assert_eq!(txnr, t);
    assert!(rsp.is_ok(), "{rsp:?}");
    // The test PKI's certificates are not trusted by the dev CA.
    let other = pki.connector(Some(&pki.source));
    if let Ok(mut s) = tls_connect(&other, server.relp()).await {
        assert!(closed_by_server(&mut s).await);
    }
    server.stop().await.unwrap();
    assert_eq!(events(&data).len(), 1);
}
