//! Rate limits per Account, shared by every run in this process that uses the Account: at most
//! `requestsPerSecond` request starts in any second (requests are spaced 1/rate apart, a token
//! bucket one token deep, so no burst ever exceeds the rate) and at most
//! `maxConcurrentRequests` requests in flight.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The limits of one Account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    pub requests_per_second: Option<u32>,
    pub max_concurrent: u32,
}

/// One Account's limiter.
#[derive(Debug)]
pub struct AccountLimiter {
    spacing: Option<Duration>,
    /// The earliest time the next request may start. A std mutex: held only to read and bump it.
    next_start: Mutex<Option<std::time::Instant>>,
    in_flight: Arc<Semaphore>,
}

impl AccountLimiter {
    fn new(rate: Rate) -> Self {
        Self {
            spacing: rate.requests_per_second.map(|r| Duration::from_secs_f64(1.0 / f64::from(r.max(1)))),
            next_start: Mutex::new(None),
            in_flight: Arc::new(Semaphore::new(rate.max_concurrent.max(1) as usize)),
        }
    }

    /// Waits for a free slot and the next start time; the permit is held while the request runs.
    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        let permit = self.in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
        if let Some(spacing) = self.spacing {
            let start = {
                let mut next = self.next_start.lock().unwrap_or_else(|e| e.into_inner());
                let now = std::time::Instant::now();
                let start = next.map_or(now, |n| n.max(now));
                *next = Some(start + spacing);
                start
            };
            tokio::time::sleep_until(Instant::from_std(start)).await;
        }
        permit
    }
}

type Registry = Mutex<HashMap<(String, Rate), Arc<AccountLimiter>>>;

static LIMITERS: LazyLock<Registry> = LazyLock::new(Registry::default);

/// The limiter of an Account (`namespace/name`) at these limits; runs that share an Account
/// share it. Changing the limits starts a new one.
pub fn for_account(account: &str, rate: Rate) -> Arc<AccountLimiter> {
    let mut limiters = LIMITERS.lock().unwrap_or_else(|e| e.into_inner());
    limiters.entry((account.to_string(), rate)).or_insert_with(|| Arc::new(AccountLimiter::new(rate))).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_one_account_share_its_limiter() {
        let rate = Rate { requests_per_second: Some(5), max_concurrent: 2 };
        let a = for_account("ns/a", rate);
        assert!(Arc::ptr_eq(&a, &for_account("ns/a", rate)));
        assert!(!Arc::ptr_eq(&a, &for_account("ns/b", rate)));
        assert!(!Arc::ptr_eq(&a, &for_account("ns/a", Rate { requests_per_second: Some(6), max_concurrent: 2 })));
    }

    #[tokio::test]
    async fn starts_are_spaced_by_the_rate() {
        let limiter = AccountLimiter::new(Rate { requests_per_second: Some(20), max_concurrent: 10 });
        let begin = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..5 {
            drop(limiter.acquire().await);
            starts.push(begin.elapsed());
        }
        // Start k is never earlier than k spacings after the first slot (wake-ups may be late,
        // so the gap between two observed starts can be shorter than a spacing).
        for (k, start) in starts.iter().enumerate() {
            assert!(*start >= Duration::from_millis(50) * k as u32, "start {k} too early: {starts:?}");
        }
    }
}
