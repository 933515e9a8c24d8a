//! What a run measured: counters and ack latencies per connection (merged at the end),
//! the generator's own CPU time, and the report as text or JSON.
//!
//! Latencies go into a log-linear histogram of microseconds: exact below 128 µs, then 64
//! buckets per power of two (under 1.6 % error), so that millions of acks cost a few KiB
//! and no sorting.

use std::time::{Duration, Instant};

/// Exact values below this; 64 sub-buckets per power of two above.
const LINEAR: u64 = 128;
const SUB_BITS: u32 = 6;
const BUCKETS: usize = LINEAR as usize + (64 - 7) * (1 << SUB_BITS);

/// A histogram of latencies in microseconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
            sum: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let sub = (v >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    LINEAR as usize + ((exp - 7) as usize) * (1 << SUB_BITS) + sub as usize
}

/// The lowest value of bucket `b`.
fn floor(b: usize) -> u64 {
    if b < LINEAR as usize {
        return b as u64;
    }
    let i = b - LINEAR as usize;
    let exp = (i >> SUB_BITS) as u32 + 7;
    let sub = (i & ((1 << SUB_BITS) - 1)) as u64;
    (1u64 << exp) | (sub << (exp - SUB_BITS))
}

impl Histogram {
    /// Records `n` events that each waited `d`.
    pub fn record(&mut self, d: Duration, n: u64) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket(us)] += n;
        self.total += n;
        self.max = self.max.max(us);
        self.sum += u128::from(us) * u128::from(n);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value under which a fraction `q` of the events fall, in µs (0 when empty).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return floor(b).min(self.max);
            }
        }
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    pub fn max(&self) -> u64 {
        self.max
    }
}

/// What one connection (or the whole run, merged) did.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Messages written to the socket.
    pub sent: u64,
    /// Messages the server acknowledged as stored (RELP `200`, HTTPS `stored`).
    pub acked: u64,
    /// Messages the server refused (RELP `500`, HTTPS non-stored statuses or errors).
    pub refused: u64,
    /// Messages sent and never answered (connection lost, or the run's grace ran out).
    pub unanswered: u64,
    /// Connection-level failures (connect, handshake, I/O, protocol).
    pub errors: u64,
    /// Bytes written (application bytes, before TLS).
    pub bytes: u64,
    /// Ack latencies.
    pub latency: Histogram,
    /// The first few error messages, for the report.
    pub first_errors: Vec<String>,
    /// When the last message was written.
    pub send_end: Option<Instant>,
}

impl Counters {
    /// Notes that a write just ended.
    pub fn wrote(&mut self) {
        self.send_end = Some(Instant::now());
    }

    pub fn error(&mut self, what: String) {
        self.errors += 1;
        if self.first_errors.len() < 5 {
            self.first_errors.push(what);
        }
    }

    pub fn merge(&mut self, o: &Counters) {
        self.sent += o.sent;
        self.acked += o.acked;
        self.refused += o.refused;
        self.unanswered += o.unanswered;
        self.errors += o.errors;
        self.bytes += o.bytes;
        self.latency.merge(&o.latency);
        self.send_end = self.send_end.max(o.send_end);
        for e in &o.first_errors {
            if self.first_errors.len() < 5 {
                self.first_errors.push(e.clone());
            }
        }
    }
}

/// User and system CPU time of this process, from `/proc/self/stat` (clock ticks of
/// 1/100 s, the fixed USER_HZ of Linux's /proc).
pub fn own_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) (utime, stime) are the 12th and 13th after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The final report.
#[derive(Debug)]
pub struct Report {
    pub protocol: String,
    pub target: String,
    pub mode: String,
    pub connections: usize,
    pub seed: u64,
    pub message_bytes: (usize, f64, usize),
    /// From the first connection attempt to the last answer (without acks: until the
    /// server closed the last connection after reading everything).
    pub elapsed: Duration,
    /// Time spent sending (until the bound was reached).
    pub send_elapsed: Duration,
    pub cpu: Option<Duration>,
    pub totals: Counters,
    pub acks: bool,
}

impl Report {
    fn rate(&self, n: u64, d: Duration) -> f64 {
        if d.is_zero() {
            0.0
        } else {
            n as f64 / d.as_secs_f64()
        }
    }

    pub fn text(&self) -> String {
        let t = &self.totals;
        let mut s = format!(
            "loadgen: {} to {} ({}, {} connections, seed {})\n\
             messages: {}-{} bytes (mean {:.0})\n\
             sent:        {} messages, {:.1} MiB in {:.2} s = {:.0} msg/s\n",
            self.protocol,
            self.target,
            self.mode,
            self.connections,
            self.seed,
            self.message_bytes.0,
            self.message_bytes.2,
            self.message_bytes.1,
            t.sent,
            t.bytes as f64 / (1 << 20) as f64,
            self.send_elapsed.as_secs_f64(),
            self.rate(t.sent, self.send_elapsed),
        );
        if self.acks {
            s += &format!(
                "acked:       {} messages in {:.2} s = {:.0} msg/s\n\
                 refused:     {}   unanswered: {}\n\
                 ack latency: p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  mean {:.2} ms\n",
                t.acked,
                self.elapsed.as_secs_f64(),
                self.rate(t.acked, self.elapsed),
                t.refused,
                t.unanswered,
                ms(t.latency.quantile(0.50)),
                ms(t.latency.quantile(0.99)),
                ms(t.latency.quantile(0.999)),
                ms(t.latency.max()),
                t.latency.mean() / 1000.0,
            );
        } else {
            s += &format!(
                "acked:       - (no acknowledgements; the server closed the connections {:.2} s \
                 after the start, having read everything = {:.0} msg/s)\n",
                self.elapsed.as_secs_f64(),
                self.rate(t.sent, self.elapsed),
            );
        }
        s += &format!("errors:      {}\n", t.errors);
        for e in &t.first_errors {
            s += &format!("  error: {e}\n");
        }
        match self.cpu {
            Some(cpu) => {
                s += &format!(
                    "generator CPU: {:.2} s ({:.2} cores over the run)\n",
                    cpu.as_secs_f64(),
                    cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
                );
            }
            None => s += "generator CPU: unknown (no /proc/self/stat)\n",
        }
        s
    }

    pub fn json(&self) -> serde_json::Value {
        let t = &self.totals;
        serde_json::json!({
            "protocol": self.protocol,
            "target": self.target,
            "mode": self.mode,
            "connections": self.connections,
            "seed": self.seed,
            "message_bytes": {
                "min": self.message_bytes.0,
                "mean": self.message_bytes.1,
                "max": self.message_bytes.2,
            },
            "elapsed_s": self.elapsed.as_secs_f64(),
            "send_elapsed_s": self.send_elapsed.as_secs_f64(),
            "sent": t.sent,
            "bytes": t.bytes,
            "sent_per_s": self.rate(t.sent, self.send_elapsed),
            "acks": self.acks,
            "acked": t.acked,
            "acked_per_s": self.rate(t.acked, self.elapsed),
            "refused": t.refused,
            "unanswered": t.unanswered,
            "errors": t.errors,
            "first_errors": t.first_errors,
            "latency_ms": {
                "count": t.latency.count(),
                "p50": ms(t.latency.quantile(0.50)),
                "p99": ms(t.latency.quantile(0.99)),
                "p999": ms(t.latency.quantile(0.999)),
                "max": ms(t.latency.max()),
                "mean": t.latency.mean() / 1000.0,
            },
            "generator_cpu_s": self.cpu.map(|c| c.as_secs_f64()),
        })
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}
