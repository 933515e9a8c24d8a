//! Progress on a terminal for long runs: entries checked, rate and, when the total is
//! known, time left. Quiet when standard error is not a terminal (piped, in tests).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// A progress line on standard error.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    what: &'static str,
    total: Option<u64>,
    start: Instant,
    last: Instant,
}

impl Progress {
    /// Progress of `what` (e.g. `verifying`), enabled only on a terminal.
    pub fn new(what: &'static str, total: Option<u64>) -> Self {
        let now = Instant::now();
        Progress {
            enabled: std::io::stderr().is_terminal(),
            what,
            total,
            start: now,
            last: now,
        }
    }

    /// Notes that `done` entries were handled.
    pub fn tick(&mut self, done: u64) {
        self.tick_at(done, None);
    }

    /// Notes that `done` entries were handled and `fraction` (0 to 1) of the work is done
    /// (e.g. how far into the period the stream is), for the time left.
    pub fn tick_at(&mut self, done: u64, fraction: Option<f64>) {
        if !self.enabled
            || !done.is_multiple_of(4096)
            || self.last.elapsed() < Duration::from_millis(500)
        {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 / secs;
        let left = match (self.total, fraction) {
            (Some(total), _) if rate > 0.0 && total > done => {
                format!(", {:.0} s left", (total - done) as f64 / rate)
            }
            (_, Some(f)) if f > 0.0 && f < 1.0 => format!(", {:.0} s left", secs * (1.0 - f) / f),
            _ => String::new(),
        };
        eprint!(
            "\r{}: {done} entries checked, {rate:.0}/s{left}   ",
            self.what
        );
    }

    /// Ends the line.
    pub fn done(&self, done: u64) {
        if self.enabled && self.start.elapsed() > Duration::from_millis(500) {
            eprintln!(
                "\r{}: {done} entries in {:.1} s                    ",
                self.what,
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}
