//! Schedules: when a segment's runs fall, in its time zone, between its start and end dates.
//! Pure: the current time is always a parameter.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::api::{Schedule, Weekday};

/// Why a schedule cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("timeZone: unknown time zone '{0}' (use an IANA name such as Europe/Paris)")]
    UnknownTimeZone(String),
    #[error("cron: '{expr}' is not a valid cron expression: {reason}")]
    BadCron { expr: String, reason: String },
    #[error("{field}: '{value}' is not a valid {what}")]
    BadValue { field: &'static str, value: String, what: &'static str },
    #[error("a schedule needs exactly one of once, interval, daily, weekly or cron")]
    NotExactlyOneKind,
    #[error("interval.hours: {0} is not one of 1, 2, 3, 4, 6, 8, 12")]
    BadInterval(u8),
    #[error("endDate {end} must be after startDate {start}")]
    EndBeforeStart { start: String, end: String },
}

/// A validated schedule, ready to compute run times.
#[derive(Debug, Clone)]
pub struct SegmentSchedule {
    kind: Kind,
    /// A `once` schedule without a time: it runs when the Dataflow is first seen enabled.
    on_enable: bool,
    tz: Tz,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
enum Kind {
    /// A single run at a fixed instant.
    Once(DateTime<Utc>),
    /// Runs at these local times of day, on the given weekdays (all when empty).
    TimesOfDay {
        times: Vec<NaiveTime>,
        days: Vec<chrono::Weekday>,
    },
    Cron(Box<Cron>),
}

/// How far ahead the day-by-day search looks before concluding nothing more is scheduled.
const SEARCH_DAYS: i64 = 8;

impl SegmentSchedule {
    /// Validates a schedule. `enabled_at` is when a `once` schedule without `at` runs: the moment
    /// the Dataflow was first seen enabled.
    pub fn parse(spec: &Schedule, enabled_at: DateTime<Utc>) -> Result<Self, ScheduleError> {
        let tz = match spec.time_zone.as_deref() {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| ScheduleError::UnknownTimeZone(name.to_string()))?,
        };
        let kinds = [
            spec.once.is_some(),
            spec.interval.is_some(),
            spec.daily.is_some(),
            spec.weekly.is_some(),
            spec.cron.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(ScheduleError::NotExactlyOneKind);
        }
        let kind = if let Some(once) = &spec.once {
            match &once.at {
                None => Kind::Once(enabled_at),
                Some(at) => Kind::Once(parse_instant("once.at", at)?),
            }
        } else if let Some(interval) = &spec.interval {
            if ![1, 2, 3, 4, 6, 8, 12].contains(&interval.hours) {
                return Err(ScheduleError::BadInterval(interval.hours));
            }
            let first = match &interval.start_time {
                Some(t) => parse_time_of_day("interval.startTime", t)?,
                None => NaiveTime::MIN,
            };
            let step = Duration::hours(i64::from(interval.hours));
            let mut times = Vec::new();
            let mut t = first;
            // Every `hours` from the first time, wrapping around midnight, one list per day.
            for _ in 0..(24 / interval.hours) {
                times.push(t);
                t += step;
            }
            times.sort();
            Kind::TimesOfDay { times, days: Vec::new() }
        } else if let Some(daily) = &spec.daily {
            Kind::TimesOfDay { times: vec![parse_time_of_day("daily.at", &daily.at)?], days: Vec::new() }
        } else if let Some(weekly) = &spec.weekly {
            let days = weekly.days.iter().map(|d| to_chrono_weekday(*d)).collect();
            Kind::TimesOfDay { times: vec![parse_time_of_day("weekly.at", &weekly.at)?], days }
        } else {
            let expr = spec.cron.as_deref().unwrap_or_default();
            let cron = Cron::from_str(expr)
                .map_err(|e| ScheduleError::BadCron { expr: expr.to_string(), reason: e.to_string() })?;
            Kind::Cron(Box::new(cron))
        };
        let start = spec.start_date.as_deref().map(|d| parse_date("startDate", d)).transpose()?;
        let end = spec.end_date.as_deref().map(|d| parse_date("endDate", d)).transpose()?;
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            return Err(ScheduleError::EndBeforeStart {
                start: spec.start_date.clone().unwrap_or_default(),
                end: spec.end_date.clone().unwrap_or_default(),
            });
        }
        Ok(Self {
            on_enable: spec.once.as_ref().is_some_and(|o| o.at.is_none()),
            start: start.map(|d| local_instant(&tz, d, NaiveTime::MIN)),
            end: end.map(|d| local_instant(&tz, d, NaiveTime::MIN)),
            kind,
            tz,
        })
    }

    /// Whether this is a `once` schedule without a time, whose one run has no fixed time.
    pub fn runs_on_enable(&self) -> bool {
        self.on_enable
    }

    /// The first scheduled time strictly after `after`, or `None` when nothing more is scheduled.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // A run is never before the start date: search from just before it.
        let from = match self.start {
            Some(start) if start > after => start - Duration::nanoseconds(1),
            _ => after,
        };
        let next = match &self.kind {
            Kind::Once(at) => (*at > from).then_some(*at),
            Kind::TimesOfDay { times, days } => self.next_time_of_day(from, times, days),
            Kind::Cron(cron) => {
                let local = from.with_timezone(&self.tz);
                cron.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
            }
        }?;
        match self.end {
            Some(end) if next >= end => None,
            _ => Some(next),
        }
    }

    /// Every scheduled time in `(after, until]`, oldest first, at most `limit` of them.
    pub fn times_between(&self, after: DateTime<Utc>, until: DateTime<Utc>, limit: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut cursor = after;
        while out.len() < limit {
            match self.next_after(cursor) {
                Some(t) if t <= until => {
                    out.push(t);
                    cursor = t;
                }
                _ => break,
            }
        }
        out
    }

    /// The most recent scheduled time at or before `now` and after `after`, with how many older
    /// ones in between were passed over. Scans at most `limit` times (a minutely cron over a
    /// week-long outage is bounded).
    pub fn latest_due(&self, after: DateTime<Utc>, now: DateTime<Utc>, limit: usize) -> Option<(DateTime<Utc>, usize)> {
        let times = self.times_between(after, now, limit);
        let latest = *times.last()?;
        Some((latest, times.len() - 1))
    }

    fn next_time_of_day(
        &self,
        after: DateTime<Utc>,
        times: &[NaiveTime],
        days: &[chrono::Weekday],
    ) -> Option<DateTime<Utc>> {
        let first_day = after.with_timezone(&self.tz).date_naive() - Duration::days(1);
        let last_day = match self.end {
            Some(end) => end.with_timezone(&self.tz).date_naive(),
            None => first_day + Duration::days(SEARCH_DAYS + 1),
        }
        .min(first_day + Duration::days(SEARCH_DAYS + 1));
        let mut day = first_day;
        while day <= last_day {
            if days.is_empty() || days.contains(&day.weekday()) {
                for time in times {
                    let instant = local_instant(&self.tz, day, *time);
                    if instant > after {
                        return Some(instant);
                    }
                }
            }
            day += Duration::days(1);
        }
        None
    }
}

/// The instant of a local date and time. A time skipped by a DST change runs at the first
/// instant after the gap; a time that happens twice runs at its first occurrence.
fn local_instant(tz: &Tz, day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let mut local = day.and_time(time);
    // Gaps are at most a few hours; step over them a quarter-hour at a time.
    for _ in 0..16 {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
            LocalResult::None => local += Duration::minutes(15),
        }
    }
    Utc.from_utc_datetime(&day.and_time(time))
}

fn parse_instant(field: &'static str, value: &str) -> Result<DateTime<Utc>, ScheduleError> {
    DateTime::parse_from_rfc3339(value).map(|t| t.with_timezone(&Utc)).map_err(|_| ScheduleError::BadValue {
        field,
        value: value.to_string(),
        what: "RFC 3339 time (2026-01-31T06:00:00Z)",
    })
}

fn parse_time_of_day(field: &'static str, value: &str) -> Result<NaiveTime, ScheduleError> {
    NaiveTime::parse_from_str(value, "%H:%M").map_err(|_| ScheduleError::BadValue {
        field,
        value: value.to_string(),
        what: "time of day (HH:MM)",
    })
}

fn parse_date(field: &'static str, value: &str) -> Result<NaiveDate, ScheduleError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| ScheduleError::BadValue {
        field,
        value: value.to_string(),
        what: "date (YYYY-MM-DD)",
    })
}

fn to_chrono_weekday(day: Weekday) -> chrono::Weekday {
    match day {
        Weekday::Monday => chrono::Weekday::Mon,
        Weekday::Tuesday => chrono::Weekday::Tue,
        Weekday::Wednesday => chrono::Weekday::Wed,
        Weekday::Thursday => chrono::Weekday::Thu,
        Weekday::Friday => chrono::Weekday::Fri,
        Weekday::Saturday => chrono::Weekday::Sat,
        Weekday::Sunday => chrono::Weekday::Sun,
    }
}

/// RFC 3339 with second precision and a `Z`, the form every time in status takes.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Parses a time written by [`format_time`] (or any RFC 3339 time).
pub fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DailySchedule, IntervalSchedule, OnceSchedule, WeeklySchedule};

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    fn daily(at: &str, tz: Option<&str>) -> Schedule {
        Schedule { daily: Some(DailySchedule { at: at.into() }), time_zone: tz.map(Into::into), ..Default::default() }
    }

    fn parse(spec: &Schedule) -> SegmentSchedule {
        SegmentSchedule::parse(spec, t("2026-01-01T00:00:00Z")).unwrap()
    }

    #[test]
    fn daily_in_utc_runs_next_day_once_passed() {
        let s = parse(&daily("06:00", None));
        assert_eq!(s.next_after(t("2026-03-10T05:59:00Z")), Some(t("2026-03-10T06:00:00Z")));
        assert_eq!(s.next_after(t("2026-03-10T06:00:00Z")), Some(t("2026-03-11T06:00:00Z")));
    }

    #[test]
    fn daily_follows_the_time_zone_across_dst() {
        let s = parse(&daily("06:00", Some("Europe/Paris")));
        // Winter: UTC+1.
        assert_eq!(s.next_after(t("2026-03-27T12:00:00Z")), Some(t("2026-03-28T05:00:00Z")));
        // Clocks go forward on 2026-03-29: 06:00 is then UTC+2.
        assert_eq!(s.next_after(t("2026-03-28T12:00:00Z")), Some(t("2026-03-29T04:00:00Z")));
    }

    #[test]
    fn a_time_skipped_by_spring_forward_runs_after_the_gap() {
        let s = parse(&daily("02:30", Some("Europe/Paris")));
        // 02:30 does not exist on 2026-03-29 in Paris; 03:00 local is 01:00 UTC.
        assert_eq!(s.next_after(t("2026-03-28T12:00:00Z")), Some(t("2026-03-29T01:00:00Z")));
    }

    #[test]
    fn a_time_repeated_by_fall_back_runs_once() {
        let s = parse(&daily("02:30", Some("Europe/Paris")));
        // 2026-10-25: 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET).
        let first = s.next_after(t("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(first, t("2026-10-25T00:30:00Z"));
        assert_eq!(s.next_after(first), Some(t("2026-10-26T01:30:00Z")));
    }

    #[test]
    fn interval_runs_on_wall_clock_hours_from_start_time() {
        let spec = Schedule {
            interval: Some(IntervalSchedule { hours: 8, start_time: Some("01:00".into()) }),
            time_zone: Some("America/New_York".into()),
            ..Default::default()
        };
        let s = parse(&spec);
        // 01:00, 09:00, 17:00 New York (UTC-5 in January).
        let times = s.times_between(t("2026-01-10T00:00:00Z"), t("2026-01-11T00:00:00Z"), 10);
        assert_eq!(times, vec![t("2026-01-10T06:00:00Z"), t("2026-01-10T14:00:00Z"), t("2026-01-10T22:00:00Z")]);
    }

    #[test]
    fn every_interval_kind_gives_24_over_hours_runs_a_day() {
        for hours in [1u8, 2, 3, 4, 6, 8, 12] {
            let spec = Schedule { interval: Some(IntervalSchedule { hours, start_time: None }), ..Default::default() };
            let s = parse(&spec);
            let times = s.times_between(t("2026-05-01T00:00:00Z"), t("2026-05-02T00:00:00Z"), 100);
            assert_eq!(times.len(), 24 / hours as usize, "every {hours} hours");
            assert_eq!(times.last(), Some(&t("2026-05-02T00:00:00Z")));
        }
    }

    #[test]
    fn interval_of_five_hours_is_refused() {
        let spec = Schedule { interval: Some(IntervalSchedule { hours: 5, start_time: None }), ..Default::default() };
        assert_eq!(SegmentSchedule::parse(&spec, Utc::now()).unwrap_err(), ScheduleError::BadInterval(5));
    }

    #[test]
    fn weekly_runs_on_the_named_days() {
        let spec = Schedule {
            weekly: Some(WeeklySchedule { days: vec![Weekday::Monday, Weekday::Thursday], at: "09:15".into() }),
            ..Default::default()
        };
        let s = parse(&spec);
        // 2026-06-02 is a Tuesday.
        assert_eq!(s.next_after(t("2026-06-02T00:00:00Z")), Some(t("2026-06-04T09:15:00Z")));
        assert_eq!(s.next_after(t("2026-06-04T09:15:00Z")), Some(t("2026-06-08T09:15:00Z")));
    }

    #[test]
    fn cron_is_read_in_the_time_zone() {
        let spec =
            Schedule { cron: Some("30 4 * * 1-5".into()), time_zone: Some("Asia/Tokyo".into()), ..Default::default() };
        let s = parse(&spec);
        // Friday 2026-06-05 04:30 Tokyo is 2026-06-04T19:30Z; next is Monday 06-08 04:30 Tokyo.
        assert_eq!(s.next_after(t("2026-06-04T19:30:00Z")), Some(t("2026-06-07T19:30:00Z")));
    }

    #[test]
    fn a_bad_cron_names_the_expression() {
        let spec = Schedule { cron: Some("61 * * * *".into()), ..Default::default() };
        let err = SegmentSchedule::parse(&spec, Utc::now()).unwrap_err();
        assert!(err.to_string().contains("'61 * * * *'"), "{err}");
    }

    #[test]
    fn end_date_is_exclusive_and_start_date_inclusive() {
        let mut spec = daily("10:00", Some("Europe/Berlin"));
        spec.start_date = Some("2026-07-01".into());
        spec.end_date = Some("2026-07-03".into());
        let s = parse(&spec);
        let times = s.times_between(t("2026-01-01T00:00:00Z"), t("2027-01-01T00:00:00Z"), 10);
        assert_eq!(times, vec![t("2026-07-01T08:00:00Z"), t("2026-07-02T08:00:00Z")]);
        assert_eq!(s.next_after(t("2026-07-02T08:00:00Z")), None);
    }

    #[test]
    fn once_without_a_time_runs_when_enabled_and_then_never() {
        let spec = Schedule { once: Some(OnceSchedule { at: None }), ..Default::default() };
        let enabled = t("2026-02-02T10:00:00Z");
        let s = SegmentSchedule::parse(&spec, enabled).unwrap();
        assert_eq!(s.next_after(enabled - Duration::seconds(1)), Some(enabled));
        assert_eq!(s.next_after(enabled), None);
    }

    #[test]
    fn once_at_a_time() {
        let spec = Schedule {
            once: Some(OnceSchedule { at: Some("2026-02-02T10:00:00+01:00".into()) }),
            ..Default::default()
        };
        let s = parse(&spec);
        assert_eq!(s.next_after(t("2026-01-01T00:00:00Z")), Some(t("2026-02-02T09:00:00Z")));
    }

    #[test]
    fn unknown_time_zone_is_named() {
        let err = SegmentSchedule::parse(&daily("06:00", Some("Mars/Olympus")), Utc::now()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "timeZone: unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Paris)"
        );
    }

    #[test]
    fn two_kinds_at_once_are_refused() {
        let mut spec = daily("06:00", None);
        spec.cron = Some("0 6 * * *".into());
        assert_eq!(SegmentSchedule::parse(&spec, Utc::now()).unwrap_err(), ScheduleError::NotExactlyOneKind);
    }

    #[test]
    fn latest_due_skips_to_the_newest_and_counts_the_rest() {
        let s =
            parse(&Schedule { interval: Some(IntervalSchedule { hours: 1, start_time: None }), ..Default::default() });
        let (latest, passed_over) = s.latest_due(t("2026-01-01T00:00:00Z"), t("2026-01-01T05:30:00Z"), 1000).unwrap();
        assert_eq!(latest, t("2026-01-01T05:00:00Z"));
        assert_eq!(passed_over, 4);
    }
}
