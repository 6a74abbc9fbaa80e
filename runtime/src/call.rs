//! One call to a server: built by a handle method, configured at the call
//! site, then awaited (or run on a plain thread with `blocking`).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use async_channel::TrySendError;
use tokio::time::Sleep;

use crate::__private::Message;
use crate::error::CallError;
use crate::handle::{Control, Handle};
use crate::mailbox::{Envelope, Senders};
use crate::reply::{self, ReplyReceiver};
use crate::server::Server;

/// `true` when called from a handler, hook or timer of this very server.
pub(crate) fn serving(control: &Arc<Control>) -> bool {
    crate::scope::serving(control.id())
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
#[must_use = "a call does nothing until you `.await` it or call `.blocking()`"]
pub struct Call<'h, R, T> {
    senders: &'h Senders<R>,
    control: &'h Arc<Control>,
    request: R,
    answer: Answer<T>,
    timeout: Option<Duration>,
    try_now: bool,
    priority: bool,
}

/// How a call ends once its request is enqueued.
enum Answer<T> {
    /// Wait for the server's reply.
    Reply(ReplyReceiver<T>),
    /// Resolve at once with this value (casts and `no_wait`).
    Enqueued(T),
}

impl<'h, R: Message, T: 'static> Call<'h, R, T> {
    /// A call that waits for the reply. Generated code only.
    #[doc(hidden)]
    pub fn __new<S: Server<Request = R>>(
        handle: &'h Handle<S>,
        make: impl FnOnce(crate::Reply<T>) -> R,
    ) -> Self {
        let (reply, receiver) = reply::channel();
        Call {
            senders: &handle.senders,
            control: &handle.control,
            request: make(reply),
            answer: Answer::Reply(receiver),
            timeout: None,
            try_now: false,
            priority: false,
        }
    }

    /// Goes into the priority lane. Generated code only (`#[priority]`).
    #[doc(hidden)]
    pub fn __priority(mut self) -> Self {
        self.priority = self.senders.priority.is_some();
        self
    }

    /// Fails with [`CallError::Timeout`] if the reply has not arrived within
    /// `duration` (the wait for mailbox space counts). The server keeps
    /// serving; if it has not started the request by then, it skips it.
    ///
    /// Overrides any `#[timeout]` or `#[server(timeout = ..)]` default.
    pub fn timeout(mut self, duration: Duration) -> Self {
        self.timeout = Some(duration);
        self
    }

    /// Fails with [`CallError::Full`] at once instead of waiting when the
    /// mailbox is full: load shedding at the call site.
    pub fn try_now(mut self) -> Self {
        self.try_now = true;
        self
    }

    /// Enqueues the request and resolves as soon as it is in the mailbox.
    /// The handler still runs; its reply is dropped.
    pub fn no_wait(mut self) -> Call<'h, R, ()> {
        if let Some(reply) = self.request.reply_slot() {
            reply.detach();
        }
        Call {
            senders: self.senders,
            control: self.control,
            request: self.request,
            answer: Answer::Enqueued(()),
            timeout: self.timeout,
            try_now: self.try_now,
            priority: self.priority,
        }
    }

    /// Makes the call from synchronous code, blocking the current thread
    /// until it resolves. No async runtime is needed: this works from
    /// `std::thread::spawn` threads and inside `tokio::task::spawn_blocking`.
    ///
    /// On a thread that drives a tokio runtime (an async task, or the body of
    /// a current-thread `#[tokio::main]`) blocking could deadlock the very
    /// runtime the server needs, so this returns
    /// [`CallError::BlockingInRuntime`] without sending anything.
    pub fn blocking(self) -> Result<T, CallError> {
        if tokio::runtime::worker_index().is_some() {
            return Err(CallError::BlockingInRuntime);
        }
        // Tokio's timer needs a runtime; a blocking call keeps its own
        // deadline instead.
        let deadline = self.timeout.map(|timeout| Instant::now() + timeout);
        let call = Call {
            timeout: None,
            ..self
        };
        block_on(call.into_future(), deadline).unwrap_or(Err(CallError::Timeout))
    }
}

impl<'h, R: Message> Call<'h, R, ()> {
    /// A one-way call (`#[cast]`). Generated code only.
    #[doc(hidden)]
    pub fn __cast<S: Server<Request = R>>(handle: &'h Handle<S>, request: R) -> Self {
        Call {
            senders: &handle.senders,
            control: &handle.control,
            request,
            answer: Answer::Enqueued(()),
            timeout: None,
            try_now: false,
            priority: false,
        }
    }
}

impl<R, T> Call<'_, R, T> {
    /// Sets the default timeout unless the call site already chose one.
    /// Generated code only (`#[timeout]`, `#[server(timeout = ..)]`).
    #[doc(hidden)]
    pub fn __default_timeout(mut self, duration: Duration) -> Self {
        self.timeout.get_or_insert(duration);
        self
    }
}

impl<R, T> fmt::Debug for Call<'_, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("request", &std::any::type_name::<R>())
            .field("timeout", &self.timeout)
            .field("try_now", &self.try_now)
            .field("priority", &self.priority)
            .field("waits_for_reply", &matches!(self.answer, Answer::Reply(_)))
            .finish()
    }
}

impl<'h, R: Message, T> IntoFuture for Call<'h, R, T> {
    type Output = Result<T, CallError>;
    type IntoFuture = CallFuture<'h, R, T>;

    fn into_future(self) -> Self::IntoFuture {
        let senders = self.senders;
        let sender = match (&senders.priority, self.priority) {
            (Some(priority), true) => priority,
            _ => &senders.normal,
        };
        CallFuture {
            sender,
            control: self.control,
            request: Some(self.request),
            answer: Some(self.answer),
            timeout: self.timeout,
            try_now: self.try_now,
            send: None,
            deadline: None,
            started: false,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`Call`]; see there.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct CallFuture<'h, R, T> {
        sender: &'h async_channel::Sender<Envelope<R>>,
        control: &'h Arc<Control>,
        request: Option<R>,
        answer: Option<Answer<T>>,
        timeout: Option<Duration>,
        try_now: bool,
        started: bool,
        #[pin]
        send: Option<async_channel::Send<'h, Envelope<R>>>,
        #[pin]
        deadline: Option<Sleep>,
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
        if !*this.started {
            *this.started = true;
            let waits = matches!(this.answer, Some(Answer::Reply(_)));
            let from_itself = serving(this.control);
            if from_itself && waits {
                return Poll::Ready(Err(CallError::SelfCall));
            }
            if let Some(timeout) = *this.timeout {
                this.deadline.set(Some(tokio::time::sleep(timeout)));
            }
            let envelope = Envelope::Request(this.request.take().expect("polled once"));
            // Straight in when there is room (the common case, and what the
            // channel's own send future would try first); otherwise wait,
            // except that a server enqueueing to itself must not wait for
            // room that only it can make.
            match this.sender.try_send(envelope) {
                Ok(()) => {}
                Err(TrySendError::Full(envelope)) if !*this.try_now && !from_itself => {
                    this.send.set(Some(this.sender.send(envelope)));
                }
                Err(TrySendError::Full(_)) => return Poll::Ready(Err(CallError::Full)),
                Err(TrySendError::Closed(_)) => {
                    return Poll::Ready(Err(this.control.closed_error()));
                }
            }
        }

        if let Some(send) = this.send.as_mut().as_pin_mut() {
            match send.poll(cx) {
                Poll::Ready(Ok(())) => this.send.set(None),
                Poll::Ready(Err(_)) => return Poll::Ready(Err(this.control.closed_error())),
                Poll::Pending => return expired(this.deadline, cx),
            }
        }

        match this.answer.as_mut().expect("polled after completion") {
            Answer::Reply(receiver) => match Pin::new(receiver).poll(cx) {
                Poll::Ready(outcome) => {
                    *this.answer = None;
                    Poll::Ready(outcome)
                }
                Poll::Pending => expired(this.deadline, cx),
            },
            Answer::Enqueued(_) => match this.answer.take() {
                Some(Answer::Enqueued(value)) => Poll::Ready(Ok(value)),
                _ => unreachable!(),
            },
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
