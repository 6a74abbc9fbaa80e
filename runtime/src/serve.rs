//! The one serve loop, generic over every server: start, serve requests and
//! timers one at a time, stop, and restart when the policy says so.
//!
//! Every piece of user code runs through `scope` (panics caught, the thread
//! marked as the server's), and the loop takes one unit of tokio's task
//! budget per request or tick, so a server whose mailbox never empties still
//! lets the other tasks of its runtime, its callers' timeouts and its own
//! timers run.

use std::sync::Arc;
use std::task::Poll;

use tokio::sync::oneshot;

use crate::control::{Control, Ending, Then};
use crate::dispatch::{self, Handled};
use crate::error::{CallError, PanicMessage, StopReason};
use crate::inline::{Slot, Taken};
use crate::mailbox::Mailbox;
use crate::message::{Inline, Message};
use crate::observe::{self, Outcome};
use crate::restart::{Restart, Restarts, Supervision, Verdict};
use crate::scope::{self, catch, catch_sync};
use crate::server::{Context, PanicPolicy, Server};
use crate::timers::Timers;

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

/// Everything one serve loop (one replica of a pool) owns. It is also the
/// loop's drop guard: it runs on every exit path, including a serve task
/// dropped mid-await by a runtime shutdown. The last replica to end closes
/// and drains the mailbox (queued callers would otherwise wait forever: the
/// channel keeps their requests alive while any handle exists) and finishes
/// the server.
pub(crate) struct Replica<S: Server> {
    mailbox: Mailbox<S::Request>,
    on_panic: PanicPolicy,
    restarts: Option<Box<Restarts<S>>>,
    exit: Option<oneshot::Sender<Exited<S>>>,
    /// What the server's code is given of its own server (and the
    /// loop's way to its `Control`).
    context: Context<S>,
    /// Where the state waits while the loop is idle, for callers to serve
    /// their synchronous calls themselves (`inline.rs`).
    slot: Option<Arc<Slot<S>>>,
    /// How the replica ended, and its final state; `None` while it runs.
    ended: Option<(Ending, Option<S>)>,
}

impl<S: Server> Replica<S> {
    pub(crate) fn new(
        mailbox: Mailbox<S::Request>,
        context: Context<S>,
        on_panic: PanicPolicy,
        restart: Option<&Restart<S>>,
        exit: Option<oneshot::Sender<Exited<S>>>,
        slot: Option<Arc<Slot<S>>>,
    ) -> Self {
        Replica {
            mailbox,
            on_panic,
            restarts: restart.map(|policy| Box::new(policy.tracker())),
            exit,
            context,
            slot,
            ended: None,
        }
    }
}

/// One task of a server, for the generated [`Spawn`] impl to start: a
/// replica's serve loop, or a pool's exit report. Not a public API.
#[doc(hidden)]
pub struct Task<S: Server>(Job<S>);

enum Job<S: Server> {
    Serve(Replica<S>, S),
    /// A pool's `Exit` learns the reason once every replica has ended.
    ReportExit(Arc<Control>, oneshot::Sender<Exited<S>>),
}

impl<S: Server> std::fmt::Debug for Task<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let job = match self.0 {
            Job::Serve(..) => "serve",
            Job::ReportExit(..) => "report exit",
        };
        f.debug_tuple("Task").field(&job).finish()
    }
}

impl<S: Server> Task<S> {
    pub(crate) fn serve(replica: Replica<S>, state: S) -> Self {
        Task(Job::Serve(replica, state))
    }

    pub(crate) fn report_exit(control: Arc<Control>, exit: oneshot::Sender<Exited<S>>) -> Self {
        Task(Job::ReportExit(control, exit))
    }
}

/// Runs a task to its end: what generated code spawns. Not a public API.
///
/// The two kinds of task side by side in one enum, so that the serve loop's
/// future is not wrapped in (and copied into) another state machine.
#[doc(hidden)]
pub fn run_task<S: Server>(
    task: Task<S>,
) -> TaskFuture<impl Future<Output = ()>, impl Future<Output = ()>> {
    match task.0 {
        Job::Serve(replica, state) => TaskFuture::Serve {
            future: serve(replica, state),
        },
        Job::ReportExit(control, exit) => TaskFuture::ReportExit {
            future: async move {
                let reason = control.closed_reason().await;
                let _ = exit.send(Exited {
                    reason,
                    state: None,
                });
            },
        },
    }
}

pin_project_lite::pin_project! {
    /// The future of [`run_task`]. Not a public API.
    #[doc(hidden)]
    #[project = TaskProjection]
    pub enum TaskFuture<A, B> {
        /// A replica's serve loop.
        Serve { #[pin] future: A },
        /// A pool's exit report.
        ReportExit { #[pin] future: B },
    }
}

impl<A: Future<Output = ()>, B: Future<Output = ()>> Future for TaskFuture<A, B> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        match self.project() {
            TaskProjection::Serve { future } => future.poll(cx),
            TaskProjection::ReportExit { future } => future.poll(cx),
        }
    }
}

impl<A, B> std::fmt::Debug for TaskFuture<A, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TaskFuture::Serve { .. } => "TaskFuture::Serve",
            TaskFuture::ReportExit { .. } => "TaskFuture::ReportExit",
        })
    }
}

/// How a server's tasks are spawned, generated by `#[server]` where the
/// server's type is known: `tokio::spawn` (which proves the tasks `Send`
/// for that type), or `spawn_local` for `#[server(local)]`. Not a public
/// API.
#[doc(hidden)]
pub trait Spawn: Server {
    /// Callers may serve the server's synchronous calls themselves while it
    /// is idle (`inline.rs`): it has such calls and is not local.
    const INLINE: bool = false;

    /// Starts `task` on the current runtime. With the `slot` of its state,
    /// returns the way callers reach it.
    fn spawn_task(task: Task<Self>, slot: Option<Arc<Slot<Self>>>)
    -> Option<Inline<Self::Request>>;
}

/// A task of server `S` that can move between threads, and so can `S`'s
/// state. One bound for both, so that a state that is not `Send` gives one
/// error. (`diagnostic::on_unimplemented` cannot help here: rustc reports
/// the `Send` it lacks, naming the type that is not `Send` and the state it
/// is in. The comment on `spawn_send`'s line is shown with that error: it
/// says what to write instead.)
#[doc(hidden)]
pub trait SendTask<S: Server>: Future<Output = ()> + Send + 'static {
    /// The way to the state's slot, for callers on any thread.
    fn share(slot: Arc<Slot<S>>) -> Inline<S::Request>;
}

impl<S: Server + Send, F: Future<Output = ()> + Send + 'static> SendTask<S> for F {
    fn share(slot: Arc<Slot<S>>) -> Inline<S::Request> {
        Inline(slot)
    }
}

/// `tokio::spawn` for a server's task; with the `slot` of its state, the
/// way callers reach it. Not a public API.
#[doc(hidden)]
#[rustfmt::skip]
pub fn spawn_send<S: Server>(
    task: impl SendTask<S>, // not `Send`? hold `Arc`, not `Rc`, or write `#[server(local)]`
    slot: Option<Arc<Slot<S>>>,
) -> Option<Inline<S::Request>> {
    let inline = slot.map(share_of(&task));
    observe::spawn(task);
    inline
}

/// `F::share`, named through a value of `F`.
fn share_of<S: Server, F: SendTask<S>>(_: &F) -> fn(Arc<Slot<S>>) -> Inline<S::Request> {
    F::share
}

/// `tokio::task::spawn_local` for a `#[server(local)]` server's task. Not
/// a public API.
///
/// # Panics
///
/// Outside a `tokio::task::LocalSet` (or a local runtime).
#[doc(hidden)]
pub fn spawn_local(task: impl Future<Output = ()> + 'static) {
    observe::spawn_local(task);
}

/// Runs one replica, from `state`, until it stops for good.
///
/// A function returning a block rather than an `async fn`: an `async fn`
/// keeps its arguments twice in its future (as passed, and as the locals
/// they are moved into), and the replica is the largest thing in a
/// server's task (BENCHMARKS.md).
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub(crate) fn serve<S: Server>(mut replica: Replica<S>, mut state: S) -> impl Future<Output = ()> {
    async move {
        // Signals (a drain, a watched server's end) wake this task.
        std::future::poll_fn(|cx| {
            replica.context.control.register(cx.waker());
            Poll::Ready(())
        })
        .await;
        loop {
            let ended = run(state, &mut replica).await;
            let supervision = replica.restarts.as_deref().and_then(Restarts::supervision);
            let next = match supervision.cloned() {
                None => replica.next_state(ended),
                // Boxed: only supervised servers wait here.
                Some(supervision) => Box::pin(replica.next_supervised(ended, supervision)).await,
            };
            state = match next {
                Ok(state) => state,
                Err(ended) => return replica.ended(ended),
            };
            // A state that fails at once, restarted without limit, must not
            // monopolise the thread either.
            tokio::task::consume_budget().await;
        }
    }
}

/// How one incarnation of the state ended.
enum Ended<S> {
    /// `#[on_start]` failed or panicked: the state never served.
    NotStarted(StopReason, S),
    /// A handler or timer panicked and the policy stops the server.
    Faulted(PanicMessage, S),
    /// For good: restarts do not apply.
    Stopped(Ending, Option<S>),
    /// Its supervisor asked for a restart.
    Restart(S),
}

/// Starts `state`, serves until it stops, runs `#[on_stop]`.
///
/// A function returning a block rather than an `async fn`, and the state
/// in one place (`held`) from start to end: an `async fn` would keep it as
/// its argument and again in each local it is moved into, and every
/// server's task is as large as this future (BENCHMARKS.md).
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn run<S: Server>(state: S, replica: &mut Replica<S>) -> impl Future<Output = Ended<S>> + '_ {
    let mut held = Held(Some(state));
    async move {
        let control = &*replica.context.control;
        let context = &replica.context;
        match catch(control, held.state().on_start(context)).await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return Ended::NotStarted(StopReason::StartFailed(why), held.take()),
            Err(panic) => return Ended::NotStarted(StopReason::Panicked(panic), held.take()),
        }
        observe::started::<S>(control);
        if let Some(supervision) = replica.restarts.as_deref().and_then(Restarts::supervision) {
            supervision.started();
        }
        let served = match catch_sync(control, || held.state().periods()) {
            Ok(periods) => {
                // Boxed until it is known which loop runs: as a plain local
                // it would be kept, empty, beside the plain loop (the size
                // of every server's task).
                let timers = Timers::new(periods).map(Box::new);
                let one_lane = replica.mailbox.has_one_lane();
                let requests = Requests {
                    mailbox: &mut replica.mailbox,
                    control,
                    context,
                    on_panic: replica.on_panic,
                    slot: replica.slot.as_deref(),
                };
                // Most servers have neither timers nor priority levels:
                // their loop waits on one plain receive. The other loop's
                // waiting (a `select!` over lanes and timers) is boxed, once
                // per start, so that it does not grow every server's task
                // (BENCHMARKS.md). `held` is `None` while the state is lent
                // to the slot; the loop has it back whenever
                // `next_or_signal` returns, and when it stops serving.
                match timers {
                    None if one_lane => requests.serve(&mut held.0, OneLane).await,
                    timers => {
                        let timers = timers.map(|timers| *timers);
                        Box::pin(requests.serve(&mut held.0, Lanes { timers })).await
                    }
                }
            }
            Err(panic) => Served::Faulted(panic),
        };
        let stopped = catch(control, held.state().on_stop(context));
        match served {
            Served::Drained => match stopped.await {
                Ok(()) => Ended::Stopped(Ending::Drained, Some(held.take())),
                Err(panic) => {
                    Ended::Stopped(Ending::Own(StopReason::Panicked(panic)), Some(held.take()))
                }
            },
            Served::Faulted(panic) => {
                let _ = stopped.await;
                Ended::Faulted(panic, held.take())
            }
            Served::Restart => {
                let _ = stopped.await;
                Ended::Restart(held.take())
            }
            Served::Terminal(request) => {
                // `on_stop` needs the state, which the terminal method
                // consumes, so it runs first.
                let _ = stopped.await;
                let reason = match catch(control, held.take().consume(request, context)).await {
                    Ok(()) => StopReason::Terminal,
                    Err(panic) => StopReason::Panicked(panic),
                };
                control.set_cause(reason.clone());
                Ended::Stopped(Ending::Own(reason), None)
            }
        }
    }
}

/// The state from its start to its end. Dropped with it still inside
/// only when the serve task itself is dropped mid-handler or mid-hook (a
/// runtime shutting down): the replies the state holds are then answered as the
/// drop guard answers those of a state lent to the slot, not left to be
/// dropped unanswered.
struct Held<S>(Option<S>);

impl<S> Held<S> {
    /// The state, which the loop holds whenever it is not serving.
    fn state(&mut self) -> &mut S {
        match &mut self.0 {
            Some(state) => state,
            None => unreachable!("the loop holds its state when it stops serving"),
        }
    }

    /// The state, out of its guard for good.
    fn take(&mut self) -> S {
        match self.0.take() {
            Some(state) => state,
            None => unreachable!("the loop holds its state when it stops serving"),
        }
    }
}

impl<S> Drop for Held<S> {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            let _ = scope::dispose(state, &StopReason::Aborted.held_reply_error());
        }
    }
}

/// How the request loop ended.
enum Served<R> {
    /// The mailbox was closed and ran dry, or the server's own code
    /// stopped it.
    Drained,
    /// A handler or timer panicked and the policy stops the server.
    Faulted(PanicMessage),
    /// A terminal request is to consume the state; the mailbox is closed.
    Terminal(R),
    /// The supervisor asked for a restart; the mailbox stays open.
    Restart,
}

/// What the loop waits for.
enum Next<R> {
    Request(R),
    Tick(usize),
    Closed,
    /// A stop or a watched server's end to handle first.
    Signal,
    /// Draining, and the mailbox is empty.
    Drained,
}

/// How the loop waits for its next request: polled directly by the loop,
/// with no future of its own in between (each layer of future costs
/// instructions on every request, BENCHMARKS.md).
trait Wait<R> {
    fn poll_next(
        &mut self,
        mailbox: &mut Mailbox<R>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Next<R>>;

    /// Timer `timer` has run.
    fn ticked(&mut self, timer: usize);

    /// The `#[every]` periods, evaluated again (`Context::reschedule`).
    fn set_periods(&mut self, periods: Vec<Option<std::time::Duration>>);

    /// When the next timer is due, if there are timers.
    fn next_due(&self) -> Option<tokio::time::Instant>;
}

/// One lane and no timers: a plain receive.
struct OneLane;

impl<R: Message> Wait<R> for OneLane {
    #[inline]
    fn poll_next(
        &mut self,
        mailbox: &mut Mailbox<R>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Next<R>> {
        mailbox
            .poll_recv_one(cx)
            .map(|request| request.map_or(Next::Closed, Next::Request))
    }

    fn ticked(&mut self, _: usize) {}

    fn set_periods(&mut self, _: Vec<Option<std::time::Duration>>) {}

    fn next_due(&self) -> Option<tokio::time::Instant> {
        None
    }
}

/// Timers, priority levels, or both: a due timer first, then the lanes in
/// serving order. A tick is never starved by a busy mailbox, and one that
/// overruns its period is not repeated in a burst.
struct Lanes {
    timers: Option<Timers>,
}

impl<R: Message> Wait<R> for Lanes {
    fn poll_next(
        &mut self,
        mailbox: &mut Mailbox<R>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Next<R>> {
        if let Some(timers) = &mut self.timers
            && let Poll::Ready(timer) = timers.poll_due(cx)
        {
            return Poll::Ready(Next::Tick(timer));
        }
        mailbox
            .poll_recv(cx)
            .map(|request| request.map_or(Next::Closed, Next::Request))
    }

    fn ticked(&mut self, timer: usize) {
        if let Some(timers) = &mut self.timers {
            timers.reschedule(timer);
        }
    }

    fn set_periods(&mut self, periods: Vec<Option<std::time::Duration>>) {
        if let Some(timers) = &mut self.timers {
            timers.set_periods(periods);
        }
    }

    fn next_due(&self) -> Option<tokio::time::Instant> {
        self.timers.as_ref().and_then(Timers::next_due)
    }
}

/// The request loop's view of the replica.
struct Requests<'a, S: Server> {
    mailbox: &'a mut Mailbox<S::Request>,
    control: &'a Control,
    context: &'a Context<S>,
    on_panic: PanicPolicy,
    slot: Option<&'a Slot<S>>,
}

impl<S: Server> Requests<'_, S> {
    /// Serves requests until the loop ends. `held` is the state, lent to
    /// the slot while the loop waits and back whenever it serves.
    ///
    /// A block rather than an `async fn`, which would keep its arguments
    /// twice in its future (see `serve`).
    #[allow(clippy::manual_async_fn)] // on purpose: see above
    fn serve(
        self,
        held: &mut Option<S>,
        mut wait: impl Wait<S::Request>,
    ) -> impl Future<Output = Served<S::Request>> {
        async move {
            let context = self.context;
            let control = self.control;
            // Requests still to serve through the mailbox before the state
            // is lent again (see `next_or_signal`).
            let mut calm = 0;
            loop {
                let next =
                    next_or_signal(&mut wait, self.mailbox, control, self.slot, held, &mut calm)
                        .await;
                let Some(state) = held.as_mut() else {
                    unreachable!("the loop takes its state back before it serves")
                };
                let ran = match next {
                    Next::Closed | Next::Drained => return Served::Drained,
                    Next::Signal if control.stops_now() => return Served::Drained,
                    Next::Signal if control.signals().restarting() => return Served::Restart,
                    Next::Signal
                        if control.signals().faulted()
                            && let Some(panic) = self.slot.and_then(Slot::take_fault) =>
                    {
                        // A call served on its caller's task panicked: as if
                        // this loop had served it (its span and event are
                        // told already).
                        if self.on_panic == PanicPolicy::Stop {
                            return Served::Faulted(panic);
                        }
                        continue;
                    }
                    Next::Signal if control.signals().rescheduled() => {
                        // Before the next request or tick: a changed period
                        // takes effect from the next tick.
                        control.reschedule_taken();
                        match catch_sync(control, || state.periods()) {
                            Ok(periods) => {
                                wait.set_periods(periods);
                                continue;
                            }
                            Err(panic) => Err(panic),
                        }
                    }
                    // Boxed: a watched server's end is rare, and its future
                    // would otherwise be the largest part of every server's
                    // task (BENCHMARKS.md).
                    Next::Signal => Box::pin(self.downs(state)).await,
                    Next::Tick(timer) => {
                        let ticked = catch(control, state.tick(timer, context)).await;
                        wait.ticked(timer);
                        ticked
                    }
                    Next::Request(mut request) if control.stops_now() => {
                        // The server's own code, or a linked server, stopped
                        // it (another replica of a pool may have been
                        // serving): requests still queued are refused.
                        let sent = request.reply_slot().map(|reply| reply.sent());
                        observe::Request::new::<S>(control, request.name(), sent)
                            .finish(Outcome::Closed);
                        fail(&mut request, CallError::Closed);
                        return Served::Drained;
                    }
                    Next::Request(request) => {
                        match dispatch::request(state, request, context).await {
                            Handled::Replied | Handled::Skipped => continue,
                            Handled::Terminal(request) => {
                                self.mailbox.close();
                                return Served::Terminal(request);
                            }
                            Handled::Panicked(panic) if self.on_panic == PanicPolicy::Stop => {
                                return Served::Faulted(panic);
                            }
                            Handled::Panicked(_) => continue,
                        }
                    }
                };
                // A tick, an `#[on_down]` hook or the periods.
                if let Err(panic) = ran {
                    observe::panicked::<S>(control, &panic);
                    if self.on_panic == PanicPolicy::Stop {
                        return Served::Faulted(panic);
                    }
                }
            }
        }
    }

    /// Runs `#[on_down]` for every watched server that stopped, then does
    /// what each watch asked for. The first panic of a hook is reported
    /// after every `Down` is handled.
    async fn downs(&self, state: &mut S) -> Result<(), PanicMessage> {
        let control = self.control;
        let mut outcome = Ok(());
        for (down, then) in control.take_downs() {
            let hooked = catch(control, state.on_down(down.clone(), self.context)).await;
            match then {
                Then::Notify => {}
                Then::Drain => control.drain(StopReason::Drained),
                Then::Stop => {
                    control.request_stop_now(StopReason::StoppedWith(Box::new(down)));
                    // Wakes the other replicas of a pool, refuses new calls.
                    self.mailbox.close();
                }
            }
            outcome = outcome.and(hooked);
        }
        outcome
    }
}

/// The next request or tick; but first a stop from the server's own code
/// or a watched server's end (`Next::Signal`), and `Next::Drained` once the
/// mailbox is empty while the server drains. Whoever sets a signal wakes
/// this task afterwards, so checking on every poll misses none.
///
/// With a `slot`, the state is lent to it whenever the wait finds nothing,
/// so that callers can serve their synchronous calls themselves while the
/// loop is idle, and taken back (once such a caller has finished) before
/// anything else.
async fn next_or_signal<S: Server>(
    wait: &mut impl Wait<S::Request>,
    mailbox: &mut Mailbox<S::Request>,
    control: &Control,
    slot: Option<&Slot<S>>,
    held: &mut Option<S>,
    calm: &mut u32,
) -> Next<S::Request> {
    std::future::poll_fn(|cx| {
        // The state back first, if it was lent: waiting as a task while a
        // caller serves itself with it, never blocking this thread.
        let mut lent = false;
        if let Some(slot) = slot
            && held.is_none()
        {
            match slot.poll_take() {
                Poll::Ready(Taken::State(state)) => {
                    *held = Some(state);
                    lent = true;
                }
                Poll::Ready(Taken::Empty) => {
                    unreachable!("only the loop takes back the state it lent")
                }
                Poll::Pending => {
                    // Callers contend: one serves itself while others
                    // queue (see `CALM`).
                    *calm = CALM;
                    return Poll::Pending;
                }
            }
        }
        // One unit of the task's budget per request or tick, as tokio's own
        // channels take it: once it is spent the loop yields, and a wait
        // that finds nothing gives the unit back.
        let budget = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        // One load per request: what was asked of the server.
        let signals = control.signals();
        let next = if signals.interrupts() {
            Next::Signal
        } else {
            match wait.poll_next(mailbox, cx) {
                // A request its caller could have served, queued while the
                // state was lent: callers contend (see `CALM`).
                Poll::Ready(Next::Request(request)) if lent && request.runs_inline() => {
                    *calm = CALM;
                    Next::Request(request)
                }
                Poll::Ready(next) => next,
                // Drained. A send that passed its checks before the drain
                // began may still be on its way into the mailbox: closed
                // first (atomically with sends), then one more look, so
                // that a request that got in is served, not dropped with
                // the mailbox after its sender was told it was taken.
                // (A pool's other replicas may still send themselves
                // follow-ups: its mailbox closes with its last replica.)
                Poll::Pending if signals.draining() && mailbox.has_one_consumer() => {
                    mailbox.close();
                    match wait.poll_next(mailbox, cx) {
                        Poll::Ready(next) => next,
                        Poll::Pending => Next::Drained,
                    }
                }
                Poll::Pending if signals.draining() => Next::Drained,
                Poll::Pending => {
                    if *calm == 0
                        && let Some(slot) = slot
                        && let Some(state) = held.take()
                    {
                        slot.lend(state, wait.next_due());
                    }
                    return Poll::Pending;
                }
            }
        };
        *calm = calm.saturating_sub(1);
        budget.made_progress();
        Poll::Ready(next)
    })
    .await
}

/// After callers were found contending for the state (one serving itself
/// while another had to queue a call it could have served), how many
/// requests the loop serves through the mailbox before it lends the state
/// again. Handing the state back and forth between callers and the loop,
/// across threads, costs more than the mailbox: 64 callers on 2 workers
/// took 509 ns a call that way, 251 ns through the mailbox (BENCHMARKS.md).
const CALM: u32 = 64;

fn fail<R: Message>(request: &mut R, error: CallError) {
    if let Some(reply) = request.reply_slot() {
        reply.fail(error);
    }
}

impl<S: Server> Replica<S> {
    /// The replica has ended, so: its drop guard reports it.
    fn ended(&mut self, ended: (Ending, Option<S>)) {
        self.ended = Some(ended);
    }

    /// The state to continue with after `ended`, if the restart policy
    /// allows one; else how the replica ends.
    fn next_state(&mut self, ended: Ended<S>) -> Result<S, (Ending, Option<S>)> {
        let (mut reason, broken, started) = match ended {
            Ended::Stopped(ending, state) => return Err((ending, state)),
            Ended::NotStarted(reason, state) => (reason, state, false),
            Ended::Faulted(panic, state) => (StopReason::Panicked(panic), state, true),
            // Only a supervisor asks for one, and it decides in
            // `next_supervised`.
            Ended::Restart(state) => return Err((Ending::Drained, Some(state))),
        };
        let Some(restarts) = self.restarts.as_mut() else {
            return Err((Ending::Own(reason), Some(broken)));
        };
        if !restarts.allow(started) {
            return Err((Ending::Own(reason), Some(broken)));
        }
        observe::restarting::<S>(&self.context.control, &reason);
        // The broken state goes first; the replies it held learn why. A
        // panic from its `Drop` is caught and does not stop the restart.
        let _ = scope::dispose(broken, &reason.held_reply_error());
        loop {
            match catch_sync(&self.context.control, || restarts.build()) {
                Ok(state) => return Ok(state),
                // A factory that panics is a failed restart: it counts.
                Err(panic) => reason = StopReason::Panicked(panic),
            }
            if !restarts.allow(started) {
                return Err((Ending::Own(reason), None));
            }
        }
    }
}

impl<S: Server> Replica<S> {
    /// The state to continue with after `ended`, as the supervisor
    /// decides: the task waits for its verdict (a supervisor restarting
    /// several children orders them so).
    async fn next_supervised(
        &mut self,
        ended: Ended<S>,
        supervision: Arc<dyn Supervision>,
    ) -> Result<S, (Ending, Option<S>)> {
        let (mut reason, mut broken) = match ended {
            Ended::Stopped(ending, state) => return Err((ending, state)),
            Ended::NotStarted(reason, state) => (Some(reason), Some(state)),
            Ended::Faulted(panic, state) => (Some(StopReason::Panicked(panic)), Some(state)),
            Ended::Restart(state) => (None, Some(state)),
        };
        let control = &*self.context.control;
        loop {
            match supervision.ended(reason.clone()).await {
                Verdict::End(why) => return Err((Ending::Own(why), broken)),
                Verdict::Restart => {}
            }
            if let Some(reason) = &reason {
                observe::restarting::<S>(control, reason);
            }
            // Asked for before this verdict: this restart is it.
            control.restart_taken();
            if let Some(broken) = broken.take() {
                let held = reason
                    .as_ref()
                    .map_or(CallError::Closed, StopReason::held_reply_error);
                let _ = scope::dispose(broken, &held);
            }
            let Some(restarts) = self.restarts.as_deref() else {
                unreachable!("a supervised server has a restart policy")
            };
            match catch_sync(control, || restarts.build()) {
                Ok(state) => return Ok(state),
                // A factory that panicked is a failure like any other.
                Err(panic) => reason = Some(StopReason::Panicked(panic)),
            }
        }
    }
}

impl<S: Server> Drop for Replica<S> {
    fn drop(&mut self) {
        let (ending, state) = self
            .ended
            .take()
            .unwrap_or((Ending::Own(StopReason::Aborted), None));
        let held = match &ending {
            Ending::Own(reason) => reason.held_reply_error(),
            Ending::Drained => CallError::Closed,
        };
        // A serve task dropped while idle (a runtime shutdown) left its
        // state in the slot: it ends here, as it would have with the task
        // (an `Exit` reports no state then), and no caller may serve
        // itself from now on.
        if let Some(lent) = self.slot.as_ref().and_then(|slot| slot.take()) {
            let _ = scope::dispose(lent, &held);
        }
        let control = &self.context.control;
        let ended = control.replica_ended(ending);
        // Cloned only for an `Exit` that reports it.
        let reported = ended.as_ref().filter(|_| self.exit.is_some()).cloned();
        let last = ended.is_some();
        if let Some(reason) = ended {
            // Watchers first: a caller answered `Closed` below, or one who
            // sees `closed()` resolve, then calling a watcher, finds its
            // `#[on_down]` handled before its call.
            control.finish(reason);
            self.mailbox.close_and_drain(&control.closed_error());
        }
        let state = match &self.exit {
            Some(_) => state,
            None => {
                // A panicking `Drop` of the state is caught: the server has
                // ended already.
                let _ = state.map(|state| scope::dispose(state, &held));
                None
            }
        };
        if last {
            observe::stopped::<S>(control);
            control.announce();
        }
        if let Some(exit) = self.exit.take() {
            let reason = reported.unwrap_or(StopReason::Aborted);
            let _ = exit.send(Exited { reason, state });
        }
    }
}
