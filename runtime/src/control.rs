//! `Control`: the one piece of state shared by a server's handles and its
//! serve loops (one per replica in a pool). Everything the two sides need to
//! know of each other lives here: the server's identity, whether a stop was
//! asked for, how many replicas still run, why the server ended, and what
//! must end with it.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::Waker;

use tokio::sync::Notify;

use crate::error::{CallError, Down, StopReason};
use crate::id::ServerId;
use crate::meter::Meters;
use crate::stats::Stats;

/// Something created by a server's code that must end when the server
/// stops, wherever it is then (a subscription kept in the final state).
pub(crate) trait Ends: Send + Sync {
    fn end(&self);
}

/// What was asked of a server, read from its one atomic byte with named
/// questions (as tokio's oneshot reads its `State`), never by bit tests at
/// the call sites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Signals(u8);

impl Signals {
    /// `stop()` from outside: the mailbox is closed, what was queued is
    /// served.
    const STOP: u8 = 1;
    /// End after the current handler: `stop()` from the server's own code,
    /// or a linked server stopped.
    const STOP_NOW: u8 = 2;
    /// Refuse calls from outside; end once the mailbox is empty.
    const DRAIN: u8 = 4;
    /// Watched servers have stopped: their `Down`s wait in `Control`.
    const EVENTS: u8 = 8;
    /// A call served on its caller's task panicked, and the policy stops
    /// the server: the panic waits in the state's shared place
    /// (`inline.rs`).
    const FAULT: u8 = 16;
    /// The server's supervisor asks it to end its current incarnation after
    /// the current handler, and wait for the next (`supervisor.rs`).
    const RESTART: u8 = 32;
    /// The server's code asked for its `#[every]` periods to be evaluated
    /// again (`Context::reschedule`).
    const RESCHEDULE: u8 = 64;

    /// Anything at all was asked: callers do not serve themselves.
    #[inline]
    pub(crate) fn any(self) -> bool {
        self.0 != 0
    }

    /// `stop()` was asked from outside: what is queued is served, then
    /// the server ends.
    #[cfg(feature = "inventory")]
    pub(crate) fn stopping(self) -> bool {
        self.0 & Self::STOP != 0
    }

    /// End after the current handler.
    #[inline]
    pub(crate) fn stops_now(self) -> bool {
        self.0 & Self::STOP_NOW != 0
    }

    /// Refuse calls from outside, end once the mailbox is empty.
    #[inline]
    pub(crate) fn draining(self) -> bool {
        self.0 & Self::DRAIN != 0
    }

    /// A call served by its caller left a panic for the loop.
    #[inline]
    pub(crate) fn faulted(self) -> bool {
        self.0 & Self::FAULT != 0
    }

    /// The supervisor asks for a restart in place.
    #[inline]
    pub(crate) fn restarting(self) -> bool {
        self.0 & Self::RESTART != 0
    }

    /// The `#[every]` periods are to be evaluated again.
    #[inline]
    pub(crate) fn rescheduled(self) -> bool {
        self.0 & Self::RESCHEDULE != 0
    }

    /// Something the loop handles before its next request: a stop now,
    /// watched servers down, a fault, a restart, periods to evaluate again.
    #[inline]
    pub(crate) fn interrupts(self) -> bool {
        self.0 & (Self::STOP_NOW | Self::EVENTS | Self::FAULT | Self::RESTART | Self::RESCHEDULE)
            != 0
    }
}

/// What a watcher does once the server it watches has stopped (after its
/// `#[on_down]` hook, if it has one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Then {
    /// Nothing more: `monitor`.
    Notify,
    /// Drain: `drain_after`.
    Drain,
    /// Stop after the current handler: `stop_with`.
    Stop,
}

/// A server watching this one.
struct Watcher {
    control: Weak<Control>,
    then: Then,
}

/// The parts of `Control` that only change on rare events, behind one lock.
#[derive(Default)]
struct Shared {
    /// The tasks of the serve loops, to wake on a signal.
    wakers: Wakers,
    /// Boxed, and only once needed: most servers are never watched, watch
    /// nobody and bind nothing, and every idle server carries this struct
    /// (BENCHMARKS.md).
    links: Option<Box<Links>>,
}

/// What a server is tied to: `Shared`'s rarely used part.
#[derive(Default)]
struct Links {
    /// What the server's code created that ends with the server.
    bound: Vec<Weak<dyn Ends>>,
    /// Who to tell when this server stops.
    watchers: Vec<Watcher>,
    /// Watched servers that stopped, for the serve loop to handle.
    downs: Vec<(Down, Then)>,
}

impl Shared {
    fn links(&mut self) -> &mut Links {
        self.links.get_or_insert_with(Box::default)
    }
}

/// The serve tasks' wakers: the first inline, so that a server with one
/// serve loop allocates nothing for it.
#[derive(Default)]
struct Wakers {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl Wakers {
    fn add(&mut self, waker: &Waker) {
        let known = self.first.iter().chain(&self.rest);
        if known.clone().any(|known| known.will_wake(waker)) {
            return;
        }
        match self.first {
            None => self.first = Some(waker.clone()),
            Some(_) => self.rest.push(waker.clone()),
        }
    }

    fn wake_all(&self) {
        self.first
            .iter()
            .chain(&self.rest)
            .for_each(Waker::wake_by_ref);
    }
}

/// State shared by the handles and the serve loop(s) of one server.
pub(crate) struct Control {
    id: ServerId,
    name: Option<Arc<str>>,
    /// What was asked of the server: [`Signals`]' bits.
    signals: AtomicU8,
    /// Full handles alive, the serve loops' own senders not counted: when
    /// it reaches zero the server drains.
    handles: AtomicUsize,
    /// Replicas still running (more than one in a pool).
    live: AtomicUsize,
    /// Why the server stops: the one owner of which reason wins.
    reasons: Reasons,
    /// Everyone waiting in `closed()` has been told (after the watchers).
    announced: AtomicBool,
    finished: Notify,
    shared: Mutex<Shared>,
    /// What the inventory reads of the server (nothing without the
    /// `inventory` feature).
    stats: Stats,
    /// Its metrics (nothing without the `metrics` feature).
    meters: Meters,
}

/// How one replica ended, as far as the server's stop reason goes.
pub(crate) enum Ending {
    /// For a reason of its own: a panic, a failed start, a terminal
    /// message, its task dropped.
    Own(StopReason),
    /// Its mailbox was closed and ran dry, or a stop or drain was asked
    /// for.
    Drained,
}

impl Control {
    pub(crate) fn new(name: Option<Arc<str>>, replicas: usize) -> Arc<Self> {
        Arc::new(Control {
            id: ServerId::next(),
            name,
            signals: AtomicU8::new(0),
            handles: AtomicUsize::new(0),
            live: AtomicUsize::new(replicas),
            reasons: Reasons::default(),
            announced: AtomicBool::new(false),
            finished: Notify::new(),
            shared: Mutex::new(Shared::default()),
            stats: Stats::new(),
            meters: Meters::new(),
        })
    }

    /// The figures the server keeps for the inventory.
    #[inline]
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The server's metrics.
    #[inline]
    pub(crate) fn meters(&self) -> &Meters {
        &self.meters
    }

    /// The servers watching this one, and what each does when it ends.
    #[cfg(feature = "inventory")]
    pub(crate) fn watchers(&self) -> Vec<(ServerId, Then)> {
        self.shared()
            .links
            .iter()
            .flat_map(|links| &links.watchers)
            .filter_map(|watcher| Some((watcher.control.upgrade()?.id, watcher.then)))
            .collect()
    }

    /// The server's name, shared.
    #[cfg(any(feature = "inventory", feature = "metrics"))]
    pub(crate) fn shared_name(&self) -> Option<Arc<str>> {
        self.name.clone()
    }

    /// Replicas still running.
    #[cfg(feature = "inventory")]
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        // The lock is never held across user code: a poisoned one is sound.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Identifies the server: to its users, and for self-call and cycle
    /// detection.
    #[inline]
    pub(crate) fn id(&self) -> ServerId {
        self.id
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// What was asked of the server.
    #[inline]
    pub(crate) fn signals(&self) -> Signals {
        Signals(self.signals.load(Ordering::Acquire))
    }

    /// Calls from outside the server's own code are refused: it drains.
    #[inline]
    pub(crate) fn refuses_outside(&self) -> bool {
        self.signals().draining()
    }

    /// `stop()` from outside: the caller closes the mailbox.
    pub(crate) fn request_stop(&self) {
        self.reasons.asked(StopReason::Stopped);
        self.signals.fetch_or(Signals::STOP, Ordering::AcqRel);
    }

    /// End after the current handler, for `reason`: `stop()` from the
    /// server's own code, or a linked server stopped.
    pub(crate) fn request_stop_now(&self, reason: StopReason) {
        self.reasons.asked(reason);
        self.signal(Signals::STOP_NOW);
    }

    /// The server's own code asked it to stop after the current handler.
    #[inline]
    pub(crate) fn stops_now(&self) -> bool {
        self.signals().stops_now()
    }

    /// Starts draining for `reason`: calls from outside are refused, and the
    /// serve loops end once the mailbox is empty.
    pub(crate) fn drain(&self, reason: StopReason) {
        self.reasons.asked(reason);
        self.signal(Signals::DRAIN);
    }

    /// Sets `bit` and wakes the serve loops, if it was not set yet.
    fn signal(&self, bit: u8) {
        if self.signals.fetch_or(bit, Ordering::AcqRel) & bit == 0 {
            self.wake_loops();
        }
    }

    /// Wakes every serve loop of the server.
    pub(crate) fn wake_loops(&self) {
        self.shared().wakers.wake_all();
    }

    /// A serve loop runs in the task of `waker`: wake it on signals.
    pub(crate) fn register(&self, waker: &Waker) {
        self.shared().wakers.add(waker);
    }

    /// A full handle was made.
    pub(crate) fn handle_made(&self) {
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// A full handle was dropped; the last one starts the drain.
    pub(crate) fn handle_dropped(&self) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drain(StopReason::HandlesDropped);
        }
    }

    /// A replica ends the server for everyone for `reason` (a terminal
    /// message); the first such reason wins.
    pub(crate) fn set_cause(&self, reason: StopReason) {
        self.reasons.caused(reason);
    }

    /// Binds `value` to the server: it ends when the server stops, at once
    /// if it has stopped already.
    pub(crate) fn bind(&self, value: Weak<dyn Ends>) {
        let mut shared = self.shared();
        if self.reason().is_some() {
            // `finish` has ended what was bound (it sets the reason under
            // this lock): nothing bound from now on may outlive the server.
            drop(shared);
            if let Some(value) = value.upgrade() {
                value.end();
            }
            return;
        }
        let bound = &mut shared.links().bound;
        if bound.len() == bound.capacity() {
            bound.retain(|value| value.strong_count() > 0);
        }
        bound.push(value);
    }

    /// `watcher` learns when this server stops, then does `then`; at once
    /// if it has stopped already.
    pub(crate) fn watched_by(&self, watcher: &Arc<Control>, then: Then) {
        let mut shared = self.shared();
        if let Some(reason) = self.reason() {
            drop(shared);
            watcher.deliver(self.down(reason.clone()), then);
            return;
        }
        let watchers = &mut shared.links().watchers;
        if watchers.len() == watchers.capacity() {
            watchers.retain(|watcher| watcher.control.strong_count() > 0);
        }
        watchers.push(Watcher {
            control: Arc::downgrade(watcher),
            then,
        });
    }

    fn down(&self, reason: StopReason) -> Down {
        Down {
            id: self.id,
            name: self.name.clone(),
            reason,
        }
    }

    /// A server this one watches has stopped.
    fn deliver(&self, down: Down, then: Then) {
        let mut shared = self.shared();
        if self.reason().is_some() {
            return;
        }
        shared.links().downs.push((down, then));
        drop(shared);
        self.signal_again(Signals::EVENTS);
    }

    /// Sets `bit` and wakes the serve loops even if it was set: it marks
    /// new work, not a state.
    fn signal_again(&self, bit: u8) {
        self.signals.fetch_or(bit, Ordering::AcqRel);
        self.wake_loops();
    }

    /// The supervisor asks for a restart in place (see `Signals::RESTART`).
    pub(crate) fn request_restart(&self) {
        self.signal(Signals::RESTART);
    }

    /// The serve loop has taken the restart asked for (if one was).
    pub(crate) fn restart_taken(&self) {
        self.signals.fetch_and(!Signals::RESTART, Ordering::AcqRel);
    }

    /// A call served on its caller's task left a panic for the serve loop.
    pub(crate) fn fault(&self) {
        self.signal_again(Signals::FAULT);
    }

    /// The serve loop has taken the panic [`fault`](Self::fault) left.
    pub(crate) fn fault_taken(&self) {
        self.signals.fetch_and(!Signals::FAULT, Ordering::AcqRel);
    }

    /// The server's code asked for its `#[every]` periods to be evaluated
    /// again: the loop does before anything else (and callers queue until
    /// it has, as they do behind a due timer).
    pub(crate) fn reschedule(&self) {
        self.signal_again(Signals::RESCHEDULE);
    }

    /// The serve loop evaluates the periods again, as asked.
    pub(crate) fn reschedule_taken(&self) {
        self.signals
            .fetch_and(!Signals::RESCHEDULE, Ordering::AcqRel);
    }

    /// The watched servers that stopped since the last call.
    pub(crate) fn take_downs(&self) -> Vec<(Down, Then)> {
        self.signals.fetch_and(!Signals::EVENTS, Ordering::AcqRel);
        self.shared()
            .links
            .as_mut()
            .map(|links| std::mem::take(&mut links.downs))
            .unwrap_or_default()
    }

    /// A replica ended. For the last one, returns the server's stop
    /// reason (see [`Reasons::ended`]).
    pub(crate) fn replica_ended(&self, ending: Ending) -> Option<StopReason> {
        // Release publishes this replica's `cause`; Acquire, for the last,
        // sees every other replica's.
        if self.live.fetch_sub(1, Ordering::AcqRel) != 1 {
            return None;
        }
        Some(self.reasons.ended(ending))
    }

    /// The server has ended for `reason`: records it, tells its watchers
    /// (so that their `#[on_down]` comes before anything sent once the end
    /// can be observed) and ends what is bound to the server. Then the drop
    /// guard answers whoever is still queued, and [`announce`](Self::announce)s.
    pub(crate) fn finish(&self, reason: StopReason) {
        let shared = {
            let mut shared = self.shared();
            // Under the lock: a watcher added from now on is told at once.
            self.reasons.finished(reason);
            std::mem::take(&mut *shared)
        };
        let Some(links) = shared.links else {
            return;
        };
        if let Some(reason) = self.reason() {
            for watcher in &links.watchers {
                if let Some(control) = watcher.control.upgrade() {
                    control.deliver(self.down(reason.clone()), watcher.then);
                }
            }
        }
        for value in links.bound.iter().filter_map(Weak::upgrade) {
            value.end();
        }
    }

    /// Wakes everyone waiting in `closed()`: the server's end is complete.
    pub(crate) fn announce(&self) {
        self.announced.store(true, Ordering::Release);
        self.finished.notify_waiters();
    }

    /// Why the server ended, once it has.
    pub(crate) fn reason(&self) -> Option<&StopReason> {
        self.reasons.reason.get()
    }

    /// The error for a call that found the mailbox closed.
    pub(crate) fn closed_error(&self) -> CallError {
        self.reason()
            .map_or(CallError::Closed, StopReason::call_error)
    }

    /// Waits until the server has ended, and tells why.
    pub(crate) async fn closed_reason(&self) -> StopReason {
        loop {
            let mut notified = pin!(self.finished.notified());
            notified.as_mut().enable();
            if self.announced.load(Ordering::Acquire)
                && let Some(reason) = self.reason()
            {
                return reason.clone();
            }
            notified.await;
        }
    }

    /// A future that resolves once the server has ended (check
    /// [`reason`](Self::reason) after enabling it).
    pub(crate) fn finished(&self) -> tokio::sync::futures::Notified<'_> {
        self.finished.notified()
    }
}

/// Why a server stops, and which reason wins: the one place that knows the
/// precedence.
#[derive(Default)]
struct Reasons {
    /// Why a replica ended the server for everyone (a terminal message in
    /// a pool), for the last replica to report.
    cause: OnceLock<StopReason>,
    /// Why the server was first asked to stop or drain.
    asked: OnceLock<StopReason>,
    /// Set once, when the last replica has ended.
    reason: OnceLock<StopReason>,
}

impl Reasons {
    /// Asked to stop or drain for `reason`; the first ask wins.
    fn asked(&self, reason: StopReason) {
        let _ = self.asked.set(reason);
    }

    /// A replica ends the server for everyone; the first cause wins.
    fn caused(&self, reason: StopReason) {
        let _ = self.cause.set(reason);
    }

    /// The server's reason once its last replica ended with `ending`: the
    /// replica's own reason if it has one, else why a replica ended the
    /// server, else why it was asked to stop, else its handles were
    /// dropped.
    fn ended(&self, ending: Ending) -> StopReason {
        match ending {
            Ending::Own(reason) => reason,
            Ending::Drained => self
                .cause
                .get()
                .or(self.asked.get())
                .cloned()
                .unwrap_or(StopReason::HandlesDropped),
        }
    }

    /// The server has ended for `reason`, for good.
    fn finished(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
    }
}
