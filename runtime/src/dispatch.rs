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
pub(crate) fn request<'a, S: Server>(
    state: &'a mut S,
    mut request: S::Request,
    context: &'a Context<S>,
) -> impl Future<Output = Handled<S::Request>> + 'a {
    let control = &*context.control;
    let sent = request.reply_slot().map(|reply| reply.sent());
    let mut seen = observe::Request::new::<S>(control, request.name(), sent);
    async move {
        let chain = match request.reply_slot().map(ReplySlot::begin) {
            Some(Begin::Abandoned) => {
                seen.finish(Outcome::Cancelled);
                return Handled::Skipped;
            }
            Some(Begin::Serve(chain)) => chain,
            None => None,
        };
        seen.start();
        let dispatched = seen
            .instrument(catch_in(control, chain, state.dispatch(request, context)))
            .await;
        let noted = scope::take_noted();
        match dispatched {
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
                observe::panicked::<S>(control, &panic);
                Handled::Panicked(panic)
            }
        }
    }
}
