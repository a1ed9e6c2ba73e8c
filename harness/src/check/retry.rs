//! When a send whose check failed is tried again. Our choice, not Calico's:
//! like a connectivity checker, a send is tried again while it fails, because
//! routes and rules may need a moment after a change; bounded in count and
//! time. A leak is a leak even if the next try is quiet, so only sends that
//! must reach something are tried again.

use std::time::Duration;

use super::{Delivery, TrafficExpectation};

/// How often, for how long, and how far apart a failing send is tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub max_attempts: u32,
    /// No new try once this long has passed since the first began.
    pub budget: Duration,
    /// The pause between two tries.
    pub pause: Duration,
}

/// What follows a judged try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextTry {
    /// The try's result is the step's.
    Done,
    /// Try again after this pause.
    Again(Duration),
}

impl RetryPolicy {
    /// The runner's policy for `send` steps.
    pub const SENDS: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        budget: Duration::from_secs(6),
        pause: Duration::from_millis(100),
    };

    /// After try number `attempt` (from 1), begun `elapsed` after the first,
    /// whose check `passed` or not against `expect`.
    pub fn after(
        &self,
        attempt: u32,
        elapsed: Duration,
        expect: &TrafficExpectation,
        passed: bool,
    ) -> NextTry {
        let leak_checked = matches!(expect.delivered_to, Some(Delivery::None));
        if passed || leak_checked || attempt >= self.max_attempts || elapsed >= self.budget {
            NextTry::Done
        } else {
            NextTry::Again(self.pause)
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn expecting(delivered_to: Option<Delivery>) -> TrafficExpectation {
        TrafficExpectation {
            delivered_to,
            ..TrafficExpectation::default()
        }
    }

    #[rstest]
    #[case::a_pass_is_final(1, 0, Some(Delivery::Pods(vec!["web".into()])), true, NextTry::Done)]
    #[case::a_failure_is_tried_again(1, 0, Some(Delivery::Pods(vec!["web".into()])), false, NextTry::Again(Duration::from_millis(100)))]
    #[case::so_is_one_that_checks_only_addresses(
        2,
        1,
        None,
        false,
        NextTry::Again(Duration::from_millis(100))
    )]
    #[case::a_leak_is_never_tried_again(1, 0, Some(Delivery::None), false, NextTry::Done)]
    #[case::the_third_try_is_the_last(3, 1, Some(Delivery::Pods(vec!["web".into()])), false, NextTry::Done)]
    #[case::six_seconds_is_the_budget(2, 6, Some(Delivery::Pods(vec!["web".into()])), false, NextTry::Done)]
    fn a_failing_send_is_tried_again_while_it_may_still_pass(
        #[case] attempt: u32,
        #[case] elapsed_s: u64,
        #[case] delivered_to: Option<Delivery>,
        #[case] passed: bool,
        #[case] next: NextTry,
    ) {
        let elapsed = Duration::from_secs(elapsed_s);
        let expect = expecting(delivered_to);
        assert_eq!(
            RetryPolicy::SENDS.after(attempt, elapsed, &expect, passed),
            next
        );
    }
}
