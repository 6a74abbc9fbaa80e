//! One call to a server: built by a handle method, configured at the call
//! site, then awaited (or run on a plain thread with `blocking`).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use tokio::sync::futures::Notified;
use tokio::time::Sleep;

use crate::control::Control;
use crate::error::CallError;
use crate::mailbox::{self, Sender, Senders, TrySendError, Unsent};
use crate::message::{Inline, Inlined, Message};
use crate::observe;
use crate::reply::{self, Reply, ReplyReceiver};
use crate::scope::{self, Waiting};
use crate::server::{Handle, Server};

/// How a message is called, as declared on its method: generated code
/// builds one as a constant. Not a public API.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    level: u8,
    timeout: Option<Duration>,
    deferred: bool,
}

impl Kind {
    /// An ordinary message.
    pub const CALL: Kind = Kind {
        level: 0,
        timeout: None,
        deferred: false,
    };

    /// `#[priority(level)]`: into that level's lane.
    pub const fn priority(self, level: u8) -> Self {
        Kind { level, ..self }
    }

    /// `#[timeout(..)]` or `#[server(timeout = ..)]`: the default timeout.
    pub const fn timeout(self, timeout: Duration) -> Self {
        Kind {
            timeout: Some(timeout),
            ..self
        }
    }

    /// A method taking a `Reply<T>`: the reply may outlive the handler, so
    /// the caller also watches for the server's end.
    pub const fn deferred(self) -> Self {
        Kind {
            deferred: true,
            ..self
        }
    }
}

/// A call that waits for its reply. Generated code only.
#[doc(hidden)]
pub fn call<S: Server, T: 'static>(
    handle: &Handle<S>,
    kind: Kind,
    make: impl FnOnce(Reply<T>) -> S::Request,
) -> Call<'_, S::Request, T> {
    let (reply, receiver) = reply::channel();
    Call {
        senders: &handle.senders,
        control: &handle.control,
        request: make(reply),
        answer: Answer::Reply(receiver),
        kind,
        try_now: false,
    }
}

/// A one-way call (`#[cast]`). Generated code only.
#[doc(hidden)]
pub fn cast<S: Server>(
    handle: &Handle<S>,
    kind: Kind,
    request: S::Request,
) -> Call<'_, S::Request, ()> {
    Call {
        senders: &handle.senders,
        control: &handle.control,
        request,
        answer: Answer::Enqueued(()),
        kind,
        try_now: false,
    }
}

/// A call to a server, returned by every generated handle method.
///
/// `.await` it for the ordinary call, or configure it first; options compose
/// in any order:
///
/// | call | resolves to |
/// | --- | --- |
/// | `handle.m(..).await` | the reply, after waiting for mailbox space |
/// | `.timeout(d)` | `Err(CallError::Timeout)` if no reply within `d` |
/// | `.try_now()` | `Err(CallError::Full)` at once if the mailbox is full |
/// | `.no_wait()` | `Ok(())` once enqueued; the handler runs, its reply is dropped |
/// | `.blocking()` | the reply, waiting on the current thread without a runtime |
///
/// # Giving up on a call
///
/// Dropping a call at any point is safe, and so is a timeout. What happens
/// to the request depends on where it was:
///
/// - still waiting for mailbox space: it was never enqueued, nothing runs;
/// - queued: the server checks, just before it would start a request,
///   whether its caller is still waiting, and skips it if not: the handler
///   does not run (a `no_wait` call or a `#[cast]` always runs);
/// - already started: the handler runs to completion (the server is never
///   interrupted mid-handler) and its answer is dropped. A handler that
///   wants to stop early can check [`Reply::is_closed`](crate::Reply::is_closed)
///   on a deferred reply.
///
/// The check and the start are not atomic with the caller giving up: a
/// caller that times out at the very moment its request starts may see
/// `Timeout` although the handler ran.
///
/// # Who runs the handler
///
/// When the server is idle (its serve loop waiting, its mailbox empty,
/// nothing asked of it), a call or cast to a synchronous method (a plain
/// `fn`; a call answering with its return value) is served by the caller's
/// own task,
/// under the server's exclusive claim on its state: no request crosses to
/// the server's task and back. Everything the serve loop promises holds as
/// before: one handler at a time, never passing a request queued before the
/// call, panics answered and handled by the server's policy, timers and
/// hooks never alongside. Otherwise, and always for `async fn` methods,
/// deferred replies, `blocking`, pools, local and remote servers, the
/// server's task serves the call. A handler served by its caller runs on
/// the caller's thread and runtime, and a cast served so resolves once its
/// handler has run.
///
/// # Calls that would deadlock
///
/// A call that waits for its reply fails at once, instead of waiting
/// forever, when it is made from a handler (hook, timer) of the same server
/// ([`CallError::SelfCall`]), or of a server that the called one is itself
/// waiting for, directly or through other servers
/// ([`CallError::Deadlock`]: A's handler waits for B, whose handler calls
/// A). The chain of waiting servers travels with each request. Calls made
/// from tasks that a handler spawns are not part of the chain.
#[must_use = "a call does nothing until you `.await` it or call `.blocking()`"]
pub struct Call<'h, R, T> {
    senders: &'h Senders<R>,
    control: &'h Arc<Control>,
    request: R,
    answer: Answer<T>,
    kind: Kind,
    try_now: bool,
}

/// How a call ends once its request is enqueued.
enum Answer<T> {
    /// Wait for the server's reply.
    Reply(ReplyReceiver<T>),
    /// Resolve at once with this value (casts and `no_wait`).
    Enqueued(T),
}

impl<'h, R: Message, T: 'static> Call<'h, R, T> {
    /// Fails with [`CallError::Timeout`] if the reply has not arrived within
    /// `duration` (the wait for mailbox space counts). The server keeps
    /// serving; if it has not started the request by then, it skips it.
    ///
    /// Overrides any `#[timeout]` or `#[server(timeout = ..)]` default.
    /// `Duration::ZERO` fails unless the reply is there at the first poll;
    /// a duration too long to represent (`Duration::MAX`) never expires.
    pub fn timeout(mut self, duration: Duration) -> Self {
        self.kind.timeout = Some(duration);
        self
    }

    /// Fails with [`CallError::Full`] at once instead of waiting when the
    /// mailbox is full: load shedding at the call site.
    ///
    /// (tokio's `try_send`, as a call option so that it composes with
    /// [`timeout`](Self::timeout) and the others.)
    pub fn try_now(mut self) -> Self {
        self.try_now = true;
        self
    }

    /// Sends the request at priority `level` instead of its message's own
    /// (`#[priority(N)]`, or 0): 0 is the normal lane, and a level above
    /// the server's highest is lowered to it. Higher levels are served
    /// first; see [`PRIORITY_BURST`](crate::PRIORITY_BURST) for how long a
    /// lower level can wait.
    pub fn priority(mut self, level: u8) -> Self {
        self.kind.level = level;
        self
    }

    /// Enqueues the request and resolves as soon as it is in the mailbox.
    /// The handler still runs; its reply is dropped.
    ///
    /// (OTP's `cast` of a message that is usually a call; tokio's channels
    /// have no name for it.)
    pub fn no_wait(mut self) -> Call<'h, R, ()> {
        if let Some(reply) = self.request.reply_slot() {
            reply.detach();
        }
        Call {
            senders: self.senders,
            control: self.control,
            request: self.request,
            answer: Answer::Enqueued(()),
            kind: Kind {
                deferred: false,
                ..self.kind
            },
            try_now: self.try_now,
        }
    }

    /// The call as a `'static` future that owns what it needs: move it into
    /// `tokio::spawn`, or collect calls to many servers into a `Vec`, with
    /// no handle cloned by hand. Configure the call first; the options
    /// travel with it.
    ///
    /// Like a handle, an owned call keeps its server alive until it
    /// resolves. It costs one allocation, which the plain `.await` does
    /// not pay.
    ///
    /// ```
    /// use patchboard::{server, Server};
    ///
    /// struct Doubler;
    ///
    /// #[server]
    /// impl Doubler {
    ///     fn double(&self, n: u32) -> u32 { n * 2 }
    /// }
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let doubler = Doubler.spawn();
    ///     let tasks: Vec<_> = (1..=3)
    ///         .map(|n| tokio::spawn(doubler.double(n).owned()))
    ///         .collect();
    ///     drop(doubler); // the owned calls keep the server alive
    ///     for (n, task) in (1..=3).zip(tasks) {
    ///         assert_eq!(task.await.unwrap(), Ok(n * 2));
    ///     }
    /// }
    /// ```
    pub fn owned(self) -> OwnedCall<T>
    where
        T: Send,
    {
        let held = Held::new(self.senders, self.control);
        let Call {
            request,
            answer,
            kind,
            try_now,
            ..
        } = self;
        OwnedCall {
            future: Box::pin(async move {
                let call = Call {
                    senders: &held.senders,
                    control: &held.control,
                    request,
                    answer,
                    kind,
                    try_now,
                };
                call.await
            }),
        }
    }

    /// Makes the call from synchronous code, blocking the current thread
    /// until it resolves. No async runtime is needed: this works from
    /// `std::thread::spawn` threads and inside `tokio::task::spawn_blocking`.
    ///
    /// On a thread that drives a tokio runtime (an async task, or the body of
    /// a current-thread `#[tokio::main]`) blocking could deadlock the very
    /// runtime the server needs, so this returns
    /// [`CallError::BlockingInRuntime`] without sending anything; so it
    /// does from any server's code (a handler, a hook), wherever it runs. The
    /// thread of a multi-thread runtime's `block_on` (the body of a
    /// multi-thread `#[tokio::main]`), outside server code, is not one of
    /// the runtime's workers: a call blocks it while the workers serve, and
    /// is answered (better to `.await` there).
    pub fn blocking(self) -> Result<T, CallError> {
        // A runtime's worker, or server code anywhere (a handler served on
        // its caller's task may run on a thread that drives a runtime
        // without being one of its workers: a multi-thread runtime's
        // `block_on` thread).
        if tokio::runtime::worker_index().is_some() || scope::serving().is_some() {
            return Err(CallError::BlockingInRuntime);
        }
        // Tokio's timer needs a runtime; a blocking call keeps its own
        // deadline instead (none if it is too far to represent).
        let deadline = self
            .kind
            .timeout
            .and_then(|timeout| Instant::now().checked_add(timeout));
        let call = Call {
            kind: Kind {
                timeout: None,
                ..self.kind
            },
            ..self
        };
        // Served by the server's own task: a synchronous handler may use
        // its runtime (spawn, timers), which this thread does not have.
        let mut future = call.into_future();
        future.inline = None;
        block_on(future, deadline).unwrap_or(Err(CallError::Timeout))
    }
}

/// A call kept to be sent later (`later.rs`, `attach.rs`): made now by a
/// closure given the target's own handle, sent by a task of the target.
pub(crate) struct Later<R, T> {
    request: R,
    answer: Answer<T>,
    kind: Kind,
    try_now: bool,
    /// The server the closure's call goes to, when it is not the one the
    /// task belongs to (a call through another handle of the same type).
    elsewhere: Option<(Senders<R>, Arc<Control>)>,
}

impl<'h, R, T> Call<'h, R, T> {
    /// The server the call goes to.
    pub(crate) fn target(&self) -> (&'h Senders<R>, &'h Arc<Control>) {
        (self.senders, self.control)
    }

    /// Keeps the call to send it later from a task bound to the server of
    /// `control`: without a borrow of the handle it was made with.
    pub(crate) fn keep(self, control: &Arc<Control>) -> Later<R, T> {
        let elsewhere = (!Arc::ptr_eq(self.control, control))
            .then(|| (self.senders.clone(), self.control.clone()));
        Later {
            request: self.request,
            answer: self.answer,
            kind: self.kind,
            try_now: self.try_now,
            elsewhere,
        }
    }
}

impl<R: Message, T> Later<R, T> {
    /// Makes the call, to the server of `senders` and `control` (the
    /// task's), or to the one it was made for.
    pub(crate) async fn send(
        self,
        senders: &Senders<R>,
        control: &Arc<Control>,
    ) -> Result<T, CallError> {
        let (senders, control) = match &self.elsewhere {
            Some((senders, control)) => (senders, control),
            None => (senders, control),
        };
        Call {
            senders,
            control,
            request: self.request,
            answer: self.answer,
            kind: self.kind,
            try_now: self.try_now,
        }
        .await
    }
}

impl<'h, R: Message, T: 'static, E: 'static> Call<'h, R, Result<T, E>> {
    /// For a message returning `Result<T, E>`: one `Result<T, E>` instead of
    /// `Result<Result<T, E>, CallError>`, the call's own failure turned into
    /// `E` with `From<CallError>`, so that `?` works in one step. Give the
    /// call's options first.
    ///
    /// ```
    /// use patchboard::{server, CallError, Server};
    ///
    /// #[derive(Debug, PartialEq)]
    /// enum BankError { Insufficient, Call(CallError) }
    ///
    /// impl From<CallError> for BankError {
    ///     fn from(error: CallError) -> Self { BankError::Call(error) }
    /// }
    ///
    /// struct Account { balance: u64 }
    ///
    /// #[server]
    /// impl Account {
    ///     fn withdraw(&mut self, amount: u64) -> Result<u64, BankError> {
    ///         self.balance = self.balance.checked_sub(amount).ok_or(BankError::Insufficient)?;
    ///         Ok(self.balance)
    ///     }
    /// }
    ///
    /// async fn pay(account: &AccountHandle) -> Result<u64, BankError> {
    ///     let left = account.withdraw(30).flatten().await?; // not `??`, not `Ok(Ok(left))`
    ///     Ok(left)
    /// }
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let account = Account { balance: 50 }.spawn();
    ///     assert_eq!(pay(&account).await, Ok(20));
    ///     assert_eq!(pay(&account).await, Err(BankError::Insufficient));
    ///     account.stop().await;
    ///     assert_eq!(pay(&account).await, Err(BankError::Call(CallError::Closed)));
    /// }
    /// ```
    pub fn flatten(self) -> Flatten<CallFuture<'h, R, Result<T, E>>>
    where
        E: From<CallError>,
    {
        Flatten {
            inner: self.into_future(),
        }
    }
}

impl<R, T> fmt::Debug for Call<'_, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("request", &std::any::type_name::<R>())
            .field("timeout", &self.kind.timeout)
            .field("try_now", &self.try_now)
            .field("priority", &self.kind.level)
            .field("waits_for_reply", &matches!(self.answer, Answer::Reply(_)))
            .finish()
    }
}

impl<'h, R: Message, T> IntoFuture for Call<'h, R, T> {
    type Output = Result<T, CallError>;
    type IntoFuture = CallFuture<'h, R, T>;

    fn into_future(self) -> Self::IntoFuture {
        CallFuture {
            sender: self.senders.lane(self.kind.level),
            inline: self.senders.inline.as_ref(),
            control: self.control,
            request: Some(self.request),
            answer: Some(self.answer),
            timeout: self.kind.timeout,
            watch: self.kind.deferred,
            try_now: self.try_now,
            started: false,
            returned: false,
            send: None,
            deadline: None,
            finished: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`Call`]; see there.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct CallFuture<'h, R, T> {
        sender: &'h Sender<R>,
        // The way to serve the call on this task while the server is idle
        // (`inline.rs`); `None` for a blocking call, which has no runtime.
        inline: Option<&'h Inline<R>>,
        control: &'h Control,
        request: Option<R>,
        answer: Option<Answer<T>>,
        timeout: Option<Duration>,
        // A deferred reply may outlive the handler: watch the server's end.
        watch: bool,
        try_now: bool,
        started: bool,
        // Handed back by a send that waited for room (`queue.rs`).
        returned: bool,
        #[pin]
        send: Option<mailbox::Send<'h, R>>,
        #[pin]
        deadline: Option<Sleep>,
        // Boxed: only deferred calls have it.
        finished: Option<Pin<Box<Notified<'h>>>>,
    }
}

impl<R, T> fmt::Debug for CallFuture<'_, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallFuture")
            .field(
                "enqueued",
                &(self.started && self.request.is_none() && self.send.is_none()),
            )
            .finish()
    }
}

impl<R: Message, T> Future for CallFuture<'_, R, T> {
    type Output = Result<T, CallError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // Once more when a send that waited for room hands its request back.
        loop {
            if !*this.started {
                *this.started = true;
                let mut request = this.request.take().expect("polled once");
                let waits = matches!(this.answer, Some(Answer::Reply(_)));
                let from_server = scope::serving();
                let from_itself = from_server == Some(this.control.id());
                // Handed back by a send that waited for room: it was let in
                // already, and only needs a place again.
                let returned = std::mem::take(this.returned);
                if !returned && !from_itself && this.control.refuses_outside() {
                    // Draining: only the server's own follow-ups get in.
                    let error = this.control.closed_error();
                    return refused(cx, error, || {
                        *this.request = Some(request);
                        *this.started = false;
                    });
                }
                if waits && from_server.is_some() && !returned {
                    match scope::waiting_for(this.control.id()) {
                        Waiting::Outside => {}
                        Waiting::Chain(chain) => {
                            if let Some(reply) = request.reply_slot() {
                                reply.wait_through(chain);
                            }
                        }
                        Waiting::Cycle(error) => {
                            if let Some(from) = from_server {
                                observe::refused_cycle(this.control, from);
                            }
                            return Poll::Ready(Err(error));
                        }
                    }
                }
                'enqueue: {
                    // An idle server's synchronous message is served right
                    // here (`inline.rs`); a call's answer then waits in its
                    // reply. Not a call with a deadline: its caller could not
                    // take control back while the handler runs.
                    let inlines = !from_itself && this.timeout.is_none() && request.runs_inline();
                    if inlines && let Some(serves) = *this.inline {
                        match serves.0.try_serve(request, cx) {
                            Inlined::Served => break 'enqueue,
                            Inlined::Queue(handed_back) => request = handed_back,
                            Inlined::Yield(handed_back) => {
                                // Offered again at the next poll.
                                *this.request = Some(handed_back);
                                *this.started = false;
                                return Poll::Pending;
                            }
                        }
                    }
                    if let Some(timeout) = *this.timeout {
                        let sleep = tokio::time::sleep(timeout);
                        #[cfg(feature = "nats")]
                        if let Some(reply) = request.reply_slot() {
                            reply.set_deadline(sleep.deadline());
                        }
                        this.deadline.set(Some(sleep));
                    }
                    if *this.watch {
                        let mut finished = Box::pin(this.control.finished());
                        finished.as_mut().enable();
                        *this.finished = Some(finished);
                    }
                    // Straight in when there is room (the common case, and what the
                    // channel's own send future would try first); otherwise wait,
                    // except that a server enqueueing to itself must not wait for
                    // room that only it can make.
                    match this.sender.try_send(request) {
                        Ok(()) => {}
                        Err(TrySendError::Full(request)) if !*this.try_now && !from_itself => {
                            // Handed back when room comes and the server may
                            // be idle, to be offered to it here again: a flood
                            // of casts is then served by its sender, not queued.
                            let returns = inlines && this.inline.is_some() && !*this.watch;
                            this.send.set(Some(this.sender.send(request, returns)));
                        }
                        Err(TrySendError::Full(request)) => {
                            return refused(cx, CallError::Full, || {
                                *this.request = Some(request);
                                *this.started = false;
                            });
                        }
                        Err(TrySendError::Closed(request)) => {
                            let error = this.control.closed_error();
                            return refused(cx, error, || {
                                *this.request = Some(request);
                                *this.started = false;
                            });
                        }
                    }
                }
            }

            if let Some(send) = this.send.as_mut().as_pin_mut() {
                match send.poll(cx) {
                    Poll::Ready(Ok(())) => this.send.set(None),
                    Poll::Ready(Err(Unsent::Room(request))) => {
                        this.send.set(None);
                        *this.request = Some(request);
                        *this.started = false;
                        *this.returned = true;
                        continue;
                    }
                    Poll::Ready(Err(Unsent::Closed(_))) => {
                        return Poll::Ready(Err(this.control.closed_error()));
                    }
                    Poll::Pending => return expired(this.deadline, cx),
                }
            }
            break;
        }

        match this.answer.as_mut().expect("polled after completion") {
            Answer::Reply(receiver) => {
                if let Poll::Ready(outcome) = Pin::new(&mut *receiver).poll(cx) {
                    *this.answer = None;
                    return Poll::Ready(outcome);
                }
                if let Some(finished) = this.finished
                    && finished.as_mut().poll(cx).is_ready()
                {
                    // The server has ended: an answer sent just before
                    // counts, else the reply it still held never will be.
                    let outcome = receiver.try_recv().unwrap_or_else(|| {
                        Err(this
                            .control
                            .reason()
                            .map_or(CallError::Closed, |reason| reason.held_reply_error()))
                    });
                    *this.answer = None;
                    return Poll::Ready(outcome);
                }
                expired(this.deadline, cx)
            }
            Answer::Enqueued(_) => match this.answer.take() {
                Some(Answer::Enqueued(value)) => Poll::Ready(Ok(value)),
                _ => unreachable!(),
            },
        }
    }
}

/// A call refused at once (the server has ended or drains, or its mailbox
/// is full for `try_now`): the error, for one unit of the task's budget,
/// as tokio's own channels take it, so that a loop of refused calls still
/// yields to the other tasks. With the budget spent: `Pending` (the task is
/// woken at once) after `put_back` has restored the call, to be offered
/// again at the next poll.
fn refused<T>(
    cx: &mut Context<'_>,
    error: CallError,
    put_back: impl FnOnce(),
) -> Poll<Result<T, CallError>> {
    match tokio::task::coop::poll_proceed(cx) {
        Poll::Ready(budget) => {
            budget.made_progress();
            Poll::Ready(Err(error))
        }
        Poll::Pending => {
            put_back();
            Poll::Pending
        }
    }
}

/// `Ready(Err(Timeout))` once the call's deadline has passed, else `Pending`.
fn expired<T>(
    deadline: Pin<&mut Option<Sleep>>,
    cx: &mut Context<'_>,
) -> Poll<Result<T, CallError>> {
    match deadline.as_pin_mut().map(|sleep| sleep.poll(cx)) {
        Some(Poll::Ready(())) => Poll::Ready(Err(CallError::Timeout)),
        _ => Poll::Pending,
    }
}

/// Drives `fut` to completion on this thread, parking between polls.
/// `None` if `deadline` passes first.
fn block_on<F: Future>(fut: F, deadline: Option<Instant>) -> Option<F::Output> {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }

    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(output) = fut.as_mut().poll(&mut cx) {
            return Some(output);
        }
        match deadline {
            None => std::thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                std::thread::park_timeout(deadline - now);
            }
        }
    }
}

/// What an owned call holds of its server: the senders, and a count among
/// its handles, so that the server does not drain while the call is on its
/// way.
struct Held<R> {
    senders: Senders<R>,
    control: Arc<Control>,
}

impl<R> Held<R> {
    fn new(senders: &Senders<R>, control: &Arc<Control>) -> Self {
        control.handle_made();
        Held {
            senders: senders.clone(),
            control: control.clone(),
        }
    }
}

impl<R> Drop for Held<R> {
    fn drop(&mut self) {
        self.control.handle_dropped();
    }
}

/// A call that owns what it needs ([`Call::owned`]): `'static` and `Send`,
/// for `tokio::spawn` or a collection of calls; it names only the reply
/// type, so calls to different servers fit in one `Vec`.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct OwnedCall<T> {
    future: Pin<Box<dyn Future<Output = Result<T, CallError>> + Send>>,
}

impl<T, E> OwnedCall<Result<T, E>> {
    /// [`Call::flatten`] for an owned call: `Result<T, E>` with the call's
    /// failure turned into `E`.
    pub fn flatten(self) -> Flatten<Self>
    where
        E: From<CallError>,
    {
        Flatten { inner: self }
    }
}

impl<T> Future for OwnedCall<T> {
    type Output = Result<T, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.future.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for OwnedCall<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedCall").finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// A call to a message returning `Result<T, E>` that resolves to
    /// `Result<T, E>` ([`Call::flatten`], [`OwnedCall::flatten`]).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    #[derive(Debug)]
    pub struct Flatten<F> {
        #[pin]
        inner: F,
    }
}

impl<F, T, E> Future for Flatten<F>
where
    F: Future<Output = Result<Result<T, E>, CallError>>,
    E: From<CallError>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .inner
            .poll(cx)
            .map(|outcome| outcome.map_err(E::from).and_then(|result| result))
    }
}
