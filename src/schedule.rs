//! Recurring schedules: when is the next run due? Pure: parsing and date arithmetic only.
//!
//! Cron expressions follow crontab conventions whatever the number of fields:
//! 5 fields (`min hour dom month dow`), 6 with seconds first, 7 with a year last, or a
//! macro (`@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly`, `@yearly`/`@annually`).
//! Days of the week are `0`-`7` with Sunday as `0` or `7` (or names, `MON`-`SUN`), and
//! when both day-of-month and day-of-week are restricted a day matching either one
//! fires, as in Vixie cron. The `cron` crate numbers weekdays from Sunday = 1 and ANDs
//! the two day fields, so expressions are translated before it sees them.
//!
//! Wall-clock times are read in the schedule's IANA timezone, with the rules of cron
//! daemons at DST changes:
//! - a time skipped by a spring-forward jump runs once, right after the jump
//!   (02:30 becomes 03:30 when 02:00 jumps to 03:00);
//! - a time repeated by a fall-back runs once, on its first pass, unless the expression
//!   fires every hour (`0 30 * * * *`): then it follows real time and runs on both
//!   passes, so an hourly job stays hourly.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime as ChronoDateTime, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use cron::TimeUnitSpec;
use mongodb::bson::DateTime;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::trace_context::TraceContext;

/// How a recurring job repeats, as stored in its `repeat` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Repeat {
    /// At the times a cron expression gives, read in an IANA timezone.
    Cron {
        /// The expression as given.
        cron: String,
        /// The IANA timezone, `UTC` by default.
        timezone: String,
    },
    /// Every `every_ms` milliseconds, counted from when the previous run was due.
    Every {
        /// The interval in milliseconds.
        #[serde(rename = "everyMs")]
        every_ms: u64,
    },
}

impl Repeat {
    /// A cron repeat, validated. `timezone` defaults to UTC.
    pub fn cron(expression: &str, timezone: Option<&str>) -> Result<Repeat> {
        let parsed = CronSchedule::parse(expression, timezone.unwrap_or("UTC"))?;
        if parsed.next_after(Utc::now()).is_none() {
            return Err(Error::InvalidCron {
                expression: expression.to_owned(),
                reason: "it never fires again".into(),
            });
        }
        Ok(Repeat::Cron {
            cron: expression.trim().to_owned(),
            timezone: parsed.timezone.name().to_owned(),
        })
    }

    /// A fixed-interval repeat; at least one second.
    pub fn every(interval: Duration) -> Result<Repeat> {
        if interval < MIN_INTERVAL {
            return Err(Error::InvalidInterval {
                interval: format!("{interval:?}"),
                reason: "must be at least 1 second",
            });
        }
        let every_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        Ok(Repeat::Every {
            every_ms: every_ms.min(i64::MAX as u64 / 2),
        })
    }

    /// When the first run is due, for a schedule created at `now`.
    pub(crate) fn first_run(&self, now: DateTime) -> Result<Option<DateTime>> {
        match self {
            Repeat::Every { every_ms } => Ok(Some(add_ms(now, *every_ms))),
            Repeat::Cron { .. } => self.next_run(now, now),
        }
    }

    /// When the run after one that was due at `due` and started at `started` is due.
    /// Every slot up to `started` is covered by that run: missed slots never pile up.
    /// `None` when a cron expression has no later time (a year field that ran out).
    pub fn next_run(&self, due: DateTime, started: DateTime) -> Result<Option<DateTime>> {
        match self {
            Repeat::Cron { cron, timezone } => {
                let schedule = CronSchedule::parse(cron, timezone)?;
                Ok(schedule
                    .next_after(to_chrono(started))
                    .map(|t| DateTime::from_millis(t.timestamp_millis())))
            }
            Repeat::Every { every_ms } => {
                let every = (*every_ms).max(1) as i64;
                let behind = (started.timestamp_millis() - due.timestamp_millis()).max(0);
                let slots = behind / every + 1;
                Ok(Some(DateTime::from_millis(
                    due.timestamp_millis()
                        .saturating_add(slots.saturating_mul(every)),
                )))
            }
        }
    }
}

/// Options for [`Monque::schedule`](crate::Monque::schedule) and
/// [`Monque::every`](crate::Monque::every).
#[derive(Debug, Clone, Default)]
pub struct ScheduleOptions {
    /// IANA timezone the cron expression is read in (cron only). Default `UTC`.
    pub timezone: Option<String>,
    /// Tells several schedules of one job name apart. Default: `schedule:<name>`, so
    /// scheduling a name again updates its one schedule instead of adding another.
    pub unique_key: Option<String>,
    /// Priority of each run. Default 0.
    pub priority: i32,
    /// The trace of the code that scheduled it. Each run starts a trace of its own that
    /// links to this one (a schedule runs for months: one trace per run stays readable).
    pub trace_context: Option<TraceContext>,
    /// The group each run belongs to (`EnqueueOptions::group`). Default: none.
    pub group: Option<String>,
}

/// The uniqueKey a schedule gets when none is given.
pub fn default_schedule_key(name: &str) -> String {
    format!("schedule:{name}")
}

/// Schedules repeat at most once a second: for anything faster, loop in a handler.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

fn add_ms(t: DateTime, ms: u64) -> DateTime {
    DateTime::from_millis(t.timestamp_millis().saturating_add(ms as i64))
}

fn to_chrono(t: DateTime) -> ChronoDateTime<Utc> {
    Utc.timestamp_millis_opt(t.timestamp_millis())
        .single()
        .unwrap_or_else(Utc::now)
}

/// A parsed cron expression in a timezone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// One schedule, or two whose union is the expression (day-of-month OR day-of-week).
    parts: Vec<cron::Schedule>,
    timezone: Tz,
    /// Fires in every hour of the day: follows real time through a fall-back.
    every_hour: bool,
}

/// Larger than any DST shift (the largest in use is 2 hours).
const MAX_SHIFT: chrono::Duration = chrono::Duration::hours(3);

impl CronSchedule {
    /// Parses `expression` (see the module docs) in the IANA `timezone`.
    pub fn parse(expression: &str, timezone: &str) -> Result<CronSchedule> {
        let timezone =
            Tz::from_str(timezone).map_err(|_| Error::InvalidTimezone(timezone.to_owned()))?;
        let invalid = |reason: String| Error::InvalidCron {
            expression: expression.chars().take(200).collect(),
            reason,
        };
        let parts = to_cron_crate(expression)
            .map_err(invalid)?
            .iter()
            .map(|e| cron::Schedule::from_str(e).map_err(|err| invalid(err.to_string())))
            .collect::<Result<Vec<_>>>()?;
        let every_hour = parts[0].hours().is_all();
        Ok(CronSchedule {
            parts,
            timezone,
            every_hour,
        })
    }

    /// The first time strictly after `after`, or `None` if there is none.
    pub fn next_after(&self, after: ChronoDateTime<Utc>) -> Option<ChronoDateTime<Utc>> {
        if self.timezone == Tz::UTC {
            return self
                .parts
                .iter()
                .filter_map(|p| p.after(&after).next())
                .min();
        }
        let local_after = after.with_timezone(&self.timezone).naive_local();
        // Fast path, nearly always taken: no offset change within MAX_SHIFT of `after`,
        // so wall clock and real time move together there; the first candidate after
        // `after`'s wall-clock time is the answer if it falls in that window.
        let offset_at =
            |t: ChronoDateTime<Utc>| self.timezone.offset_from_utc_datetime(&t.naive_utc()).fix();
        let here = offset_at(after);
        if offset_at(after - MAX_SHIFT) == here && offset_at(after + MAX_SHIFT) == here {
            let from = Utc.from_utc_datetime(&local_after);
            let first = self
                .parts
                .iter()
                .filter_map(|p| p.after(&from).next())
                .map(|c| c.naive_utc())
                .min();
            if let Some(local) = first.filter(|l| *l < local_after + MAX_SHIFT) {
                if let Some(t) = here.from_local_datetime(&local).single() {
                    return Some(t.with_timezone(&Utc));
                }
            }
        }
        self.walk_after(after, local_after)
    }

    /// The general case of [`next_after`](Self::next_after), right across DST changes.
    fn walk_after(
        &self,
        after: ChronoDateTime<Utc>,
        local_after: NaiveDateTime,
    ) -> Option<ChronoDateTime<Utc>> {
        // Walk wall-clock candidates (as naive times) from a little before `after`'s
        // wall-clock time and map each to the instants it means; keep the earliest
        // instant after `after`. Candidates more than MAX_SHIFT past the best found so
        // far cannot map before it.
        let start = Utc.from_utc_datetime(&(local_after - MAX_SHIFT));
        let mut best: Option<(ChronoDateTime<Utc>, NaiveDateTime)> = None;
        for part in &self.parts {
            for candidate in part.after(&start) {
                let local = candidate.naive_utc();
                if best.is_some_and(|(_, best_local)| local > best_local + MAX_SHIFT) {
                    break;
                }
                for instant in self.instants(local) {
                    if instant > after && best.is_none_or(|(b, _)| instant < b) {
                        best = Some((instant, local));
                    }
                }
            }
        }
        best.map(|(instant, _)| instant)
    }

    /// The instants a wall-clock time stands for, by the DST rules in the module docs.
    fn instants(&self, local: NaiveDateTime) -> Vec<ChronoDateTime<Utc>> {
        let utc = |t: ChronoDateTime<Tz>| t.with_timezone(&Utc);
        match self.timezone.from_local_datetime(&local) {
            LocalResult::Single(t) => vec![utc(t)],
            LocalResult::Ambiguous(first, second) if self.every_hour => {
                vec![utc(first), utc(second)]
            }
            LocalResult::Ambiguous(first, _) => vec![utc(first)],
            // Skipped by a jump forward: read it with the offset in force before the jump.
            LocalResult::None => (1..=180)
                .find_map(|m| {
                    match self
                        .timezone
                        .from_local_datetime(&(local - chrono::Duration::minutes(m)))
                    {
                        LocalResult::Single(t) => Some(t.offset().fix()),
                        _ => None,
                    }
                })
                .and_then(|offset| offset.from_local_datetime(&local).single())
                .map(|t| vec![t.with_timezone(&Utc)])
                .unwrap_or_default(),
        }
    }
}

/// Turns a crontab-style expression into one or two expressions for the `cron` crate
/// (seconds first, Sunday = 1, day fields ANDed).
fn to_cron_crate(expression: &str) -> std::result::Result<Vec<String>, String> {
    let expression = expression.trim();
    let expanded = match expression.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 0 1 1 *",
        "@monthly" => "0 0 0 1 * *",
        "@weekly" => "0 0 0 * * 0",
        "@daily" | "@midnight" => "0 0 0 * * *",
        "@hourly" => "0 0 * * * *",
        m if m.starts_with('@') => {
            return Err("unknown macro; use @hourly, @daily, @weekly, @monthly or @yearly".into())
        }
        _ => expression,
    };
    let mut fields: Vec<String> = expanded.split_whitespace().map(str::to_owned).collect();
    match fields.len() {
        5 => fields.insert(0, "0".into()),
        6 | 7 => {}
        n => return Err(format!("expected 5, 6 or 7 fields, found {n}")),
    }
    // Vixie cron decides on the fields as written: one starting with `*` is unrestricted.
    let restricted = |f: &str| !(f.starts_with('*') || f == "?");
    let both_days_restricted = restricted(&fields[3]) && restricted(&fields[5]);
    fields[5] = day_of_week_field(&fields[5])?;
    if both_days_restricted {
        // Vixie cron: either day field may match. Two schedules, one per day field.
        let mut by_month_day = fields.clone();
        by_month_day[5] = "*".into();
        let mut by_week_day = fields;
        by_week_day[3] = "*".into();
        return Ok(vec![by_month_day.join(" "), by_week_day.join(" ")]);
    }
    Ok(vec![fields.join(" ")])
}

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Rewrites numeric days of the week (crontab: 0-7, Sunday = 0 or 7) as day names,
/// which the `cron` crate reads unambiguously. Names pass through unchanged.
fn day_of_week_field(field: &str) -> std::result::Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_owned());
    }
    let mut names = Vec::new();
    let mut days = [false; 7];
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        let numeric = base == "*" || base.bytes().any(|b| b.is_ascii_digit());
        if !numeric {
            names.push(item.to_owned());
            continue;
        }
        let day = |s: &str| match s.parse::<usize>() {
            Ok(d) if d <= 7 => Ok(d),
            _ => Err(format!("day of week {s:?} is not 0-7 or a day name")),
        };
        let (from, to) = match base.split_once('-') {
            _ if base == "*" => (0, 6),
            Some((a, b)) => (day(a)?, day(b)?),
            // `N/step` runs to the end of the week, where 7 is Sunday again (as in cronie).
            None if step.is_some() => (day(base)?, 7),
            None => {
                let d = day(base)?;
                (d, d)
            }
        };
        if from > to {
            return Err(format!("day-of-week range {base:?} runs backwards"));
        }
        let step = match step {
            None => 1,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("step {s:?} must be a positive number")),
            },
        };
        for d in (from..=to).step_by(step) {
            days[d % 7] = true;
        }
    }
    names.extend((0..7).filter(|&d| days[d]).map(|d| DAY_NAMES[d].to_owned()));
    Ok(names.join(","))
}

/// Parses an interval: a number of milliseconds (`"5000"`) or amounts with units
/// (`"5 minutes"`, `"1h 30m"`, `"1.5 hours"`, `"2 days"`). Units: ms, s/sec/second,
/// m/min/minute, h/hr/hour, d/day, w/week (plurals too).
pub fn parse_interval(text: &str) -> Result<Duration> {
    let invalid = |reason| Error::InvalidInterval {
        interval: text.chars().take(100).collect(),
        reason,
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid("is empty"));
    }
    if let Ok(ms) = trimmed.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    let lower = trimmed.to_ascii_lowercase();
    let mut rest = lower.as_str();
    let mut total_ms = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let amount: f64 = rest[..number_end]
            .parse()
            .map_err(|_| invalid("expected a number before each unit"))?;
        rest = rest[number_end..].trim_start();
        let unit_end = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit_ms = match &rest[..unit_end] {
            "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1.0,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000.0,
            "d" | "day" | "days" => 86_400_000.0,
            "w" | "week" | "weeks" => 604_800_000.0,
            "" => return Err(invalid("every amount needs a unit, e.g. \"5 minutes\"")),
            _ => return Err(invalid("unknown unit; use ms, s, m, h, d or w")),
        };
        total_ms += amount * unit_ms;
        rest = rest[unit_end..]
            .trim_start_matches(|c: char| c.is_whitespace() || c == ',')
            .trim_start_matches("and ")
            .trim_start();
    }
    if !total_ms.is_finite() || total_ms > 1e15 {
        return Err(invalid("is too long"));
    }
    Ok(Duration::from_millis(total_ms.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> ChronoDateTime<Utc> {
        s.parse().unwrap()
    }

    fn next(expr: &str, tz: &str, after: &str) -> String {
        CronSchedule::parse(expr, tz)
            .unwrap()
            .next_after(at(after))
            .unwrap()
            .to_rfc3339()
    }

    fn runs(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
        let s = CronSchedule::parse(expr, tz).unwrap();
        let mut t = at(after);
        (0..n)
            .map(|_| {
                t = s.next_after(t).unwrap();
                t.to_rfc3339()
            })
            .collect()
    }

    #[test]
    fn five_six_and_seven_fields() {
        assert_eq!(
            next("*/5 * * * *", "UTC", "2026-01-01T10:02:03Z"),
            "2026-01-01T10:05:00+00:00"
        );
        assert_eq!(
            next("*/10 * * * * *", "UTC", "2026-01-01T10:02:03Z"),
            "2026-01-01T10:02:10+00:00"
        );
        assert_eq!(
            next("0 0 12 1 1 * 2030", "UTC", "2026-01-01T00:00:00Z"),
            "2030-01-01T12:00:00+00:00"
        );
    }

    #[test]
    fn macros() {
        let after = "2026-05-13T10:20:30Z"; // a Wednesday
        for (m, want) in [
            ("@hourly", "2026-05-13T11:00:00+00:00"),
            ("@daily", "2026-05-14T00:00:00+00:00"),
            ("@midnight", "2026-05-14T00:00:00+00:00"),
            ("@weekly", "2026-05-17T00:00:00+00:00"),
            ("@monthly", "2026-06-01T00:00:00+00:00"),
            ("@yearly", "2027-01-01T00:00:00+00:00"),
            ("@annually", "2027-01-01T00:00:00+00:00"),
        ] {
            assert_eq!(next(m, "UTC", after), want, "{m}");
        }
    }

    #[test]
    fn weekdays_are_numbered_as_in_crontab() {
        // 2026-05-13 is a Wednesday. 1 = Monday, 0 and 7 = Sunday.
        let after = "2026-05-13T12:00:00Z";
        assert_eq!(next("0 9 * * 1", "UTC", after), "2026-05-18T09:00:00+00:00");
        assert_eq!(next("0 9 * * 0", "UTC", after), "2026-05-17T09:00:00+00:00");
        assert_eq!(next("0 9 * * 7", "UTC", after), "2026-05-17T09:00:00+00:00");
        assert_eq!(
            next("0 9 * * MON", "UTC", after),
            "2026-05-18T09:00:00+00:00"
        );
        assert_eq!(
            runs("0 9 * * 1-5", "UTC", after, 4),
            [
                "2026-05-14T09:00:00+00:00",
                "2026-05-15T09:00:00+00:00",
                "2026-05-18T09:00:00+00:00",
                "2026-05-19T09:00:00+00:00"
            ]
        );
        assert_eq!(
            runs("0 9 * * */3", "UTC", after, 3), // Sun, Wed, Sat
            [
                "2026-05-16T09:00:00+00:00",
                "2026-05-17T09:00:00+00:00",
                "2026-05-20T09:00:00+00:00"
            ]
        );
        assert_eq!(
            next("0 9 * * 5-7", "UTC", after),
            "2026-05-15T09:00:00+00:00"
        );
    }

    #[test]
    fn the_fast_path_agrees_with_the_walk_all_year() {
        let zones = [
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
            "America/Sao_Paulo",
            "Asia/Kolkata",
        ];
        let exprs = [
            "*/7 * * * *",
            "30 2 * * *",
            "0 */3 * * *",
            "15 1 * * 0",
            "0 0 1 * 5",
        ];
        for zone in zones {
            for expr in exprs {
                let s = CronSchedule::parse(expr, zone).unwrap();
                let mut t = at("2026-01-01T00:00:00Z");
                while t < at("2027-01-01T00:00:00Z") {
                    let local = t.with_timezone(&s.timezone).naive_local();
                    assert_eq!(s.next_after(t), s.walk_after(t, local), "{expr} {zone} {t}");
                    t += chrono::Duration::minutes(24 * 60 + 37);
                }
            }
        }
    }

    #[test]
    fn weekday_steps_and_ranges_follow_cronie() {
        let days = |f: &str| day_of_week_field(f).unwrap();
        assert_eq!(days("1/3"), "SUN,MON,THU"); // 1, 4, 7
        assert_eq!(days("*/2"), "SUN,TUE,THU,SAT");
        assert_eq!(days("6/255"), "SAT");
        assert_eq!(days("1-7"), "SUN,MON,TUE,WED,THU,FRI,SAT");
        assert_eq!(days("0,7"), "SUN");
        assert_eq!(days("MON-FRI/2"), "MON-FRI/2");
    }

    #[test]
    fn a_day_of_week_starting_with_a_star_does_not_turn_on_or() {
        // The 1st of the month, only if it is a Sun/Tue/Thu/Sat: 2026-08-01 is a Saturday.
        assert_eq!(
            next("0 0 1 * */2", "UTC", "2026-05-13T00:00:00Z"),
            "2026-08-01T00:00:00+00:00"
        );
    }

    #[test]
    fn restricted_day_fields_are_ored_like_vixie_cron() {
        // The 1st of the month or any Friday.
        assert_eq!(
            runs("0 0 1 * 5", "UTC", "2026-05-13T00:00:00Z", 4),
            [
                "2026-05-15T00:00:00+00:00",
                "2026-05-22T00:00:00+00:00",
                "2026-05-29T00:00:00+00:00",
                "2026-06-01T00:00:00+00:00"
            ]
        );
    }

    #[test]
    fn timezones() {
        assert_eq!(
            next("0 9 * * *", "America/New_York", "2026-07-01T00:00:00Z"),
            "2026-07-01T13:00:00+00:00"
        );
        assert_eq!(
            next("0 9 * * *", "Asia/Kolkata", "2026-07-01T00:00:00Z"),
            "2026-07-01T03:30:00+00:00"
        );
    }

    #[test]
    fn a_time_skipped_by_spring_forward_runs_once_after_the_jump() {
        // Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z).
        assert_eq!(
            runs("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 4),
            [
                "2026-03-28T01:30:00+00:00", // 02:30 CET
                "2026-03-29T01:30:00+00:00", // 03:30 CEST, right after the jump
                "2026-03-30T00:30:00+00:00", // 02:30 CEST
                "2026-03-31T00:30:00+00:00"
            ]
        );
        // Every 30 minutes across the jump: no duplicate, no missing real half hour.
        assert_eq!(
            runs("*/30 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", 4),
            [
                "2026-03-29T00:30:00+00:00", // 01:30 CET
                "2026-03-29T01:00:00+00:00", // 03:00 CEST
                "2026-03-29T01:30:00+00:00", // 03:30 CEST
                "2026-03-29T02:00:00+00:00"
            ]
        );
    }

    #[test]
    fn a_time_repeated_by_fall_back_runs_once_unless_hourly() {
        // Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00Z).
        assert_eq!(
            runs("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 3),
            [
                "2026-10-25T00:30:00+00:00", // 02:30 CEST, first pass only
                "2026-10-26T01:30:00+00:00", // 02:30 CET
                "2026-10-27T01:30:00+00:00"
            ]
        );
        // An hourly job follows real time: 02:30 runs on both passes.
        assert_eq!(
            runs("30 * * * *", "Europe/Berlin", "2026-10-24T23:00:00Z", 4),
            [
                "2026-10-24T23:30:00+00:00", // 01:30 CEST
                "2026-10-25T00:30:00+00:00", // 02:30 CEST
                "2026-10-25T01:30:00+00:00", // 02:30 CET
                "2026-10-25T02:30:00+00:00"  // 03:30 CET
            ]
        );
    }

    #[test]
    fn bad_expressions_and_timezones() {
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "* * * * * * * *",
            "@often",
            "0 9 * * 8",
            "0 9 * * 5-1",
            "0 9 * * */0",
            "not a cron",
        ] {
            let err = CronSchedule::parse(bad, "UTC").unwrap_err();
            assert_eq!(err.code(), "INVALID_CRON", "{bad:?}");
        }
        for bad in ["Mars/Olympus", "", "utc+2"] {
            let err = CronSchedule::parse("* * * * *", bad).unwrap_err();
            assert_eq!(err.code(), "INVALID_TIMEZONE", "{bad:?}");
        }
        let never = Repeat::cron("0 0 0 1 1 * 2001", None).unwrap_err();
        assert_eq!(never.code(), "INVALID_CRON");
    }

    #[test]
    fn every_covers_missed_slots_with_one_run_and_keeps_its_phase() {
        let every = Repeat::every(Duration::from_secs(60)).unwrap();
        let due = DateTime::from_millis(1_000_000);
        // Started on time: next slot one interval later.
        assert_eq!(
            every.next_run(due, due).unwrap(),
            Some(DateTime::from_millis(1_060_000))
        );
        // Started 5.5 intervals late: one run covers the missed slots; phase is kept.
        assert_eq!(
            every
                .next_run(due, DateTime::from_millis(1_330_000))
                .unwrap(),
            Some(DateTime::from_millis(1_360_000))
        );
        assert_eq!(
            Repeat::every(Duration::from_millis(999))
                .unwrap_err()
                .code(),
            "INVALID_INTERVAL"
        );
    }

    #[test]
    fn cron_next_run_counts_from_the_start_of_the_run() {
        let r = Repeat::cron("0 * * * *", Some("UTC")).unwrap();
        let due = DateTime::from_millis(at("2026-01-01T10:00:00Z").timestamp_millis());
        let started = DateTime::from_millis(at("2026-01-01T13:20:00Z").timestamp_millis());
        assert_eq!(
            r.next_run(due, started)
                .unwrap()
                .unwrap()
                .timestamp_millis(),
            at("2026-01-01T14:00:00Z").timestamp_millis()
        );
    }

    #[test]
    fn intervals() {
        let ms = |s: &str| parse_interval(s).unwrap().as_millis();
        assert_eq!(ms("5000"), 5000);
        assert_eq!(ms("5 minutes"), 300_000);
        assert_eq!(ms("1h 30m"), 5_400_000);
        assert_eq!(ms("1.5 hours"), 5_400_000);
        assert_eq!(ms("2 days"), 172_800_000);
        assert_eq!(ms("1 week"), 604_800_000);
        assert_eq!(ms("1 hour and 15 minutes"), 4_500_000);
        assert_eq!(ms("10s"), 10_000);
        assert_eq!(ms(" 250 MS "), 250);
        for bad in [
            "",
            "five minutes",
            "5 parsecs",
            "minutes",
            "99999999999 weeks",
        ] {
            assert_eq!(
                parse_interval(bad).unwrap_err().code(),
                "INVALID_INTERVAL",
                "{bad:?}"
            );
        }
    }
}
