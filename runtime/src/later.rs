//! Messages delivered later: any call or cast sent after a delay
//! ([`Call::after`]), or sent by a server to itself from its own code
//! ([`Context::after`], the one-shot timer; [`Context::interval`],
//! repeated), or once a future it started has finished
//! ([`Context::pipe`], the result piped back).
//!
//! Each is a small task of the runtime's that waits, then makes the call
//! with the call path every other caller uses (lanes, room, drain, the
//! caller-served path). It is owned by the server it targets: bound to its
//! `Control`, it is aborted when that server ends, so nothing of it
//! outlives the server. The serve loop knows nothing of it: a server that
//! schedules nothing pays nothing, and a delayed message, once sent, is
//! queued like any other (so callers that would serve themselves queue
//! behind it).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

use crate::call::{Call, Later};
use crate::control::{Control, Ends};
use crate::error::{CallError, PanicMessage};
use crate::mailbox::Senders;
use crate::message::Message;
use crate::scope;
use crate::server::{Context, Handle, Server};
use crate::timers::MIN_PERIOD;

/// A message scheduled for later with [`Call::after`], [`Context::after`],
/// [`Context::interval`] or [`Context::pipe`]: cancel it with
/// [`cancel`](Self::cancel), or await it for what the call gives once it
/// has been sent (for an interval: until it has stopped).
///
/// Dropping it does **not** cancel the message (as dropping a tokio
/// `JoinHandle` does not abort its task): a handler that schedules a
/// one-shot timer and forgets it still gets its message. Keep it (in the
/// server's state, say) to be able to cancel it.
///
/// Awaiting it gives the call's own outcome once the message has been
/// sent after its delay: the reply for a call (after the target has served
/// it), `Ok(())` for a cast or a [`no_wait`](Call::no_wait) call (once it
/// is in the mailbox). If the target ends before the message is sent, the
/// message is dropped and awaiting gives the error a call to the ended
/// server gets ([`CallError::Closed`], or why it ended). If the closure
/// that makes the message panics (not the piped future: its panic is
/// given to the closure), nothing is sent and awaiting gives
/// [`CallError::Panicked`].
pub struct Scheduled<T> {
    timer: Arc<Timer>,
    join: JoinHandle<Result<T, CallError>>,
    control: Arc<Control>,
}

/// Where a scheduled message is, shared by its task, its [`Scheduled`]
/// and the target's `Control` (which ends it).
struct Timer {
    state: Mutex<State>,
    /// The task's, once it has been spawned.
    abort: OnceLock<AbortHandle>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for its time (a delay, a future's result, the next tick).
    Waiting,
    /// A repeated message (`Context::interval`) is being sent; then it
    /// waits for its next time again.
    Sending,
    /// Its call has been made: from now on it is an ordinary call.
    Sent,
    /// Cancelled by its `Scheduled`, or its target ended first: it will
    /// never be sent (again).
    Dropped,
}

impl Timer {
    fn new() -> Arc<Self> {
        Arc::new(Timer {
            state: Mutex::new(State::Waiting),
            abort: OnceLock::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Held for a few instructions of ours, never across user code.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves from `from` to `to`: `false` if it was elsewhere (dropped).
    /// One lock decides between this and
    /// [`drop_message`](Self::drop_message), so a message is either sent or
    /// dropped, never both.
    fn step(&self, from: State, to: State) -> bool {
        let mut state = self.state();
        if *state != from {
            return false;
        }
        *state = to;
        true
    }

    /// Drops the message if it has not been sent: `true` if so (it never
    /// will be). A repeated one being sent at this moment is sent, and is
    /// the last.
    fn drop_message(&self) -> bool {
        let was = {
            let mut state = self.state();
            let was = *state;
            if was != State::Sent {
                *state = State::Dropped;
            }
            was
        };
        match was {
            State::Waiting => {
                if let Some(abort) = self.abort.get() {
                    abort.abort();
                }
                true
            }
            State::Dropped => true,
            State::Sending | State::Sent => false,
        }
    }

    /// The task has been spawned: it can be aborted from now on (at once,
    /// if the message was dropped meanwhile).
    fn armed(&self, abort: AbortHandle) {
        let abort = self.abort.get_or_init(|| abort);
        if *self.state() == State::Dropped {
            abort.abort();
        }
    }
}

impl Ends for Timer {
    /// The target has ended: a message not sent yet is dropped with its
    /// task. One already sent is an ordinary call, answered as the server's
    /// end answers every call.
    fn end(&self) {
        self.drop_message();
    }
}

/// Spawns the task that waits for `ready`, then makes the call `message`
/// makes of its output to the server of `senders` and `control`; bound to
/// that server.
fn schedule<R, T, W, M>(
    senders: Senders<R>,
    control: Arc<Control>,
    ready: W,
    message: M,
) -> Scheduled<T>
where
    R: Message,
    T: Send + 'static,
    W: Future + Send + 'static,
    M: FnOnce(W::Output) -> Later<R, T> + Send + 'static,
{
    let timer = Timer::new();
    let task = {
        let timer = timer.clone();
        let control = control.clone();
        async move {
            let ready = ready.await;
            if !timer.step(State::Waiting, State::Sent) {
                return Err(control.closed_error());
            }
            // Not bound any longer once sent: the call resolves by itself
            // (answered, or refused by the ended server).
            drop(timer);
            message(ready).send(&senders, &control).await
        }
    };
    let join = tokio::spawn(task);
    timer.armed(join.abort_handle());
    control.bind(Arc::downgrade(&timer) as Weak<dyn Ends>);
    Scheduled {
        timer,
        join,
        control,
    }
}

pin_project_lite::pin_project! {
    /// A piped future, its panic caught and turned into its message.
    struct CatchPanic<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, PanicMessage>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(scope::message_of(payload))),
        }
    }
}

/// Sleeps until `at`; for ever without one (a delay too long to
/// represent).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl<R: Message, T: Send + 'static> Call<'_, R, T> {
    /// Sends the call after `delay` instead of now, without a task of
    /// yours: ractor's `send_after`, Akka's `scheduleOnce`, for any call or
    /// cast with its options (`.timeout(d)` then counts from the moment it
    /// is sent, `.try_now()` refuses it then if the mailbox is full).
    ///
    /// Returns at once with a [`Scheduled`], which cancels the message or
    /// is awaited for the call's outcome; dropping it does not cancel.
    ///
    /// The message belongs to the server it goes to: it does not keep that
    /// server alive, and if the server ends first (for any reason,
    /// including every handle dropped) the message is dropped with it and
    /// nothing of it remains. Once sent, it is an ordinary call: refused if
    /// the server is draining, and queued behind what is already in its
    /// lane.
    ///
    /// ```
    /// use std::time::Duration;
    /// use patchboard::{server, Server};
    ///
    /// #[derive(Default)]
    /// struct Oven { alarms: Vec<&'static str> }
    ///
    /// #[server]
    /// impl Oven {
    ///     #[cast]
    ///     fn alarm(&mut self, what: &'static str) { self.alarms.push(what); }
    ///     fn alarms(&self) -> Vec<&'static str> { self.alarms.clone() }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let oven = Oven::default().spawn();
    /// let start = tokio::time::Instant::now();
    /// let bread = oven.alarm("bread").after(Duration::from_secs(40 * 60));
    /// let pizza = oven.alarm("pizza").after(Duration::from_secs(12 * 60));
    /// assert!(pizza.cancel(), "not sent yet: it never will be");
    /// tokio::time::sleep(Duration::from_secs(39 * 60)).await;
    /// assert!(oven.alarms().await.unwrap().is_empty());
    /// // A cast's `Scheduled` resolves once the message is in the mailbox.
    /// bread.await.unwrap();
    /// assert_eq!(start.elapsed(), Duration::from_secs(40 * 60));
    /// assert_eq!(oven.alarms().await.unwrap(), ["bread"]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn after(self, delay: Duration) -> Scheduled<T> {
        // From now, not from the task's first poll.
        let at = Instant::now().checked_add(delay);
        let (senders, control) = self.target();
        let (senders, control) = (senders.clone(), control.clone());
        let message = self.keep(&control);
        schedule(senders, control, sleep_until(at), |()| message)
    }
}

impl<T> Scheduled<T> {
    /// Cancels the message: `true` if it had not been sent, and now never
    /// will be (also when its server ended first); `false` if it had been
    /// sent already, and is then an ordinary call that runs.
    pub fn cancel(self) -> bool {
        self.timer.drop_message()
    }

    /// `true` while the message waits for its time: it can still be
    /// cancelled.
    pub fn is_pending(&self) -> bool {
        matches!(*self.timer.state(), State::Waiting | State::Sending)
    }
}

impl<T> Future for Scheduled<T> {
    type Output = Result<T, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.join).poll(cx) {
            Poll::Ready(Ok(outcome)) => Poll::Ready(outcome),
            // The closure that makes the message panicked.
            Poll::Ready(Err(error)) if error.is_panic() => Poll::Ready(Err(CallError::Panicked(
                scope::message_of(error.into_panic()),
            ))),
            // Aborted when its server ended (or its runtime shut down).
            Poll::Ready(Err(_)) => Poll::Ready(Err(self.control.closed_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for Scheduled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match *self.timer.state() {
            State::Waiting => "waiting",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Dropped => "dropped",
        };
        f.debug_struct("Scheduled")
            .field("server", &self.control.id())
            .field("state", &state)
            .finish()
    }
}

impl<S: Server> Context<S> {
    /// Sends this server `message` after `delay`: the one-shot timer
    /// (ractor's `send_after` to `myself`, Akka's `startSingleTimer`). The
    /// closure is given the server's own handle and returns one of its
    /// calls, as written anywhere else (`|me| me.tick()`); its arguments
    /// are evaluated now.
    ///
    /// The same as [`Call::after`] on that call: the message does not keep
    /// the server alive and ends with it; keep the [`Scheduled`] to cancel
    /// it. Sent after the handler that scheduled it, even with a delay of
    /// zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// use patchboard::{server, Builder, Context, Scheduled};
    ///
    /// /// Blinks `times` times, once a second, then stops.
    /// struct Blinker { times: u32, on: bool, next: Option<Scheduled<()>> }
    ///
    /// #[server]
    /// impl Blinker {
    ///     #[on_start]
    ///     fn start(&mut self, ctx: &Context<Self>) {
    ///         self.next = Some(ctx.after(Duration::from_secs(1), |me| me.toggle()));
    ///     }
    ///
    ///     #[cast]
    ///     fn toggle(&mut self, ctx: &Context<Self>) {
    ///         self.on = !self.on;
    ///         self.times -= 1;
    ///         self.next = match self.times {
    ///             0 => { ctx.stop(); None }
    ///             _ => Some(ctx.after(Duration::from_secs(1), |me| me.toggle())),
    ///         };
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let start = tokio::time::Instant::now();
    /// let (_blinker, exit) = Builder::new(Blinker { times: 3, on: false, next: None })
    ///     .spawn_with_exit();
    /// assert!(exit.await.state.unwrap().on);
    /// assert_eq!(start.elapsed(), Duration::from_secs(3));
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (a server's code always runs in one).
    pub fn after<T, F>(&self, delay: Duration, message: F) -> Scheduled<T>
    where
        T: Send + 'static,
        F: for<'h> FnOnce(&'h S::Handle) -> Call<'h, S::Request, T>,
    {
        let me = S::Handle::from(Handle::new(self.senders.clone(), self.control.clone()));
        message(&me).after(delay)
    }

    /// Runs `future` off the server's loop, then sends this server the
    /// message `then` makes of its result: Akka's `pipeToSelf`, kameo's
    /// `pipe_with`. The server keeps serving meanwhile, and handles the
    /// result with `&mut self` like any other message, instead of blocking
    /// its mailbox on the future or sharing its state behind a mutex.
    ///
    /// - **Typed:** `then` is given `Ok(output)`, or `Err(panic)` if the
    ///   future panicked (caught, its message given, printed by the panic
    ///   hook as a handler's panic is; the server is not stopped by it).
    /// - **Ordered:** the result is sent as soon as it is ready, waiting for
    ///   room like any sender: it comes after what was sent before it was
    ///   ready and before what is sent after.
    /// - **Owned by the server:** when the server ends, the future is
    ///   dropped where it is and nothing is sent; it does not keep the
    ///   server alive, and a server that drains does not wait for it (one
    ///   ready during the drain is refused). It survives a restart: the
    ///   restarted state gets the result.
    ///
    /// Returns a [`Scheduled`]: [`cancel`](Scheduled::cancel) drops the
    /// future and its message (`true` if the result had not been sent).
    ///
    /// ```
    /// use std::time::Duration;
    /// use patchboard::{server, Context, PanicMessage, Server};
    ///
    /// #[derive(Default)]
    /// struct Page { body: Option<String>, loads: u32 }
    ///
    /// #[server]
    /// impl Page {
    ///     /// Starts a slow load and returns at once.
    ///     fn reload(&mut self, ctx: &Context<Self>) {
    ///         ctx.pipe(fetch(), |me, body| me.loaded(body));
    ///     }
    ///
    ///     #[cast]
    ///     fn loaded(&mut self, body: Result<String, PanicMessage>) {
    ///         self.body = body.ok();
    ///         self.loads += 1;
    ///     }
    ///
    ///     fn body(&self) -> Option<String> { self.body.clone() }
    /// }
    ///
    /// async fn fetch() -> String {
    ///     tokio::time::sleep(Duration::from_secs(2)).await;
    ///     "<html>".to_owned()
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let page = Page::default().spawn();
    /// page.reload().await.unwrap();
    /// assert_eq!(page.body().await.unwrap(), None, "still serving while it loads");
    /// tokio::time::sleep(Duration::from_secs(3)).await;
    /// assert_eq!(page.body().await.unwrap().as_deref(), Some("<html>"));
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (a server's code always runs in one).
    pub fn pipe<W, F, T>(&self, future: W, then: F) -> Scheduled<T>
    where
        W: Future + Send + 'static,
        W::Output: Send,
        T: Send + 'static,
        F: for<'h> FnOnce(
                &'h S::Handle,
                Result<W::Output, PanicMessage>,
            ) -> Call<'h, S::Request, T>
            + Send
            + 'static,
    {
        let (senders, control) = (self.senders.clone(), self.control.clone());
        let message = move |result| {
            let me = S::Handle::from(Handle::new(senders, control.clone()));
            then(&me, result).keep(&control)
        };
        schedule(
            self.senders.clone(),
            self.control.clone(),
            CatchPanic { inner: future },
            message,
        )
    }

    /// Sends this server the message `message` makes every `period`, the
    /// first one period from now, until the [`Scheduled`] is cancelled or
    /// the server ends: ractor's `send_interval`, Akka's
    /// `startTimerAtFixedRate`. `message` is called for each tick
    /// (`|me| me.tick()`).
    ///
    /// Each tick is sent on time, one way (a call's reply is dropped), and
    /// waits for room like any sender: a server busier than the period
    /// finds its ticks queued (no more than its mailbox holds), and ticks
    /// missed while one waited for room are skipped, not sent in a burst. [`Scheduled::cancel`] stops it:
    /// `true` if no tick was on its way, `false` if one was (it is the
    /// last). Awaiting the `Scheduled` waits until the repetition has
    /// stopped (the server ended, or refused a tick).
    ///
    /// `#[every]` runs inside the loop with no task and suits a timer that
    /// is always there (its period may change, `Context::reschedule`);
    /// `interval` suits repetitions started and stopped at run time,
    /// several at once (one per connection, say). A period below 1 ms is
    /// raised to 1 ms.
    ///
    /// ```
    /// use std::time::Duration;
    /// use patchboard::{server, Context, Scheduled, Server};
    ///
    /// #[derive(Default)]
    /// struct Heartbeat { beats: u32, beating: Option<Scheduled<()>> }
    ///
    /// #[server]
    /// impl Heartbeat {
    ///     fn start(&mut self, ctx: &Context<Self>) {
    ///         self.beating = Some(ctx.interval(Duration::from_secs(1), |me| me.beat()));
    ///     }
    ///     fn stop_beating(&mut self) {
    ///         if let Some(beating) = self.beating.take() {
    ///             beating.cancel();
    ///         }
    ///     }
    ///     #[cast]
    ///     fn beat(&mut self) { self.beats += 1; }
    ///     fn beats(&self) -> u32 { self.beats }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let heart = Heartbeat::default().spawn();
    /// heart.start().await.unwrap();
    /// tokio::time::sleep(Duration::from_millis(3_500)).await;
    /// heart.stop_beating().await.unwrap();
    /// tokio::time::sleep(Duration::from_secs(10)).await;
    /// assert_eq!(heart.beats().await, Ok(3));
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (a server's code always runs in one).
    pub fn interval<T, F>(&self, period: Duration, mut message: F) -> Scheduled<()>
    where
        T: 'static,
        F: for<'h> FnMut(&'h S::Handle) -> Call<'h, S::Request, T> + Send + 'static,
    {
        let period = period.max(MIN_PERIOD);
        let (senders, control) = (self.senders.clone(), self.control.clone());
        let timer = Timer::new();
        let task = {
            let timer = timer.clone();
            let control = control.clone();
            async move {
                let mut next = Instant::now().checked_add(period);
                loop {
                    sleep_until(next).await;
                    if !timer.step(State::Waiting, State::Sending) {
                        return Err(control.closed_error());
                    }
                    let tick = {
                        let me = S::Handle::from(Handle::new(senders.clone(), control.clone()));
                        message(&me).no_wait().keep(&control)
                    };
                    let sent = tick.send(&senders, &control).await;
                    if !timer.step(State::Sending, State::Waiting) {
                        return sent;
                    }
                    sent?;
                    // At a fixed rate; a tick that ran late skips the
                    // ticks missed.
                    let now = Instant::now();
                    next = match next.and_then(|at| at.checked_add(period)) {
                        Some(at) if at > now => Some(at),
                        _ => now.checked_add(period),
                    };
                }
            }
        };
        let join = tokio::spawn(task);
        timer.armed(join.abort_handle());
        control.bind(Arc::downgrade(&timer) as Weak<dyn Ends>);
        Scheduled {
            timer,
            join,
            control,
        }
    }
}
