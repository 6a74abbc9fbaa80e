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

/// Everything one serve loop (one replica) needs.
pub(crate) struct Replica<S: Server> {
    pub(crate) state: S,
    pub(crate) mailbox: Mailbox<S::Request>,
    pub(crate) control: Arc<Control>,
    pub(crate) on_panic: PanicPolicy,
    pub(crate) restarts: Option<Restarts<S>>,
    pub(crate) exit: Option<oneshot::Sender<Exited<S>>>,
}

/// Runs one replica until it stops for good (restarting it if its policy
/// says so), then, if it is the last replica, releases every queued caller.
pub(crate) async fn serve<S: Server>(replica: Replica<S>) {
    let Replica {
        state,
        mailbox,
        control,
        on_panic,
        mut restarts,
        exit,
    } = replica;
    let mut finish = Finish {
        mailbox,
        control: control.clone(),
        exited: None,
        exit,
    };
    let mut state = state;
    let exited = loop {
        let (reason, started, state_back) =
            run(state, &mut finish.mailbox, &control, on_panic).await;
        let restartable = matches!(reason, StopReason::Panicked(_) | StopReason::StartFailed(_));
        if restartable && let Some(next) = restarts.as_mut().and_then(|r| r.next(started)) {
            drop(state_back);
            state = next;
            continue;
        }
        break Exited {
            reason,
            state: state_back,
        };
    };
    finish.exited = Some(exited);
}

/// Runs on every exit path of a replica, including a serve task dropped
/// mid-await by a runtime shutdown. The last replica closes and drains the
/// mailbox: without it, queued callers would wait forever, because the
/// channel keeps their requests alive while any handle exists.
struct Finish<S: Server> {
    mailbox: Mailbox<S::Request>,
    control: Arc<Control>,
    exited: Option<Exited<S>>,
    exit: Option<oneshot::Sender<Exited<S>>>,
}

impl<S: Server> Drop for Finish<S> {
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
    let mut timers = Timers::new(state.periods());
    let reason = loop {
        // Timers first: a due tick is never starved by a busy mailbox, and
        // a tick that overruns its period is not repeated in a burst.
        let envelope = if timers.is_empty() {
            mailbox.recv().await
        } else {
            tokio::select! {
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
            }
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

    fn is_empty(&self) -> bool {
        self.periods.is_empty()
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
