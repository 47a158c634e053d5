//! Rate limits of logins and sign-ups (`governor`, keyed GCRA), on the
//! control plane's [`Clock`] so tests move time instead of sleeping.
//!
//! Per account (email): a burst of 5, then 1 per 12 s. Per client IP: a burst
//! of 20, then 1 per 3 s. Sign-ups per IP share the IP quota's shape on a
//! limiter of their own. Limits live in this process: several control planes
//! behind a load balancer each allow the burst (documented in the design).

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::clock::Clock;
use crate::error::Error;

/// Keys a limiter holds before it forgets the ones that are full again.
const LIMITER_KEYS_MAX: usize = 100_000;

/// Governor's view of the control plane's clock: time since the epoch.
#[derive(Clone)]
struct LimiterClock(Arc<dyn Clock>);

impl governor::clock::Clock for LimiterClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.0.now_ms()).unwrap_or(0))
    }
}

type Keyed<K> = RateLimiter<K, HashMapStateStore<K>, LimiterClock, NoOpMiddleware<Duration>>;

pub(crate) struct RateLimits {
    clock: LimiterClock,
    login_per_email: Keyed<String>,
    login_per_ip: Keyed<IpAddr>,
    signup_per_ip: Keyed<IpAddr>,
}

impl RateLimits {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> RateLimits {
        let clock = LimiterClock(clock);
        let per_email = quota(5, Duration::from_secs(12));
        let per_ip = quota(20, Duration::from_secs(3));
        RateLimits {
            login_per_email: RateLimiter::hashmap_with_clock(per_email, clock.clone()),
            login_per_ip: RateLimiter::hashmap_with_clock(per_ip, clock.clone()),
            signup_per_ip: RateLimiter::hashmap_with_clock(per_ip, clock.clone()),
            clock,
        }
    }

    /// Counts a login attempt for `email` (normalised) from `client_ip`.
    pub(crate) fn check_login(&self, email: &str, client_ip: Option<IpAddr>) -> Result<(), Error> {
        if let Some(ip) = client_ip {
            check(&self.login_per_ip, &self.clock, &ip)?;
        }
        check(&self.login_per_email, &self.clock, &email.to_owned())
    }

    /// Counts a sign-up attempt from `client_ip`.
    pub(crate) fn check_signup(&self, client_ip: Option<IpAddr>) -> Result<(), Error> {
        match client_ip {
            Some(ip) => check(&self.signup_per_ip, &self.clock, &ip),
            None => Ok(()),
        }
    }
}

fn quota(burst: u32, period: Duration) -> Quota {
    Quota::with_period(period)
        .expect("the period is not zero")
        .allow_burst(NonZeroU32::new(burst).expect("the burst is not zero"))
}

fn check<K: Hash + Eq + Clone>(
    limiter: &Keyed<K>,
    clock: &LimiterClock,
    key: &K,
) -> Result<(), Error> {
    if limiter.len() > LIMITER_KEYS_MAX {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| {
        let now = governor::clock::Clock::now(clock);
        Error::RateLimited {
            retry_after: not_until.wait_time_from(now).max(Duration::from_secs(1)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    // Protects the per-email quota: 5 at once, then one every 12 s.
    #[test]
    fn per_email_burst_then_refill() {
        let clock = ManualClock::new(1_000_000);
        let limits = RateLimits::new(Arc::new(clock.clone()));
        for _ in 0..5 {
            limits.check_login("a@b.example", None).unwrap();
        }
        let Err(Error::RateLimited { retry_after }) = limits.check_login("a@b.example", None)
        else {
            panic!("the sixth attempt is limited");
        };
        assert!(retry_after <= Duration::from_secs(12), "{retry_after:?}");
        assert!(retry_after >= Duration::from_secs(11), "{retry_after:?}");
        // Another email is not affected.
        limits.check_login("c@d.example", None).unwrap();
        clock.advance_ms(12_000);
        limits.check_login("a@b.example", None).unwrap();
        assert!(limits.check_login("a@b.example", None).is_err());
    }

    // Protects the per-IP quota: 20 at once across emails.
    #[test]
    fn per_ip_burst() {
        let clock = ManualClock::new(0);
        let limits = RateLimits::new(Arc::new(clock));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for n in 0..20 {
            limits
                .check_login(&format!("u{n}@x.example"), Some(ip))
                .unwrap();
        }
        assert!(matches!(
            limits.check_login("fresh@x.example", Some(ip)),
            Err(Error::RateLimited { .. })
        ));
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        limits.check_login("fresh@x.example", Some(other)).unwrap();
    }
}
