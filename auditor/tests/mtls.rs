//! Users logging in with client certificates (mutual TLS), over real TLS with certificates
//! made here: a hospital's staff PKI, the collector's source PKI, and a stranger's CA.
//!
//! A user's certificate reads what its user may and nothing else, and what it reads is
//! recorded under the user's name; a certificate the client CA vouches for but that is no
//! user's (a bastion's) is refused on every route; one the client CA does not vouch for
//! (unknown CA, expired, revoked) gets no connection; tokens keep working alongside, and a
//! token must name the same user as the certificate it comes with.

mod common;
mod serving;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use auditor::access::{Role, UserConfig, certificate_sha256_hex};
use auditor::config::{Config, TlsFiles};
use auditor::http::Transport;
use collector::devcerts::{self, DevCa};
use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serving::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::TlsConnector;

/// The hospital group's staff PKI: issues people's client certificates (SAN e-mail).
struct StaffCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl StaffCa {
    fn new(name: &str) -> StaffCa {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).expect("ca");
        StaffCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A client certificate: CN, SAN e-mail addresses, a serial number, and validity.
    fn issue(&self, cn: &str, emails: &[&str], serial: u64, expired: bool) -> Cert {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = emails
            .iter()
            .map(|e| SanType::Rfc822Name((*e).try_into().expect("ia5")))
            .collect();
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        Cert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A CRL revoking `serials`.
    fn crl(&self, serials: &[u64]) -> String {
        let now = time::OffsetDateTime::now_utc();
        rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(7),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: now - time::Duration::minutes(30),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .expect("crl")
        .pem()
        .expect("crl pem")
    }
}

struct Cert {
    cert_pem: String,
    key_pem: String,
}

impl From<devcerts::Issued> for Cert {
    fn from(i: devcerts::Issued) -> Cert {
        Cert {
            cert_pem: i.cert_pem,
            key_pem: i.key_pem,
        }
    }
}

impl Cert {
    fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .expect("pem")
            .to_vec()
    }
}

/// Everything a test needs: the month's ledger, the PKIs, the certificates, the files.
struct Setup {
    m: Month,
    server_ca: DevCa,
    staff: StaffCa,
    /// The collector's source PKI: its CA is trusted by the auditor too (one client CA
    /// file for the hospital), but its certificates are no user's.
    sources: DevCa,
    dupont: Cert,
    auditor: Cert,
    tls: TlsFiles,
}

const DUPONT: &str = "rssi.dupont@chu-lyon.fr";

fn setup() -> Setup {
    let m = month();
    let dir = m._tmp.path().join("pki");
    std::fs::create_dir_all(&dir).expect("pki dir");
    let server_ca = DevCa::new("auditor server CA").expect("server ca");
    let server = server_ca
        .issue_server(&["localhost"], &["127.0.0.1".parse().expect("ip")])
        .expect("server cert");
    let staff = StaffCa::new("PKI du groupe hospitalier");
    let sources = DevCa::new("vigie sources CA").expect("sources ca");
    let dupont = staff.issue("Jeanne Dupont", &[DUPONT], 1, false);
    // An auditor's certificate from a PKI that puts no SAN: known by its pin.
    let auditor = staff.issue("Cabinet Martin Audit", &[], 2, false);
    let write = |name: &str, text: &str, mode| {
        let path = dir.join(name);
        devcerts::write(&path, text, mode).expect("write");
        path
    };
    let tls = TlsFiles {
        cert_file: write("server.pem", &server.cert_pem, 0o644),
        key_file: write("server.key", &server.key_pem, 0o600),
        client_ca_file: Some(write(
            "clients-ca.pem",
            &format!("{}{}", staff.cert_pem, sources.cert_pem()),
            0o644,
        )),
        client_crl_files: vec![],
        require_client_cert: false,
    };
    Setup {
        m,
        server_ca,
        staff,
        sources,
        dupont,
        auditor,
        tls,
    }
}

impl Setup {
    /// The server's configuration: the token users of `serving`, the RSSI of chu-lyon
    /// identified by its certificate's e-mail too, and a certificate-only auditor.
    fn config(&self) -> Config {
        let mut cfg = server_config(&self.m.ledger, &self.m.events);
        let dupont = cfg
            .users
            .iter_mut()
            .find(|u| u.name == "rssi.dupont")
            .expect("rssi.dupont");
        dupont.cert_subject = Some(DUPONT.to_uppercase());
        cfg.users.push(UserConfig {
            name: "audit.cabinet".into(),
            token_sha256: None,
            cert_subject: None,
            cert_sha256: Some(certificate_sha256_hex(&self.auditor.der())),
            role: Role::Auditor,
            tenants: vec![TENANT.into()],
        });
        cfg.tls = Some(self.tls.clone());
        cfg
    }

    async fn start(&self, cfg: Config) -> Running {
        let transport = Transport::from_config(&cfg, false).expect("tls");
        Running::start(cfg, transport).await
    }

    /// A TLS client trusting the server's CA, presenting `cert` if any.
    fn client(&self, cert: Option<&Cert>) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.server_ca.cert_pem().as_bytes()) {
            roots.add(c.expect("pem")).expect("root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let config = match cert {
            None => builder.with_no_client_auth(),
            Some(cert) => {
                let chain = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("chain");
                let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client cert")
            }
        };
        TlsConnector::from(Arc::new(config))
    }
}

/// One request over a new TLS connection: the reply, or why there was none (a handshake
/// the server refused shows as an error at the handshake or at the first read, TLS 1.3
/// finishing the client's side before the server has judged its certificate).
async fn try_request(
    client: &TlsConnector,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<Reply, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = client
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(token) = token {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(body) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let raw = String::from_utf8(raw).map_err(|e| e.to_string())?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no response: {raw:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status: {head}"))?;
    Ok(Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

async fn get_with(
    client: &TlsConnector,
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> Reply {
    try_request(client, addr, "GET", path, token, None)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn report_path(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/report?from={FROM}&to={TO}")
}

fn journal_path(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/vendors/biolab/journal?from={FROM}&to={TO}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_certificate_reads_its_tenant_and_is_recorded_under_its_name() {
    let p = setup();
    let s = p.start(p.config()).await;
    let a = s.addr;
    let dupont = p.client(Some(&p.dupont));

    // The RSSI's certificate alone: its tenant's report, journal and pages; not another
    // tenant's.
    let r = get_with(&dupont, a, &report_path(TENANT), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["summary"]["connections"], 15);
    assert_eq!(
        get_with(&dupont, a, &journal_path(TENANT), None)
            .await
            .status,
        200
    );
    let page = get_with(&dupont, a, &format!("/t/{TENANT}/"), None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    for path in [
        report_path("chu-nice"),
        journal_path("chu-nice"),
        "/t/chu-nice/".into(),
    ] {
        let r = get_with(&dupont, a, &path, None).await;
        assert_eq!(r.status, 403, "{path}");
    }

    // With a token too: the same user's is fine; another user's, or an unknown one, is
    // refused, whatever that token could read on its own.
    assert_eq!(
        get_with(&dupont, a, &report_path(TENANT), Some("tok-rssi-lyon"))
            .await
            .status,
        200
    );
    for token in ["tok-rssi-group", "tok-auditor", "stolen"] {
        let r = get_with(&dupont, a, &report_path(TENANT), Some(token)).await;
        assert_eq!(r.status, 403, "{token}");
        if token != "stolen" {
            assert_eq!(
                r.json()["error"],
                "the token and the client certificate name different users"
            );
        }
    }

    // A certificate known by its pin (no SAN, an auditor): reports, not journals.
    let auditor = p.client(Some(&p.auditor));
    assert_eq!(
        get_with(&auditor, a, &report_path(TENANT), None)
            .await
            .status,
        200
    );
    assert_eq!(
        get_with(&auditor, a, &journal_path(TENANT), None)
            .await
            .status,
        403
    );
    // The same name and CA but another certificate is not the pinned one.
    let lookalike = p.staff.issue("Cabinet Martin Audit", &[], 3, false);
    let r = get_with(&p.client(Some(&lookalike)), a, &report_path(TENANT), None).await;
    assert_eq!(r.status, 403);

    // Declarations filed with a certificate are filed by its user.
    let body = r#"{"declaration":"vendor_registered","vendor":"radiotech","name":"Radiotech SAS"}"#;
    let path = format!("/api/v1/tenants/{TENANT}/declarations");
    let r = try_request(&dupont, a, "POST", &path, None, Some(body))
        .await
        .expect("post");
    assert_eq!(r.status, 201, "{}", r.body);
    let filed = auditor::declare::existing(&p.m.ledger)
        .expect("read")
        .vendor(TENANT, "radiotech")
        .and_then(|v| v.registered.clone())
        .expect("registered");
    assert_eq!(filed.filed_by, "rssi.dupont");

    // Token users without a certificate still work on the same port.
    let plain = p.client(None);
    assert_eq!(
        get_with(&plain, a, &report_path(TENANT), Some("tok-auditor"))
            .await
            .status,
        200
    );
    let r = get_with(&plain, a, &report_path(TENANT), None).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        get_with(&plain, a, &report_path(TENANT), Some("stolen"))
            .await
            .status,
        403
    );

    // What was read is recorded under the user's name, as for a token; refusals left
    // no trace.
    let accesses = accesses(&p.m.ledger);
    let by = |user: &str, action: &str| {
        accesses
            .iter()
            .filter(|(_, u, a, _)| u == user && a == action)
            .count()
    };
    assert_eq!(by("rssi.dupont", "report"), 3, "{accesses:?}"); // 2 reports, 1 page
    assert_eq!(by("rssi.dupont", "journal_export"), 1);
    assert_eq!(by("audit.cabinet", "report"), 1);
    assert_eq!(by("audit.martin", "report"), 1);
    assert_eq!(accesses.len(), 6, "{accesses:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_is_no_users_opens_nothing() {
    let p = setup();
    let s = p.start(p.config()).await;
    let a = s.addr;
    // A bastion's certificate from the collector's source PKI, trusted by the auditor's
    // client CA file; and a staff certificate of someone who is not a user.
    let bastion: Cert = p
        .sources
        .issue_client("bastion.chu-lyon.fr")
        .expect("source cert")
        .into();
    let stranger = p
        .staff
        .issue("Paul Interne", &["paul.interne@chu-lyon.fr"], 4, false);
    let routes = [
        ("GET", report_path(TENANT)),
        ("GET", journal_path(TENANT)),
        (
            "GET",
            format!("/api/v1/tenants/{TENANT}/vendors/biolab/bundle?from={FROM}&to={TO}"),
        ),
        ("POST", format!("/api/v1/tenants/{TENANT}/declarations")),
        ("GET", "/api/v1/verify".into()),
        ("GET", "/api/v1/nothing".into()),
        ("GET", format!("/t/{TENANT}/")),
        ("GET", format!("/t/{TENANT}/timeline?lang=en")),
    ];
    for cert in [&bastion, &stranger] {
        let client = p.client(Some(cert));
        for (method, path) in &routes {
            // Even with a valid token: a certificate that is no user's is not upgraded
            // by a token (a token stolen onto a bastion stays useless there).
            for token in [None, Some("tok-rssi-group")] {
                let body = (*method == "POST").then_some("{}");
                let r = try_request(&client, a, method, path, token, body)
                    .await
                    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
                assert_eq!(r.status, 403, "{method} {path} {token:?}");
                if path.starts_with("/t/") {
                    let expected = if path.contains("lang=en") {
                        "This client certificate identifies no user"
                    } else {
                        "Ce certificat client n&#39;identifie aucun utilisateur"
                    };
                    assert!(r.body.contains(expected), "{}", r.body);
                } else {
                    let error = r.json()["error"].as_str().unwrap_or_default().to_owned();
                    assert!(error.contains("identifies no user"), "{error}");
                }
            }
        }
    }
    assert!(accesses(&p.m.ledger).is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_client_ca_does_not_vouch_for_gets_no_connection() {
    let p = setup();
    // The staff CA revokes a certificate.
    let revoked = p.staff.issue("Ancien RSSI", &[DUPONT], 9, false);
    let crl = p.m._tmp.path().join("pki/staff.crl.pem");
    devcerts::write(&crl, &p.staff.crl(&[9]), 0o644).expect("crl");
    let mut cfg = p.config();
    // With a CRL, every client chain's revocation status must be known: the sources'
    // CA has no CRL here, so only the staff CA is trusted.
    let staff_only = p.m._tmp.path().join("pki/staff-ca.pem");
    devcerts::write(&staff_only, &p.staff.cert_pem, 0o644).expect("ca");
    let tls = cfg.tls.as_mut().expect("tls");
    tls.client_ca_file = Some(staff_only);
    tls.client_crl_files = vec![crl];
    let s = p.start(cfg).await;
    let a = s.addr;

    let foreign = StaffCa::new("PKI d'un autre établissement");
    let unknown_ca = foreign.issue("Jeanne Dupont", &[DUPONT], 1, false);
    let self_signed: Cert = DevCa::new(DUPONT)
        .expect("ca")
        .issue_client(DUPONT)
        .expect("cert")
        .into();
    let expired = p.staff.issue("Jeanne Dupont", &[DUPONT], 10, true);
    for (what, cert, alert) in [
        ("unknown CA", &unknown_ca, "UnknownCA"),
        ("another CA with the user's name", &self_signed, "UnknownCA"),
        ("expired", &expired, "CertificateExpired"),
        ("revoked", &revoked, "CertificateRevoked"),
    ] {
        let client = p.client(Some(cert));
        let outcome = try_request(&client, a, "GET", &report_path(TENANT), None, None).await;
        assert!(
            outcome.as_ref().is_err_and(|e| e.contains(alert)),
            "{what}: {outcome:?}"
        );
        // A token does not rescue a refused certificate: there is no connection to
        // carry it.
        let outcome = try_request(
            &client,
            a,
            "GET",
            &report_path(TENANT),
            Some("tok-rssi-lyon"),
            None,
        )
        .await;
        assert!(outcome.is_err(), "{what} with a token: {outcome:?}");
    }
    // The user's valid certificate, and tokens without one, still get in.
    let r = get_with(&p.client(Some(&p.dupont)), a, &report_path(TENANT), None).await;
    assert_eq!(r.status, 200);
    let r = get_with(
        &p.client(None),
        a,
        &report_path(TENANT),
        Some("tok-rssi-lyon"),
    )
    .await;
    assert_eq!(r.status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_can_be_required() {
    let p = setup();
    let mut cfg = p.config();
    cfg.tls.as_mut().expect("tls").require_client_cert = true;
    let s = p.start(cfg).await;
    let a = s.addr;
    let outcome = try_request(
        &p.client(None),
        a,
        "GET",
        &report_path(TENANT),
        Some("tok-rssi-lyon"),
        None,
    )
    .await;
    assert!(
        outcome
            .as_ref()
            .is_err_and(|e| e.contains("CertificateRequired")),
        "a token alone: {outcome:?}"
    );
    let r = get_with(
        &p.client(Some(&p.dupont)),
        a,
        &report_path(TENANT),
        Some("tok-rssi-lyon"),
    )
    .await;
    assert_eq!(r.status, 200);
    s.stop().await;
}

#[test]
fn client_certificate_settings_are_checked_together() {
    let p = setup();
    let with = |edit: &dyn Fn(&mut TlsFiles)| {
        let mut cfg = p.config();
        edit(cfg.tls.as_mut().expect("tls"));
        Transport::from_config(&cfg, false)
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(with(&|_| ()), None);
    let no_ca = with(&|t| {
        t.client_ca_file = None;
        t.require_client_cert = true;
    });
    assert!(no_ca.is_some_and(|e| e.contains("client_ca_file")));
    let missing = PathBuf::from("/nonexistent/ca.pem");
    let unreadable = with(&|t| t.client_ca_file = Some(missing.clone()));
    assert!(
        unreadable
            .as_deref()
            .is_some_and(|e| e.contains("/nonexistent/ca.pem")),
        "{unreadable:?}"
    );
    let not_a_crl: &Path = &p.tls.cert_file;
    let bad_crl = with(&|t| t.client_crl_files = vec![not_a_crl.to_path_buf()]);
    assert!(
        bad_crl.as_deref().is_some_and(|e| e.contains("client CRL")),
        "{bad_crl:?}"
    );
    // Two users may not share a certificate subject.
    let mut cfg = p.config();
    cfg.users[1].cert_subject = Some(DUPONT.into());
    assert!(auditor::http::App::new(cfg).is_err());
}
