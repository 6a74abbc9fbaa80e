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

pub(crate) use crate::outcome::Outcome;

#[cfg(feature = "tracing")]
pub(crate) use on::Sent;
#[cfg(feature = "tracing")]
pub(crate) use on::{RequestTrace, panicked, restarting, started, stopped};
#[cfg(all(feature = "tracing", feature = "nats"))]
pub(crate) use on::{answering, traceparent};

#[cfg(not(feature = "tracing"))]
pub(crate) use off::Sent;
#[cfg(not(feature = "tracing"))]
pub(crate) use off::{RequestTrace, panicked, restarting, started, stopped};
#[cfg(all(not(feature = "tracing"), feature = "nats"))]
pub(crate) use off::{answering, traceparent};

/// The W3C Trace Context header a remote request carries
/// (`00-<trace id>-<parent id>-<flags>`, 55 characters, header-safe).
#[cfg(feature = "nats")]
pub(crate) const TRACEPARENT_HEADER: &str = "traceparent";

#[cfg(feature = "tracing")]
mod on {
    use std::cell::Cell;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tokio::time::Instant;
    use tracing::Span;

    use super::{Control, Future, Outcome, PanicMessage, StopReason};

    thread_local! {
        /// The W3C trace id of the request whose code runs on this thread
        /// (0: none), for the calls it makes: set around each poll of a
        /// handler, and of a remote request's answer. No destructor.
        static TRACE: Cell<u128> = const { Cell::new(0) };
    }

    pin_project_lite::pin_project! {
        /// `future` polled with `trace` as the thread's trace id.
        pub(crate) struct InTrace<F> {
            trace: u128,
            #[pin]
            future: F,
        }
    }

    impl<F: Future> Future for InTrace<F> {
        type Output = F::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            let this = self.project();
            let outer = TRACE.replace(*this.trace);
            let polled = this.future.poll(cx);
            TRACE.set(outer);
            polled
        }
    }

    /// When, as which call and from which span a request was made: kept
    /// in its reply.
    #[derive(Clone, Debug)]
    pub(crate) struct Sent {
        id: u64,
        /// `None` while no subscriber has ever been set: nothing will read it.
        at: Option<Instant>,
        /// The caller's span when it made the call: the parent of the
        /// request's span. (A handle on it, so that it stays open, and its
        /// id is not reused, until the request is served.)
        caller: Span,
        /// The W3C trace id of the request the caller was serving, if it
        /// came from another process (0: none).
        trace: u128,
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
                trace: if traced { TRACE.get() } else { 0 },
            }
        }
    }

    /// The request span, with `parent` (if any) as its parent.
    macro_rules! request_span {
        ($($parent:expr)?; $server:expr, $server_id:expr, $message:expr, $call_id:expr) => {
            tracing::info_span!(
                $(parent: $parent,)?
                "request",
                server = $server,
                server_id = $server_id,
                message = $message,
                call_id = $call_id,
                trace_id = tracing::field::Empty,
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

    /// The span of one request, when its handler started, and the trace
    /// it belongs to.
    pub(crate) struct RequestTrace {
        span: Span,
        started: Option<Instant>,
        trace: u128,
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
                Some(parent) => request_span!(parent; server, control.id().get(), message, sent.id),
                None => request_span!(; server, control.id().get(), message, sent.id),
            };
            if let Some(at) = sent.at.filter(|_| !span.is_disabled()) {
                span.record(
                    "queue_wait_us",
                    micros(Instant::now().saturating_duration_since(at)),
                );
            }
            if sent.trace != 0 {
                span.record("trace_id", format_args!("{:032x}", sent.trace));
            }
            RequestTrace {
                span,
                started: None,
                trace: sent.trace,
            }
        }

        /// The handler starts now.
        pub(crate) fn start(&mut self) {
            self.started = (!self.span.is_disabled()).then(Instant::now);
        }

        /// `future` with the span entered, and the request's trace id
        /// current, at each poll.
        pub(crate) fn instrument<F: Future>(
            &self,
            future: F,
        ) -> impl Future<Output = F::Output> + use<F> {
            InTrace {
                trace: self.trace,
                future: tracing::Instrument::instrument(future, self.span.clone()),
            }
        }

        /// The request ended with `outcome`.
        pub(crate) fn finish(self, outcome: Outcome) {
            if self.span.is_disabled() {
                return;
            }
            if let Some(started) = self.started {
                self.span.record("run_us", micros(started.elapsed()));
            }
            self.span.record("outcome", outcome.label());
        }
    }

    /// The `traceparent` for a remote request sent as `sent`: its trace
    /// (the caller's, or one named after the caller's span if the caller
    /// has none) and the caller's span as the parent. `None` without a
    /// caller span.
    #[cfg(feature = "nats")]
    pub(crate) fn traceparent(sent: &Sent) -> Option<String> {
        let parent = sent.caller.id()?.into_u64();
        let trace = match sent.trace {
            0 => (u128::from(process_nonce()) << 64) | u128::from(parent),
            trace => trace,
        };
        Some(format!("00-{trace:032x}-{parent:016x}-01"))
    }

    /// Distinguishes this process's trace ids from another's.
    #[cfg(feature = "nats")]
    fn process_nonce() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        static NONCE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        *NONCE.get_or_init(|| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u32(std::process::id());
            hasher.finish() | 1
        })
    }

    /// `future`, the answer to a remote request of `message`, inside a
    /// `remote request` span naming the caller's trace and span when the
    /// request carried a valid `traceparent`: the local request's span is
    /// its child, and the calls its handler makes carry the same trace on.
    #[cfg(feature = "nats")]
    pub(crate) fn answering<F: Future>(
        message: &'static str,
        traceparent: Option<&str>,
        future: F,
    ) -> impl Future<Output = F::Output> {
        let (trace, span) = match traceparent.and_then(super::parse_traceparent) {
            Some((trace, parent)) => (
                trace,
                tracing::info_span!(
                    "remote request",
                    message,
                    trace_id = format_args!("{trace:032x}"),
                    parent_id = format_args!("{parent:016x}"),
                ),
            ),
            None => (0, Span::none()),
        };
        InTrace {
            trace,
            future: tracing::Instrument::instrument(future, span),
        }
    }

    pub(crate) fn started<S>(control: &Control) {
        tracing::info!(
            server = server_name::<S>(control),
            server_id = control.id().get(),
            "server started"
        );
    }

    pub(crate) fn stopped<S>(control: &Control, reason: &StopReason) {
        tracing::info!(
            server = server_name::<S>(control),
            server_id = control.id().get(),
            reason = %reason,
            "server stopped"
        );
    }

    pub(crate) fn panicked<S>(control: &Control, panic: &PanicMessage) {
        tracing::error!(
            server = server_name::<S>(control),
            server_id = control.id().get(),
            panic = %panic,
            "handler panicked"
        );
    }

    pub(crate) fn restarting<S>(control: &Control, reason: &StopReason) {
        tracing::warn!(
            server = server_name::<S>(control),
            server_id = control.id().get(),
            reason = %reason,
            "server restarting"
        );
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
    #[derive(Clone, Debug)]
    pub(crate) struct Sent;

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

    /// No context travels without the `tracing` feature.
    #[cfg(feature = "nats")]
    pub(crate) fn traceparent(_: &Sent) -> Option<String> {
        None
    }

    #[cfg(feature = "nats")]
    pub(crate) fn answering<F: Future>(_: &'static str, _: Option<&str>, future: F) -> F {
        future
    }
}

/// The trace id and parent id of a W3C `traceparent` of version 00, or
/// `None` for anything else (the header comes from another process: read
/// strictly, never trusted to be well-formed).
#[cfg(all(feature = "tracing", feature = "nats"))]
fn parse_traceparent(header: &str) -> Option<(u128, u64)> {
    let mut parts = header.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |part: &str, len: usize| {
        part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    if parts.next().is_some()
        || version != "00"
        || !hex(trace, 32)
        || !hex(parent, 16)
        || !hex(flags, 2)
    {
        return None;
    }
    let trace = u128::from_str_radix(trace, 16).ok()?;
    let parent = u64::from_str_radix(parent, 16).ok()?;
    (trace != 0 && parent != 0).then_some((trace, parent))
}

#[cfg(all(test, feature = "tracing", feature = "nats"))]
mod tests {
    use super::parse_traceparent;

    #[test]
    fn a_traceparent_is_read_strictly() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(good.len(), 55);
        assert_eq!(
            parse_traceparent(good),
            Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7))
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-00",
            "00-4bf92f3577b34da6a3ce929d0e0e473\n-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
    }
}
