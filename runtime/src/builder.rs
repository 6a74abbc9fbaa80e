//! Configuring a server before it starts.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{self, Poll};

use tokio::sync::oneshot;

use crate::control::Control;
use crate::error::StopReason;
use crate::inline::Slot;
use crate::mailbox::mailbox;
use crate::observe;
use crate::restart::Restart;
use crate::serve::{Exited, Replica, Spawn, Task};
use crate::server::{Context, Handle, PanicPolicy, Server};

/// The largest pool; larger sizes are lowered to it.
pub const MAX_POOL_SIZE: usize = 1024;

/// Configures a server, then spawns it.
///
/// (The same role and shape as `tokio::runtime::Builder`: settings by
/// chained methods, then one call that starts it.)
///
/// ```
/// use patchboard::{server, Builder};
///
/// struct Counter(u64);
///
/// #[server]
/// impl Counter {
///     fn bump(&mut self) -> u64 { self.0 += 1; self.0 }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let counter = Builder::new(Counter(0)).capacity(8).name("counter").spawn();
/// assert_eq!(counter.bump().await, Ok(1));
/// assert_eq!(counter.name(), Some("counter"));
/// # }
/// ```
#[must_use = "a builder does nothing until `.spawn()`"]
pub struct Builder<S: Server> {
    server: S,
    capacity: usize,
    name: Option<Arc<str>>,
    on_panic: PanicPolicy,
    restart: Option<Restart<S>>,
    pool: Option<Pool<S>>,
}

/// A pool's size, and how its extra replicas are made (`S::clone`, which
/// only a `Clone` server has).
struct Pool<S> {
    replicas: usize,
    clone: fn(&S) -> S,
}

impl<S: Server> Builder<S> {
    /// Starts configuring `server`, with the settings of its `#[server(..)]`
    /// attribute as defaults.
    pub fn new(server: S) -> Self {
        Builder {
            server,
            capacity: S::OPTIONS.capacity,
            name: None,
            on_panic: S::OPTIONS.on_panic,
            restart: None,
            pool: None,
        }
    }

    /// The mailbox holds at most `capacity` requests (per lane); callers
    /// wait for room beyond that, or get
    /// [`CallError::Full`](crate::CallError::Full) with
    /// [`try_now`](crate::Call::try_now). Zero is raised to one, and more
    /// than [`MAX_CAPACITY`](crate::MAX_CAPACITY) lowered to it.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// A name for logs and `Debug` output ([`Handle::name`]).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// What happens when a handler panics; overrides
    /// `#[server(on_panic = ..)]`.
    pub fn on_panic(mut self, policy: PanicPolicy) -> Self {
        self.on_panic = policy;
        self
    }

    /// Restarts the server with a fresh state after a handler panics; see
    /// [`Restart`].
    pub fn restart(mut self, policy: Restart<S>) -> Self {
        self.restart = Some(policy);
        self
    }
}

/// Spawning. (`Spawn` is implemented by `#[server]` for every server.)
impl<S: Spawn> Builder<S> {
    /// Starts the server on the current tokio runtime and returns its
    /// handle.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`; for a
    /// `#[server(local)]` server, outside a `tokio::task::LocalSet`, like
    /// `tokio::task::spawn_local`.
    pub fn spawn(self) -> S::Handle {
        self.start(None)
    }

    /// Like [`spawn`](Self::spawn), and also returns an [`Exit`]: a future
    /// of why the server stopped and its final state. It resolves in every
    /// case, including "every handle was dropped", which no handle can
    /// observe.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn spawn_with_exit(self) -> (S::Handle, Exit<S>) {
        let (tx, rx) = oneshot::channel();
        (self.start(Some(tx)), Exit { rx })
    }

    fn start(self, exit: Option<oneshot::Sender<Exited<S>>>) -> S::Handle {
        let replicas = self.pool.as_ref().map_or(1, |pool| pool.replicas);
        let (senders, mailbox) = mailbox(self.capacity, S::OPTIONS.priority_levels, replicas);
        let control = Control::new(self.name, replicas);
        observe::spawned::<S, _>(&control, &senders);
        // The tasks spawned below carry the server's name in tokio-console.
        let _naming = observe::Naming::set::<S>(&control);
        let mut handle = Handle::new(senders, control.clone());
        // A pool's exit reports the reason only; a single replica's carries
        // the final state.
        let (pool_exit, replica_exit) = match &self.pool {
            Some(_) => (exit, None),
            None => (None, exit),
        };
        if let Some(pool) = &self.pool {
            for _ in 1..pool.replicas {
                let state = (pool.clone)(&self.server);
                let replica = Replica::new(
                    mailbox.clone(),
                    Context::new(handle.senders.clone(), control.clone()),
                    self.on_panic,
                    self.restart.as_ref(),
                    None,
                    None,
                );
                S::spawn_task(Task::serve(replica, state), None);
            }
        }
        let context = Context::new(handle.senders.clone(), control.clone());
        // A server with one serve loop lets its callers serve synchronous
        // calls themselves while it is idle (`inline.rs`). (The serve
        // loop's own context has no way to the slot: the slot holds it.)
        let slot = (S::INLINE && self.pool.is_none()).then(|| Slot::new(&context, self.on_panic));
        let replica = Replica::new(
            mailbox,
            context,
            self.on_panic,
            self.restart.as_ref(),
            replica_exit,
            slot.clone(),
        );
        handle.senders.inline = S::spawn_task(Task::serve(replica, self.server), slot);
        if let Some(tx) = pool_exit {
            S::spawn_task(Task::report_exit(control, tx), None);
        }
        S::Handle::from(handle)
    }
}

impl<S: Server + Clone> Builder<S> {
    /// Runs `replicas` copies of the server (clones of the one given) on one
    /// shared mailbox: up to `replicas` requests are served at once, each
    /// replica serial on its own state. One handle reaches them all.
    ///
    /// Each replica runs its own `#[on_start]`, `#[on_stop]` and timers; a
    /// panic stops (or, with [`restart`](Self::restart), restarts) only the
    /// replica it happened in; [`Handle::stop`] stops every replica: requests
    /// queued before the stop are served (by whichever replicas are still
    /// running), later ones get [`CallError::Closed`](crate::CallError::Closed).
    /// `#[priority]` requests go to whichever replica is free first. Zero is
    /// raised to one, and more than [`MAX_POOL_SIZE`] lowered to it.
    pub fn pool(mut self, replicas: usize) -> Self {
        self.pool = Some(Pool {
            replicas: replicas.clamp(1, MAX_POOL_SIZE),
            clone: S::clone,
        });
        self
    }
}

impl<S: Server> fmt::Debug for Builder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("server", &std::any::type_name::<S>())
            .field("capacity", &self.capacity)
            .field("name", &self.name)
            .field("on_panic", &self.on_panic)
            .field("restart", &self.restart)
            .field(
                "replicas",
                &self.pool.as_ref().map_or(1, |pool| pool.replicas),
            )
            .finish()
    }
}

/// Resolves when a server spawned with
/// [`Builder::spawn_with_exit`] has stopped: why, and its final state.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Exit<S> {
    rx: oneshot::Receiver<Exited<S>>,
}

impl<S> Future for Exit<S> {
    type Output = Exited<S>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<Exited<S>> {
        Pin::new(&mut self.rx).poll(cx).map(|exited| {
            exited.unwrap_or(Exited {
                reason: StopReason::Aborted,
                state: None,
            })
        })
    }
}

impl<S> fmt::Debug for Exit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exit").finish_non_exhaustive()
    }
}
