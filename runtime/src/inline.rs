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
//!   state. The loop never blocks its thread on that lock: when it wakes
//!   while a caller is serving, it asks for the state back
//!   ([`Slot::poll_take`]) and waits as a task, woken by the caller as it
//!   releases the lock (a handler may run long, or wait for a server that
//!   only this worker can run);
//! - timers: the loop leaves the time its next timer is due with the
//!   state, and a caller finding that time passed queues instead: a due
//!   tick runs before a later call, as in the loop (under tokio's paused
//!   clock too);
//! - deadlines: a call with a timeout is not served here (its caller could
//!   not take control back mid-handler); it goes through the mailbox, where
//!   `.timeout(d)` gives control back by `d`;
//! - order: a caller serves itself only when nothing is queued, so it
//!   never passes a request sent before it (its own cast included);
//! - one request, served as the loop serves it: `dispatch::request`, the
//!   same function (its span, its panic catching, its outcome);
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::task::{Context as TaskContext, Poll};

use tokio::time::Instant;

use crate::dispatch::{self, Handled};
use crate::error::PanicMessage;
use crate::message::{Inlined, Serves};
use crate::server::{Context, PanicPolicy, Server};

/// The shared place of a server's state. Not a public API.
#[doc(hidden)]
pub struct Slot<S: Server> {
    room: Mutex<Room<S>>,
    /// The serve loop found the room locked by a caller serving itself and
    /// waits as a task: the caller wakes it once it has released the lock.
    wanted: AtomicBool,
    /// A hint that the state is in the room, so that a caller does not take
    /// the lock for nothing while the loop is busy (the lock decides; a
    /// stale hint only sends a request through the mailbox, or costs a
    /// `try_lock`).
    lent: AtomicBool,
    /// The context handlers served here are given.
    context: Context<S>,
    on_panic: PanicPolicy,
}

struct Room<S> {
    /// The state, while the serve loop is idle.
    state: Option<S>,
    /// A panic of a call served here, for the loop (`PanicPolicy::Stop`).
    fault: Option<PanicMessage>,
    /// When the loop's next timer is due: from then on, callers queue.
    due: Option<Instant>,
}

/// What [`Slot::poll_take`] found.
pub(crate) enum Taken<S> {
    /// The state, back with the loop.
    State(S),
    /// Nothing in the slot: the server has ended, or it was never lent.
    Empty,
}

impl<S: Server> Slot<S> {
    /// An empty slot: the loop has the state until it first goes idle.
    pub(crate) fn new(context: &Context<S>, on_panic: PanicPolicy) -> Arc<Self> {
        Arc::new(Slot {
            room: Mutex::new(Room {
                state: None,
                fault: None,
                due: None,
            }),
            wanted: AtomicBool::new(false),
            lent: AtomicBool::new(false),
            context: Context::new(context.senders.clone(), context.control.clone()),
            on_panic,
        })
    }

    /// No user code panics while the lock is held (it is caught inside),
    /// so a poisoned lock still holds consistent data.
    fn room(&self) -> MutexGuard<'_, Room<S>> {
        self.room.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The serve loop goes idle: callers may serve themselves until `due`
    /// (its next timer), if any. The loop holds the state, so no caller is
    /// serving: the lock is taken at once.
    pub(crate) fn lend(&self, state: S, due: Option<Instant>) {
        let mut room = self.room();
        room.state = Some(state);
        room.due = due;
        self.lent.store(true, Ordering::Release);
    }

    /// The serve loop wakes: the state back, or `Pending` while a caller
    /// serves itself with it (the loop's task is woken when it is done).
    /// Never blocks the thread.
    pub(crate) fn poll_take(&self) -> Poll<Taken<S>> {
        let mut room = match self.room.try_lock() {
            Ok(room) => room,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                // Asked before trying again: either this second try finds
                // the lock free, or the caller, releasing it after this
                // store, sees it and wakes the loop.
                self.wanted.store(true, Ordering::SeqCst);
                match self.room.try_lock() {
                    Ok(room) => room,
                    Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                    Err(TryLockError::WouldBlock) => return Poll::Pending,
                }
            }
        };
        self.lent.store(false, Ordering::Relaxed);
        Poll::Ready(room.state.take().map_or(Taken::Empty, Taken::State))
    }

    /// The server has ended (its serve task dropped while idle): the state,
    /// once a caller serving itself has finished. Blocks: for the drop
    /// guard, which cannot wait as a task.
    pub(crate) fn take(&self) -> Option<S> {
        self.lent.store(false, Ordering::Relaxed);
        self.room().state.take()
    }

    /// The panic a call served here left for the loop.
    pub(crate) fn take_fault(&self) -> Option<PanicMessage> {
        let fault = self.room().fault.take();
        self.context.control.fault_taken();
        fault
    }

    fn try_serve(&self, request: S::Request, cx: &mut TaskContext<'_>) -> Inlined<S::Request> {
        let control = &*self.context.control;
        if control.signals().any() || !self.lent.load(Ordering::Acquire) {
            return Inlined::Queue(request);
        }
        let mut room = match self.room.try_lock() {
            Ok(room) => room,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Inlined::Queue(request),
        };
        let inlined = self.serve_in(&mut room, request, cx);
        drop(room);
        // The loop may have asked for the state while the lock was held,
        // however briefly: it waits to be woken.
        // (A load first: the swap's write is needed only when it was set.)
        if self.wanted.load(Ordering::SeqCst) && self.wanted.swap(false, Ordering::SeqCst) {
            control.wake_loops();
        }
        inlined
    }

    /// Serves `request` with the state in `room`, if it is there and
    /// nothing comes before the request.
    fn serve_in(
        &self,
        room: &mut Room<S>,
        request: S::Request,
        cx: &mut TaskContext<'_>,
    ) -> Inlined<S::Request> {
        let Room {
            state: Some(state),
            fault: None,
            due,
        } = room
        else {
            return Inlined::Queue(request);
        };
        // A timer due: the loop runs it first, then the request.
        if due.is_some_and(|due| Instant::now() >= due) || !self.context.senders.idle() {
            return Inlined::Queue(request);
        }
        // One unit of the caller's budget per request served, as the loop
        // takes one per request it receives.
        let Poll::Ready(budget) = tokio::task::coop::poll_proceed(cx) else {
            return Inlined::Yield(request);
        };
        let handled = {
            let mut handled = pin!(dispatch::request(state, request, &self.context));
            // A synchronous handler finishes at its first poll. (Were it
            // not to, the handler is dropped here, inside the catch, and
            // its caller is answered `Closed`.)
            match handled.as_mut().poll(cx) {
                Poll::Ready(handled) => handled,
                Poll::Pending => Handled::Replied,
            }
        };
        budget.made_progress();
        match handled {
            Handled::Replied | Handled::Skipped => {}
            // Only calls that are not terminal are served here; a terminal
            // request would be dropped, its caller answered `NoReply`.
            Handled::Terminal(request) => drop(request),
            Handled::Panicked(panic) => {
                if self.on_panic == PanicPolicy::Stop {
                    // Signalled before the state is released: the loop,
                    // which takes the state first, then sees the signal
                    // before it serves anything else.
                    room.fault = Some(panic);
                    self.context.control.fault();
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
