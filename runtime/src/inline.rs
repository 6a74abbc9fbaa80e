//! Calls served on their caller's own task: when a server is idle (its
//! serve loop waiting, every lane of its mailbox empty, nothing asked of
//! it), a call or cast to a synchronous method is served by the caller
//! itself,
//! under the server's exclusive claim on its state, with no task handoff.
//!
//! The state has one shared place, a [`Slot`]: the serve loop leaves the
//! state there each time it goes idle and takes it back each time it wakes
//! (`serve.rs`), so at any moment the state is either with the loop or in
//! the slot, and a caller can claim it only from the slot, only while the
//! mailbox is empty. Hence every promise of the serve loop holds:
//!
//! - serial: the claim is the slot's lock; the loop, its timers and hooks
//!   never run while a caller holds it, nor callers while the loop has the
//!   state;
//! - order: a caller serves itself only when nothing is queued, so it
//!   never passes a request sent before it (its own cast included);
//! - panics: caught as in the loop (`scope::catch_in`), the caller gets
//!   `Panicked`, and under `PanicPolicy::Stop` the panic is left in the
//!   slot for the loop, which stops (or restarts) the server exactly as if
//!   it had served the call;
//! - stop, drain, linked servers: anything asked of the server (a `signals`
//!   bit) sends calls through the mailbox, where the loop handles them as
//!   before; a server that has ended has no state in its slot;
//! - self-calls and cycles: the handler runs as the server's code
//!   (`scope`), and a synchronous handler cannot wait for a call;
//! - fairness: each request served here takes one unit of the caller's
//!   task budget (as the loop takes one per request it receives), and a
//!   caller whose budget is spent yields first: a task calling or casting
//!   in a loop still lets the other tasks of its runtime run.
//!
//! Servers with one serve loop only: not pools (their replicas share a
//! mailbox), local servers (their state stays on its thread) nor remote
//! ones, and only for methods that are plain `fn`s (calls answering with
//! their return value, and casts); everything else goes through the
//! mailbox as before.

use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::task::{Context as TaskContext, Poll};

use crate::error::PanicMessage;
use crate::message::{Dispatched, Inlined, Message, Serves};
use crate::reply::{Begin, ReplySlot};
use crate::scope::catch_in;
use crate::server::{Context, PanicPolicy, Server};
#[cfg(feature = "tracing")]
use crate::trace;

/// The shared place of a server's state. Not a public API.
#[doc(hidden)]
pub struct Slot<S: Server> {
    room: Mutex<Room<S>>,
    /// The context handlers served here are given.
    context: Context<S>,
    on_panic: PanicPolicy,
}

struct Room<S> {
    /// The state, while the serve loop is idle.
    state: Option<S>,
    /// A panic of a call served here, for the loop (`PanicPolicy::Stop`).
    fault: Option<PanicMessage>,
}

impl<S: Server> Slot<S> {
    /// An empty slot: the loop has the state until it first goes idle.
    pub(crate) fn new(context: &Context<S>, on_panic: PanicPolicy) -> Arc<Self> {
        Arc::new(Slot {
            room: Mutex::new(Room {
                state: None,
                fault: None,
            }),
            context: Context::new(context.senders.clone(), context.control.clone()),
            on_panic,
        })
    }

    /// No user code panics while the lock is held (it is caught inside),
    /// so a poisoned lock still holds consistent data.
    fn room(&self) -> MutexGuard<'_, Room<S>> {
        self.room.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The serve loop goes idle: callers may serve themselves.
    pub(crate) fn lend(&self, state: S) {
        self.room().state = Some(state);
    }

    /// The serve loop wakes, or the server has ended: the state back, once
    /// a caller serving itself has finished.
    pub(crate) fn take(&self) -> Option<S> {
        self.room().state.take()
    }

    /// The panic a call served here left for the loop.
    pub(crate) fn take_fault(&self) -> Option<PanicMessage> {
        let fault = self.room().fault.take();
        self.context.control.fault_taken();
        fault
    }

    fn try_serve(&self, mut request: S::Request, cx: &mut TaskContext<'_>) -> Inlined<S::Request> {
        let control = &*self.context.control;
        if control.signals() != 0 {
            return Inlined::Queue(request);
        }
        let mut room = match self.room.try_lock() {
            Ok(room) => room,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Inlined::Queue(request),
        };
        let Room {
            state: Some(state),
            fault: None,
        } = &mut *room
        else {
            return Inlined::Queue(request);
        };
        if !self.context.senders.idle() {
            return Inlined::Queue(request);
        }
        // One unit of the caller's budget per request served, as the loop
        // takes one per request it receives.
        let Poll::Ready(budget) = tokio::task::coop::poll_proceed(cx) else {
            return Inlined::Yield(request);
        };
        let chain = match request.reply_slot().map(ReplySlot::begin) {
            Some(Begin::Serve(chain)) => chain,
            Some(Begin::Abandoned) | None => None,
        };
        #[cfg(feature = "tracing")]
        let span = span::<S>(control, &mut request);
        #[cfg(feature = "tracing")]
        let started = trace::start(&span);
        let dispatched = {
            #[cfg(feature = "tracing")]
            let _entered = span.enter();
            let mut dispatched = pin!(catch_in(
                control,
                chain,
                state.dispatch(request, &self.context)
            ));
            // A synchronous handler finishes at its first poll. (Were it
            // not to, the handler is dropped here, inside the catch, and
            // its caller is answered `Closed`.)
            match dispatched.as_mut().poll(cx) {
                Poll::Ready(dispatched) => dispatched,
                Poll::Pending => Ok(Dispatched::Served),
            }
        };
        budget.made_progress();
        #[cfg(feature = "tracing")]
        trace::finish(&span, started, crate::message::outcome(&dispatched));
        match dispatched {
            Ok(Dispatched::Served) => {}
            // Only calls that are not terminal are served here; a terminal
            // request would be dropped, its caller answered `NoReply`.
            Ok(Dispatched::Terminal(request)) => drop(request),
            Err(panic) => {
                #[cfg(feature = "tracing")]
                trace::panicked(trace::server_name::<S>(control), &panic);
                if self.on_panic == PanicPolicy::Stop {
                    // Signalled before the state is released: the loop,
                    // which takes the state first, then sees the signal
                    // before it serves anything else.
                    room.fault = Some(panic);
                    control.fault();
                }
            }
        }
        Inlined::Served
    }
}

impl<S: Server> std::fmt::Debug for Slot<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}

impl<S: Server + Send> Serves<S::Request> for Slot<S> {
    #[inline]
    fn try_serve(&self, request: S::Request, cx: &mut TaskContext<'_>) -> Inlined<S::Request> {
        Slot::try_serve(self, request, cx)
    }
}

/// The span of `request` to server `S`, from the request's own fields.
#[cfg(feature = "tracing")]
pub(crate) fn span<S: Server>(
    control: &crate::control::Control,
    request: &mut S::Request,
) -> tracing::Span {
    crate::trace::request(
        crate::trace::server_name::<S>(control),
        request.name(),
        request.reply_slot().map(|reply| reply.sent()),
    )
}
