//! The `#[every]` timers of one server, driven by a single sleep.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Shortest `#[every]` period; shorter ones are raised to it so a zero
/// period cannot spin the loop.
pub(crate) const MIN_PERIOD: Duration = Duration::from_millis(1);

pub(crate) struct Timers {
    periods: Vec<Duration>,
    /// When each timer runs next; `None` for a period too long to ever come
    /// (`Duration::MAX`).
    next: Vec<Option<Instant>>,
    sleep: Pin<Box<Sleep>>,
}

impl Timers {
    /// The timers for `periods`, or `None` without any.
    pub(crate) fn new(periods: Vec<Duration>) -> Option<Self> {
        if periods.is_empty() {
            return None;
        }
        let periods: Vec<Duration> = periods.into_iter().map(|p| p.max(MIN_PERIOD)).collect();
        let now = Instant::now();
        let next = periods
            .iter()
            .map(|period| now.checked_add(*period))
            .collect();
        Some(Timers {
            periods,
            next,
            sleep: Box::pin(tokio::time::sleep_until(now)),
        })
    }

    /// Waits for the earliest due timer and returns its index; never
    /// returns if no timer will ever be due.
    #[cfg(test)]
    pub(crate) async fn due(&mut self) -> usize {
        std::future::poll_fn(|cx| self.poll_due(cx)).await
    }

    /// The index of the earliest timer if it is due; else the task is woken
    /// when it is (never, if no timer will ever be due).
    pub(crate) fn poll_due(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<usize> {
        let earliest = self
            .next
            .iter()
            .enumerate()
            .filter_map(|(index, at)| Some((index, (*at)?)))
            .min_by_key(|(_, at)| *at);
        let Some((index, at)) = earliest else {
            return std::task::Poll::Pending;
        };
        if self.sleep.deadline() != at {
            self.sleep.as_mut().reset(at);
        }
        std::future::Future::poll(self.sleep.as_mut(), cx).map(|()| index)
    }

    /// When the next timer is due; `None` if none ever is.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.next.iter().flatten().min().copied()
    }

    pub(crate) fn reschedule(&mut self, index: usize) {
        let period = self.periods[index];
        let now = Instant::now();
        self.next[index] = match self.next[index].and_then(|at| at.checked_add(period)) {
            Some(next) if next > now => Some(next),
            _ => now.checked_add(period),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn timers_keep_their_rate_and_skip_missed_ticks_instead_of_bursting() {
        let start = Instant::now();
        let mut timers = Timers::new(vec![Duration::from_secs(1), Duration::ZERO]).unwrap();
        assert_eq!(
            timers.periods[1], MIN_PERIOD,
            "zero is raised to the minimum"
        );
        timers.periods[1] = Duration::from_secs(3);
        timers.next[1] = Some(start + Duration::from_secs(3));

        assert_eq!(timers.due().await, 0);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        timers.reschedule(0);
        assert_eq!(
            timers.next[0],
            Some(start + Duration::from_secs(2)),
            "on time: fixed rate"
        );

        // The tick ran 4.5 s late: the next is one period from now.
        tokio::time::sleep(Duration::from_millis(4_500)).await;
        timers.reschedule(0);
        assert_eq!(
            timers.next[0],
            Some(Instant::now() + Duration::from_secs(1))
        );
        // Timer 1 was due during the delay: it fires now, once.
        assert_eq!(timers.due().await, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_period_of_duration_max_never_fires_and_does_not_overflow() {
        let mut timers = Timers::new(vec![Duration::MAX, Duration::from_secs(5)]).unwrap();
        assert_eq!(timers.next[0], None);
        assert_eq!(timers.due().await, 1);
        timers.reschedule(1);
        assert!(Timers::new(vec![]).is_none());
        let mut never = Timers::new(vec![Duration::MAX]).unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(3600), never.due()).await;
        assert!(waited.is_err(), "a timer of Duration::MAX never fires");
        never.reschedule(0);
    }
}
