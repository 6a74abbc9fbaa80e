//! The protocol between the runtime and the code `#[server]` generates: what
//! a request enum must offer, what serving one request tells the loop, and
//! what an `#[on_start]` hook may return. Generated code reaches these
//! through `patchboard::__private`; none of it is a public API.

use std::fmt::Display;
use std::sync::Arc;
use std::task::Context;

use crate::reply::ReplySlot;

/// A generated request enum: how the runtime reaches the reply of a request
/// whatever its value type.
#[doc(hidden)]
pub trait Message: Send + 'static {
    /// The request's reply, `None` for a cast.
    fn reply_slot(&mut self) -> Option<&mut dyn ReplySlot>;

    /// A call to a synchronous method: its caller may serve it itself when
    /// the server is idle (`inline.rs`).
    fn runs_inline(&self) -> bool {
        false
    }

    /// The name of the message method, for tracing.
    fn name(&self) -> &'static str {
        ""
    }
}

/// Serves a call on its caller's task when the server is idle
/// (`inline.rs`): what the senders of a server with one serve loop carry.
pub(crate) trait Serves<R>: Send + Sync {
    /// Serves `request` now, answering its reply, if the server is idle
    /// and nothing is queued before it; else hands it back.
    fn try_serve(&self, request: R, cx: &mut Context<'_>) -> Inlined<R>;
}

/// What became of a request offered to [`Serves::try_serve`].
pub(crate) enum Inlined<R> {
    /// Served; a call's answer waits in its reply.
    Served,
    /// The server is not idle: into the mailbox with it.
    Queue(R),
    /// The caller's task budget is spent: yield, then offer it again (a
    /// task casting in a loop would otherwise never yield).
    Yield(R),
}

/// The way to an idle server's state, shared by its handles. Not a public
/// API.
#[doc(hidden)]
#[allow(private_bounds)]
pub struct Inline<R>(pub(crate) std::sync::Arc<dyn Serves<R>>);

impl<R> Clone for Inline<R> {
    fn clone(&self) -> Self {
        Inline(self.0.clone())
    }
}

impl<R> std::fmt::Debug for Inline<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inline")
    }
}

/// What serving one request did, as the generated dispatch reports it.
#[doc(hidden)]
#[derive(Debug)]
pub enum Dispatched<R> {
    /// The handler ran and the request is done.
    Served,
    /// The request is terminal (a method taking `self`): it is handed back
    /// untouched, to be served by `Server::consume` once the server has
    /// stopped taking requests.
    Terminal(R),
}

/// What an `#[on_start]` hook may return.
#[doc(hidden)]
pub trait StartOutcome {
    /// `Err` with the reason when the server must not start.
    fn into_start_result(self) -> Result<(), Arc<str>>;
}

impl StartOutcome for () {
    fn into_start_result(self) -> Result<(), Arc<str>> {
        Ok(())
    }
}

impl<E: Display> StartOutcome for Result<(), E> {
    fn into_start_result(self) -> Result<(), Arc<str>> {
        self.map_err(|error| Arc::from(error.to_string()))
    }
}

/// Marks an answer for the request's span: `Tag(&value).is_err()` is the
/// value's own `is_err()` for a `Result`, `false` for anything else
/// (autoref specialisation: generated code brings both traits into scope).
/// Without the `tracing` feature nothing is recorded and the check is
/// compiled away.
#[doc(hidden)]
#[derive(Debug)]
pub struct Tag<'a, T>(pub &'a T);

/// [`Tag`] of a `Result`.
#[doc(hidden)]
pub trait ResultAnswer {
    fn is_err(&self) -> bool;
}

impl<T, E> ResultAnswer for Tag<'_, Result<T, E>> {
    #[inline(always)]
    fn is_err(&self) -> bool {
        self.0.is_err()
    }
}

/// [`Tag`] of anything else.
#[doc(hidden)]
pub trait OtherAnswer {
    #[inline(always)]
    fn is_err(&self) -> bool {
        false
    }
}

impl<T> OtherAnswer for &Tag<'_, T> {}

/// The handler's answer was an `Err` of its own: noted for its span.
#[doc(hidden)]
#[inline(always)]
pub fn note_answer(is_err: bool) {
    if is_err {
        crate::scope::note_error();
    }
}
