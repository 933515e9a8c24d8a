//! The pages in a real headless Chromium (Debian's package `chromium`, installed by
//! `deploy/test.sh`): the tenant page in French and English, the timeline, the 403 page
//! of a tenant the user may not see, and a screenshot.
//!
//! The server runs plain HTTP on 127.0.0.1 (`--insecure-loopback`): Chromium is given no
//! certificate exception. It logs in the way a person's browser does: the page answers
//! 401 with a Basic challenge, and Chromium answers it with the credentials of the URL
//! (user name and token).

mod common;
mod serving;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use auditor::finding::Severity;
use auditor::http::Transport;
use common::*;
use serving::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs headless Chromium on `url` with `extra` flags; returns its standard output.
fn chromium(profile: &Path, extra: &[&str], url: &str) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's package `chromium` (apt-get install chromium; \
         deploy/test.sh does it)"
    );
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().expect("wait chromium").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish on {url} within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().expect("reader")
}

struct Browser {
    profile: tempfile::TempDir,
    base: String,
}

impl Browser {
    fn url(&self, user: &str, token: &str, path: &str) -> String {
        format!("http://{user}:{token}@{}{path}", self.base)
    }

    async fn dom(&self, url: String) -> String {
        let profile: PathBuf = self.profile.path().to_path_buf();
        tokio::task::spawn_blocking(move || chromium(&profile, &["--dump-dom"], &url))
            .await
            .expect("chromium task")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_pages_render_in_chromium() {
    let m = month();
    let mut cfg = config();
    cfg.max_skew = time::Duration::seconds(300);
    let expected = auditor::audit::run(&ledger(&m), cfg, options()).expect("run");
    let open = expected
        .findings
        .iter()
        .filter(|f| f.severity > Severity::Info)
        .count();
    assert!(open > 0);
    let s = Running::start(
        server_config(&m.ledger, &m.events),
        Transport::PlainLoopback,
    )
    .await;
    let b = Browser {
        profile: tempfile::tempdir().expect("profile"),
        base: s.addr.to_string(),
    };
    let period = format!("?from={FROM}&to={TO}");

    // The tenant page, in French by default.
    let dom = b
        .dom(b.url(
            "rssi.dupont",
            "tok-rssi-lyon",
            &format!("/t/{TENANT}/{period}"),
        ))
        .await;
    assert!(dom.contains("<html lang=\"fr\">"), "{dom}");
    for label in [
        "Établissement chu-lyon",
        "Prestataires",
        "Constats ouverts",
        "Sessions récentes",
        "Raison sociale",
    ] {
        assert!(dom.contains(label), "missing {label:?} in {dom}");
    }
    assert!(
        dom.contains(&format!("id=\"open-findings\">{open}</span>")),
        "{dom}"
    );
    assert!(dom.contains("medimage SAS") && dom.contains("biolab SAS"));
    assert!(dom.contains("mallory@medimage.fr"));
    // Paris local time with the offset: winter and summer time in the same month.
    assert!(dom.contains("2026-03-01 00:00:00 +01:00"), "{dom}");
    assert!(dom.contains("+02:00"));

    // In English on request.
    let dom = b
        .dom(b.url(
            "rssi.dupont",
            "tok-rssi-lyon",
            &format!("/t/{TENANT}/{period}&lang=en"),
        ))
        .await;
    assert!(dom.contains("<html lang=\"en\">"));
    assert!(dom.contains("Open findings") && dom.contains("Recent sessions"));

    // The timeline: the report's SVG, for an auditor too.
    let dom = b
        .dom(b.url(
            "audit.martin",
            "tok-auditor",
            &format!("/t/{TENANT}/timeline{period}"),
        ))
        .await;
    assert!(dom.contains("<svg"), "{dom}");
    assert!(dom.contains("Chronologie"));

    // A tenant this RSSI may not see: the 403 page; a declarant sees no page.
    let dom = b
        .dom(b.url(
            "rssi.dupont",
            "tok-rssi-lyon",
            &format!("/t/chu-nice/{period}"),
        ))
        .await;
    assert!(dom.contains("403") && dom.contains("Accès refusé"), "{dom}");
    let dom = b
        .dom(b.url(
            "decl.medimage",
            "tok-declarant",
            &format!("/t/{TENANT}/{period}"),
        ))
        .await;
    assert!(dom.contains("403"), "{dom}");

    // A screenshot of the tenant page, kept for people to look at.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("auditor-tenant-page.png");
    let _ = std::fs::remove_file(&shot);
    let profile = b.profile.path().to_path_buf();
    let url = b.url(
        "rssi.dupont",
        "tok-rssi-lyon",
        &format!("/t/{TENANT}/{period}"),
    );
    let arg = format!("--screenshot={}", shot.display());
    tokio::task::spawn_blocking(move || {
        chromium(
            &profile,
            &[&arg, "--window-size=1400,1800", "--hide-scrollbars"],
            &url,
        )
    })
    .await
    .expect("chromium task");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("auditor-timeline-page.png");
    let profile = b.profile.path().to_path_buf();
    let url = b.url(
        "rssi.dupont",
        "tok-rssi-lyon",
        &format!("/t/{TENANT}/timeline{period}"),
    );
    let arg = format!("--screenshot={}", shot.display());
    tokio::task::spawn_blocking(move || {
        chromium(
            &profile,
            &[&arg, "--window-size=1400,1000", "--hide-scrollbars"],
            &url,
        )
    })
    .await
    .expect("chromium task");
    assert!(
        std::fs::read(&shot)
            .expect("screenshot written")
            .starts_with(b"\x89PNG")
    );

    // Each page shown was recorded as a report read by its user.
    let accesses = accesses(&m.ledger);
    assert!(
        accesses
            .iter()
            .filter(|(_, u, a, _)| u == "rssi.dupont" && a == "report")
            .count()
            >= 3
    );
    assert!(
        accesses
            .iter()
            .any(|(_, u, _, scope)| u == "audit.martin" && scope.contains("page=timeline"))
    );
    s.stop().await;
}
