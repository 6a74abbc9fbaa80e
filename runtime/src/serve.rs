//! The one serve loop, generic over every server.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::__private::Message;
use crate::error::{CallError, PanicMessage, StopReason};
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
    let periods = state.periods();
    let loop_ = Loop {
        mailbox,
        control,
        on_panic,
        id,
        pooled: control.replicas() > 1,
    };
    // Most servers have neither timers nor a priority lane: they get a
    // loop with one plain receive. The full loop's waiting (a `select!`
    // over timers and lanes) is boxed, once per start, so that it does not
    // grow every server's task.
    let ended = if periods.is_empty() && loop_.mailbox.has_one_lane() {
        loop_.serve_one_lane(&mut state).await
    } else {
        Box::pin(loop_.serve_with_timers(&mut state, Timers::new(periods))).await
    };
    match ended {
        Ended::Stopped(reason) => {
            let _ = catch(id, state.on_stop()).await;
            (reason, true, Some(state))
        }
        Ended::Terminal(request) => {
            // `on_stop` needs the state, which the terminal method
            // consumes, so it runs first.
            let _ = catch(id, state.on_stop()).await;
            let _ = catch(id, state.consume(request)).await;
            (StopReason::Terminal, true, None)
        }
    }
}

/// How a request loop ended.
enum Ended<R> {
    Stopped(StopReason),
    /// A terminal request is to consume the state.
    Terminal(R),
}

/// What to do with one envelope from the mailbox.
enum Next<R> {
    Serve(R),
    Skip,
    End(Ended<R>),
}

/// What both request loops share.
struct Loop<'a, R> {
    mailbox: &'a mut Mailbox<R>,
    control: &'a Arc<Control>,
    on_panic: PanicPolicy,
    id: usize,
    /// One of several replicas: another may take a stop first.
    pooled: bool,
}

/// The body both request loops share: classify one envelope, then serve the
/// request (or `continue`/`return` from the enclosing loop). A macro rather
/// than an `async fn`: another future layer between the loop and the
/// handler measurably slowed every call (BENCHMARKS.md).
macro_rules! serve_envelope {
    ($loop_:ident, $state:ident, $envelope:ident) => {
        let request = match $loop_.next($envelope) {
            Next::Serve(request) => request,
            Next::Skip => continue,
            Next::End(ended) => return ended,
        };
        let served = catch($loop_.id, $state.dispatch(request)).await;
        if let Some(reason) = $loop_.after(served) {
            return Ended::Stopped(reason);
        }
    };
}

impl<R: Message> Loop<'_, R> {
    /// The loop for a server with one lane and no timers.
    async fn serve_one_lane<S: Server<Request = R>>(self, state: &mut S) -> Ended<R> {
        loop {
            let envelope = self.mailbox.normal_receiver().recv().await.ok();
            serve_envelope!(self, state, envelope);
        }
    }

    /// The loop for a server with timers or a priority lane.
    async fn serve_with_timers<S: Server<Request = R>>(
        self,
        state: &mut S,
        mut timers: Timers,
    ) -> Ended<R> {
        loop {
            // Timers first: a due tick is never starved by a busy mailbox,
            // and a tick that overruns its period is not repeated in a burst.
            let envelope = if timers.is_empty() {
                self.mailbox.recv().await
            } else {
                tokio::select! {
                    biased;
                    timer = timers.due() => {
                        let ticked = catch(self.id, state.tick(timer)).await;
                        timers.reschedule(timer);
                        if let Some(reason) = self.after(ticked) {
                            return Ended::Stopped(reason);
                        }
                        continue;
                    }
                    envelope = self.mailbox.recv() => envelope,
                }
            };
            serve_envelope!(self, state, envelope);
        }
    }

    /// Classifies one envelope: stop, skip a request whose caller has gone,
    /// a terminal request, or one to serve.
    #[inline(always)]
    fn next(&self, envelope: Option<Envelope<R>>) -> Next<R> {
        let stopped = Next::End(Ended::Stopped(StopReason::Stopped));
        let mut request = match envelope {
            None if self.control.stop_requested() => return stopped,
            None => return Next::End(Ended::Stopped(StopReason::HandlesDropped)),
            Some(Envelope::Stop) => {
                self.control.request_stop();
                self.mailbox.close();
                return stopped;
            }
            Some(Envelope::Request(request)) => request,
        };
        if self.pooled && self.control.stop_requested() {
            // Another replica of a pool took the stop first: this request
            // came after it.
            if let Some(reply) = request.reply_slot() {
                reply.fail(CallError::Closed);
            }
            return stopped;
        }
        if request
            .reply_slot()
            .is_some_and(|reply| reply.is_abandoned())
        {
            return Next::Skip;
        }
        if request.is_terminal() {
            self.mailbox.close();
            return Next::End(Ended::Terminal(request));
        }
        Next::Serve(request)
    }

    /// After a handler or timer ran: stop for its panic (per the policy) or
    /// for a stop requested meanwhile.
    #[inline(always)]
    fn after<T>(&self, ran: Result<T, PanicMessage>) -> Option<StopReason> {
        match ran {
            Err(panic) if self.on_panic == PanicPolicy::Stop => Some(StopReason::Panicked(panic)),
            _ if self.control.stop_requested() => Some(StopReason::Stopped),
            _ => None,
        }
    }
}

/// The `#[every]` timers of one server, driven by a single sleep.
struct Timers {
    periods: Vec<Duration>,
    next: Vec<Instant>,
    /// `None` without timers: a priority-lane server needs no timer
    /// driver.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Timers {
    fn is_empty(&self) -> bool {
        self.periods.is_empty()
    }

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
