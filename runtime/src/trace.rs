//! What the runtime tells `tracing`: a span per request (server, message,
//! call id, queue wait, run time, outcome), a child of the span its caller
//! was in when it made the call, and events when a server starts, stops,
//! panics and restarts.
//!
//! The one place that knows whether the `tracing` feature is on. With it,
//! the types below carry a span and the functions emit events; without it,
//! the same names are zero-sized and empty, so the serve loop and the
//! caller-served path call them unconditionally and compile to what they
//! would be without this module.

use std::future::Future;

use crate::control::Control;
use crate::error::{PanicMessage, StopReason};

/// How a request ended, for its span's `outcome` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handler returned (its own `Err` aside).
    Ok,
    /// The handler returned an `Err` of its own.
    Error,
    /// The handler panicked.
    Panic,
    /// Its caller gave up: not started, or dropped mid-way.
    Cancelled,
    /// Refused: the server was stopping.
    Closed,
}

#[cfg(feature = "tracing")]
pub(crate) use on::Sent;
#[cfg(feature = "tracing")]
pub(crate) use on::{RequestTrace, panicked, restarting, started, stopped};

#[cfg(not(feature = "tracing"))]
pub(crate) use off::Sent;
#[cfg(not(feature = "tracing"))]
pub(crate) use off::{RequestTrace, panicked, restarting, started, stopped};

#[cfg(feature = "tracing")]
mod on {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use tokio::time::Instant;
    use tracing::Span;

    use super::{Control, Future, Outcome, PanicMessage, StopReason};

    /// When, as which call and from which span a request was made: kept
    /// in its reply. (`pub` only because the hidden `ReplySlot` trait names
    /// it.)
    #[doc(hidden)]
    #[derive(Clone, Debug)]
    pub struct Sent {
        id: u64,
        /// `None` while no subscriber has ever been set: nothing will read it.
        at: Option<Instant>,
        /// The caller's span when it made the call: the parent of the
        /// request's span. (A handle on it, so that it stays open, and its
        /// id is not reused, until the request is served.)
        caller: Span,
    }

    static CALLS: AtomicU64 = AtomicU64::new(1);

    impl Sent {
        pub(crate) fn now() -> Self {
            let traced = tracing::dispatcher::has_been_set();
            Sent {
                id: CALLS.fetch_add(1, Ordering::Relaxed),
                at: traced.then(Instant::now),
                caller: if traced {
                    Span::current()
                } else {
                    Span::none()
                },
            }
        }
    }

    /// The request span, with `parent` (if any) as its parent.
    macro_rules! request_span {
        ($($parent:expr)?; $server:expr, $message:expr, $call_id:expr) => {
            tracing::info_span!(
                $(parent: $parent,)?
                "request",
                server = $server,
                message = $message,
                call_id = $call_id,
                queue_wait_us = tracing::field::Empty,
                run_us = tracing::field::Empty,
                outcome = tracing::field::Empty,
            )
        };
    }

    /// The server's name for traces: its `Builder::name`, else its type.
    fn server_name<S>(control: &Control) -> &str {
        control.name().unwrap_or(std::any::type_name::<S>())
    }

    /// The span of one request, and when its handler started.
    pub(crate) struct RequestTrace {
        span: Span,
        started: Option<Instant>,
    }

    impl RequestTrace {
        /// The span of a request of `message` to server `S`, sent as `sent`
        /// (`None` for a request without a reply: a cast).
        pub(crate) fn new<S>(control: &Control, message: &'static str, sent: Option<Sent>) -> Self {
            let sent = sent.unwrap_or_else(Sent::now);
            let server = server_name::<S>(control);
            // A child of the caller's span, wherever the request is served
            // (the serve task, or the caller's own task); without one, of
            // whatever span is current where it is served.
            let span = match sent.caller.id() {
                Some(parent) => request_span!(parent; server, message, sent.id),
                None => request_span!(; server, message, sent.id),
            };
            if let Some(at) = sent.at.filter(|_| !span.is_disabled()) {
                span.record(
                    "queue_wait_us",
                    micros(Instant::now().saturating_duration_since(at)),
                );
            }
            RequestTrace {
                span,
                started: None,
            }
        }

        /// The handler starts now.
        pub(crate) fn start(&mut self) {
            self.started = (!self.span.is_disabled()).then(Instant::now);
        }

        /// `future` with the span entered at each poll.
        pub(crate) fn instrument<F: Future>(&self, future: F) -> impl Future<Output = F::Output> {
            tracing::Instrument::instrument(future, self.span.clone())
        }

        /// The request ended with `outcome`.
        pub(crate) fn finish(self, outcome: Outcome) {
            if self.span.is_disabled() {
                return;
            }
            if let Some(started) = self.started {
                self.span.record("run_us", micros(started.elapsed()));
            }
            self.span.record(
                "outcome",
                match outcome {
                    Outcome::Ok => "ok",
                    Outcome::Error => "error",
                    Outcome::Panic => "panic",
                    Outcome::Cancelled => "cancelled",
                    Outcome::Closed => "closed",
                },
            );
        }
    }

    pub(crate) fn started<S>(control: &Control) {
        tracing::info!(server = server_name::<S>(control), "server started");
    }

    pub(crate) fn stopped<S>(control: &Control, reason: &StopReason) {
        tracing::info!(server = server_name::<S>(control), reason = %reason, "server stopped");
    }

    pub(crate) fn panicked<S>(control: &Control, panic: &PanicMessage) {
        tracing::error!(server = server_name::<S>(control), panic = %panic, "handler panicked");
    }

    pub(crate) fn restarting<S>(control: &Control, reason: &StopReason) {
        tracing::warn!(server = server_name::<S>(control), reason = %reason, "server restarting");
    }

    fn micros(duration: Duration) -> u64 {
        u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
    }
}

// The same signatures as `on`'s, so their type parameters go unused.
#[cfg(not(feature = "tracing"))]
#[allow(clippy::extra_unused_type_parameters)]
mod off {
    use super::{Control, Future, Outcome, PanicMessage, StopReason};

    /// Nothing: requests are not traced without the `tracing` feature.
    #[doc(hidden)]
    #[derive(Clone, Debug)]
    pub struct Sent;

    impl Sent {
        #[inline(always)]
        pub(crate) fn now() -> Self {
            Sent
        }
    }

    /// Nothing: requests are not traced without the `tracing` feature.
    pub(crate) struct RequestTrace;

    impl RequestTrace {
        #[inline(always)]
        pub(crate) fn new<S>(_: &Control, _: &'static str, _: Option<Sent>) -> Self {
            RequestTrace
        }

        #[inline(always)]
        pub(crate) fn start(&mut self) {}

        #[inline(always)]
        pub(crate) fn instrument<F: Future>(&self, future: F) -> F {
            future
        }

        #[inline(always)]
        pub(crate) fn finish(self, _: Outcome) {}
    }

    #[inline(always)]
    pub(crate) fn started<S>(_: &Control) {}

    #[inline(always)]
    pub(crate) fn stopped<S>(_: &Control, _: &StopReason) {}

    #[inline(always)]
    pub(crate) fn panicked<S>(_: &Control, _: &PanicMessage) {}

    #[inline(always)]
    pub(crate) fn restarting<S>(_: &Control, _: &StopReason) {}
}
