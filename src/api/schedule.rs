use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// When a segment is exported: exactly one of `once`, `interval`, `daily`, `weekly` or `cron`,
/// in a named time zone, between an optional start date and an optional (exclusive) end date.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(
    validation = Rule::new("[has(self.once), has(self.interval), has(self.daily), has(self.weekly), has(self.cron)].filter(x, x).size() == 1").message("a schedule has exactly one of once, interval, daily, weekly or cron"),
    validation = Rule::new("!has(self.startDate) || !has(self.endDate) || self.endDate > self.startDate").message("endDate must be after startDate").field_path(".endDate")
)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Run once: at `at`, or as soon as the Dataflow is enabled when `at` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub once: Option<OnceSchedule>,
    /// Run every N hours (1, 2, 3, 4, 6, 8 or 12) from a start time of day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<IntervalSchedule>,
    /// Run every day at a time of day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<DailySchedule>,
    /// Run on some days of the week at a time of day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<WeeklySchedule>,
    /// A cron expression with five fields (minute hour day-of-month month day-of-week).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 9, max = 128))]
    pub cron: Option<String>,
    /// IANA time zone the schedule is read in, e.g. `Europe/Paris`. UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 64))]
    pub time_zone: Option<String>,
    /// First day (inclusive, `YYYY-MM-DD` in the schedule's time zone) a run may happen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 10, max = 10))]
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub start_date: Option<String>,
    /// Day (exclusive, `YYYY-MM-DD` in the schedule's time zone) from which no run happens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 10, max = 10))]
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub end_date: Option<String>,
}

/// A single run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnceSchedule {
    /// When to run (RFC 3339). Absent: as soon as the Dataflow is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub at: Option<String>,
}

/// A run every few hours.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntervalSchedule {
    /// Hours between runs: 1, 2, 3, 4, 6, 8 or 12.
    #[x_kube(validation = Rule::new("self in [1, 2, 3, 4, 6, 8, 12]").message("hours must be one of 1, 2, 3, 4, 6, 8, 12"))]
    pub hours: u8,
    /// Time of day (`HH:MM`) of the first run of each day; 00:00 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 5, max = 5))]
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start_time: Option<String>,
}

/// A run every day.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailySchedule {
    /// Time of day, `HH:MM`.
    #[validate(length(min = 5, max = 5))]
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub at: String,
}

/// A run on some days of the week.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeeklySchedule {
    /// Days of the week.
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[validate(length(min = 1, max = 7))]
    pub days: Vec<Weekday>,
    /// Time of day, `HH:MM`.
    #[validate(length(min = 5, max = 5))]
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub at: String,
}

/// A day of the week.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}
