//! The client side shared by every generated handle.

use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;

use crate::error::{CallError, StopReason};
use crate::mailbox::{Envelope, Senders};
use crate::server::Server;

/// State shared by the handles and the serve loop(s) of one server.
pub(crate) struct Control {
    name: Option<Arc<str>>,
    /// Set once, when the last serve loop has finished.
    reason: OnceLock<StopReason>,
    finished: Notify,
    /// A stop was requested: every replica finishes its current request
    /// and ends.
    stop_requested: AtomicBool,
    /// Serve loops still running (more than one in a pool).
    live: AtomicUsize,
    /// Serve loops started.
    replicas: usize,
}

impl Control {
    pub(crate) fn new(name: Option<Arc<str>>, replicas: usize) -> Arc<Self> {
        Arc::new(Control {
            name,
            reason: OnceLock::new(),
            finished: Notify::new(),
            stop_requested: AtomicBool::new(false),
            live: AtomicUsize::new(replicas),
            replicas,
        })
    }

    /// How many serve loops the server was started with.
    pub(crate) fn replicas(&self) -> usize {
        self.replicas
    }

    /// A serve loop ended; `true` for the last one, which finishes the
    /// server for everyone.
    pub(crate) fn replica_ended(&self) -> bool {
        self.live.fetch_sub(1, Ordering::AcqRel) == 1
    }

    pub(crate) fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::Release);
    }

    /// Identifies the server for self-call detection.
    pub(crate) fn id(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    /// Records why the server stopped; the first reason wins.
    pub(crate) fn set_reason(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
    }

    /// Wakes everyone waiting in `closed()`.
    pub(crate) fn notify_finished(&self) {
        self.finished.notify_waiters();
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire)
    }

    /// The error for a call that found the mailbox closed.
    pub(crate) fn closed_error(&self) -> CallError {
        self.reason
            .get()
            .map_or(CallError::Closed, StopReason::call_error)
    }

    pub(crate) async fn closed_reason(&self) -> StopReason {
        loop {
            let mut notified = pin!(self.finished.notified());
            notified.as_mut().enable();
            if let Some(reason) = self.reason.get() {
                return reason.clone();
            }
            notified.await;
        }
    }
}

/// The runtime half of every generated handle: the mailbox senders and the
/// server's shared control state.
///
/// A generated handle (e.g. `AccountHandle`) wraps a `Handle<Account>` and
/// offers the methods below under the same names. Cloning is cheap
/// (reference counts); the server stops once every clone is dropped and the
/// mailbox has run empty.
pub struct Handle<S: Server> {
    pub(crate) senders: Senders<S::Request>,
    pub(crate) control: Arc<Control>,
}

impl<S: Server> Handle<S> {
    pub(crate) fn new(senders: Senders<S::Request>, control: Arc<Control>) -> Self {
        Handle { senders, control }
    }

    /// Stops the server and waits until it has stopped.
    ///
    /// Requests queued before the stop are still served; calls made after
    /// it get [`CallError::Closed`]. `#[on_stop]` runs, then this returns.
    /// Stopping a server that has already stopped returns at once.
    ///
    /// From inside one of the server's own handlers, `stop` cannot wait for
    /// itself: the server stops as soon as the current handler returns, and
    /// requests still queued get [`CallError::Closed`].
    pub async fn stop(&self) {
        if crate::call::serving(&self.control) {
            self.control.request_stop();
            // Wakes the other replicas of a pool, and refuses new calls.
            self.senders.close();
            return;
        }
        // A send error means the server is stopping or stopped already.
        let _ = self.senders.normal.send(Envelope::Stop).await;
        self.control.closed_reason().await;
    }

    /// `true` once the server refuses new requests (it has stopped or is
    /// stopping).
    pub fn is_closed(&self) -> bool {
        self.senders.normal.is_closed()
    }

    /// Waits until the server has stopped, and tells why.
    ///
    /// This does not stop the server: it returns when something else does
    /// (every other handle dropped, [`stop`](Self::stop), a terminal
    /// message, a panic, or a failed `#[on_start]`).
    pub async fn closed(&self) -> StopReason {
        self.control.closed_reason().await
    }

    /// The name given with [`Builder::name`](crate::Builder::name), if any.
    pub fn name(&self) -> Option<&str> {
        self.control.name.as_deref()
    }

    /// Requests waiting in the mailbox (both lanes), not counting the one
    /// being served.
    pub fn queued(&self) -> usize {
        self.senders.normal.len() + self.senders.priority.as_ref().map_or(0, |p| p.len())
    }

    /// A handle that does not keep the server alive: for a server that
    /// needs to reach itself later (a task it spawned reporting back), or
    /// for observers that should not prevent shutdown.
    pub fn downgrade(&self) -> WeakHandle<S> {
        WeakHandle {
            normal: self.senders.normal.downgrade(),
            priority: self.senders.priority.as_ref().map(|p| p.downgrade()),
            control: self.control.clone(),
        }
    }
}

/// A handle that does not keep its server alive; see
/// [`Handle::downgrade`].
pub struct WeakHandle<S: Server> {
    normal: async_channel::WeakSender<Envelope<S::Request>>,
    priority: Option<async_channel::WeakSender<Envelope<S::Request>>>,
    control: Arc<Control>,
}

impl<S: Server> WeakHandle<S> {
    /// A full handle, or `None` once the server has stopped or every full
    /// handle is gone.
    pub fn upgrade(&self) -> Option<S::Handle> {
        let normal = self.normal.upgrade()?;
        let priority = match &self.priority {
            Some(weak) => Some(weak.upgrade()?),
            None => None,
        };
        let senders = Senders { normal, priority };
        Some(S::Handle::from(Handle::new(senders, self.control.clone())))
    }
}

impl<S: Server> Clone for WeakHandle<S> {
    fn clone(&self) -> Self {
        WeakHandle {
            normal: self.normal.clone(),
            priority: self.priority.clone(),
            control: self.control.clone(),
        }
    }
}

impl<S: Server> fmt::Debug for WeakHandle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakHandle")
            .field("server", &std::any::type_name::<S>())
            .field("name", &self.control.name.as_deref())
            .finish()
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
