//! The one serve loop, generic over every server.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::__private::Message;
use crate::call::serving_scope;
use crate::error::StopReason;
use crate::handle::Control;
use crate::mailbox::{Envelope, Mailbox};
use crate::reply::panic_scope::catch;
use crate::server::{PanicPolicy, Server};

/// Shortest `#[every]` period; shorter ones are raised to it so a zero
/// period cannot spin the loop.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// Runs `state` until it stops, then releases every queued caller.
pub(crate) async fn serve<S: Server>(
    state: S,
    mailbox: Mailbox<S::Request>,
    control: Arc<Control>,
    on_panic: PanicPolicy,
) {
    let mut finish = Finish {
        mailbox,
        control,
        reason: None,
    };
    let control = finish.control.clone();
    let run = run(state, &mut finish.mailbox, &control, on_panic);
    finish.reason = Some(serving_scope(&control, run).await);
}

/// Closes and drains the mailbox on every exit path, including a serve
/// task dropped mid-await by a runtime shutdown. Without it, queued
/// callers would wait forever: the channel keeps their requests alive
/// while any handle exists.
struct Finish<R: Message> {
    mailbox: Mailbox<R>,
    control: Arc<Control>,
    reason: Option<StopReason>,
}

impl<R: Message> Drop for Finish<R> {
    fn drop(&mut self) {
        let reason = self.reason.take().unwrap_or(StopReason::Aborted);
        let error = reason.call_error();
        self.control.set_reason(reason);
        self.mailbox.close_and_drain(&error);
        self.control.notify_finished();
    }
}

/// The serial loop: start, serve requests and timers one at a time, stop.
async fn run<S: Server>(
    mut state: S,
    mailbox: &mut Mailbox<S::Request>,
    control: &Control,
    on_panic: PanicPolicy,
) -> StopReason {
    match catch(state.on_start()).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return StopReason::StartFailed(why),
        Err(panic) => return StopReason::Panicked(panic),
    }
    let mut timers = Timers::new(state.periods());
    let reason = loop {
        // Timers first: a due tick is never starved by a busy mailbox, and
        // a tick that overruns its period is not repeated in a burst.
        let envelope = tokio::select! {
            biased;
            timer = timers.due() => {
                let ticked = catch(state.tick(timer)).await;
                timers.reschedule(timer);
                if let Err(panic) = ticked
                    && on_panic == PanicPolicy::Stop
                {
                    break StopReason::Panicked(panic);
                }
                if control.stop_requested() {
                    break StopReason::Stopped;
                }
                continue;
            }
            envelope = mailbox.recv() => envelope,
        };
        let mut request = match envelope {
            None => break StopReason::HandlesDropped,
            Some(Envelope::Stop) => break StopReason::Stopped,
            Some(Envelope::Request(request)) => request,
        };
        if request
            .reply_slot()
            .is_some_and(|reply| reply.is_abandoned())
        {
            continue;
        }
        if request.is_terminal() {
            // `on_stop` needs the state, which the terminal method
            // consumes, so it runs first.
            mailbox.close();
            let _ = catch(state.on_stop()).await;
            let _ = catch(state.consume(request)).await;
            return StopReason::Terminal;
        }
        if let Err(panic) = catch(state.dispatch(request)).await
            && on_panic == PanicPolicy::Stop
        {
            break StopReason::Panicked(panic);
        }
        if control.stop_requested() {
            break StopReason::Stopped;
        }
    };
    mailbox.close();
    let _ = catch(state.on_stop()).await;
    reason
}

/// The `#[every]` timers of one server, driven by a single sleep.
struct Timers {
    periods: Vec<Duration>,
    next: Vec<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Timers {
    fn new(periods: Vec<Duration>) -> Self {
        let periods: Vec<Duration> = periods.into_iter().map(|p| p.max(MIN_PERIOD)).collect();
        let now = Instant::now();
        let next = periods.iter().map(|period| now + *period).collect();
        let sleep = (!periods.is_empty()).then(|| Box::pin(tokio::time::sleep_until(now)));
        Timers {
            periods,
            next,
            sleep,
        }
    }

    /// Waits for the earliest due timer and returns its index.
    async fn due(&mut self) -> usize {
        let Some(sleep) = &mut self.sleep else {
            return std::future::pending().await;
        };
        let (index, at) = self
            .next
            .iter()
            .enumerate()
            .min_by_key(|(_, at)| **at)
            .map(|(index, at)| (index, *at))
            .expect("timers exist when the sleep does");
        if sleep.deadline() != at {
            sleep.as_mut().reset(at);
        }
        sleep.as_mut().await;
        index
    }

    /// After timer `index` ran: its next run is one period after the last
    /// deadline, or one period from now if that is already past (a slow
    /// tick delays the schedule instead of causing a burst of catch-ups).
    fn reschedule(&mut self, index: usize) {
        let period = self.periods[index];
        let now = Instant::now();
        let mut next = self.next[index] + period;
        if next <= now {
            next = now + period;
        }
        self.next[index] = next;
    }
}
