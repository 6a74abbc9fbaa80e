//! The reply half of a call, and how a panic reaches the caller.
//!
//! Every call carries a [`Reply`] inside its request; the caller keeps the
//! matching [`ReplyReceiver`]. A reply is answered exactly once: with the
//! handler's value ([`Reply::send`]), with a [`CallError`] from the serve
//! loop (`fail`), or by its `Drop`, which answers `NoReply`, or `Panicked`
//! when the drop happens while a handler unwinds.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::{CallError, PanicMessage};

type Outcome<T> = Result<T, CallError>;

/// The right to answer one call, exactly once.
///
/// The `#[server]` macro creates and answers replies for ordinary methods.
/// A method that wants to answer *later* (OTP's `noreply` + `reply/2`) takes
/// a `Reply<T>` argument instead of returning `T`: it may store the reply in
/// its state or move it into a spawned task and call [`send`](Self::send)
/// whenever the answer is ready. The caller still awaits a plain
/// `Result<T, CallError>`.
///
/// Dropping a reply without answering gives the caller
/// [`CallError::NoReply`]; dropping it while a handler panics gives
/// [`CallError::Panicked`]. A caller is never left waiting.
#[must_use = "a dropped `Reply` answers its caller with `CallError::NoReply`"]
pub struct Reply<T: 'static> {
    tx: Tx<T>,
}

/// The sender, and whether the request runs even if nobody waits. One enum
/// rather than `Option` plus a flag: it keeps a reply, and so every
/// request and mailbox slot, 8 bytes smaller.
enum Tx<T: 'static> {
    /// Skipped by the server if the caller has gone.
    Waited(oneshot::Sender<Outcome<T>>),
    /// Runs even if nobody waits (`no_wait`).
    Detached(oneshot::Sender<Outcome<T>>),
    /// Answered.
    Done,
}

impl<T: 'static> Tx<T> {
    fn take(&mut self) -> Option<oneshot::Sender<Outcome<T>>> {
        match std::mem::replace(self, Tx::Done) {
            Tx::Waited(tx) | Tx::Detached(tx) => Some(tx),
            Tx::Done => None,
        }
    }

    fn as_ref(&self) -> Option<&oneshot::Sender<Outcome<T>>> {
        match self {
            Tx::Waited(tx) | Tx::Detached(tx) => Some(tx),
            Tx::Done => None,
        }
    }
}

/// The caller's half of a [`Reply`]: a future of the answer.
pub(crate) struct ReplyReceiver<T>(oneshot::Receiver<Outcome<T>>);

/// A connected reply pair: the [`Reply`] travels in the request, the
/// receiver stays with the caller.
pub(crate) fn channel<T: 'static>() -> (Reply<T>, ReplyReceiver<T>) {
    let (tx, rx) = oneshot::channel();
    (Reply { tx: Tx::Waited(tx) }, ReplyReceiver(rx))
}

impl<T: 'static> Reply<T> {
    /// Answers the call with `value`.
    ///
    /// Returns `Err(value)` if the caller has stopped waiting (it timed out
    /// or dropped its call); the value is handed back so nothing is lost
    /// silently.
    pub fn send(mut self, value: T) -> Result<(), T> {
        match self.tx.take() {
            Some(tx) => tx.send(Ok(value)).map_err(|outcome| match outcome {
                Ok(value) => value,
                Err(_) => unreachable!("a reply only ever carries `Ok` from `send`"),
            }),
            None => Err(value),
        }
    }

    /// `true` once the caller has stopped waiting (timed out, dropped its
    /// call, or sent it with [`no_wait`](crate::Call::no_wait)). A server can
    /// skip work that nobody will receive.
    pub fn is_closed(&self) -> bool {
        self.tx.as_ref().is_none_or(|tx| tx.is_closed())
    }

    fn fail_with(&mut self, error: CallError) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(error));
        }
    }
}

impl<T: 'static> Drop for Reply<T> {
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        if std::thread::panicking() {
            // The panic message is not known yet; the serve loop answers
            // with it once it has caught the panic.
            crate::scope::defer(Box::new(move |msg: &PanicMessage| {
                let _ = tx.send(Err(CallError::Panicked(msg.clone())));
            }));
        } else {
            let _ = tx.send(Err(CallError::NoReply));
        }
    }
}

impl<T: 'static> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// What the serve loop needs from the reply inside a request, whatever its
/// value type. Generated code exposes it through
/// [`Message::reply_slot`](crate::__private::Message::reply_slot).
pub trait ReplySlot: Send {
    /// The caller is gone and did not ask for the request to run anyway.
    fn is_abandoned(&self) -> bool;
    /// Run the request even if nobody waits for the answer
    /// ([`no_wait`](crate::Call::no_wait)).
    fn detach(&mut self);
    /// Answer with an error instead of a value.
    fn fail(&mut self, error: CallError);
}

impl<T: Send + 'static> ReplySlot for Reply<T> {
    fn is_abandoned(&self) -> bool {
        matches!(&self.tx, Tx::Waited(tx) if tx.is_closed())
    }

    fn detach(&mut self) {
        if let Tx::Waited(tx) = std::mem::replace(&mut self.tx, Tx::Done) {
            self.tx = Tx::Detached(tx);
        }
    }

    fn fail(&mut self, error: CallError) {
        self.fail_with(error);
    }
}

impl<T> Future for ReplyReceiver<T> {
    type Output = Outcome<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<T>> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|received| match received {
                Ok(outcome) => outcome,
                // Only reachable if the reply was leaked by `mem::forget` or
                // lost with the whole runtime.
                Err(_) => Err(CallError::Closed),
            })
    }
}
