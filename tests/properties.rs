//! Property tests (proptest) of the pure parts: retry backoff and schedules.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime as ChronoDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use monque::{Backoff, CronSchedule, DateTime, Repeat};
use proptest::prelude::*;

fn backoff() -> impl Strategy<Value = Backoff> {
    (1u64..3_600_000, 0u64..40 * 86_400_000, 0.0f64..=1.0).prop_map(|(base, extra, jitter)| {
        Backoff {
            base: Duration::from_millis(base),
            max: Duration::from_millis(base + extra),
            jitter,
        }
    })
}

proptest! {
    #[test]
    fn backoff_is_exponential_capped_and_monotonic(b in backoff(), n in 0u32..200) {
        let d = b.delay(n);
        prop_assert!(d <= b.max);
        prop_assert!(b.delay(n + 1) >= d);
        let exact = (b.base.as_millis()).checked_mul(1u128 << n.min(127));
        match exact {
            Some(ms) if ms <= b.max.as_millis() => prop_assert_eq!(d.as_millis(), ms),
            _ => prop_assert_eq!(d, b.max),
        }
    }

    #[test]
    fn jitter_adds_at_most_its_fraction_and_never_passes_the_cap(b in backoff(), n in 0u32..200, unit in 0.0f64..1.0) {
        let d = b.delay(n);
        let j = b.delay_with_jitter(n, unit);
        prop_assert!(j >= d);
        prop_assert!(j <= b.max);
        prop_assert!(j.as_secs_f64() <= d.as_secs_f64() * (1.0 + b.jitter) + 1e-3);
    }

    #[test]
    fn every_keeps_its_phase_and_skips_missed_slots(
        every in 1_000u64..86_400_000,
        due in 0i64..4_000_000_000_000,
        late in 0i64..10 * 86_400_000,
    ) {
        let (due, started) = (DateTime::from_millis(due), DateTime::from_millis(due + late));
        let next = Repeat::Every { every_ms: every }.next_run(due, started).unwrap().unwrap();
        let (next, started, due) = (next.timestamp_millis(), started.timestamp_millis(), due.timestamp_millis());
        prop_assert!(next > started, "the next run is after this one started");
        prop_assert!(next - started <= every as i64, "no slot after the start is skipped");
        prop_assert_eq!((next - due) % every as i64, 0, "in phase with the first due time");
    }

    #[test]
    fn daily_cron_fires_next_at_its_local_time(
        minute in 0u32..60,
        hour in 0u32..24,
        zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]),
        after in 0i64..4_000_000_000,
    ) {
        let schedule = CronSchedule::parse(&format!("{minute} {hour} * * *"), zone).unwrap();
        let after: ChronoDateTime<Utc> = Utc.timestamp_opt(after, 0).unwrap();
        let next = schedule.next_after(after).unwrap();
        prop_assert!(next > after);
        prop_assert!(next - after <= chrono::Duration::hours(26), "at most a day (and a DST hour) away");
        // Asked again from just before it, the same time comes back.
        prop_assert_eq!(schedule.next_after(next - chrono::Duration::seconds(1)), Some(next));
        let tz = Tz::from_str(zone).unwrap();
        let offset = |t: ChronoDateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
        let local = next.with_timezone(&tz);
        // Away from DST changes the wall-clock time is the expression's.
        if offset(next - chrono::Duration::days(1)) == offset(next + chrono::Duration::days(1)) {
            prop_assert_eq!((local.hour(), local.minute()), (hour, minute));
        }
    }
}
