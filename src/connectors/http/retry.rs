//! What to do after a response: pure, so every rule is tested without a server.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Attempts of one batch before the run fails (the run then keeps its watermark).
pub const MAX_ATTEMPTS: u32 = 8;
/// The longest wait between attempts, `Retry-After` included.
pub const MAX_DELAY: Duration = Duration::from_secs(120);
const BASE_DELAY: Duration = Duration::from_millis(250);

/// The next step after a response (or a transport error, `status: None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The batch went through; look at per-row errors.
    Delivered,
    /// Send the batch again after this long.
    RetryAfter(Duration),
    /// Fetch a new OAuth2 token and send again at once (done once per batch).
    RefreshToken,
    /// The credentials are refused: the run fails and retrying will not help.
    Unauthorized,
    /// The platform refused the batch itself (other 4xx): its rows fail.
    RejectBatch,
    /// Attempts are used up on errors that may pass: the run fails.
    GiveUp,
}

/// Decides the step. `attempt` counts from 1; `jitter` in [0, 1) spreads the retries of
/// concurrent batches.
pub fn next_step(
    status: Option<u16>,
    retry_after: Option<&str>,
    attempt: u32,
    refreshed: bool,
    can_refresh: bool,
    now: DateTime<Utc>,
    jitter: f64,
) -> Step {
    let retriable = match status {
        None => true,
        Some(200..=299) => return Step::Delivered,
        Some(401) if can_refresh && !refreshed => return Step::RefreshToken,
        Some(401 | 403) => return Step::Unauthorized,
        Some(408 | 429) => true,
        Some(500..=599) => true,
        Some(_) => return Step::RejectBatch,
    };
    if !retriable || attempt >= MAX_ATTEMPTS {
        return Step::GiveUp;
    }
    let asked = retry_after.and_then(|v| parse_retry_after(v, now));
    Step::RetryAfter(asked.unwrap_or_else(|| backoff(attempt, jitter)).min(MAX_DELAY))
}

/// Exponential backoff with jitter: 250 ms, 500 ms, 1 s, … each scaled into [50 %, 100 %].
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let full = BASE_DELAY.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    full.min(MAX_DELAY).mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc()
    }

    fn step(status: Option<u16>, retry_after: Option<&str>, attempt: u32) -> Step {
        next_step(status, retry_after, attempt, false, false, now(), 1.0)
    }

    #[test]
    fn throttling_honours_retry_after_in_seconds_and_as_a_date() {
        assert_eq!(step(Some(429), Some("3"), 1), Step::RetryAfter(Duration::from_secs(3)));
        assert_eq!(step(Some(503), Some("Sat, 28 Nov 2026 12:00:07 GMT"), 1), Step::RetryAfter(Duration::from_secs(7)));
        assert_eq!(step(Some(429), Some("86400"), 1), Step::RetryAfter(MAX_DELAY));
    }

    #[test]
    fn server_errors_back_off_exponentially_then_give_up() {
        assert_eq!(step(Some(500), None, 1), Step::RetryAfter(Duration::from_millis(250)));
        assert_eq!(step(Some(502), None, 3), Step::RetryAfter(Duration::from_secs(1)));
        assert_eq!(step(None, None, 2), Step::RetryAfter(Duration::from_millis(500)));
        assert_eq!(step(Some(500), None, MAX_ATTEMPTS), Step::GiveUp);
        assert_eq!(backoff(3, 0.0), Duration::from_millis(500));
    }

    #[test]
    fn other_client_errors_reject_the_batch_and_401_refreshes_once() {
        assert_eq!(step(Some(400), None, 1), Step::RejectBatch);
        assert_eq!(step(Some(404), None, 1), Step::RejectBatch);
        assert_eq!(step(Some(403), None, 1), Step::Unauthorized);
        assert_eq!(next_step(Some(401), None, 1, false, true, now(), 0.5), Step::RefreshToken);
        assert_eq!(next_step(Some(401), None, 2, true, true, now(), 0.5), Step::Unauthorized);
        assert_eq!(step(Some(204), None, 1), Step::Delivered);
    }
}
