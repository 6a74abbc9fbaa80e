//! What can go wrong around a call, and why a server stopped.

use std::fmt;
use std::sync::Arc;

use crate::id::ServerId;

/// What went wrong *around* a call: the server's own answer, including its
/// own error type, always arrives inside the `Ok`.
///
/// `CallError` is cheap to clone and `#[non_exhaustive]`: match the variants
/// you care about and keep a wildcard arm.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum CallError {
    /// The server has stopped (or is stopping) and will not serve this call.
    ///
    /// Requests still queued when a server stops get this error, and so does
    /// every call made after it stopped, at once.
    Closed,
    /// No reply arrived within the call's timeout. The time spent waiting
    /// for room in the mailbox counts towards it.
    Timeout,
    /// The mailbox was full and the call was made with
    /// [`try_now`](crate::Call::try_now).
    Full,
    /// The handler panicked while serving this call; the panic message is
    /// attached.
    Panicked(PanicMessage),
    /// The server's `#[on_start]` hook failed, so the server never served
    /// requests; the hook's error, formatted with `Display`, is attached.
    StartFailed(Arc<str>),
    /// A handler (or hook, or timer) called its own server and would have
    /// waited for itself forever.
    SelfCall,
    /// A handler called a server that is, directly or through other
    /// servers, waiting for this very handler (A waits for B, B calls A):
    /// both would have waited forever. The call that would have closed the
    /// cycle fails instead.
    Deadlock,
    /// The server took the request but dropped its [`Reply`](crate::Reply)
    /// without answering.
    NoReply,
    /// [`Call::blocking`](crate::Call::blocking) was used on a thread that
    /// drives an async runtime, where blocking could deadlock it.
    BlockingInRuntime,
    /// A remote server (the `nats` feature): nothing serves its subjects
    /// right now (NATS answered "no responders" at once).
    NoResponders,
    /// A remote server (the `nats` feature): the request or its answer was
    /// lost or refused on the way (the connection, the message system's
    /// limits, a request or answer that could not be encoded or decoded);
    /// what happened is attached.
    Transport(Arc<str>),
}

impl CallError {
    /// `true` when the server is gone for good: [`Closed`](Self::Closed) or
    /// [`StartFailed`](Self::StartFailed). Retrying the same handle is
    /// pointless after such an error.
    pub fn is_closed(&self) -> bool {
        matches!(self, CallError::Closed | CallError::StartFailed(_))
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Closed => f.write_str("server closed"),
            CallError::Timeout => f.write_str("call timed out"),
            CallError::Full => f.write_str("server mailbox is full"),
            CallError::Panicked(msg) => write!(f, "handler panicked: {msg}"),
            CallError::StartFailed(why) => write!(f, "server failed to start: {why}"),
            CallError::SelfCall => f.write_str("server called itself and would deadlock"),
            CallError::Deadlock => {
                f.write_str("call would close a cycle of servers waiting for each other")
            }
            CallError::NoReply => f.write_str("server dropped the reply without answering"),
            CallError::BlockingInRuntime => {
                f.write_str("blocking call made on an async runtime thread")
            }
            CallError::NoResponders => f.write_str("no remote server answers on its subject"),
            CallError::Transport(why) => write!(f, "remote call failed on the way: {why}"),
        }
    }
}

impl std::error::Error for CallError {}

/// The message of a caught panic (the `&str` or `String` it was raised
/// with, or a placeholder for other payloads).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PanicMessage(Arc<str>);

impl PanicMessage {
    pub(crate) fn from_payload(payload: &(dyn std::any::Any + Send)) -> Self {
        let text = if let Some(s) = payload.downcast_ref::<&'static str>() {
            s
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.as_str()
        } else {
            "non-string panic payload"
        };
        PanicMessage(Arc::from(text))
    }

    pub(crate) fn new(text: &str) -> Self {
        PanicMessage(Arc::from(text))
    }

    /// The message as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PanicMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PanicMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// Why a server stopped, as reported by
/// [`Handle::closed`](crate::Handle::closed) and
/// [`Handle::stop`](crate::Handle::stop).
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum StopReason {
    /// Every handle was dropped and the mailbox ran empty.
    HandlesDropped,
    /// [`Handle::stop`](crate::Handle::stop) was called (from outside, or by
    /// the server's own code).
    Stopped,
    /// [`Handle::drain`](crate::Handle::drain) was called, or a server it
    /// [drains after](crate::Handle::drain_after) stopped, and everything
    /// queued, including what the server sent itself meanwhile, was served.
    Drained,
    /// A server it was linked to with
    /// [`stop_with`](crate::Handle::stop_with) stopped; which one and why is
    /// attached.
    StoppedWith(Box<Down>),
    /// A terminal message (a method taking `self`) consumed the server.
    Terminal,
    /// A handler panicked and the panic policy stopped the server.
    Panicked(PanicMessage),
    /// The `#[on_start]` hook returned an error (formatted with `Display`).
    StartFailed(Arc<str>),
    /// The serve task was dropped without finishing, because its tokio
    /// runtime shut down. `#[on_stop]` could not run.
    Aborted,
}

impl StopReason {
    /// The error a call gets when it reaches a server that stopped for this
    /// reason.
    pub(crate) fn call_error(&self) -> CallError {
        match self {
            StopReason::StartFailed(why) => CallError::StartFailed(why.clone()),
            _ => CallError::Closed,
        }
    }

    /// The error for a caller whose deferred reply the server still held
    /// when it stopped for this reason: the panic that stopped it, if any.
    pub(crate) fn held_reply_error(&self) -> CallError {
        match self {
            StopReason::Panicked(message) => CallError::Panicked(message.clone()),
            other => other.call_error(),
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::HandlesDropped => f.write_str("every handle was dropped"),
            StopReason::Stopped => f.write_str("stopped by a handle"),
            StopReason::Drained => f.write_str("drained"),
            StopReason::StoppedWith(down) => write!(f, "stopped with {down}"),
            StopReason::Terminal => f.write_str("consumed by a terminal message"),
            StopReason::Panicked(msg) => write!(f, "handler panicked: {msg}"),
            StopReason::StartFailed(why) => write!(f, "start failed: {why}"),
            StopReason::Aborted => f.write_str("aborted by runtime shutdown"),
        }
    }
}

/// A server that another one watched has stopped: what the watcher's
/// `#[on_down]` hook receives (see [`Handle::monitor`](crate::Handle::monitor)).
///
/// Its [`id`](Self::id) compares with any handle's: `handle.id() == down.id`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Down {
    /// The id of the server that stopped.
    pub id: ServerId,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) reason: StopReason,
}

impl Down {
    /// The stopped server's name, if it was given one with
    /// [`Builder::name`](crate::Builder::name).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Why it stopped.
    pub fn reason(&self) -> &StopReason {
        &self.reason
    }
}

impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "server `{name}` ({})", self.reason),
            None => write!(f, "a watched server ({})", self.reason),
        }
    }
}
