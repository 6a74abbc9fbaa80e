//! Serving one request: what the serve loop (`serve.rs`) and a caller
//! serving an idle server's call itself (`inline.rs`) both do, written once.
//!
//! Begin the reply (skip a request whose caller has gone: nobody would read
//! its answer, and the contract says it is not started), open its span, run
//! the generated `dispatch` as the server's code (`scope::catch_in`: panics
//! caught, self-calls and cycles refused), close the span with how it
//! ended, and say what the loop must do next.
//!
//! On the caller-served path the caller is the one polling, so it has not
//! gone and its request is never skipped; a cast has no reply and is always
//! served.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use crate::control::Control;

use crate::error::PanicMessage;
use crate::message::{Dispatched, Message};
use crate::observe::{self, Outcome};
use crate::reply::{Begin, ReplySlot};
use crate::scope::{self, NOTED_CANCELLED, NOTED_ERROR, catch_in};
use crate::server::{Context, Server};

/// What serving one request came to.
pub(crate) enum Handled<R> {
    /// The handler ran and returned (its answer is in the reply).
    Replied,
    /// Its caller had gone before it started: not run.
    Skipped,
    /// A terminal request, handed back to consume the state; nothing was
    /// run yet.
    Terminal(R),
    /// The handler panicked; its caller was answered `Panicked`.
    Panicked(PanicMessage),
}

/// Serves `request` against `state` as server `S`'s code.
///
/// The reply is begun and the generated `dispatch` future made here, and
/// the returned future is written by hand: it holds the request once,
/// inside that future (an `async` block would keep it a second time, as
/// the value it captured), and every server's task is as large as its
/// largest awaited future (BENCHMARKS.md). Both callers poll it at once.
pub(crate) fn request<'a, S: Server>(
    state: &'a mut S,
    mut request: S::Request,
    context: &'a Context<S>,
) -> Serving<'a, S, impl Future<Output = Result<Dispatched<S::Request>, PanicMessage>> + 'a> {
    let control = &*context.control;
    let sent = request.reply_slot().map(|reply| reply.sent());
    let seen = observe::Request::new::<S>(control, request.name(), sent);
    let chain = match request.reply_slot().map(ReplySlot::begin) {
        Some(Begin::Abandoned) => {
            seen.finish(Outcome::Cancelled);
            return Serving {
                control,
                seen: None,
                dispatch: None,
                started: false,
                server: PhantomData,
            };
        }
        Some(Begin::Serve(chain)) => chain,
        None => None,
    };
    let dispatch = seen.instrument(catch_in(control, chain, state.dispatch(request, context)));
    Serving {
        control,
        seen: Some(seen),
        dispatch: Some(dispatch),
        started: false,
        server: PhantomData,
    }
}

pin_project_lite::pin_project! {
    /// One request being served; see [`request`].
    pub(crate) struct Serving<'a, S, F> {
        control: &'a Control,
        // `None` once told how the request ended, or when it was skipped.
        seen: Option<observe::Request<'a>>,
        // `None`: skipped, its caller had gone.
        #[pin]
        dispatch: Option<F>,
        started: bool,
        server: PhantomData<fn() -> S>,
    }
}

impl<S, F> Future for Serving<'_, S, F>
where
    S: Server,
    F: Future<Output = Result<Dispatched<S::Request>, PanicMessage>>,
{
    type Output = Handled<S::Request>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(dispatch) = this.dispatch.as_mut().as_pin_mut() else {
            return Poll::Ready(Handled::Skipped);
        };
        let Some(seen) = this.seen.as_mut() else {
            unreachable!("polled after it finished")
        };
        if !*this.started {
            *this.started = true;
            seen.start();
        }
        let dispatched = std::task::ready!(dispatch.poll(cx));
        let noted = scope::take_noted();
        let Some(seen) = this.seen.take() else {
            unreachable!("seen until it finishes")
        };
        Poll::Ready(match dispatched {
            Ok(dispatched) => {
                seen.finish(if noted & NOTED_CANCELLED != 0 {
                    Outcome::Cancelled
                } else if noted & NOTED_ERROR != 0 {
                    Outcome::Error
                } else {
                    Outcome::Ok
                });
                match dispatched {
                    Dispatched::Served => Handled::Replied,
                    Dispatched::Terminal(request) => Handled::Terminal(request),
                }
            }
            Err(panic) => {
                seen.finish(Outcome::Panic);
                observe::panicked::<S>(this.control, &panic);
                Handled::Panicked(panic)
            }
        })
    }
}
