//! `tracing` spans and events, behind the `tracing` feature: a span per
//! request (server, message, call id, queue wait, run time, outcome) and
//! events when a server starts, stops, panics and restarts. Without the
//! feature none of this is compiled, and the serve loop is as it is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tracing::Span;

use crate::control::Control;
use crate::error::{PanicMessage, StopReason};
use crate::id::ServerId;

/// When and as which call a request was made: kept in its reply. (`pub`
/// only because the hidden `ReplySlot` trait names it.)
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    pub(crate) id: u64,
    /// `None` while no subscriber has ever been set: nothing will read it.
    pub(crate) at: Option<Instant>,
}

static CALLS: AtomicU64 = AtomicU64::new(1);

impl Sent {
    pub(crate) fn now() -> Self {
        Sent {
            id: CALLS.fetch_add(1, Ordering::Relaxed),
            at: tracing::dispatcher::has_been_set().then(Instant::now),
        }
    }
}

/// A server as traces report it: its name and its id.
#[derive(Clone, Copy)]
pub(crate) struct Traced<'a> {
    name: &'a str,
    id: ServerId,
}

/// The server for traces: its `Builder::name`, else its type, and its id.
pub(crate) fn server_name<S>(control: &Control) -> Traced<'_> {
    Traced {
        name: control.name().unwrap_or(std::any::type_name::<S>()),
        id: control.id(),
    }
}

/// The span of one request, entered around every poll of its handler.
/// `sent` is `None` for a cast, which gets a call id of its own.
pub(crate) fn request(server: Traced<'_>, message: &'static str, sent: Option<Sent>) -> Span {
    let sent = sent.unwrap_or_else(Sent::now);
    let span = tracing::info_span!(
        "request",
        server = server.name,
        server_id = server.id.get(),
        message,
        call_id = sent.id,
        queue_wait_us = tracing::field::Empty,
        run_us = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    if let Some(at) = sent.at.filter(|_| !span.is_disabled()) {
        span.record(
            "queue_wait_us",
            micros(Instant::now().saturating_duration_since(at)),
        );
    }
    span
}

/// When the handler starts: `None` if nobody records the span.
pub(crate) fn start(span: &Span) -> Option<Instant> {
    (!span.is_disabled()).then(Instant::now)
}

/// How a request ended, recorded on its span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handler returned (for a `Result`, an `Ok`).
    Ok,
    /// The handler returned an `Err` of its own.
    Error,
    /// The handler panicked.
    Panic,
    /// The caller gave up: skipped before it started, or dropped at an
    /// await (`#[cancellable]`).
    Cancelled,
    /// Refused: the server was stopping.
    Closed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Panic => "panic",
            Outcome::Cancelled => "cancelled",
            Outcome::Closed => "closed",
        }
    }
}

pub(crate) fn finish(span: &Span, started: Option<Instant>, outcome: Outcome) {
    if span.is_disabled() {
        return;
    }
    if let Some(started) = started {
        span.record("run_us", micros(started.elapsed()));
    }
    span.record("outcome", outcome.as_str());
}

pub(crate) fn started(server: Traced<'_>) {
    tracing::info!(
        server = server.name,
        server_id = server.id.get(),
        "server started"
    );
}

pub(crate) fn stopped(server: Traced<'_>, reason: &StopReason) {
    tracing::info!(server = server.name, server_id = server.id.get(), reason = %reason, "server stopped");
}

pub(crate) fn panicked(server: Traced<'_>, panic: &PanicMessage) {
    tracing::error!(server = server.name, server_id = server.id.get(), panic = %panic, "handler panicked");
}

pub(crate) fn restarting(server: Traced<'_>, reason: &StopReason) {
    tracing::warn!(server = server.name, server_id = server.id.get(), reason = %reason, "server restarting");
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
