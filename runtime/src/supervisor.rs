//! Supervision trees in OTP's words: a `Supervisor` owns an ordered list
//! of children, restarts them by its strategy within a restart intensity,
//! and, beyond it, fails to its own supervisor.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::child::{BoxFuture, Child, Link, Member, Note, Phase, RestartKind, Spec};
use crate::error::{Down, StopReason};
use crate::id::ServerId;
use crate::registry::{LookupError, RegisterError, Registry};
use crate::serve::Spawn;
use crate::server::{Handle, Server, WeakHandle};
use crate::subscription::{Subscriber, Subscription, subscription};

/// Which children a supervisor restarts when one fails: OTP's strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Only the child that failed (OTP's `one_for_one`).
    OneForOne,
    /// Every child (OTP's `one_for_all`): the others are taken down in
    /// reverse order, then all are started again in order.
    OneForAll,
    /// The child that failed and every child started after it (OTP's
    /// `rest_for_one`), in the same way.
    RestForOne,
}

impl Strategy {
    /// The positions to restart when the child at `failed` fails.
    fn restarts(self, failed: usize, children: usize) -> std::ops::Range<usize> {
        match self {
            Strategy::OneForOne => failed..failed + 1,
            Strategy::OneForAll => 0..children,
            Strategy::RestForOne => failed..children,
        }
    }
}

/// What happened in a supervisor, as [`Supervisor::subscribe`] and
/// [`SupervisorBuilder::subscribe`] deliver it (and, with the `tracing`
/// feature, as `tracing` events).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SupervisorEvent {
    /// A child was started (at the supervisor's start, by
    /// [`Supervisor::start_child`], or started anew after a normal end).
    Started {
        /// The supervisor.
        supervisor: ServerId,
        /// The child.
        child: ServerId,
        /// The child's name, if it has one.
        name: Option<Arc<str>>,
    },
    /// A child was restarted in place: same handle, same id. One event
    /// per restart, as the restart intensity counts them, also when the
    /// new state fails its `#[on_start]` (its failure is then the reason
    /// of the next restart).
    Restarted {
        /// The supervisor.
        supervisor: ServerId,
        /// The child.
        child: ServerId,
        /// The child's name, if it has one.
        name: Option<Arc<str>>,
        /// Why: its own failure, or
        /// [`StopReason::StoppedWith`] the sibling whose failure took it
        /// down (one-for-all, rest-for-one), or, for a nested supervisor,
        /// the child whose failures it gave up on.
        reason: StopReason,
    },
    /// A child ended for good and left the supervisor.
    Ended {
        /// The supervisor.
        supervisor: ServerId,
        /// The child.
        child: ServerId,
        /// The child's name, if it has one.
        name: Option<Arc<str>>,
        /// Why it ended.
        reason: StopReason,
    },
    /// More restarts than the intensity allows: the supervisor failed.
    /// Its own supervisor decides next; a supervisor at the top shuts its
    /// children down and ends ([`SupervisorEnd::GaveUp`]).
    GaveUp {
        /// The supervisor.
        supervisor: ServerId,
        /// The child failure that was one too many.
        down: Down,
    },
}

/// How a supervisor ended, as [`Supervisor::closed`] tells.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SupervisorEnd {
    /// It was shut down ([`Supervisor::shutdown`], every `Supervisor`
    /// handle dropped, or its own supervisor).
    Shutdown,
    /// A supervisor at the top of its tree gave up: the child failure
    /// that was one too many.
    GaveUp(Down),
}

impl fmt::Display for SupervisorEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SupervisorEnd::Shutdown => f.write_str("shut down"),
            SupervisorEnd::GaveUp(down) => write!(f, "gave up after {down}"),
        }
    }
}

/// Why a child, or a supervisor's start, did not start.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartError {
    /// The child failed to start: its factory panicked, or its
    /// `#[on_start]` failed or panicked. Its name and reason are attached.
    Failed {
        /// The child's name, if it has one.
        name: Option<Arc<str>>,
        /// Why it did not start.
        reason: StopReason,
    },
    /// Another child of the supervisor has this name.
    NameTaken(Arc<str>),
    /// The supervisor registers its children
    /// ([`SupervisorBuilder::registry`]) and the registry refused the
    /// child's name; the child was stopped.
    Unregistered {
        /// The child's name.
        name: Arc<str>,
        /// Why the registry refused it.
        error: RegisterError,
    },
    /// The supervisor has ended.
    Closed,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Failed {
                name: Some(name),
                reason,
            } => write!(f, "child `{name}` failed to start: {reason}"),
            StartError::Failed { name: None, reason } => {
                write!(f, "a child failed to start: {reason}")
            }
            StartError::NameTaken(name) => write!(f, "another child is named `{name}`"),
            StartError::Unregistered { name, error } => {
                write!(f, "child `{name}` could not be registered: {error}")
            }
            StartError::Closed => f.write_str("the supervisor has ended"),
        }
    }
}

impl std::error::Error for StartError {}

/// A child as [`Supervisor::children`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildInfo {
    /// Its id (a nested supervisor's own id).
    pub id: ServerId,
    /// Its name, if it has one.
    pub name: Option<Arc<str>>,
    /// Its restart kind.
    pub restart: RestartKind,
    /// `true` for a nested supervisor.
    pub is_supervisor: bool,
}

/// Configures a supervisor and its children, then starts it: see
/// [`Supervisor`].
#[must_use = "a supervisor builder does nothing until `.start().await`"]
pub struct SupervisorBuilder {
    strategy: Strategy,
    max_restarts: usize,
    window: Duration,
    name: Option<Arc<str>>,
    kind: RestartKind,
    children: Vec<Arc<dyn Spec>>,
    registry: Option<Registry>,
    /// Taken by the first start (shared with clones: a nested
    /// supervisor's spec is cloned to start it).
    subscribers: Arc<Mutex<Vec<Subscriber<SupervisorEvent>>>>,
}

impl Clone for SupervisorBuilder {
    /// The same supervisor and children; the subscriptions go to
    /// whichever starts first.
    fn clone(&self) -> Self {
        SupervisorBuilder {
            strategy: self.strategy,
            max_restarts: self.max_restarts,
            window: self.window,
            name: self.name.clone(),
            kind: self.kind,
            children: self.children.clone(),
            registry: self.registry.clone(),
            subscribers: self.subscribers.clone(),
        }
    }
}

impl SupervisorBuilder {
    /// A supervisor with `strategy`, no children yet, and OTP's default
    /// intensity: at most 1 restart in 5 seconds.
    pub fn new(strategy: Strategy) -> Self {
        SupervisorBuilder {
            strategy,
            max_restarts: 1,
            window: Duration::from_secs(5),
            name: None,
            kind: RestartKind::Permanent,
            children: Vec::new(),
            registry: None,
            subscribers: Arc::default(),
        }
    }

    /// Restart intensity (OTP's `intensity` and `period`): at most
    /// `max_restarts` restarts within any `window`; one more and the
    /// supervisor fails (its own supervisor decides next; one at the top
    /// shuts its children down and ends). Every restart counts, of one
    /// child or of several together (one restart of a one-for-all group
    /// counts once).
    pub fn intensity(mut self, max_restarts: usize, window: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.window = window;
        self
    }

    /// The supervisor's name: in its events, its `Debug`, and as a child
    /// of another supervisor.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// Registers every named server child in `registry` under its name
    /// while it runs (OTP's `{local, Name}` in a child's start): a restart
    /// in place keeps the entry, a child started anew is registered again,
    /// and the entry goes with the child's end. A name the registry refuses
    /// fails that child's start ([`StartError::Unregistered`]); a child
    /// started anew whose name another server took meanwhile runs
    /// unregistered. Nested
    /// supervisors register their own children if given a registry.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Its restart kind as a child of another supervisor.
    pub fn restart(mut self, kind: RestartKind) -> Self {
        self.kind = kind;
        self
    }

    /// Adds a child: children start in the order they are added, each
    /// once the previous one's `#[on_start]` has finished, and stop in
    /// the reverse order.
    pub fn child<S>(mut self, child: Child<S>) -> Self
    where
        S: Spawn + Send,
        S::Handle: AsRef<Handle<S>>,
        Handle<S>: Send + Sync,
        WeakHandle<S>: Send + Sync,
    {
        self.children.push(Arc::new(child));
        self
    }

    /// Adds a nested supervisor as a child (a subtree): it starts all its
    /// children in its turn; when it gives up, this supervisor restarts it
    /// (all its children, in place) by its own strategy and intensity.
    pub fn supervisor(mut self, supervisor: SupervisorBuilder) -> Self {
        self.children.push(Arc::new(supervisor));
        self
    }

    /// Subscribes to the supervisor's events from its start on (so that
    /// the `Started` of its first children are seen). A subscriber that
    /// falls `capacity` events behind misses the next ones
    /// ([`Subscription::missed`] counts them); the supervisor never waits.
    pub fn subscribe(&mut self, capacity: usize) -> Subscription<SupervisorEvent> {
        let (subscriber, subscription) = subscription(capacity);
        lock(&self.subscribers).push(subscriber);
        subscription
    }

    /// Starts the children in order, each once the previous one has
    /// started, and returns the running supervisor. If a child fails to
    /// start, those started are stopped in reverse order and the error
    /// tells which child and why (OTP's failing `init`).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub async fn start(self) -> Result<Supervisor, StartError> {
        self.start_under(None).await
    }

    async fn start_under(self, parent: Option<Link>) -> Result<Supervisor, StartError> {
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            id: ServerId::next(),
            name: self.name.clone(),
            directory: Mutex::new(Vec::new()),
            subscribers: Mutex::new(std::mem::take(&mut *lock(&self.subscribers))),
            phase: Mutex::new(Phase::Starting),
            end: OnceLock::new(),
            finished: Notify::new(),
        });
        let mut tree = Tree {
            shared: shared.clone(),
            strategy: self.strategy,
            max_restarts: self.max_restarts,
            window: self.window,
            recent: VecDeque::new(),
            slots: Vec::new(),
            next_key: 0,
            notes_tx,
            notes,
            commands,
            registry: self.registry.clone(),
            parent,
            pending: VecDeque::new(),
            escalated: None,
            end: None,
        };
        for spec in &self.children {
            if let Err(error) = tree.start(spec.clone()).await {
                tree.shutdown_all().await;
                tree.finish(SupervisorEnd::Shutdown, false);
                return Err(error);
            }
        }
        *lock(&shared.phase) = Phase::Running;
        tokio::spawn(tree.run());
        Ok(Supervisor {
            shared,
            commands: commands_tx,
        })
    }
}

impl fmt::Debug for SupervisorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorBuilder")
            .field("strategy", &self.strategy)
            .field("max_restarts", &self.max_restarts)
            .field("window", &self.window)
            .field("name", &self.name)
            .field("children", &self.children.len())
            .finish()
    }
}

/// A running supervisor (OTP's `supervisor`): it owns an ordered list of
/// children, each built by a factory, and restarts them by its
/// [`Strategy`], within a restart intensity, as their [`RestartKind`]
/// says.
///
/// ```
/// use std::time::Duration;
/// use patchboard::{server, CallError, Child, Strategy, SupervisorBuilder};
///
/// #[derive(Default)]
/// struct Counter(u32);
/// #[server]
/// impl Counter {
///     fn bump(&mut self) -> u32 { self.0 += 1; self.0 }
///     fn crash(&self) { panic!("asked to crash") }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let supervisor = SupervisorBuilder::new(Strategy::OneForOne)
///     .intensity(3, Duration::from_secs(5))
///     .child(Child::new(Counter::default).name("counter"))
///     .start()
///     .await
///     .unwrap();
/// let counter = supervisor.child::<Counter>("counter").unwrap();
/// assert_eq!(counter.bump().await, Ok(1));
/// assert!(matches!(counter.crash().await, Err(CallError::Panicked(_))));
/// // Restarted in place: the same handle reaches a fresh state.
/// assert_eq!(counter.bump().await, Ok(1));
/// supervisor.shutdown().await;
/// assert!(counter.is_closed());
/// # }
/// ```
///
/// # Handles stay valid across restarts
///
/// A child restarted after a failure is restarted **in place**: its
/// mailbox, its handles and its [`ServerId`] stay; only the state is new
/// (built by the child's factory, then its `#[on_start]`). A caller never
/// looks a child up again after a restart — OTP's pids do not give that.
/// While a child is down between two incarnations, calls to it wait in
/// its mailbox and are served by the next incarnation.
///
/// **What a caller sees when one-for-all (or rest-for-one) takes a sibling
/// down**: the sibling finishes the handler it is running (its caller
/// gets that answer), then runs `#[on_stop]`; the requests queued in its
/// mailbox, and those sent while it is down, stay queued and are served
/// by its next incarnation once its `#[on_start]` has finished — none is
/// refused or lost. Only replies its old state held (deferred
/// [`Reply`](crate::Reply)s kept in the state) are answered
/// [`CallError::Closed`](crate::CallError::Closed), since the state that
/// would have answered them is gone. The child that failed answers its
/// failing call with the failure (e.g. `Panicked`) and the rest as above.
///
/// # Ordered start, reverse-order shutdown
///
/// Children start in order, each after the previous one's `#[on_start]`
/// has finished; a restart of several children takes them down in reverse
/// order and starts them again in order. [`shutdown`](Self::shutdown)
/// stops them in reverse order, each [drained](crate::Handle::drain)
/// within its [budget](Child::shutdown), then stopped at once.
///
/// # Lifetime
///
/// The supervisor holds a handle to each child, so its children live as
/// long as it does. It runs while any `Supervisor` handle (clones of this
/// one) exists, or while its own supervisor runs; when the last handle is
/// dropped it shuts its children down, as [`shutdown`](Self::shutdown)
/// does.
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
}

/// What a supervisor's handles and its task share.
struct Shared {
    id: ServerId,
    name: Option<Arc<str>>,
    /// The children in order, for lookups.
    directory: Mutex<Vec<Entry>>,
    subscribers: Mutex<Vec<Subscriber<SupervisorEvent>>>,
    /// As a child of another supervisor.
    phase: Mutex<Phase>,
    end: OnceLock<SupervisorEnd>,
    finished: Notify,
}

struct Entry {
    key: u64,
    info: ChildInfo,
    type_name: &'static str,
    /// A `Handle<S>` or a `Supervisor`.
    handle: Arc<dyn Any + Send + Sync>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Never held across user code: a poisoned lock is sound.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A child just started: its key and its handle.
type Started = (u64, Arc<dyn Any + Send + Sync>);

enum Command {
    Start(Arc<dyn Spec>, oneshot::Sender<Result<Started, StartError>>),
    Terminate(ServerId, oneshot::Sender<Option<StopReason>>),
    /// From the parent: take every child down, for a restart in place.
    TakeDown(oneshot::Sender<()>),
    /// From the parent: start every child that is down again.
    BringUp(oneshot::Sender<()>),
    /// `from_parent`: the parent asked, so it need not be told.
    Shutdown {
        from_parent: bool,
    },
}

impl Supervisor {
    /// The supervisor's id (from the same counter as servers' ids).
    pub fn id(&self) -> ServerId {
        self.shared.id
    }

    /// The name given with [`SupervisorBuilder::name`], if any.
    pub fn name(&self) -> Option<&str> {
        self.shared.name.as_deref()
    }

    /// The child named `name`, as its own handle: the same handle across
    /// its restarts in place. [`LookupError::WrongType`] if it is not an
    /// `S`; [`LookupError::NotFound`] if no child has the name, or it has
    /// ended.
    pub fn child<S: Server>(&self, name: &str) -> Result<S::Handle, LookupError> {
        let directory = lock(&self.shared.directory);
        let entry = directory
            .iter()
            .find(|entry| entry.info.name.as_deref() == Some(name))
            .ok_or(LookupError::NotFound)?;
        let handle = entry
            .handle
            .downcast_ref::<Handle<S>>()
            .ok_or(LookupError::WrongType {
                expected: std::any::type_name::<S>(),
                found: entry.type_name,
            })?;
        match handle.control.reason() {
            Some(_) => Err(LookupError::NotFound),
            None => Ok(S::Handle::from(handle.clone())),
        }
    }

    /// The nested supervisor named `name`, if there is one.
    pub fn supervisor(&self, name: &str) -> Option<Supervisor> {
        let directory = lock(&self.shared.directory);
        directory
            .iter()
            .find(|entry| entry.info.name.as_deref() == Some(name))
            .and_then(|entry| entry.handle.downcast_ref::<Supervisor>().cloned())
    }

    /// The children, in start order.
    pub fn children(&self) -> Vec<ChildInfo> {
        let directory = lock(&self.shared.directory);
        directory.iter().map(|entry| entry.info.clone()).collect()
    }

    /// Starts a child at run time (OTP's `start_child`, Elixir's
    /// `DynamicSupervisor`), after the others, and returns its handle once
    /// its `#[on_start]` has finished. It is restarted by the supervisor's
    /// strategy and its own restart kind, like the children given at the
    /// start, and stops first at shutdown.
    pub async fn start_child<S>(&self, child: Child<S>) -> Result<S::Handle, StartError>
    where
        S: Spawn + Send,
        S::Handle: AsRef<Handle<S>>,
        Handle<S>: Send + Sync,
        WeakHandle<S>: Send + Sync,
    {
        let (reply, started) = oneshot::channel();
        self.commands
            .send(Command::Start(Arc::new(child), reply))
            .map_err(|_| StartError::Closed)?;
        let (_, handle) = started.await.map_err(|_| StartError::Closed)??;
        match handle.downcast_ref::<Handle<S>>() {
            Some(handle) => Ok(S::Handle::from(handle.clone())),
            None => unreachable!("a `Child<S>` starts a server of type `S`"),
        }
    }

    /// Stops the child `id` for good (OTP's `terminate_child` and
    /// `delete_child`): drained within its budget, then stopped. Returns
    /// why it ended, or `None` if the supervisor has no such child.
    pub async fn terminate_child(&self, id: ServerId) -> Option<StopReason> {
        let (reply, done) = oneshot::channel();
        self.commands.send(Command::Terminate(id, reply)).ok()?;
        done.await.ok().flatten()
    }

    /// Subscribes to the supervisor's events from now on; see
    /// [`SupervisorBuilder::subscribe`].
    pub fn subscribe(&self, capacity: usize) -> Subscription<SupervisorEvent> {
        let (subscriber, subscription) = subscription(capacity);
        let mut subscribers = lock(&self.shared.subscribers);
        // Once ended, a subscription ends at once (`finish` clears the
        // list after setting the end, under this lock).
        if self.shared.end.get().is_none() {
            subscribers.push(subscriber);
        }
        subscription
    }

    /// Stops every child in reverse start order, each drained within its
    /// budget then stopped, and ends the supervisor; waits until done.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown { from_parent: false });
        self.closed().await;
    }

    /// Waits until the supervisor has ended, and tells how.
    pub async fn closed(&self) -> SupervisorEnd {
        loop {
            let mut finished = pin!(self.shared.finished.notified());
            finished.as_mut().enable();
            if let Some(end) = self.shared.end.get() {
                return end.clone();
            }
            finished.await;
        }
    }

    /// `true` once the supervisor has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.end.get().is_some()
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("id", &self.shared.id)
            .field("name", &self.shared.name)
            .field("children", &lock(&self.shared.directory).len())
            .finish()
    }
}

/// A nested supervisor as its parent's child.
impl Spec for SupervisorBuilder {
    fn name(&self) -> Option<&Arc<str>> {
        self.name.as_ref()
    }

    fn type_name(&self) -> &'static str {
        "patchboard::Supervisor"
    }

    fn kind(&self) -> RestartKind {
        self.kind
    }

    fn spawn(&self, link: Link) -> BoxFuture<'_, Result<Box<dyn Member>, StopReason>> {
        Box::pin(async move {
            match self.clone().start_under(Some(link)).await {
                Ok(supervisor) => Ok(Box::new(supervisor) as Box<dyn Member>),
                Err(StartError::Failed { reason, .. }) => Err(reason),
                Err(_) => Err(StopReason::Stopped),
            }
        })
    }
}

impl Member for Supervisor {
    fn id(&self) -> ServerId {
        self.shared.id
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        lock(&self.shared.phase)
    }

    fn handle(&self) -> Arc<dyn Any + Send + Sync> {
        Arc::new(self.clone())
    }

    fn register(&self, _: &Registry, _: &str) -> Result<(), RegisterError> {
        Ok(())
    }

    fn started(&self) -> BoxFuture<'_, Result<(), StopReason>> {
        // `start_under` returned once every child had started.
        Box::pin(async { Ok(()) })
    }

    fn take_down(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (reply, done) = oneshot::channel();
            if self.commands.send(Command::TakeDown(reply)).is_ok() {
                let _ = done.await;
            }
        })
    }

    fn bring_up(&self) -> BoxFuture<'_, Result<(), StopReason>> {
        Box::pin(async move {
            let (reply, done) = oneshot::channel();
            self.commands
                .send(Command::BringUp(reply))
                .map_err(|_| StopReason::Stopped)?;
            done.await.map_err(|_| StopReason::Stopped)
        })
    }

    fn shutdown(&self, _reason: StopReason) -> BoxFuture<'_, StopReason> {
        Box::pin(async move {
            let _ = self.commands.send(Command::Shutdown { from_parent: true });
            match self.closed().await {
                SupervisorEnd::GaveUp(down) => StopReason::StoppedWith(Box::new(down)),
                SupervisorEnd::Shutdown => StopReason::Stopped,
            }
        })
    }
}

/// The supervisor's task: its children and what it decides for them.
struct Tree {
    shared: Arc<Shared>,
    strategy: Strategy,
    max_restarts: usize,
    window: Duration,
    /// When the restarts within the window happened.
    recent: VecDeque<Instant>,
    slots: Vec<Slot>,
    next_key: u64,
    notes_tx: mpsc::UnboundedSender<Note>,
    notes: mpsc::UnboundedReceiver<Note>,
    commands: mpsc::UnboundedReceiver<Command>,
    registry: Option<Registry>,
    parent: Option<Link>,
    /// Children found failed while others were being restarted.
    pending: VecDeque<u64>,
    /// Gave up after this child failure, and waits for the parent to
    /// decide.
    escalated: Option<Down>,
    end: Option<SupervisorEnd>,
}

struct Slot {
    key: u64,
    spec: Arc<dyn Spec>,
    member: Box<dyn Member>,
}

impl Tree {
    async fn run(mut self) {
        let mut from_parent = false;
        while self.end.is_none() {
            if let Some(key) = self.pending.pop_front() {
                self.fault(key).await;
                continue;
            }
            tokio::select! {
                biased;
                Some(note) = self.notes.recv() => match note {
                    Note::Failed(key) | Note::Gone(key) => self.fault(key).await,
                },
                command = self.commands.recv() => match command {
                    None => {
                        self.shutdown_all().await;
                        self.end = Some(SupervisorEnd::Shutdown);
                    }
                    Some(Command::Shutdown { from_parent: asked }) => {
                        from_parent = asked;
                        self.shutdown_all().await;
                        self.end = Some(SupervisorEnd::Shutdown);
                    }
                    Some(Command::Start(spec, reply)) => {
                        let started = self.start(spec).await;
                        let _ = reply.send(started);
                    }
                    Some(Command::Terminate(id, reply)) => {
                        let ended = self.terminate(id).await;
                        let _ = reply.send(ended);
                    }
                    Some(Command::TakeDown(reply)) => {
                        for at in (0..self.slots.len()).rev() {
                            self.slots[at].member.take_down().await;
                        }
                        *lock(&self.shared.phase) = Phase::Parked(None, None);
                        let _ = reply.send(());
                    }
                    Some(Command::BringUp(reply)) => {
                        // A restart of this supervisor: a fresh history.
                        let cause = self.escalated.take();
                        self.recent.clear();
                        let keys: Vec<u64> = self.slots.iter().map(|slot| slot.key).collect();
                        self.bring_up_all(&keys, cause.as_ref()).await;
                        *lock(&self.shared.phase) = Phase::Running;
                        let _ = reply.send(());
                    }
                },
            }
        }
        if let Some(end) = self.end.take() {
            self.finish(end, from_parent);
        }
    }

    /// Records the end, wakes `closed()`, and tells the parent if it did
    /// not ask.
    fn finish(&mut self, end: SupervisorEnd, from_parent: bool) {
        *lock(&self.shared.phase) = Phase::Gone(match &end {
            SupervisorEnd::Shutdown => StopReason::Stopped,
            SupervisorEnd::GaveUp(down) => StopReason::StoppedWith(Box::new(down.clone())),
        });
        let _ = self.shared.end.set(end);
        self.shared.finished.notify_waiters();
        lock(&self.shared.subscribers).clear();
        if let Some(parent) = &self.parent
            && !from_parent
        {
            let _ = parent.notes.send(Note::Gone(parent.key));
        }
    }

    fn at(&self, key: u64) -> Option<usize> {
        self.slots.iter().position(|slot| slot.key == key)
    }

    fn emit(&self, event: SupervisorEvent) {
        #[cfg(feature = "tracing")]
        trace(&event);
        lock(&self.shared.subscribers)
            .retain(|subscriber| subscriber.send(event.clone()).is_connected());
    }

    fn down(&self, at: usize, reason: StopReason) -> Down {
        Down {
            id: self.slots[at].member.id(),
            name: self.slots[at].spec.name().cloned(),
            reason,
        }
    }

    /// Whether one more restart is within the intensity, counting it.
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= self.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max_restarts {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    /// Starts a child and waits for its start; adds it on success.
    async fn start(&mut self, spec: Arc<dyn Spec>) -> Result<Started, StartError> {
        let name = spec.name().cloned();
        if let Some(name) = &name
            && self.slots.iter().any(|slot| slot.spec.name() == Some(name))
        {
            return Err(StartError::NameTaken(name.clone()));
        }
        let key = self.next_key;
        self.next_key += 1;
        let link = Link {
            supervisor: self.shared.id,
            notes: self.notes_tx.clone(),
            key,
        };
        let failed = |reason| StartError::Failed {
            name: name.clone(),
            reason,
        };
        let member = spec.spawn(link).await.map_err(failed)?;
        if let Err(reason) = member.started().await {
            member.shutdown(reason.clone()).await;
            return Err(failed(reason));
        }
        if let Err(error) = self.register(&*member, name.as_ref()) {
            member.shutdown(StopReason::Stopped).await;
            return Err(error);
        }
        self.emit(SupervisorEvent::Started {
            supervisor: self.shared.id,
            child: member.id(),
            name: name.clone(),
        });
        lock(&self.shared.directory).push(Entry {
            key,
            type_name: spec.type_name(),
            info: ChildInfo {
                id: member.id(),
                name,
                restart: spec.kind(),
                is_supervisor: member.handle().is::<Supervisor>(),
            },
            handle: member.handle(),
        });
        let handle = member.handle();
        self.slots.push(Slot { key, spec, member });
        Ok((key, handle))
    }

    /// Registers a child that just started, if the supervisor registers
    /// its children and the child has a name.
    fn register(&self, member: &dyn Member, name: Option<&Arc<str>>) -> Result<(), StartError> {
        let (Some(registry), Some(name)) = (&self.registry, name) else {
            return Ok(());
        };
        member
            .register(registry, name)
            .map_err(|error| StartError::Unregistered {
                name: name.clone(),
                error,
            })
    }

    /// Removes the child at `at`, which has ended for `reason`.
    fn remove(&mut self, at: usize, reason: StopReason) {
        let slot = self.slots.remove(at);
        lock(&self.shared.directory).retain(|entry| entry.key != slot.key);
        self.emit(SupervisorEvent::Ended {
            supervisor: self.shared.id,
            child: slot.member.id(),
            name: slot.spec.name().cloned(),
            reason,
        });
    }

    async fn terminate(&mut self, id: ServerId) -> Option<StopReason> {
        let at = self.slots.iter().position(|slot| slot.member.id() == id)?;
        let reason = self.slots[at].member.shutdown(StopReason::Stopped).await;
        self.remove(at, reason.clone());
        Some(reason)
    }

    /// Stops every child, in reverse order, for good.
    async fn shutdown_all(&mut self) {
        while let Some(at) = self.slots.len().checked_sub(1) {
            let reason = self.slots[at].member.shutdown(StopReason::Stopped).await;
            self.remove(at, reason);
        }
    }

    /// A child failed or ended: decide.
    async fn fault(&mut self, key: u64) {
        let Some(at) = self.at(key) else {
            return;
        };
        let (reason, gone) = {
            let phase = self.slots[at].member.phase();
            match &*phase {
                Phase::Parked(Some(reason), _) | Phase::Escalated(reason) => {
                    (reason.clone(), false)
                }
                Phase::Gone(reason) => (reason.clone(), true),
                // Restarted already (as part of a group), or asked.
                _ => return,
            }
        };
        if self.escalated.is_some() {
            // The parent decides for the whole subtree.
            return;
        }
        let restart = match self.slots[at].spec.kind() {
            RestartKind::Permanent => true,
            RestartKind::Transient => !gone || !is_normal(&reason),
            RestartKind::Temporary => false,
        };
        if !restart {
            let reason = self.slots[at].member.shutdown(reason).await;
            self.remove(at, reason);
            return;
        }
        let down = self.down(at, reason.clone());
        if !self.allow() {
            self.give_up(down).await;
            return;
        }
        let keys: Vec<u64> = self
            .strategy
            .restarts(at, self.slots.len())
            .map(|at| self.slots[at].key)
            .collect();
        // Down in reverse order: temporary siblings for good, the others
        // to be restarted (the one that failed is down already; a nested
        // supervisor that gave up takes all its children down).
        for &key in keys.iter().rev() {
            let Some(at) = self.at(key) else { continue };
            if self.slots[at].spec.kind() == RestartKind::Temporary
                && self.slots[at].member.id() != down.id
            {
                let why = StopReason::StoppedWith(Box::new(down.clone()));
                let reason = self.slots[at].member.shutdown(why).await;
                self.remove(at, reason);
            } else {
                self.slots[at].member.take_down().await;
            }
        }
        self.bring_up_all(&keys, Some(&down)).await;
    }

    /// Starts again, in order, the children of `keys` that are down:
    /// restarted in place, or started anew after a normal end. A child
    /// that fails to start is handled next (as a failure of its own).
    async fn bring_up_all(&mut self, keys: &[u64], cause: Option<&Down>) {
        for &key in keys {
            let Some(at) = self.at(key) else { continue };
            let (down, gone) = {
                let phase = self.slots[at].member.phase();
                (phase.is_down(), matches!(*phase, Phase::Gone(_)))
            };
            if !down {
                continue;
            }
            let reason = match cause {
                Some(cause) if cause.id == self.slots[at].member.id() => cause.reason.clone(),
                Some(cause) => StopReason::StoppedWith(Box::new(cause.clone())),
                None => self.slots[at]
                    .member
                    .phase()
                    .reason()
                    .unwrap_or(StopReason::Stopped),
            };
            let started = if gone {
                self.start_anew(at, reason).await
            } else {
                let started = self.slots[at].member.bring_up().await;
                // Every restart is told, as the intensity counts it: one
                // whose new state fails its start too (that failure is
                // the reason of the next).
                self.emit(SupervisorEvent::Restarted {
                    supervisor: self.shared.id,
                    child: self.slots[at].member.id(),
                    name: self.slots[at].spec.name().cloned(),
                    reason,
                });
                started
            };
            if started.is_err() {
                self.pending.push_back(key);
                return;
            }
        }
    }

    /// A new server for a child that ended normally (new handle, new id).
    async fn start_anew(&mut self, at: usize, reason: StopReason) -> Result<(), StopReason> {
        let slot = &self.slots[at];
        let link = Link {
            supervisor: self.shared.id,
            notes: self.notes_tx.clone(),
            key: slot.key,
        };
        let member = slot.spec.spawn(link).await?;
        let started = member.started().await;
        self.emit(SupervisorEvent::Ended {
            supervisor: self.shared.id,
            child: slot.member.id(),
            name: slot.spec.name().cloned(),
            reason,
        });
        let key = slot.key;
        if let Some(entry) = lock(&self.shared.directory)
            .iter_mut()
            .find(|entry| entry.key == key)
        {
            entry.info.id = member.id();
            entry.handle = member.handle();
        }
        self.slots[at].member = member;
        // A name another server took meanwhile is a failed start, as for
        // `start_child`: the new server is stopped, and the child handled
        // as failed (a permanent one is started anew again, within the
        // intensity), never left running unnamed.
        if started.is_ok()
            && let Err(error) = self.register(&*self.slots[at].member, self.slots[at].spec.name())
        {
            let why = StopReason::StartFailed(error.to_string().into());
            let _ = self.slots[at].member.shutdown(why.clone()).await;
            return Err(why);
        }
        if started.is_ok() {
            self.emit(SupervisorEvent::Started {
                supervisor: self.shared.id,
                child: self.slots[at].member.id(),
                name: self.slots[at].spec.name().cloned(),
            });
        }
        started
    }

    /// One restart too many: fail to the parent, or, at the top, shut
    /// down and end.
    async fn give_up(&mut self, down: Down) {
        self.emit(SupervisorEvent::GaveUp {
            supervisor: self.shared.id,
            down: down.clone(),
        });
        match &self.parent {
            Some(parent) => {
                *lock(&self.shared.phase) =
                    Phase::Escalated(StopReason::StoppedWith(Box::new(down.clone())));
                self.escalated = Some(down);
                let _ = parent.notes.send(Note::Failed(parent.key));
            }
            None => {
                self.shutdown_all().await;
                self.end = Some(SupervisorEnd::GaveUp(down));
            }
        }
    }
}

/// An end asked for through the child's own handles.
fn is_normal(reason: &StopReason) -> bool {
    matches!(
        reason,
        StopReason::Stopped
            | StopReason::Drained
            | StopReason::HandlesDropped
            | StopReason::Terminal
    )
}

#[cfg(feature = "tracing")]
fn trace(event: &SupervisorEvent) {
    match event {
        SupervisorEvent::Started {
            supervisor,
            child,
            name,
        } => tracing::info!(%supervisor, %child, name = name.as_deref(), "child started"),
        SupervisorEvent::Restarted {
            supervisor,
            child,
            name,
            reason,
        } => {
            tracing::warn!(%supervisor, %child, name = name.as_deref(), %reason, "child restarted")
        }
        SupervisorEvent::Ended {
            supervisor,
            child,
            name,
            reason,
        } => tracing::info!(%supervisor, %child, name = name.as_deref(), %reason, "child ended"),
        SupervisorEvent::GaveUp { supervisor, down } => {
            tracing::error!(%supervisor, %down, "supervisor gave up")
        }
    }
}
