//! What runs on this thread right now: the code of which server, serving a
//! request that which other servers are waiting for.
//!
//! The serve loop polls every piece of user code (handlers, hooks, timers,
//! the restart factory, the state's `Drop`) through this module, which
//! - catches its panics, turning them into a [`PanicMessage`];
//! - answers the replies it drops while unwinding with that message (a
//!   `Reply` dropped mid-unwind cannot know the message yet: it leaves its
//!   sender here, see [`defer`]);
//! - marks the thread with the server's id, so that a call from that code to
//!   the same server is refused instead of deadlocking;
//! - carries the [`Chain`] of servers waiting for the current request, so
//!   that a call closing a cycle of servers waiting for each other is
//!   refused too.
//!
//! Thread-locals, set around each poll of server code, rather than a tokio
//! task-local around the whole serve task: measured cheaper (BENCHMARKS.md),
//! and the hot ones (`SERVING`, `PENDING`) have no destructor, so reading
//! them is a plain thread-local load.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::control::{Control, Ends};
use crate::error::{CallError, PanicMessage};
use crate::id::ServerId;

/// Answers one reply that was dropped while its answer was not yet known.
pub(crate) type Victim = Box<dyn FnOnce(&CallError)>;

/// What the handler being served said of how it ended, for its span and
/// metrics: `NOTED_ERROR` (it returned an `Err`), `NOTED_CANCELLED`
/// (dropped because its caller gave up). Only noted with the `tracing` or
/// `metrics` feature.
pub(crate) const NOTED_ERROR: u8 = 1;
pub(crate) const NOTED_CANCELLED: u8 = 2;

#[cfg(any(feature = "tracing", feature = "metrics"))]
thread_local! {
    static NOTED: Cell<u8> = const { Cell::new(0) };
}

/// The handler being served returned an `Err` of its own.
#[inline(always)]
pub(crate) fn note_error() {
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    NOTED.set(NOTED.get() | NOTED_ERROR);
}

/// The handler being served was dropped because its caller gave up.
#[inline(always)]
pub(crate) fn note_cancelled() {
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    NOTED.set(NOTED.get() | NOTED_CANCELLED);
}

/// What was noted since the last call, cleared (nothing is noted without
/// the `tracing` or `metrics` feature).
#[inline(always)]
pub(crate) fn take_noted() -> u8 {
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    return NOTED.replace(0);
    #[cfg(not(any(feature = "tracing", feature = "metrics")))]
    0
}

thread_local! {
    /// The id of the server whose code is being polled.
    static SERVING: Cell<Option<ServerId>> = const { Cell::new(None) };
    /// What waits to be handled after the current poll: `VICTIMS` and/or
    /// `BOUND`.
    static PENDING: Cell<u8> = const { Cell::new(0) };
    /// Replies dropped are being collected on purpose ([`dispose`]).
    static COLLECTING: Cell<bool> = const { Cell::new(false) };
    /// Replies dropped during an unwind or a [`dispose`], waiting for their
    /// answer.
    static VICTIMS: RefCell<Vec<Victim>> = const { RefCell::new(Vec::new()) };
    /// The servers waiting for the request being served; `None` for a
    /// request from outside every server (the common case, which never
    /// touches this).
    static CHAIN: Cell<Option<Arc<Chain>>> = const { Cell::new(None) };
    /// What the code being polled created that must end with its server.
    static BOUND: RefCell<Vec<std::sync::Weak<dyn Ends>>> = const { RefCell::new(Vec::new()) };
    /// The call a handler being polled serves: `IN_CALL`, `GONE`, `WATCH`
    /// bits; 0 outside such a handler.
    static CALL: Cell<u8> = const { Cell::new(0) };
}

/// `CALL` bits: a handler serving a call that its caller waits for is
/// being polled,
const IN_CALL: u8 = 1;
/// and that caller has given up;
const GONE: u8 = 2;
/// the handler waits for that to happen.
const WATCH: u8 = 4;

/// `PENDING` bits.
const HAS_VICTIMS: u8 = 1;
const HAS_BOUND: u8 = 2;

/// The servers whose handlers are waiting, directly or through other
/// servers, for a request: it travels inside the request's reply.
///
/// Not a public API: generated code never names it.
#[doc(hidden)]
pub struct Chain {
    server: ServerId,
    next: Option<Arc<Chain>>,
}

impl Chain {
    fn contains(&self, server: ServerId) -> bool {
        let mut link = Some(self);
        while let Some(chain) = link {
            if chain.server == server {
                return true;
            }
            link = chain.next.as_deref();
        }
        false
    }
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").finish_non_exhaustive()
    }
}

/// The id of the server whose code runs on this thread, if any.
#[inline]
pub(crate) fn serving() -> Option<ServerId> {
    SERVING.get()
}

/// What a call that waits for `target` from the current thread would do.
pub(crate) enum Waiting {
    /// Not from server code: nothing to carry.
    Outside,
    /// From server code: the chain the request carries.
    Chain(Arc<Chain>),
    /// The call would wait for a server that waits for the caller.
    Cycle(CallError),
}

/// Checks a call that will wait for server `target`'s reply.
pub(crate) fn waiting_for(target: ServerId) -> Waiting {
    let Some(caller) = serving() else {
        return Waiting::Outside;
    };
    if caller == target {
        return Waiting::Cycle(CallError::SelfCall);
    }
    let next = CHAIN.take();
    let cycle = next.as_deref().is_some_and(|chain| chain.contains(target));
    let chain = (!cycle).then(|| {
        Arc::new(Chain {
            server: caller,
            next: next.clone(),
        })
    });
    CHAIN.set(next);
    match chain {
        Some(chain) => Waiting::Chain(chain),
        None => Waiting::Cycle(CallError::Deadlock),
    }
}

/// Marks the handler about to be polled as serving a call whose caller is
/// `gone` or not; returns what to restore with [`leave_call`].
#[inline]
pub(crate) fn enter_call(gone: bool) -> u8 {
    CALL.replace(if gone { IN_CALL | GONE } else { IN_CALL })
}

/// After the poll: restores `outer`, and tells whether the handler asked
/// to be woken when its caller gives up.
#[inline]
pub(crate) fn leave_call(outer: u8) -> bool {
    CALL.replace(outer) & WATCH != 0
}

/// The caller of the call being served has given up (timed out, dropped
/// its call); `false` outside a handler serving a call.
pub(crate) fn call_gone() -> bool {
    CALL.get() & GONE != 0
}

/// The handler being polled waits for its caller to give up: wake it then.
pub(crate) fn watch_call() {
    CALL.set(CALL.get() | WATCH);
}

/// Called by a reply dropped before it was answered: `true` if the reply
/// must leave `victim` here instead of answering `NoReply`.
pub(crate) fn collects() -> bool {
    COLLECTING.get() || std::thread::panicking()
}

/// Leaves a dropped reply's sender to be answered once the error is known.
pub(crate) fn defer(victim: Victim) {
    if SERVING.get().is_none() && !COLLECTING.get() {
        // Dropped by a panicking thread that no serve loop watches, e.g. a
        // task the handler spawned with the reply.
        victim(&CallError::Panicked(PanicMessage::new(
            "the task holding the reply panicked",
        )));
        return;
    }
    VICTIMS.with_borrow_mut(|victims| victims.push(victim));
    PENDING.set(PENDING.get() | HAS_VICTIMS);
}

/// Binds `value` to the server whose code runs on this thread, if any: it
/// ends when that server stops. `false` outside server code.
pub(crate) fn bind(value: std::sync::Weak<dyn Ends>) -> bool {
    if SERVING.get().is_none() {
        return false;
    }
    BOUND.with_borrow_mut(|bound| bound.push(value));
    PENDING.set(PENDING.get() | HAS_BOUND);
    true
}

/// Answers every reply left by [`defer`] with `error`.
fn answer_victims(error: &CallError) {
    PENDING.set(PENDING.get() & !HAS_VICTIMS);
    let victims = VICTIMS.with_borrow_mut(std::mem::take);
    victims.into_iter().for_each(|victim| victim(error));
}

/// After a poll of `control`'s code returned normally: answers the replies
/// a panic caught inside it dropped, and binds what it created.
#[cold]
fn after_poll(control: &Control) {
    if PENDING.get() & HAS_VICTIMS != 0 {
        // A panic that the code caught itself still dropped these replies
        // mid-unwind.
        answer_victims(&CallError::Panicked(PanicMessage::new(
            "a panic inside the handler dropped the reply",
        )));
    }
    if PENDING.get() & HAS_BOUND != 0 {
        PENDING.set(PENDING.get() & !HAS_BOUND);
        for value in BOUND.with_borrow_mut(std::mem::take) {
            control.bind(value);
        }
    }
}

/// The message of a caught panic. The payload is dropped here, and a
/// payload whose own `Drop` panics is forgotten rather than allowed to
/// unwind out of the serve loop.
pub(crate) fn message_of(payload: Box<dyn Any + Send>) -> PanicMessage {
    let message = PanicMessage::from_payload(&*payload);
    if let Err(inner) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(inner);
    }
    message
}

/// Runs synchronous code of `control`'s server (an `#[every]` expression,
/// the restart factory), catching its panic.
pub(crate) fn catch_sync<T>(control: &Control, f: impl FnOnce() -> T) -> Result<T, PanicMessage> {
    let outer = SERVING.replace(Some(control.id()));
    let result = catch_unwind(AssertUnwindSafe(f));
    SERVING.set(outer);
    finish_poll(control, result)
}

/// Turns the result of one poll (or run) of server code into its outcome.
#[inline(always)]
fn finish_poll<T>(control: &Control, result: std::thread::Result<T>) -> Result<T, PanicMessage> {
    match result {
        Ok(value) => {
            if PENDING.get() != 0 {
                after_poll(control);
            }
            Ok(value)
        }
        Err(payload) => {
            let message = message_of(payload);
            answer_victims(&CallError::Panicked(message.clone()));
            if PENDING.get() != 0 {
                after_poll(control);
            }
            Err(message)
        }
    }
}

/// Drops `value` (a server's state, a handler's unfinished future),
/// answering every reply it held with `error` instead of `NoReply`, and
/// catching a panic from its `Drop`.
pub(crate) fn dispose<T>(value: T, error: &CallError) -> Result<(), PanicMessage> {
    let outer = COLLECTING.replace(true);
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(value)));
    COLLECTING.set(outer);
    answer_victims(error);
    dropped.map_err(message_of)
}

pin_project_lite::pin_project! {
    /// Polls server code as code of `control`'s server, serving a request
    /// that `chain` waits for; a panic becomes `Err(message)`. Dropped
    /// before it finished (its task was dropped, e.g. by a runtime
    /// shutdown), it answers the replies the code still held with `Closed`.
    pub(crate) struct CatchUnwind<'a, F> {
        #[pin]
        inner: Option<F>,
        control: &'a Control,
        chain: Option<Arc<Chain>>,
    }

    impl<F> PinnedDrop for CatchUnwind<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.inner.is_some() {
                let outer = COLLECTING.replace(true);
                this.inner.set(None);
                COLLECTING.set(outer);
                answer_victims(&CallError::Closed);
            }
        }
    }
}

/// `inner`, run as code of `control`'s server.
pub(crate) fn catch<F: Future>(control: &Control, inner: F) -> CatchUnwind<'_, F> {
    catch_in(control, None, inner)
}

/// `inner`, run as code of `control`'s server serving a request that the
/// servers in `chain` wait for.
pub(crate) fn catch_in<F: Future>(
    control: &Control,
    chain: Option<Arc<Chain>>,
    inner: F,
) -> CatchUnwind<'_, F> {
    CatchUnwind {
        inner: Some(inner),
        control,
        chain,
    }
}

impl<F: Future> Future for CatchUnwind<'_, F> {
    type Output = Result<F::Output, PanicMessage>;

    // Inlined into the serve loop: as a call of its own it cost about 90
    // instructions per request (callgrind, BENCHMARKS.md).
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        let outer = SERVING.replace(Some(this.control.id()));
        let outer_chain = this.chain.take().map(|chain| CHAIN.replace(Some(chain)));
        let result = catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
        if let Some(outer_chain) = outer_chain {
            *this.chain = CHAIN.replace(outer_chain);
        }
        SERVING.set(outer);
        let output = match finish_poll(this.control, result) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(message) => Err(message),
        };
        this.inner.set(None);
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serving_is_set_only_while_the_server_code_is_polled() {
        let control = Control::new(None, 1);
        assert_eq!(serving(), None);
        let inside = catch(&control, async { serving() }).await;
        assert_eq!(inside, Ok(Some(control.id())));
        assert_eq!(serving(), None);
    }

    #[tokio::test]
    async fn a_chain_refuses_the_call_that_would_close_a_cycle() {
        let (one, two, three) = (
            Control::new(None, 1),
            Control::new(None, 1),
            Control::new(None, 1),
        );
        assert!(matches!(waiting_for(one.id()), Waiting::Outside));
        // Server two serves a request that server one waits for.
        let chain = Some(Arc::new(Chain {
            server: one.id(),
            next: None,
        }));
        let verdicts = catch_in(&two, chain, async {
            let to = |target| match waiting_for(target) {
                Waiting::Outside => "outside",
                Waiting::Chain(_) => "chain",
                Waiting::Cycle(CallError::SelfCall) => "self",
                Waiting::Cycle(_) => "cycle",
            };
            [to(one.id()), to(two.id()), to(three.id())]
        })
        .await;
        assert_eq!(verdicts, Ok(["cycle", "self", "chain"]));
    }

    #[test]
    fn a_panicking_payload_drop_does_not_unwind() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("payload drop");
            }
        }
        let payload = catch_unwind(|| std::panic::panic_any(Bomb)).unwrap_err();
        assert_eq!(message_of(payload).as_str(), "non-string panic payload");
    }

    #[test]
    fn catch_sync_turns_a_panic_into_its_message() {
        let control = Control::new(None, 1);
        let caught = catch_sync(&control, || -> u8 { panic!("in the factory") });
        assert_eq!(caught.unwrap_err().as_str(), "in the factory");
        assert_eq!(catch_sync(&control, || 5), Ok(5));
    }
}
