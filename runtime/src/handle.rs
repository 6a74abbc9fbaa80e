//! What every handle can do besides calling: stop the server, watch it, and
//! downgrade to a handle that does not keep it alive.

use std::fmt;
use std::sync::Arc;

use crate::control::Control;
use crate::error::StopReason;
use crate::mailbox::Senders;
use crate::scope;
use crate::server::{Context, Handle, Server, WeakHandle};

impl<S: Server> Handle<S> {
    pub(crate) fn new(senders: Senders<S::Request>, control: Arc<Control>) -> Self {
        Handle { senders, control }
    }

    /// Stops the server and waits until it has stopped.
    ///
    /// From the moment `stop` is called, new calls get
    /// [`CallError::Closed`](crate::CallError::Closed), on every lane;
    /// requests queued before it are still served. Then `#[on_stop]` runs,
    /// and this returns. Stopping a server that has already stopped returns
    /// at once.
    ///
    /// From inside one of the server's own handlers, `stop` cannot wait for
    /// itself: the server stops as soon as the current handler returns, and
    /// requests still queued get `Closed`.
    pub async fn stop(&self) {
        if scope::serving() == Some(self.control.id()) {
            self.control.request_stop_now();
            // Wakes the other replicas of a pool, and refuses new calls.
            self.senders.close();
            return;
        }
        self.control.request_stop();
        self.senders.close();
        self.control.closed_reason().await;
    }

    /// `true` once the server refuses new requests (it has stopped or is
    /// stopping).
    pub fn is_closed(&self) -> bool {
        self.senders.is_closed()
    }

    /// Waits until the server has stopped, and tells why.
    ///
    /// (Like tokio's `Sender::closed`, which resolves once the receiver is
    /// gone, plus the reason.) This does not stop the server: it returns when something else does
    /// (every other handle dropped, [`stop`](Self::stop), a terminal
    /// message, a panic, or a failed `#[on_start]`).
    ///
    /// # Panics
    ///
    /// When awaited from the server's own code, which would wait for itself
    /// forever: the panic is that handler's, and its caller gets
    /// [`CallError::Panicked`](crate::CallError::Panicked) saying so.
    pub async fn closed(&self) -> StopReason {
        assert!(
            scope::serving() != Some(self.control.id()),
            "a server awaited its own `closed()`, which would never resolve: \
             call `stop()` instead, or await `closed()` from another task"
        );
        self.control.closed_reason().await
    }

    /// The name given with [`Builder::name`](crate::Builder::name), if any.
    pub fn name(&self) -> Option<&str> {
        self.control.name()
    }

    /// Requests waiting in the mailbox (both lanes), not counting the one
    /// being served. (Named for what it counts: tokio's `len` on a receiver
    /// would read as the handle's length.)
    pub fn queued(&self) -> usize {
        self.senders.len()
    }

    /// A handle that does not keep the server alive: for a server that
    /// needs to reach itself later (a task it spawned reporting back), or
    /// for observers that should not prevent shutdown.
    pub fn downgrade(&self) -> WeakHandle<S> {
        WeakHandle {
            senders: self.senders.downgrade(),
            control: self.control.clone(),
        }
    }
}

impl<S: Server> Clone for Handle<S> {
    fn clone(&self) -> Self {
        Handle {
            senders: self.senders.clone(),
            control: self.control.clone(),
        }
    }
}

impl<S: Server> fmt::Debug for Handle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("server", &std::any::type_name::<S>())
            .field("name", &self.name())
            .field("closed", &self.is_closed())
            .field("queued", &self.queued())
            .finish()
    }
}

impl<S: Server> WeakHandle<S> {
    /// A full handle, or `None` once the server has stopped or every full
    /// handle is gone.
    pub fn upgrade(&self) -> Option<S::Handle> {
        let senders = self.senders.upgrade()?;
        Some(S::Handle::from(Handle::new(senders, self.control.clone())))
    }
}

impl<S: Server> Clone for WeakHandle<S> {
    fn clone(&self) -> Self {
        WeakHandle {
            senders: self.senders.clone(),
            control: self.control.clone(),
        }
    }
}

impl<S: Server> fmt::Debug for WeakHandle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakHandle")
            .field("server", &std::any::type_name::<S>())
            .field("name", &self.control.name())
            .finish()
    }
}

impl<S: Server> Context<S> {
    pub(crate) fn new(weak: WeakHandle<S>) -> Self {
        Context { weak }
    }

    /// A handle to this very server, or `None` once it refuses new
    /// requests or every outside handle is gone. Kept in the state, it
    /// keeps the server alive; keep [`weak`](Self::weak) there instead.
    ///
    /// Calls through it that wait for a reply get
    /// [`CallError::SelfCall`](crate::CallError::SelfCall) from the
    /// server's own code (they would wait for themselves); send follow-ups
    /// with `#[cast]` methods or [`no_wait`](crate::Call::no_wait), or
    /// from a task the handler spawns.
    pub fn handle(&self) -> Option<S::Handle> {
        self.weak.upgrade()
    }

    /// A handle to this server that does not keep it alive.
    pub fn weak(&self) -> WeakHandle<S> {
        self.weak.clone()
    }

    /// The name given with [`Builder::name`](crate::Builder::name), if any.
    pub fn name(&self) -> Option<&str> {
        self.weak.control.name()
    }

    /// Requests waiting in the mailbox, besides the one being served.
    pub fn queued(&self) -> usize {
        self.weak
            .senders
            .upgrade()
            .map_or(0, |senders| senders.len())
    }
}

impl<S: Server> fmt::Debug for Context<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("server", &std::any::type_name::<S>())
            .field("name", &self.name())
            .finish()
    }
}
