//! An rsyslogd of one test: its own configuration, work directory, pid file and input port;
//! the system's rsyslog is never touched. Messages written to its TCP input stand for a
//! bastion's local logging; the test's configuration says where rsyslog sends them.
//!
//! Shared by the collector's rsyslog tests and the workspace's end-to-end test (which
//! includes this file by path). Errors are `io::Error`s that carry what rsyslogd said.

use std::ffi::OsStr;
use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to install what these tests need.
pub const INSTALL: &str = "apt-get install -y rsyslog rsyslog-gnutls rsyslog-relp";

/// The rsyslogd binary, where Debian and others put it.
pub fn binary() -> io::Result<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin"]
        .iter()
        .map(|dir| Path::new(dir).join("rsyslogd"))
        .find(|p| p.exists())
        .ok_or_else(|| io::Error::other(format!("rsyslogd not found: {INSTALL}")))
}

/// A running rsyslogd; stopped (SIGTERM, then SIGKILL after 10 s) on drop.
pub struct Rsyslogd {
    child: Child,
    dir: PathBuf,
    input: SocketAddr,
}

impl Rsyslogd {
    /// Starts rsyslogd in `dir` with `config` (modules, templates, rulesets and actions)
    /// and an imptcp input, LF-framed, on a port rsyslog chooses, whose messages go to the
    /// ruleset `ruleset`. Returns once the input listens.
    ///
    /// # Errors
    /// rsyslogd missing, exiting or not listening within 30 s, with what it said.
    pub fn start(dir: &Path, config: &str, ruleset: &str) -> io::Result<Rsyslogd> {
        let bin = binary()?;
        let work = dir.join("work");
        std::fs::create_dir_all(&work)?;
        let port_file = dir.join("input.port");
        // Port 0: rsyslog picks a free port and writes it down once it listens, so no other
        // program can take the port between its choice and its use.
        let text = format!(
            r#"global(workDirectory="{work}" maxMessageSize="64k")
{config}
module(load="imptcp")
input(type="imptcp" address="127.0.0.1" port="0" listenPortFileName="{port_file}" ruleset="{ruleset}")
"#,
            work = work.display(),
            port_file = port_file.display(),
        );
        let config_file = dir.join("rsyslog.conf");
        std::fs::write(&config_file, text)?;
        let log = std::fs::File::create(dir.join("rsyslogd.log"))?;
        // In the foreground (-n), with its own configuration (-f) and pid file (-i); it
        // reports its errors on standard error.
        let child = Command::new(&bin)
            .arg("-n")
            .args([OsStr::new("-f"), config_file.as_os_str()])
            .args([OsStr::new("-i"), dir.join("rsyslogd.pid").as_os_str()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::other(format!("cannot start {}: {e}", bin.display())))?;
        let mut rsyslogd = Rsyslogd {
            child,
            dir: dir.to_path_buf(),
            input: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = rsyslogd.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "rsyslogd exited ({status}): {}",
                    rsyslogd.log()
                )));
            }
            let port = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.trim().parse::<u16>().ok())
                .filter(|&p| p != 0);
            if let Some(port) = port {
                rsyslogd.input.set_port(port);
                return Ok(rsyslogd);
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "rsyslogd did not open its input within 30 s: {}",
                    rsyslogd.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its TCP input.
    pub fn input(&self) -> SocketAddr {
        self.input
    }

    /// What it said so far (standard output and error), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.log")).unwrap_or_default()
    }

    /// Writes `text` (LF-framed messages) to its input over one connection.
    ///
    /// # Errors
    /// The connection or the write failed.
    pub fn send(&self, text: &[u8]) -> io::Result<()> {
        let mut input = TcpStream::connect(self.input)?;
        input.write_all(text)?;
        input.flush()
    }
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
