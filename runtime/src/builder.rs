//! Configuring a server before it starts.

use std::fmt;
use std::sync::Arc;

use crate::handle::{Control, Handle};
use crate::mailbox::mailbox;
use crate::serve::serve;
use crate::server::{PanicPolicy, Server};

/// Configures a server, then spawns it.
///
/// ```
/// use switchboard::{server, Builder};
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
        }
    }

    /// The mailbox holds at most `capacity` requests (per lane); callers
    /// wait for room beyond that, or get
    /// [`CallError::Full`](crate::CallError::Full) with
    /// [`try_now`](crate::Call::try_now). Zero is raised to one.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
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

    /// Starts the server on the current tokio runtime and returns its
    /// handle.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn spawn(self) -> S::Handle {
        let (senders, mailbox) = mailbox(self.capacity, S::OPTIONS.priority_lane);
        let control = Control::new(self.name);
        tokio::spawn(serve(self.server, mailbox, control.clone(), self.on_panic));
        S::Handle::from(Handle::new(senders, control))
    }
}

impl<S: Server> fmt::Debug for Builder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("server", &std::any::type_name::<S>())
            .field("capacity", &self.capacity)
            .field("name", &self.name)
            .field("on_panic", &self.on_panic)
            .finish()
    }
}
