//! One child of a supervisor: how to build it (`Child`), and the gate
//! through which its serve task asks the supervisor, between two
//! incarnations, whether the next one may start.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::builder::Builder;
use crate::control::{Control, Ends};
use crate::error::StopReason;
use crate::id::ServerId;
use crate::registry::{RegisterError, Registry};
use crate::restart::{Restart, Supervision, Verdict};
use crate::scope;
use crate::serve::Spawn;
use crate::server::{Handle, Server, WeakHandle};

/// A boxed future, for the supervisor's type-erased children.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// When a supervisor restarts a child: OTP's restart types, with their
/// names and meaning.
///
/// | | after a failure | after a normal end | when a sibling's failure takes it down |
/// | --- | --- | --- | --- |
/// | `Permanent` | restarted | started anew | restarted |
/// | `Transient` | restarted | removed | restarted |
/// | `Temporary` | removed | removed | removed |
///
/// A *failure* is a handler's panic (under
/// [`PanicPolicy::Stop`](crate::PanicPolicy::Stop)), a failed or panicking
/// `#[on_start]`, a factory that panics, or a link
/// ([`stop_with`](crate::Handle::stop_with)) to a server that ended. A
/// *normal end* is one asked for through the child's own handles:
/// [`stop`](crate::Handle::stop), [`drain`](crate::Handle::drain), a
/// terminal message. A failure is restarted **in place**: the same handle,
/// the same [`ServerId`], the same mailbox. A normal end closed the
/// child's mailbox (its callers were told `Closed`), so a permanent child
/// is *started anew*: a new server, with a new handle and id, found through
/// [`Supervisor::child`](crate::Supervisor::child).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RestartKind {
    /// Always restarted (OTP's `permanent`, the default).
    #[default]
    Permanent,
    /// Restarted only after a failure (OTP's `transient`).
    Transient,
    /// Never restarted (OTP's `temporary`).
    Temporary,
}

/// One child of a [`Supervisor`](crate::Supervisor): how to build it (a
/// factory, called for its first state and for every restart), what kind
/// of restart it gets, and how long it may take to stop (OTP's child
/// specification).
///
/// ```
/// use std::time::Duration;
/// use patchboard::{server, Child, RestartKind};
///
/// #[derive(Default)]
/// struct Cache;
/// #[server]
/// impl Cache {
///     fn get(&self) {}
/// }
///
/// let child = Child::new(Cache::default)
///     .name("cache")
///     .restart(RestartKind::Transient)
///     .shutdown(Duration::from_secs(1));
/// # let _ = child;
/// ```
pub struct Child<S> {
    pub(crate) factory: Arc<dyn Fn() -> S + Send + Sync>,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) kind: RestartKind,
    pub(crate) shutdown: Duration,
    pub(crate) capacity: Option<usize>,
}

impl<S> Child<S> {
    /// A child whose states `factory` builds: once to start it, and again
    /// for every restart.
    pub fn new(factory: impl Fn() -> S + Send + Sync + 'static) -> Self {
        Child {
            factory: Arc::new(factory),
            name: None,
            kind: RestartKind::Permanent,
            shutdown: Duration::from_secs(5),
            capacity: None,
        }
    }

    /// The child's name: its server's [`Builder::name`], unique among the
    /// supervisor's children, and the key of
    /// [`Supervisor::child`](crate::Supervisor::child) (OTP's child id).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// When it is restarted; [`RestartKind::Permanent`] by default.
    pub fn restart(mut self, kind: RestartKind) -> Self {
        self.kind = kind;
        self
    }

    /// How long it may take to [drain](crate::Handle::drain) when the
    /// supervisor stops it for good (OTP's `shutdown`; 5 seconds by
    /// default, as OTP's). Past it, the child is stopped at once: requests
    /// still queued get [`CallError::Closed`](crate::CallError::Closed).
    /// (The handler running then still finishes: patchboard never drops
    /// a handler mid-await, as OTP's `brutal_kill` would.)
    pub fn shutdown(mut self, budget: Duration) -> Self {
        self.shutdown = budget;
        self
    }

    /// Its mailbox's capacity ([`Builder::capacity`]).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }
}

impl<S> Clone for Child<S> {
    fn clone(&self) -> Self {
        Child {
            factory: self.factory.clone(),
            name: self.name.clone(),
            kind: self.kind,
            shutdown: self.shutdown,
            capacity: self.capacity,
        }
    }
}

impl<S> fmt::Debug for Child<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("server", &std::any::type_name::<S>())
            .field("name", &self.name)
            .field("restart", &self.kind)
            .field("shutdown", &self.shutdown)
            .finish()
    }
}

/// What a child tells its supervisor's task without being asked.
#[derive(Debug)]
pub(crate) enum Note {
    /// The child (by key) failed while running: it waits for a verdict.
    Failed(u64),
    /// The child (by key) ended for good while running.
    Gone(u64),
}

/// Where a child reports to: its supervisor's task, under its key.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    /// The supervisor's id, for the inventory.
    pub(crate) supervisor: ServerId,
    pub(crate) notes: mpsc::UnboundedSender<Note>,
    pub(crate) key: u64,
}

/// Where a child is between its supervisor and its serve task.
pub(crate) enum Phase {
    /// An incarnation is starting, and the supervisor waits for it.
    Starting,
    Running,
    /// The supervisor asked the incarnation to end.
    Asked,
    /// Between incarnations: `Some(reason)` after a failure, `None` after
    /// a restart asked for; the serve task waits for the verdict.
    Parked(Option<StopReason>, Option<oneshot::Sender<Verdict>>),
    /// Ended for good.
    Gone(StopReason),
    /// A nested supervisor gave up and waits for its parent (the reason
    /// is `StoppedWith` the child that failed).
    Escalated(StopReason),
}

impl Phase {
    /// Not running: parked, gone, escalated.
    pub(crate) fn is_down(&self) -> bool {
        matches!(
            self,
            Phase::Parked(..) | Phase::Gone(_) | Phase::Escalated(_)
        )
    }

    /// Why it is down, if it failed or ended.
    pub(crate) fn reason(&self) -> Option<StopReason> {
        match self {
            Phase::Parked(reason, _) => reason.clone(),
            Phase::Gone(reason) | Phase::Escalated(reason) => Some(reason.clone()),
            _ => None,
        }
    }
}

/// The supervisor's side of one server child, shared with its serve task
/// (as its `Supervision`) and with its `Control` (as what ends with it).
pub(crate) struct Gate {
    link: Link,
    phase: Mutex<Phase>,
    changed: Notify,
    control: OnceLock<Arc<Control>>,
}

impl Gate {
    fn new(link: Link) -> Arc<Gate> {
        Arc::new(Gate {
            link,
            phase: Mutex::new(Phase::Starting),
            changed: Notify::new(),
            control: OnceLock::new(),
        })
    }

    pub(crate) fn phase(&self) -> MutexGuard<'_, Phase> {
        // Never held across user code: a poisoned lock is sound.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the phase and wakes whoever waits for a change.
    fn set(&self, phase: &mut Phase, next: Phase) -> Phase {
        let was = std::mem::replace(phase, next);
        self.changed.notify_waiters();
        was
    }

    /// Waits until `done` holds for the phase.
    pub(crate) async fn wait(&self, done: impl Fn(&Phase) -> bool) {
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            if done(&self.phase()) {
                return;
            }
            changed.await;
        }
    }

    /// Parked: the verdict goes to the serve task; `Starting` after a
    /// restart. `false` if it was not parked.
    pub(crate) fn release(&self, verdict: Verdict) -> bool {
        let mut phase = self.phase();
        let Phase::Parked(_, sender) = &mut *phase else {
            return false;
        };
        let sender = sender.take();
        if matches!(verdict, Verdict::Restart) {
            self.set(&mut phase, Phase::Starting);
        }
        drop(phase);
        if let Some(sender) = sender {
            let _ = sender.send(verdict);
        }
        true
    }

    /// Asks the running incarnation to end (it parks); `false` if it was
    /// not running.
    pub(crate) fn ask(&self) -> bool {
        let mut phase = self.phase();
        if !matches!(*phase, Phase::Starting | Phase::Running) {
            return false;
        }
        self.set(&mut phase, Phase::Asked);
        drop(phase);
        if let Some(control) = self.control.get() {
            control.request_restart();
        }
        true
    }
}

impl Supervision for Gate {
    fn started(&self) {
        let mut phase = self.phase();
        if matches!(*phase, Phase::Starting) {
            self.set(&mut phase, Phase::Running);
        }
    }

    fn ended(&self, reason: Option<StopReason>) -> BoxFuture<'static, Verdict> {
        let (sender, verdict) = oneshot::channel();
        let mut phase = self.phase();
        let was = self.set(&mut phase, Phase::Parked(reason.clone(), Some(sender)));
        drop(phase);
        // A failure nobody waits for: the supervisor's task learns of it.
        if matches!(was, Phase::Running) {
            let _ = self.link.notes.send(Note::Failed(self.link.key));
        }
        Box::pin(async move {
            // The supervisor is gone: the child ends with it.
            verdict
                .await
                .unwrap_or(Verdict::End(reason.unwrap_or(StopReason::Stopped)))
        })
    }
}

/// Called when the child's server has ended for good.
impl Ends for Gate {
    fn end(&self) {
        let reason = self
            .control
            .get()
            .and_then(|control| control.reason().cloned())
            .unwrap_or(StopReason::Aborted);
        let mut phase = self.phase();
        if matches!(*phase, Phase::Gone(_)) {
            return;
        }
        let was = self.set(&mut phase, Phase::Gone(reason));
        drop(phase);
        if matches!(was, Phase::Running) {
            let _ = self.link.notes.send(Note::Gone(self.link.key));
        }
    }
}

/// A child as its supervisor's task sees it, whatever its type: a server
/// (`ServerChild`) or a nested supervisor.
pub(crate) trait Member: Send + Sync {
    fn id(&self) -> ServerId;
    fn phase(&self) -> MutexGuard<'_, Phase>;
    /// Its handle for the supervisor's directory: a `Handle<S>` or a
    /// `Supervisor`.
    fn handle(&self) -> Arc<dyn Any + Send + Sync>;
    /// Registers it in `registry` under `name` (a nested supervisor: not
    /// at all, it is no server).
    fn register(&self, registry: &Registry, name: &str) -> Result<(), RegisterError>;
    /// Waits until the incarnation that is starting has started (`Ok`) or
    /// failed.
    fn started(&self) -> BoxFuture<'_, Result<(), StopReason>>;
    /// Ends the running incarnation and waits until it is down.
    fn take_down(&self) -> BoxFuture<'_, ()>;
    /// Starts the next incarnation of a parked child and waits until it
    /// has started (`Ok`) or failed.
    fn bring_up(&self) -> BoxFuture<'_, Result<(), StopReason>>;
    /// Ends it for good (a failed child with `reason`, a running one by
    /// draining within its budget) and waits; tells why it ended.
    fn shutdown(&self, reason: StopReason) -> BoxFuture<'_, StopReason>;
}

/// How to make a child, again and again: a `Child<S>` or a nested
/// supervisor's builder.
pub(crate) trait Spec: Send + Sync {
    fn name(&self) -> Option<&Arc<str>>;
    /// The server's type, for lookups of the wrong type.
    fn type_name(&self) -> &'static str;
    fn kind(&self) -> RestartKind;
    /// Spawns a new child reporting through `link`, without waiting for it
    /// to start; `Err` if it could not even be built.
    fn spawn(&self, link: Link) -> BoxFuture<'_, Result<Box<dyn Member>, StopReason>>;
}

/// A server child.
pub(crate) struct ServerChild<S: Server> {
    handle: Handle<S>,
    gate: Arc<Gate>,
    shutdown: Duration,
}

impl<S> Spec for Child<S>
where
    S: Spawn + Send,
    S::Handle: AsRef<Handle<S>>,
    Handle<S>: Send + Sync,
    WeakHandle<S>: Send + Sync,
{
    fn name(&self) -> Option<&Arc<str>> {
        self.name.as_ref()
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<S>()
    }

    fn kind(&self) -> RestartKind {
        self.kind
    }

    fn spawn(&self, link: Link) -> BoxFuture<'_, Result<Box<dyn Member>, StopReason>> {
        let spawned = self.spawn_server(link);
        Box::pin(async move { spawned.map(|child| Box::new(child) as Box<dyn Member>) })
    }
}

impl<S> Child<S>
where
    S: Spawn + Send,
    S::Handle: AsRef<Handle<S>>,
    Handle<S>: Send + Sync,
    WeakHandle<S>: Send + Sync,
{
    fn spawn_server(&self, link: Link) -> Result<ServerChild<S>, StopReason> {
        let factory = &self.factory;
        let state = catch_unwind(AssertUnwindSafe(|| factory()))
            .map_err(|panic| StopReason::Panicked(scope::message_of(panic)))?;
        let supervisor = link.supervisor;
        let gate = Gate::new(link);
        let factory = self.factory.clone();
        let policy = Restart::new(move || factory()).supervised(gate.clone());
        let mut builder = Builder::new(state).restart(policy);
        if let Some(name) = &self.name {
            builder = builder.name(&**name);
        }
        if let Some(capacity) = self.capacity {
            builder = builder.capacity(capacity);
        }
        let handle = builder.spawn().as_ref().clone();
        let control = handle.control.clone();
        control.stats().supervised_by(supervisor);
        let _ = gate.control.set(control.clone());
        // Bound first, checked after: a server that ended in between has
        // set its reason, which the check sees (see `Registry::register`).
        let weak: Weak<dyn Ends> = Arc::downgrade(&gate) as Weak<dyn Ends>;
        control.bind(weak);
        if control.reason().is_some() {
            gate.end();
        }
        Ok(ServerChild {
            handle,
            gate,
            shutdown: self.shutdown,
        })
    }
}

impl<S> Member for ServerChild<S>
where
    S: Server,
    Handle<S>: Send + Sync,
    WeakHandle<S>: Send + Sync,
{
    fn id(&self) -> ServerId {
        self.handle.id()
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.gate.phase()
    }

    fn handle(&self) -> Arc<dyn Any + Send + Sync> {
        Arc::new(self.handle.clone())
    }

    fn register(&self, registry: &Registry, name: &str) -> Result<(), RegisterError> {
        registry.register(name, &self.handle)
    }

    fn started(&self) -> BoxFuture<'_, Result<(), StopReason>> {
        Box::pin(async move {
            self.gate
                .wait(|phase| !matches!(phase, Phase::Starting))
                .await;
            match &*self.gate.phase() {
                Phase::Running => Ok(()),
                down => Err(down.reason().unwrap_or(StopReason::Stopped)),
            }
        })
    }

    fn take_down(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.gate.ask();
            self.gate.wait(Phase::is_down).await;
        })
    }

    fn bring_up(&self) -> BoxFuture<'_, Result<(), StopReason>> {
        Box::pin(async move {
            self.gate.release(Verdict::Restart);
            self.started().await
        })
    }

    fn shutdown(&self, reason: StopReason) -> BoxFuture<'_, StopReason> {
        Box::pin(async move {
            let control = &self.handle.control;
            // Refuses calls from outside; the loop ends once the mailbox is
            // empty.
            control.drain(StopReason::Drained);
            let budget = tokio::time::sleep(self.shutdown);
            let mut budget = pin!(budget);
            let mut overrun = false;
            loop {
                // A parked child has no loop to drain: it ends now.
                self.gate.release(Verdict::End(reason.clone()));
                let gone = match &*self.gate.phase() {
                    Phase::Gone(reason) => Some(reason.clone()),
                    _ => None,
                };
                if let Some(reason) = gone {
                    // Gone is told as the server ends, before its last state
                    // is dropped; its end is complete (`closed()`) once it
                    // is, and a shut-down child holds nothing any more.
                    control.closed_reason().await;
                    return reason;
                }
                tokio::select! {
                    // Gone, or parked again with a verdict to give.
                    () = self.gate.wait(|phase| matches!(phase, Phase::Gone(_) | Phase::Parked(_, Some(_)))) => {}
                    () = &mut budget, if !overrun => {
                        overrun = true;
                        control.request_stop_now(StopReason::Stopped);
                        self.handle.senders.close();
                    }
                }
            }
        })
    }
}
