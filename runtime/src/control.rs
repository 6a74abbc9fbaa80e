//! `Control`: the one piece of state shared by a server's handles and its
//! serve loops (one per replica in a pool). Everything the two sides need to
//! know of each other lives here: the server's identity, whether a stop was
//! asked for, how many replicas still run, why the server ended, and what
//! must end with it.

use std::pin::pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::Notify;

use crate::error::{CallError, StopReason};

/// Something created by a server's code that must end when the server
/// stops, wherever it is then (a subscription kept in the final state).
pub(crate) trait Ends: Send + Sync {
    fn end(&self);
}

/// No stop asked for.
const RUNNING: u8 = 0;
/// `stop()` from outside: the mailbox is closed, what was queued is served.
const STOP: u8 = 1;
/// `stop()` from the server's own code: end after the current handler.
const STOP_NOW: u8 = 2;

/// State shared by the handles and the serve loop(s) of one server.
pub(crate) struct Control {
    name: Option<Arc<str>>,
    /// What was asked of the server: `RUNNING`, `STOP` or `STOP_NOW`.
    stop: AtomicU8,
    /// Replicas still running (more than one in a pool).
    live: AtomicUsize,
    /// Why a replica ended the server for everyone (a terminal message in
    /// a pool), for the last replica to report.
    cause: OnceLock<StopReason>,
    /// Set once, when the last replica has ended.
    reason: OnceLock<StopReason>,
    finished: Notify,
    /// What the server's code created that ends with the server.
    bound: Mutex<Vec<Weak<dyn Ends>>>,
}

/// How one replica ended, as far as the server's stop reason goes.
pub(crate) enum Ending {
    /// For a reason of its own: a panic, a failed start, a terminal
    /// message, its task dropped.
    Own(StopReason),
    /// Its mailbox was closed and ran dry, or a stop was asked for.
    Drained,
}

impl Control {
    pub(crate) fn new(name: Option<Arc<str>>, replicas: usize) -> Arc<Self> {
        Arc::new(Control {
            name,
            stop: AtomicU8::new(RUNNING),
            live: AtomicUsize::new(replicas),
            cause: OnceLock::new(),
            reason: OnceLock::new(),
            finished: Notify::new(),
            bound: Mutex::new(Vec::new()),
        })
    }

    /// Identifies the server for self-call and cycle detection.
    #[inline]
    pub(crate) fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// `stop()` from outside: report `Stopped` once the mailbox ran dry.
    pub(crate) fn request_stop(&self) {
        let _ = self
            .stop
            .compare_exchange(RUNNING, STOP, Ordering::AcqRel, Ordering::Acquire);
    }

    /// `stop()` from the server's own code: end after the current handler.
    pub(crate) fn request_stop_now(&self) {
        self.stop.store(STOP_NOW, Ordering::Release);
    }

    /// The server's own code asked it to stop after the current handler.
    #[inline]
    pub(crate) fn stops_now(&self) -> bool {
        self.stop.load(Ordering::Acquire) == STOP_NOW
    }

    /// A replica ends the server for everyone for `reason` (a terminal
    /// message); the first such reason wins.
    pub(crate) fn set_cause(&self, reason: StopReason) {
        let _ = self.cause.set(reason);
    }

    /// Binds `value` to the server: it ends when the server stops.
    pub(crate) fn bind(&self, value: Weak<dyn Ends>) {
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        if bound.len() == bound.capacity() {
            bound.retain(|value| value.strong_count() > 0);
        }
        bound.push(value);
    }

    /// A replica ended. For the last one, returns the server's stop
    /// reason: the replica's own reason if it has one, else why a replica
    /// ended the server, else why the mailbox closed.
    pub(crate) fn replica_ended(&self, ending: Ending) -> Option<StopReason> {
        // Release publishes this replica's `cause`; Acquire, for the last,
        // sees every other replica's.
        if self.live.fetch_sub(1, Ordering::AcqRel) != 1 {
            return None;
        }
        Some(match ending {
            Ending::Own(reason) => reason,
            Ending::Drained => match self.cause.get() {
                Some(cause) => cause.clone(),
                None if self.stop.load(Ordering::Acquire) == RUNNING => StopReason::HandlesDropped,
                None => StopReason::Stopped,
            },
        })
    }

    /// The server has ended for `reason`: records it, ends what is bound
    /// to the server and wakes everyone waiting in `closed()`.
    pub(crate) fn finish(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        let bound = std::mem::take(&mut *self.bound.lock().unwrap_or_else(|e| e.into_inner()));
        for value in bound.iter().filter_map(Weak::upgrade) {
            value.end();
        }
        self.finished.notify_waiters();
    }

    /// Why the server ended, once it has.
    pub(crate) fn reason(&self) -> Option<&StopReason> {
        self.reason.get()
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
            if let Some(reason) = self.reason() {
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
