//! The server's clock, as seen from here. Leases, due times, rate-limit windows and
//! retention compare times written by different instances: if each used its own clock,
//! a worker minutes ahead would take over live leases (a double run) and one minutes
//! behind would never see due jobs. Every time the queue writes or compares is
//! `Clock::now()`: this machine's clock plus its measured offset to the server's,
//! refreshed every heartbeat.

use std::sync::atomic::{AtomicI64, Ordering};

use mongodb::bson::DateTime;

/// Shifts this process's clock by this many ms, to test skewed clocks
/// (`MONQUE_CLIENT_CLOCK_SKEW_MS`; never set in production).
const SKEW_VAR: &str = "MONQUE_CLIENT_CLOCK_SKEW_MS";

pub(crate) struct Clock {
    /// Server time minus local time, in ms, as last measured.
    offset_ms: AtomicI64,
    skew_ms: i64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            offset_ms: AtomicI64::new(0),
            skew_ms: std::env::var(SKEW_VAR)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        }
    }
}

impl Clock {
    /// This machine's clock (skewed when testing).
    pub(crate) fn local_now(&self) -> DateTime {
        DateTime::from_millis(DateTime::now().timestamp_millis() + self.skew_ms)
    }

    /// The server's time, as well as it is known here.
    pub(crate) fn now(&self) -> DateTime {
        DateTime::from_millis(
            self.local_now().timestamp_millis() + self.offset_ms.load(Ordering::Relaxed),
        )
    }

    /// Records a measurement: the server said `server` while the local clock went from
    /// `sent` to `received`; the server's reading is taken as the midpoint's.
    pub(crate) fn observe(&self, sent: DateTime, server: DateTime, received: DateTime) {
        let midpoint = (sent.timestamp_millis() + received.timestamp_millis()) / 2;
        self.offset_ms
            .store(server.timestamp_millis() - midpoint, Ordering::Relaxed);
    }

    /// The measured offset, in ms (positive: the server is ahead).
    pub(crate) fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_measured_from_the_round_trip_midpoint() {
        let clock = Clock {
            offset_ms: AtomicI64::new(0),
            skew_ms: 0,
        };
        let at = |ms| DateTime::from_millis(ms);
        // Sent at 1000, answered 20 ms later; the server read 601_010 halfway.
        clock.observe(at(1_000), at(601_010), at(1_020));
        assert_eq!(clock.offset_ms(), 600_000);
        let now = clock.now().timestamp_millis() - DateTime::now().timestamp_millis();
        assert!((599_990..=600_010).contains(&now));
    }
}
