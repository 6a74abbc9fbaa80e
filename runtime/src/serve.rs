//! The one serve loop, generic over every server.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::__private::Message;
use crate::error::{CallError, StopReason};
use crate::handle::Control;
use crate::mailbox::{Envelope, Mailbox};
use crate::restart::Restarts;
use crate::scope::catch;
use crate::server::{PanicPolicy, Server};

/// Shortest `#[every]` period; shorter ones are raised to it so a zero
/// period cannot spin the loop.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// How a server ended, delivered by [`Exit`](crate::Exit).
#[derive(Debug)]
#[non_exhaustive]
pub struct Exited<S> {
    /// Why it stopped.
    pub reason: StopReason,
    /// The final state, after `#[on_stop]`. `None` when a terminal message
    /// consumed it, when the server never started, when its runtime shut
    /// down, and for pools.
    pub state: Option<S>,
}

/// Everything one serve loop (one replica) owns. It is also the loop's
/// drop guard: it runs on every exit path of the replica, including a serve
/// task dropped mid-await by a runtime shutdown. The last replica to end
/// closes and drains the mailbox: without that, queued callers would wait
/// forever, because the channel keeps their requests alive while any handle
/// exists.
pub(crate) struct Replica<S: Server> {
    pub(crate) state: Option<S>,
    pub(crate) mailbox: Mailbox<S::Request>,
    pub(crate) control: Arc<Control>,
    pub(crate) on_panic: PanicPolicy,
    pub(crate) restarts: Option<Box<Restarts<S>>>,
    pub(crate) exit: Option<oneshot::Sender<Exited<S>>>,
    pub(crate) exited: Option<Exited<S>>,
}

/// Runs one replica until it stops for good (restarting it if its policy
/// says so). The replica is used in place, never moved out of the future's
/// argument, so the spawned future holds it once.
pub(crate) async fn serve<S: Server>(mut replica: Replica<S>) {
    loop {
        let state = replica.state.take().expect("a state to serve");
        let (reason, started, state_back) = run(
            state,
            &mut replica.mailbox,
            &replica.control,
            replica.on_panic,
        )
        .await;
        let restartable = matches!(reason, StopReason::Panicked(_) | StopReason::StartFailed(_));
        if restartable && let Some(next) = replica.restarts.as_mut().and_then(|r| r.next(started)) {
            drop(state_back);
            replica.state = Some(next);
            continue;
        }
        replica.exited = Some(Exited {
            reason,
            state: state_back,
        });
        return;
    }
}

impl<S: Server> Drop for Replica<S> {
    fn drop(&mut self) {
        let exited = self.exited.take().unwrap_or(Exited {
            reason: StopReason::Aborted,
            state: None,
        });
        if self.control.replica_ended() {
            self.control.set_reason(exited.reason.clone());
            self.mailbox.close_and_drain(&exited.reason.call_error());
            self.control.notify_finished();
        }
        if let Some(exit) = self.exit.take() {
            let _ = exit.send(exited);
        }
    }
}

/// The serial loop for one instance of the state: start, serve requests
/// and timers one at a time, stop. Returns why it stopped, whether
/// `#[on_start]` succeeded, and the state unless a terminal message took it.
async fn run<S: Server>(
    mut state: S,
    mailbox: &mut Mailbox<S::Request>,
    control: &Arc<Control>,
    on_panic: PanicPolicy,
) -> (StopReason, bool, Option<S>) {
    let id = control.id();
    match catch(id, state.on_start()).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return (StopReason::StartFailed(why), false, Some(state)),
        Err(panic) => return (StopReason::Panicked(panic), false, Some(state)),
    }
    // Boxed, and only when there are timers: most servers have none, and
    // the serve future of every server would otherwise carry them.
    let periods = state.periods();
    let mut timers = (!periods.is_empty()).then(|| Box::new(Timers::new(periods)));
    let reason = loop {
        // Timers first: a due tick is never starved by a busy mailbox, and
        // a tick that overruns its period is not repeated in a burst.
        let envelope = match &mut timers {
            // The common case, kept to one channel receive.
            None if mailbox.has_one_lane() => mailbox.normal_receiver().recv().await.ok(),
            None => mailbox.recv().await,
            Some(timers) => tokio::select! {
                biased;
                timer = timers.due() => {
                    let ticked = catch(id, state.tick(timer)).await;
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
            },
        };
        let mut request = match envelope {
            None if control.stop_requested() => break StopReason::Stopped,
            None => break StopReason::HandlesDropped,
            Some(Envelope::Stop) => {
                control.request_stop();
                mailbox.close();
                break StopReason::Stopped;
            }
            Some(Envelope::Request(request)) => request,
        };
        if control.stop_requested() {
            // Another replica of a pool took the stop first: this request
            // came after it.
            if let Some(reply) = request.reply_slot() {
                reply.fail(CallError::Closed);
            }
            break StopReason::Stopped;
        }
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
            let _ = catch(id, state.on_stop()).await;
            let _ = catch(id, state.consume(request)).await;
            return (StopReason::Terminal, true, None);
        }
        if let Err(panic) = catch(id, state.dispatch(request)).await
            && on_panic == PanicPolicy::Stop
        {
            break StopReason::Panicked(panic);
        }
        if control.stop_requested() {
            break StopReason::Stopped;
        }
    };
    let _ = catch(id, state.on_stop()).await;
    (reason, true, Some(state))
}

/// The `#[every]` timers of one server, driven by a single sleep.
struct Timers {
    periods: Vec<Duration>,
    next: Vec<Instant>,
    sleep: Pin<Box<Sleep>>,
}

impl Timers {
    fn new(periods: Vec<Duration>) -> Self {
        let periods: Vec<Duration> = periods.into_iter().map(|p| p.max(MIN_PERIOD)).collect();
        let now = Instant::now();
        let next = periods.iter().map(|period| now + *period).collect();
        let sleep = Box::pin(tokio::time::sleep_until(now));
        Timers {
            periods,
            next,
            sleep,
        }
    }

    /// Waits for the earliest due timer and returns its index.
    async fn due(&mut self) -> usize {
        let sleep = &mut self.sleep;
        let (index, at) = self
            .next
            .iter()
            .enumerate()
            .min_by_key(|(_, at)| **at)
            .map(|(index, at)| (index, *at))
            .expect("there is at least one timer");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn timers_keep_their_rate_and_skip_missed_ticks_instead_of_bursting() {
        let start = Instant::now();
        let mut timers = Timers::new(vec![Duration::from_secs(1), Duration::ZERO]);
        assert_eq!(
            timers.periods[1], MIN_PERIOD,
            "zero is raised to the minimum"
        );
        timers.periods[1] = Duration::from_secs(3);
        timers.next[1] = start + Duration::from_secs(3);

        assert_eq!(timers.due().await, 0);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        timers.reschedule(0);
        assert_eq!(
            timers.next[0],
            start + Duration::from_secs(2),
            "on time: fixed rate"
        );

        // The tick ran 4.5 s late: the next is one period from now.
        tokio::time::sleep(Duration::from_millis(4_500)).await;
        timers.reschedule(0);
        assert_eq!(timers.next[0], Instant::now() + Duration::from_secs(1));
        // Timer 1 was due during the delay: it fires now, once.
        assert_eq!(timers.due().await, 1);
    }
}
