//! Every collector configuration example in `deploy/` parses and passes the checks, and
//! `collector check-config` accepts it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

fn examples() -> Vec<PathBuf> {
    let deploy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&deploy)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "toml")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("collector"))
        })
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no deploy/collector*.toml");
    found
}

#[test]
fn every_example_in_deploy_parses() {
    for path in examples() {
        let config = collector::config::Config::load(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(config.uses_tls() || config.syslog_tcp.is_some());
    }
}

#[test]
fn check_config_command_accepts_the_examples_and_refuses_a_typo() {
    let tmp = tempfile::tempdir().unwrap();
    let (pki, _) =
        collector::devcerts::ensure(&tmp.path().join("pki"), "bastion.chu-x.fr").unwrap();
    let check = |path: &std::path::Path, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_collector"))
            .args(args)
            .arg("--config")
            .arg(path)
            .output()
            .unwrap()
    };
    for path in examples() {
        // The examples name production files; point them at real ones.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(
                "/etc/vigie/tls/collector.pem",
                pki.server_cert_file.to_str().unwrap(),
            )
            .replace(
                "/etc/vigie/tls/collector.key",
                pki.server_key_file.to_str().unwrap(),
            )
            .replace(
                "/etc/vigie/tls/sources-ca.pem",
                pki.ca_file.to_str().unwrap(),
            );
        let copy = tmp.path().join("example.toml");
        std::fs::write(&copy, &text).unwrap();
        let out = check(&copy, &["check-config"]);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // A TLS file that cannot be read is named (examples with a [tls] section).
        let key = pki.server_key_file.to_str().unwrap();
        if text.contains(key) {
            std::fs::write(&copy, text.replace(key, "/nonexistent/key.pem")).unwrap();
            let out = check(&copy, &["check-config"]);
            assert_eq!(out.status.code(), Some(2));
            assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/key.pem"));
        }
        // A typo in an option is refused, naming it.
        let (option, typo) = if text.contains("idle_timeout_ms") {
            ("idle_timeout_ms", "idle_timeout")
        } else {
            ("tenants", "tenant_list")
        };
        assert!(text.contains(option), "{}", path.display());
        std::fs::write(&copy, text.replace(option, typo)).unwrap();
        let out = check(&copy, &["run", "--check-config"]);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(typo), "{}: {stderr}", path.display());
    }
    // A configuration that is not there: named, with the system's reason said once.
    let missing = tmp.path().join("missing.toml");
    let out = check(&missing, &["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: cannot read config {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
}

#[test]
fn dev_certs_makes_a_pki_the_server_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_collector"))
        .arg("--data-dir")
        .arg(&data)
        .args(["dev-certs", "--source", "bastion.test"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("omrelp") && stdout.contains("StreamDriver"),
        "{stdout}"
    );
    let pki = collector::devcerts::DevPki::in_dir(&data.join("dev-pki"));
    assert!(pki.exists());
    collector::tls::server_config(&pki.tls_files()).unwrap();
    let cert = std::fs::read(&pki.source_cert_file).unwrap();
    let der =
        <rustls_pki_types::CertificateDer<'_> as rustls_pki_types::pem::PemObject>::from_pem_slice(
            &cert,
        )
        .unwrap();
    assert_eq!(
        collector::tls::certificate_names(&der),
        ["bastion.test", "bastion.test"]
    );
}
