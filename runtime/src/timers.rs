//! The `#[every]` timers of one server, driven by a single sleep; their
//! periods can change while the server runs (`Context::reschedule`).

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Shortest `#[every]` period; shorter ones are raised to it so a zero
/// period cannot spin the loop.
pub(crate) const MIN_PERIOD: Duration = Duration::from_millis(1);

/// What an `#[every(EXPR)]` period may be: a `Duration`, or an
/// `Option<Duration>` whose `None` turns the timer off. Not a public API.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "an `#[every]` period must be a `Duration` or an `Option<Duration>`, not `{Self}`",
    label = "not a period",
    note = "write `#[every(Duration::from_secs(1))]`, or `#[every(self.period)]` with a field of \
            type `Duration` (or `Option<Duration>`: `None` turns the timer off)"
)]
pub trait Period {
    /// The period, `None` for a timer that is off.
    fn period(self) -> Option<Duration>;
}

impl Period for Duration {
    fn period(self) -> Option<Duration> {
        Some(self)
    }
}

impl Period for Option<Duration> {
    fn period(self) -> Option<Duration> {
        self
    }
}

/// An `#[every]` period as the runtime keeps it. Not a public API.
#[doc(hidden)]
pub fn period(period: impl Period) -> Option<Duration> {
    period.period()
}

pub(crate) struct Timers {
    /// Each timer's period; `None` while it is off.
    periods: Vec<Option<Duration>>,
    /// When each timer runs next; `None` while it is off, or for a period
    /// too long to ever come (`Duration::MAX`).
    next: Vec<Option<Instant>>,
    /// When each timer last ran, or was started: a changed period counts
    /// from there.
    since: Vec<Instant>,
    sleep: Pin<Box<Sleep>>,
}

impl Timers {
    /// The timers for `periods`, or `None` without any.
    pub(crate) fn new(periods: Vec<Option<Duration>>) -> Option<Self> {
        if periods.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut timers = Timers {
            periods: vec![None; periods.len()],
            next: vec![None; periods.len()],
            since: vec![now; periods.len()],
            sleep: Box::pin(tokio::time::sleep_until(now)),
        };
        timers.set_periods(periods);
        Some(timers)
    }

    /// The periods, evaluated again: a timer whose period changed runs
    /// next one new period after it last ran (or was started; at once if
    /// that time has passed), a timer turned off does not run, one turned
    /// on runs one period from now. The others keep their schedule.
    pub(crate) fn set_periods(&mut self, periods: Vec<Option<Duration>>) {
        let now = Instant::now();
        for (index, period) in periods.into_iter().enumerate().take(self.periods.len()) {
            let period = period.map(|period| period.max(MIN_PERIOD));
            if period == self.periods[index] {
                continue;
            }
            if self.periods[index].is_none() {
                self.since[index] = now;
            }
            self.periods[index] = period;
            self.next[index] = period.and_then(|period| {
                let at = self.since[index].checked_add(period)?;
                Some(at.max(now))
            });
        }
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

    /// Timer `index` has run: its next run, one period after this one
    /// was due (one period from now if it ran late).
    pub(crate) fn reschedule(&mut self, index: usize) {
        let (Some(period), Some(due)) = (self.periods[index], self.next[index]) else {
            return;
        };
        let now = Instant::now();
        self.since[index] = due.min(now);
        self.next[index] = match due.checked_add(period) {
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
        let mut timers =
            Timers::new(vec![Some(Duration::from_secs(1)), Some(Duration::ZERO)]).unwrap();
        assert_eq!(
            timers.periods[1],
            Some(MIN_PERIOD),
            "zero is raised to the minimum"
        );
        timers.periods[1] = Some(Duration::from_secs(3));
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
        let mut timers =
            Timers::new(vec![Some(Duration::MAX), Some(Duration::from_secs(5))]).unwrap();
        assert_eq!(timers.next[0], None);
        assert_eq!(timers.due().await, 1);
        timers.reschedule(1);
        assert!(Timers::new(vec![]).is_none());
        let mut never = Timers::new(vec![Some(Duration::MAX), None]).unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(3600), never.due()).await;
        assert!(waited.is_err(), "a timer of Duration::MAX never fires");
        never.reschedule(0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_period_counts_from_the_last_run_and_off_means_never() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut timers = Timers::new(vec![Some(second), None]).unwrap();
        assert_eq!(timers.due().await, 0);
        timers.reschedule(0);
        // Backoff from the tick itself: the next run is 4 s after this one.
        timers.set_periods(vec![Some(4 * second), None]);
        assert_eq!(timers.next[0], Some(start + 5 * second));
        // Shortened to less than has passed since: due at once.
        tokio::time::sleep(2 * second).await;
        timers.set_periods(vec![Some(second), None]);
        assert_eq!(timers.next[0], Some(start + 3 * second));
        // Off, and the other one on: one period from now.
        timers.set_periods(vec![None, Some(10 * second)]);
        assert_eq!(timers.next, [None, Some(start + 13 * second)]);
        assert_eq!(timers.due().await, 1);
        assert_eq!(start.elapsed(), 13 * second);
        // Unchanged periods keep their schedule.
        timers.reschedule(1);
        timers.set_periods(vec![None, Some(10 * second)]);
        assert_eq!(timers.next[1], Some(start + 23 * second));
    }
}
