//! When each connection may send: the bounds of the run (count, time) and the pace
//! (open loop at a target rate, or closed loop as fast as the peer takes them).
//!
//! In open loop, message `k` of a connection is due at `start + k / rate`; a connection
//! that falls behind sends what is overdue in one batch, and its ack latencies count from
//! when each message was due, not from when it was written, so that a stalled server shows
//! up in the percentiles instead of slowing the generator down (no coordinated omission).

use std::time::{Duration, Instant};

/// One connection's schedule.
#[derive(Debug, Clone)]
pub struct Plan {
    pub start: Instant,
    /// Sending stops at this instant…
    pub send_until: Instant,
    /// …or after this many messages.
    pub count: u64,
    /// Messages per second of this connection; `None`: closed loop.
    pub rate: Option<f64>,
    /// Outstanding acks are waited for until this instant, then counted unanswered.
    pub answer_until: Instant,
}

impl Plan {
    /// Whether this connection has sent all it may.
    pub fn done(&self, sent: u64, now: Instant) -> bool {
        sent >= self.count || now >= self.send_until
    }

    /// How many more messages may be sent now (at most `cap`).
    pub fn allowed(&self, sent: u64, now: Instant, cap: u64) -> u64 {
        if self.done(sent, now) {
            return 0;
        }
        let left = self.count - sent;
        let n = match self.rate {
            None => left,
            Some(rate) => {
                let due = (now.duration_since(self.start).as_secs_f64() * rate) as u64 + 1;
                due.saturating_sub(sent).min(left)
            }
        };
        n.min(cap)
    }

    /// When message `k` is due (open loop), or `None` in closed loop.
    pub fn due(&self, k: u64) -> Option<Instant> {
        self.rate
            .map(|rate| self.start + Duration::from_secs_f64(k as f64 / rate))
    }

    /// The instant latency of message `k` counts from: when it was due (open loop) or
    /// `written` (closed loop).
    pub fn origin(&self, k: u64, written: Instant) -> Instant {
        self.due(k).map_or(written, |d| d.min(written))
    }

    /// Waits until message `sent` is due (open loop; at most until the send bound).
    pub async fn wait_next(&self, sent: u64) {
        if let Some(due) = self.due(sent) {
            let until = due.min(self.send_until);
            tokio::time::sleep_until(until.into()).await;
        }
    }
}
