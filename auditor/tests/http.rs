//! The HTTP API over the month's ledger: access by role, reports, journals, bundles,
//! declarations, verification, the record of every access, and HTTPS with rustls.

mod common;
mod serving;

use std::sync::Arc;

use auditor::http::Transport;
use common::*;
use serving::*;

fn report_path(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/report?from={FROM}&to={TO}")
}

async fn start(m: &Month) -> Running {
    Running::start(
        server_config(&m.ledger, &m.events),
        Transport::PlainLoopback,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_roles_decide_what_is_served() {
    let m = month();
    let s = start(&m).await;
    let a = s.addr;

    // No credentials: 401 with a Basic challenge (browsers prompt). Unknown: 403.
    let r = request(a, "GET", &report_path(TENANT), None, None).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Basic"))
    );
    for path in [
        report_path(TENANT),
        "/api/v1/verify".into(),
        format!("/t/{TENANT}/"),
    ] {
        let r = get(a, &path, "a-source-or-stolen-token").await;
        assert_eq!(r.status, 403, "{path}");
    }

    // An RSSI sees only its own tenants.
    assert_eq!(
        get(a, &report_path(TENANT), "tok-rssi-lyon").await.status,
        200
    );
    assert_eq!(
        get(a, &report_path("chu-nice"), "tok-rssi-lyon")
            .await
            .status,
        403
    );
    assert_eq!(
        get(a, &report_path(TENANT), "tok-rssi-nice").await.status,
        403
    );
    // An auditor reads reports, not journals; a declarant reads nothing.
    assert_eq!(
        get(a, &report_path(TENANT), "tok-auditor").await.status,
        200
    );
    let journal = format!("/api/v1/tenants/{TENANT}/vendors/medimage/journal?from={FROM}&to={TO}");
    assert_eq!(get(a, &journal, "tok-auditor").await.status, 403);
    assert_eq!(
        get(a, &report_path(TENANT), "tok-declarant").await.status,
        403
    );
    assert_eq!(get(a, "/api/v1/verify", "tok-declarant").await.status, 403);

    // Errors are JSON and name the parameter.
    let r = get(
        a,
        &format!("/api/v1/tenants/{TENANT}/report?to={TO}"),
        "tok-rssi-lyon",
    )
    .await;
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("from")));
    let r = get(
        a,
        &format!("{}&lang=de", report_path(TENANT)),
        "tok-rssi-lyon",
    )
    .await;
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("lang")));
    let r = get(a, "/api/v1/nothing", "tok-rssi-lyon").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    let r = request(
        a,
        "DELETE",
        &report_path(TENANT),
        Some("tok-rssi-lyon"),
        None,
    )
    .await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_journals_and_bundles_are_served_and_recorded() {
    let m = month();
    let expected = auditor::audit::run(&ledger(&m), config_like_server(), options()).expect("run");
    let s = start(&m).await;
    let a = s.addr;

    let r = get(a, &report_path(TENANT), "tok-rssi-lyon").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let json = r.json();
    assert_eq!(json["summary"]["connections"], 15);
    assert_eq!(
        json["findings"].as_array().map(Vec::len),
        Some(expected.findings.len())
    );
    assert_eq!(json["summary"]["from"], "2026-03-01T00:00:00+01:00");
    // French by default, English on request.
    let fr = json["findings"][0]["title"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let en = get(
        a,
        &format!("{}&lang=en", report_path(TENANT)),
        "tok-rssi-lyon",
    )
    .await
    .json();
    assert_ne!(fr, en["findings"][0]["title"].as_str().unwrap_or_default());
    let csv = get(
        a,
        &format!("{}&format=csv", report_path(TENANT)),
        "tok-auditor",
    )
    .await;
    assert!(csv.body.starts_with("rule,severity,tenant,vendor"));

    let journal = format!("/api/v1/tenants/{TENANT}/vendors/biolab/journal?from={FROM}&to={TO}");
    let r = get(a, &journal, "tok-rssi-lyon").await;
    assert_eq!(r.status, 200);
    let rows = r.json();
    let rows = rows.as_array().expect("an array of sessions");
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|s| s["vendor"] == "biolab" && s["tenant"] == TENANT)
    );

    // A tenant's RSSI gets the bundle of its own establishment: the vendor's entries of
    // that tenant in full, everything else only as digests.
    let bundle = format!("/api/v1/tenants/{TENANT}/vendors/biolab/bundle?from={FROM}&to={TO}");
    let r = get(a, &bundle, "tok-rssi-lyon").await;
    assert_eq!(r.status, 200);
    let mut full = 0;
    for line in r.body.lines().skip(1) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        if let Some(hex_entry) = v["entry"].as_str() {
            let bytes = hex::decode(hex_entry).expect("hex");
            let entry = proto::canonical::decode(&bytes).expect("canonical");
            assert!(
                entry.tenant().is_none_or(|t| t == TENANT),
                "another establishment's entry in full: {entry:?}"
            );
            full += 1;
        }
    }
    assert!(full > 0);
    let r = get(a, &bundle, "tok-rssi-group").await;
    assert_eq!(r.status, 200);
    let first: serde_json::Value =
        serde_json::from_str(r.body.lines().next().expect("a header")).expect("json line");
    assert_eq!(first["vendor"], "biolab");
    let file = m._tmp.path().join("bundle.jsonl");
    std::fs::write(&file, &r.body).expect("write bundle");
    let keys = [&m.events, &m.ledger].map(|d| {
        store::journal::VerifierKeys::read(&d.join(store::journal::VERIFIER_FILE)).expect("key")
    });
    let outcome = auditor::export::verify_bundle(&file, &keys).expect("verify bundle");
    assert!(outcome.is_intact(), "the bundle served verifies offline");

    // Every served report, journal and bundle is in the ledger, filed by its reader;
    // refusals left no trace.
    let accesses = accesses(&m.ledger);
    let by = |user: &str, action: &str| {
        accesses
            .iter()
            .filter(|(_, u, a, _)| u == user && a == action)
            .count()
    };
    assert_eq!(by("rssi.dupont", "report"), 2);
    assert_eq!(by("audit.martin", "report"), 1);
    assert_eq!(by("rssi.dupont", "journal_export"), 2);
    assert_eq!(by("rssi.groupe", "journal_export"), 1);
    assert!(
        accesses
            .iter()
            .all(|(t, _, _, scope)| t == TENANT && scope.contains("via=api"))
    );
    assert!(
        accesses
            .iter()
            .any(|(_, _, _, scope)| scope.contains("vendor=biolab") && scope.contains("bundle"))
    );

    // The chains, the auditor's with its access records included, verify.
    let r = get(a, "/api/v1/verify", "tok-auditor").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["intact"], true, "{v}");
    assert_eq!(v["journals"].as_array().map(Vec::len), Some(2));
    s.stop().await;
}

fn config_like_server() -> auditor::rules::RuleConfig {
    let mut cfg = config();
    cfg.max_skew = time::Duration::seconds(300);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarations_are_filed_by_the_user_and_refusals_name_the_field() {
    let m = month();
    let s = start(&m).await;
    let a = s.addr;
    let path = format!("/api/v1/tenants/{TENANT}/declarations");
    let post = |token: &'static str, body: String| {
        let path = path.clone();
        async move { request(a, "POST", &path, Some(token), Some(&body)).await }
    };
    let vendor =
        r#"{"declaration":"vendor_registered","vendor":"radiotech","name":"Radiotech SAS"}"#;

    let r = post("tok-declarant", vendor.into()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["filed"], 1);
    let decls = auditor::declare::existing(&m.ledger).expect("read");
    let filed = decls
        .vendor(TENANT, "radiotech")
        .and_then(|v| v.registered.clone())
        .expect("registered");
    assert_eq!(filed.filed_by, "decl.medimage");

    // Refused by the rules of filing: the field is named, nothing is filed.
    let r = post("tok-declarant", vendor.into()).await;
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (422, Some("vendor"))
    );
    let batch = r#"[{"declaration":"vendor_registered","vendor":"other","name":"O"},
           {"declaration":"departure","vendor":"radiotech","person":"p","effective_at":"soon"}]"#
        .to_owned();
    let r = post("tok-declarant", batch).await;
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (400, Some("[1].effective_at"))
    );
    assert!(
        !auditor::declare::existing(&m.ledger)
            .expect("read")
            .is_registered(TENANT, "other")
    );
    let r = post(
        "tok-declarant",
        r#"{"declaration":"vendor_registered","vendor":"x"}"#.into(),
    )
    .await;
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("name")));
    let r = post("tok-declarant", "{not json".into()).await;
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("body")));

    // The right to file is per tenant; an auditor has none; bodies are bounded.
    let other = "/api/v1/tenants/chu-nice/declarations";
    let r = request(a, "POST", other, Some("tok-declarant"), Some(vendor)).await;
    assert_eq!(r.status, 403);
    assert_eq!(post("tok-auditor", vendor.into()).await.status, 403);
    assert_eq!(
        post(
            "tok-rssi-lyon",
            r#"{"declaration":"vendor_registered","vendor":"byrssi","name":"B"}"#.into()
        )
        .await
        .status,
        201
    );
    let huge = format!(
        r#"{{"declaration":"vendor_registered","vendor":"v","name":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    assert_eq!(post("tok-declarant", huge).await.status, 413);
    let r = get(a, &path, "tok-declarant").await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_rustls() {
    let m = month();
    let dir = m._tmp.path().join("pki");
    std::fs::create_dir_all(&dir).expect("pki dir");
    let ca = collector::devcerts::DevCa::new("test CA").expect("ca");
    let server = ca
        .issue_server(&["localhost"], &["127.0.0.1".parse().expect("ip")])
        .expect("server cert");
    let source = ca.issue_client("bastion.chu-lyon.fr").expect("source cert");
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    collector::devcerts::write(&cert, &server.cert_pem, 0o644).expect("write");
    collector::devcerts::write(&key, &server.key_pem, 0o600).expect("write");

    let mut cfg = server_config(&m.ledger, &m.events);
    // Plain HTTP is refused off loopback, and HTTPS needs its files.
    cfg.listen = "0.0.0.0:0".parse().expect("addr");
    assert!(Transport::from_config(&cfg, true).is_err());
    assert!(Transport::from_config(&cfg, false).is_err());
    cfg.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.tls = Some(auditor::config::TlsFiles {
        cert_file: cert,
        key_file: key,
        client_ca_file: None,
        client_crl_files: vec![],
        require_client_cert: false,
    });
    let transport = Transport::from_config(&cfg, false).expect("tls");
    let s = Running::start(cfg, transport).await;

    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject as _;
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca.cert_pem().as_bytes()) {
        roots.add(c.expect("pem")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    // Without client_ca_file no certificate is asked for, so a source's certificate
    // counts for nothing: without a token it is 401, with one not a user's it is 403.
    // (With client_ca_file, see tests/mtls.rs: 403 whatever the token.)
    let chain = rustls_pki_types::CertificateDer::pem_slice_iter(source.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("chain");
    let source_key =
        rustls_pki_types::PrivateKeyDer::from_pem_slice(source.key_pem.as_bytes()).expect("key");
    let with_source = tokio_rustls::TlsConnector::from(Arc::new(
        client
            .clone()
            .with_client_auth_cert(chain, source_key)
            .expect("client cert"),
    ));
    let plain = tokio_rustls::TlsConnector::from(Arc::new(client.with_no_client_auth()));
    let connect = |c: &tokio_rustls::TlsConnector| {
        let c = c.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(s.addr).await.expect("tcp");
            c.connect(
                rustls_pki_types::ServerName::try_from("localhost").expect("name"),
                tcp,
            )
            .await
            .expect("handshake")
        }
    };
    let r = request_on(
        connect(&plain).await,
        "GET",
        "/api/v1/verify",
        Some("tok-auditor"),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["intact"], true);
    let r = request_on(
        connect(&with_source).await,
        "GET",
        "/api/v1/verify",
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    let r = request_on(
        connect(&with_source).await,
        "GET",
        "/api/v1/verify",
        Some("bastion.chu-lyon.fr"),
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    // Plain HTTP on the TLS port gets no answer.
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut tcp = tokio::net::TcpStream::connect(s.addr).await.expect("tcp");
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let _ = tcp
            .write_all(b"GET /api/v1/verify HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut buf = Vec::new();
        let _ = tcp.read_to_end(&mut buf).await;
        buf
    })
    .await
    .expect("closed");
    assert!(!String::from_utf8_lossy(&r).contains("intact"));
    s.stop().await;
}

#[test]
fn the_example_configuration_parses() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/auditor.toml");
    let example = auditor::config::Config::read(&path).expect("deploy/auditor.toml");
    let tls = example.tls.as_ref().expect("[tls]");
    assert!(tls.client_ca_file.is_some() && !tls.require_client_cert);
    assert_eq!(example.users.len(), 3);
    let users = auditor::access::Users::new(&example.users).expect("users");
    assert!(users.any_by_certificate());
    let keys = &example.ledger.verifier_keys;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].journal, std::path::Path::new("/var/lib/vigie/data"));
    assert_eq!(
        keys[0].key,
        std::path::Path::new("/etc/vigie/keys/collector-1.verifier.key")
    );
    assert!(auditor::config::Config::parse("listen = \"127.0.0.1:1\"\nbogus = 1\n").is_err());
}
