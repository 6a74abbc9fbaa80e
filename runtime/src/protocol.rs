//! Protocols: a Rust trait of message methods that several servers
//! implement (`#[protocol]`), and the client type that a handle of any of
//! them converts into.
//!
//! A protocol client holds its server's handle behind an `Arc<dyn ..>` (one
//! allocation when the client is made, none when it is cloned); each call
//! through it builds the concrete server's own [`Call`], boxed once behind
//! [`ProtocolCall`], so that its options, the caller-served path, deadlock
//! detection and the reply are exactly those of a call through the concrete
//! handle. That box is the one allocation a protocol call adds.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::call::{Call, CallFuture, OwnedCall};
use crate::error::{CallError, StopReason};
use crate::message::Message;
use crate::server::{Handle, Server};

/// A protocol declared with `#[protocol]`, implemented for `dyn Trait` by
/// the macro. Not a public API.
#[doc(hidden)]
pub trait Protocol {
    /// The protocol's request enum: one variant per method.
    type Request: Message;
    /// The client type the macro generates (`{Trait}Client`).
    type Client;
    /// The highest `#[priority(N)]` among its methods (0 for none): a
    /// server that implements it has at least that many levels.
    const PRIORITY_LEVELS: u8;

    /// The client of a server that implements the protocol; what `From`
    /// the server's generated handle calls.
    fn client<S: Server>(handle: Handle<S>) -> Self::Client
    where
        S::Request: From<Self::Request>;
}

/// A protocol declared `#[protocol(remote)]`: its messages cross NATS
/// for a `#[server(remote, protocols(..))]` server. Not a public API.
#[cfg(feature = "nats")]
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "the protocol `{Self}` does not cross NATS",
    label = "a `remote` server's protocols must cross NATS too",
    note = "declare the protocol `#[protocol(remote)]`"
)]
pub trait RemoteProtocol: Protocol {
    /// Adds the protocol's messages, as named on the subjects.
    fn messages(messages: &mut Vec<&'static str>);

    /// Sends `request` to the remote server through `link`.
    fn forward(request: Self::Request, link: crate::nats::Link) -> crate::nats::Forwarded;

    /// Serves a request that arrived on the subject of `message` through
    /// `handle`, or hands `incoming` back if the message is not one of the
    /// protocol's.
    fn answer<S: Server>(
        handle: &Handle<S>,
        message: &str,
        incoming: crate::nats::Incoming,
    ) -> Result<crate::nats::Answering, crate::nats::Incoming>
    where
        S::Request: From<Self::Request>;
}

/// A server's `#[server(protocols(P))]` lists the protocol `P`. Not a
/// public API.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` implements the protocol `{P}`, but its `#[server]` does not list it",
    label = "not listed in the server's `#[server(protocols(..))]`",
    note = "list it on the server's inherent impl: `#[server(protocols(..))] impl {Self} {{ .. }}`"
)]
pub trait Lists<P: ?Sized> {}

/// The protocol `P` is implemented for the server in a `#[server]` impl.
/// Not a public API.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` lists the protocol `{P}`, but implements it without `#[server]`",
    label = "no `#[server] impl` of this protocol for `{Self}`",
    note = "implement it in a `#[server]` impl: `#[server] impl Protocol for {Self} {{ .. }}`"
)]
pub trait Implements<P: ?Sized> {}

/// Checks, where the server's `#[server]` names the protocol, that it is
/// implemented in a `#[server]` impl.
#[doc(hidden)]
pub fn assert_implements<S: Implements<P>, P: ?Sized>() {}

/// Never implemented: the bound of the stand-in a handle has for each
/// `#[helper]` method, so that calling one through the handle says why it
/// is not there. Not a public API.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "this method of the server is a `#[helper]`, not a message: `{Self}` has no method for it",
    label = "a `#[helper]`, not a message",
    note = "call it from the server's own methods, or remove `#[helper]` to make it a message"
)]
pub trait NotAMessage {}

/// What every protocol client can do besides calling: the handle's own
/// methods, whatever the server. Not a public API.
#[doc(hidden)]
pub trait Endpoint: Send + Sync + 'static {
    /// [`Handle::is_closed`].
    fn is_closed(&self) -> bool;
    /// [`Handle::name`].
    fn name(&self) -> Option<&str>;
    /// [`Handle::stop`].
    fn stop(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// [`Handle::closed`].
    fn closed(&self) -> Pin<Box<dyn Future<Output = StopReason> + Send + '_>>;
}

impl<S: Server> Endpoint for Handle<S> {
    fn is_closed(&self) -> bool {
        Handle::is_closed(self)
    }

    fn name(&self) -> Option<&str> {
        Handle::name(self)
    }

    fn stop(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Handle::stop(self))
    }

    fn closed(&self) -> Pin<Box<dyn Future<Output = StopReason> + Send + '_>> {
        Box::pin(Handle::closed(self))
    }
}

pin_project_lite::pin_project! {
    /// One concrete call, before and after it starts.
    #[project = StateProj]
    #[project_replace = StateOwned]
    enum State<'h, R, T> {
        Ready { call: Call<'h, R, T> },
        Reply { #[pin] future: CallFuture<'h, R, T> },
        Enqueued { #[pin] future: CallFuture<'h, R, ()> },
        Done,
    }
}

/// A concrete call with its server's request type erased.
trait Erased<T>: Send {
    /// Applies an option to the call, if it has not started.
    fn configure(self: Pin<&mut Self>, option: Option_);
    /// Polls the call for its reply.
    fn poll_reply(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, CallError>>;
    /// Polls the call as [`Call::no_wait`]: done once enqueued.
    fn poll_enqueued(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), CallError>>;
    /// [`Call::blocking`], or with `no_wait` that of the `no_wait` call
    /// (`None` for its answer).
    fn blocking(self: Pin<&mut Self>, no_wait: bool) -> Result<Option<T>, CallError>;
    /// [`Call::owned`].
    fn owned(self: Pin<&mut Self>) -> OwnedCall<T>;
}

/// A call option, applied to the concrete [`Call`].
#[derive(Clone, Copy)]
enum Option_ {
    Timeout(Duration),
    TryNow,
    Priority(u8),
}

impl<'h, R: Message, T: Send + 'static> State<'h, R, T> {
    /// The call, if it has not started (it has not: every way to start it
    /// consumes the [`ProtocolCall`]).
    fn take(self: Pin<&mut Self>) -> Call<'h, R, T> {
        match self.project_replace(State::Done) {
            StateOwned::Ready { call } => call,
            _ => unreachable!("a protocol call starts once"),
        }
    }
}

impl<'h, R, T> Erased<T> for State<'h, R, T>
where
    R: Message,
    T: Send + 'static,
    Call<'h, R, T>: Send,
    CallFuture<'h, R, T>: Send,
    CallFuture<'h, R, ()>: Send,
{
    fn configure(mut self: Pin<&mut Self>, option: Option_) {
        let call = self.as_mut().take();
        let call = match option {
            Option_::Timeout(duration) => call.timeout(duration),
            Option_::TryNow => call.try_now(),
            Option_::Priority(level) => call.priority(level),
        };
        self.set(State::Ready { call });
    }

    fn poll_reply(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, CallError>> {
        if let StateProj::Ready { .. } = self.as_mut().project() {
            let call = self.as_mut().take();
            self.set(State::Reply {
                future: call.into_future(),
            });
        }
        match self.project() {
            StateProj::Reply { future } => future.poll(cx),
            _ => unreachable!("polled as a call"),
        }
    }

    fn poll_enqueued(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), CallError>> {
        if let StateProj::Ready { .. } = self.as_mut().project() {
            let call = self.as_mut().take();
            self.set(State::Enqueued {
                future: call.no_wait().into_future(),
            });
        }
        match self.project() {
            StateProj::Enqueued { future } => future.poll(cx),
            _ => unreachable!("polled as a `no_wait` call"),
        }
    }

    fn blocking(self: Pin<&mut Self>, no_wait: bool) -> Result<Option<T>, CallError> {
        let call = self.take();
        if no_wait {
            call.no_wait().blocking().map(|()| None)
        } else {
            call.blocking().map(Some)
        }
    }

    fn owned(self: Pin<&mut Self>) -> OwnedCall<T> {
        self.take().owned()
    }
}

/// Boxes a concrete call behind a [`ProtocolCall`]. Generated code only.
#[doc(hidden)]
pub fn erase<'h, R, T>(call: Call<'h, R, T>) -> ProtocolCall<'h, T>
where
    R: Message,
    T: Send + 'static,
    Call<'h, R, T>: Send,
    CallFuture<'h, R, T>: Send,
    CallFuture<'h, R, ()>: Send,
{
    ProtocolCall {
        inner: Box::pin(State::Ready { call }),
    }
}

/// A call through a protocol client (`#[protocol]`), returned by each of
/// its methods: the same options as a [`Call`] to the concrete server, in
/// any order, then `.await` (or [`blocking`](Self::blocking)).
///
/// | call | resolves to |
/// | --- | --- |
/// | `client.m(..).await` | the reply, after waiting for mailbox space |
/// | `.timeout(d)` | `Err(CallError::Timeout)` if no reply within `d` |
/// | `.try_now()` | `Err(CallError::Full)` at once if the mailbox is full |
/// | `.priority(n)` | sent at priority level `n` |
/// | `.no_wait()` | `Ok(())` once enqueued; the handler runs, its reply is dropped |
/// | `.blocking()` | the reply, waiting on the current thread without a runtime |
/// | `.owned()` | a `'static` future that owns what it needs |
///
/// Underneath it is the concrete server's own [`Call`], so everything
/// [`Call`] documents (giving up, who runs the handler, calls that would
/// deadlock) holds unchanged; the call is boxed once, the one allocation a
/// protocol call costs over a call through the concrete handle.
#[must_use = "a call does nothing until you `.await` it or call `.blocking()`"]
pub struct ProtocolCall<'h, T> {
    inner: Pin<Box<dyn Erased<T> + 'h>>,
}

impl<'h, T> ProtocolCall<'h, T> {
    fn with(mut self, option: Option_) -> Self {
        self.inner.as_mut().configure(option);
        self
    }

    /// [`Call::timeout`]: `Err(CallError::Timeout)` if the reply has not
    /// arrived within `duration`.
    pub fn timeout(self, duration: Duration) -> Self {
        self.with(Option_::Timeout(duration))
    }

    /// [`Call::try_now`]: `Err(CallError::Full)` at once when the mailbox
    /// is full.
    pub fn try_now(self) -> Self {
        self.with(Option_::TryNow)
    }

    /// [`Call::priority`]: sent at priority `level`.
    pub fn priority(self, level: u8) -> Self {
        self.with(Option_::Priority(level))
    }

    /// [`Call::no_wait`]: resolves once the request is enqueued; the
    /// handler still runs, its reply is dropped. Give the other options
    /// first.
    pub fn no_wait(self) -> NoWait<'h, T> {
        NoWait { inner: self.inner }
    }

    /// [`Call::blocking`]: makes the call from synchronous code, blocking
    /// the current thread until it resolves
    /// ([`CallError::BlockingInRuntime`] on a thread that drives a tokio
    /// runtime).
    pub fn blocking(mut self) -> Result<T, CallError> {
        self.inner
            .as_mut()
            .blocking(false)
            .map(|answer| answer.expect("a call's answer"))
    }

    /// [`Call::owned`]: the call as a `'static` future that owns what it
    /// needs (one more allocation).
    pub fn owned(mut self) -> OwnedCall<T> {
        self.inner.as_mut().owned()
    }
}

impl<T> fmt::Debug for ProtocolCall<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtocolCall").finish_non_exhaustive()
    }
}

impl<'h, T> IntoFuture for ProtocolCall<'h, T> {
    type Output = Result<T, CallError>;
    type IntoFuture = ProtocolFuture<'h, T>;

    fn into_future(self) -> Self::IntoFuture {
        ProtocolFuture { inner: self.inner }
    }
}

/// The future of a [`ProtocolCall`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct ProtocolFuture<'h, T> {
    inner: Pin<Box<dyn Erased<T> + 'h>>,
}

impl<T> Future for ProtocolFuture<'_, T> {
    type Output = Result<T, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll_reply(cx)
    }
}

impl<T> fmt::Debug for ProtocolFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtocolFuture").finish_non_exhaustive()
    }
}

/// A protocol call made with [`ProtocolCall::no_wait`]: resolves to
/// `Ok(())` once its request is enqueued.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct NoWait<'h, T> {
    inner: Pin<Box<dyn Erased<T> + 'h>>,
}

impl<T> NoWait<'_, T> {
    /// Enqueues from synchronous code, blocking the current thread until
    /// there is room ([`Call::blocking`] of a `no_wait` call).
    pub fn blocking(mut self) -> Result<(), CallError> {
        self.inner.as_mut().blocking(true).map(|_| ())
    }
}

impl<T> Future for NoWait<'_, T> {
    type Output = Result<(), CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll_enqueued(cx)
    }
}

impl<T> fmt::Debug for NoWait<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoWait").finish_non_exhaustive()
    }
}
