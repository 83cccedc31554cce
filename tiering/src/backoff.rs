//! Retry delays for tier operations that fail: exponential from
//! `initial_ms`, capped at `max_ms`, reset by a success. Pure: the caller
//! passes the time, so schedules are unit-tested without sleeping.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial_ms: i64,
    pub max_ms: i64,
    failures: u32,
    /// No attempt before this time.
    not_before_ms: i64,
}

impl Backoff {
    pub fn new(initial_ms: i64, max_ms: i64) -> Self {
        Self {
            initial_ms: initial_ms.max(1),
            max_ms: max_ms.max(initial_ms.max(1)),
            failures: 0,
            not_before_ms: i64::MIN,
        }
    }

    /// Whether an attempt may run at `now_ms`.
    pub fn ready(&self, now_ms: i64) -> bool {
        now_ms >= self.not_before_ms
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failure at `now_ms`; returns the delay before the next try.
    pub fn failed(&mut self, now_ms: i64) -> i64 {
        let shift = self.failures.min(30);
        self.failures = self.failures.saturating_add(1);
        let delay = self
            .initial_ms
            .saturating_mul(1i64 << shift)
            .min(self.max_ms);
        self.not_before_ms = now_ms.saturating_add(delay);
        delay
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.not_before_ms = i64::MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(100, 1_000);
        assert!(b.ready(0));
        assert_eq!(b.failed(0), 100);
        assert!(!b.ready(99));
        assert!(b.ready(100));
        assert_eq!(b.failed(100), 200);
        assert_eq!(b.failed(300), 400);
        assert_eq!(b.failed(700), 800);
        assert_eq!(b.failed(1_500), 1_000);
        assert_eq!(b.failures(), 5);
        for _ in 0..100 {
            b.failed(0);
        }
        assert!(b.ready(1_000));
        b.succeeded();
        assert!(b.ready(i64::MIN + 1));
        assert_eq!(b.failed(0), 100);
    }
}
