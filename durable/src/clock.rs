//! Wall-clock time as a replaceable dependency.
//!
//! Owns: the [`Clock`] trait and its two implementations, [`SystemClock`]
//! (the real time) and [`ManualClock`] (set by tests).
//! Does not own: any notion of ordering between events. Wall-clock time can go
//! backwards; nothing that needs monotonic order may be built on it. Callers use
//! it for timestamps that are recorded and shown, such as a snapshot's
//! `created_at`.
//!
//! Entry points: [`Clock::now_micros`], [`SystemClock`], [`ManualClock::new`].
//!
//! Invariant: a [`ManualClock`] and all its clones share one time value, so a test
//! can hold a clone and move the time seen by the code under test.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync {
    /// Microseconds since the Unix epoch (negative before it).
    fn now_micros(&self) -> i64;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> i64 {
        // A clock set before 1970 is unusual but not impossible; report it as a
        // negative value rather than panicking in a storage path.
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |m| -m),
        }
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock reading `micros` until changed.
    pub fn new(micros: i64) -> Self {
        Self {
            micros: Arc::new(AtomicI64::new(micros)),
        }
    }

    /// Sets the time seen by this clock and all its clones.
    pub fn set(&self, micros: i64) {
        self.micros.store(micros, Ordering::SeqCst);
    }

    /// Moves the time forward (or backward, if `delta` is negative).
    pub fn advance(&self, delta_micros: i64) {
        self.micros.fetch_add(delta_micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> i64 {
        self.micros.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protects: tests can steer time through a clone held outside the code under test.
    #[test]
    fn manual_clock_clones_share_time() {
        let a = ManualClock::new(5);
        let b = a.clone();
        b.set(100);
        a.advance(7);
        assert_eq!(a.now_micros(), 107);
        assert_eq!(b.now_micros(), 107);
    }

    // Protects: the system clock reports something after 2020 in µs, not ms or s.
    #[test]
    fn system_clock_is_in_micros() {
        let now = SystemClock.now_micros();
        assert!(now > 1_577_836_800_000_000, "{now}");
    }
}
