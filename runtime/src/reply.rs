//! The reply half of a call, and how every way of ending reaches the caller.
//!
//! Every call that waits carries a [`Reply`] inside its request; the caller
//! keeps the matching [`ReplyReceiver`]. A reply is answered exactly once:
//! with the handler's value ([`Reply::send`]), with a [`CallError`] from the
//! serve loop ([`ReplySlot::fail`]), or by its `Drop`: `NoReply`, or, when
//! the drop happens while server code unwinds or while the serve loop
//! disposes of a state or an unfinished handler, the error the loop gives
//! (the panic's message, `Closed`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::CallError;
use crate::scope::{self, Chain};

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
/// A caller is never left waiting: dropping a reply without answering gives
/// the caller [`CallError::NoReply`]; dropping it while a handler panics
/// gives [`CallError::Panicked`]; and when the server stops, every caller
/// whose deferred reply is still unanswered gets an error at once (the panic
/// that stopped the server, or [`CallError::Closed`]), wherever the reply
/// is — in the final state returned by
/// [`Exit`](crate::Exit), or in a task the server spawned. A deferred reply
/// must therefore be answered before its server stops; a later
/// [`send`](Self::send) hands the value back.
#[must_use = "a dropped `Reply` answers its caller with `CallError::NoReply`"]
pub struct Reply<T: 'static> {
    tx: Tx<T>,
    /// The servers waiting for this reply, when the call came from a
    /// handler; see `scope`.
    chain: Option<Arc<Chain>>,
    /// When and as which call it was made, for its request's span.
    sent: crate::sent::Sent,
    /// When the caller gives up, for a remote server's request deadline.
    #[cfg(feature = "nats")]
    pub(crate) deadline: Option<tokio::time::Instant>,
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
    let reply = Reply {
        tx: Tx::Waited(tx),
        chain: None,
        sent: crate::sent::Sent::now(),
        #[cfg(feature = "nats")]
        deadline: None,
    };
    (reply, ReplyReceiver(rx))
}

impl<T: 'static> Reply<T> {
    /// Answers the call with `value`.
    ///
    /// Returns `Err(value)` if the caller has stopped waiting (it timed out,
    /// dropped its call, or its server stopped); the value is handed back so
    /// nothing is lost silently.
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

    /// Sent with `no_wait`: nobody waits for the answer.
    #[cfg(feature = "nats")]
    pub(crate) fn is_detached(&self) -> bool {
        matches!(self.tx, Tx::Detached(_))
    }

    /// Waits until [`is_closed`](Self::is_closed): for a task that holds a
    /// deferred reply and should stop working once nobody waits for it
    /// (`tokio::select!` it against the work).
    pub async fn closed(&mut self) {
        std::future::poll_fn(|cx| match &mut self.tx {
            Tx::Waited(tx) | Tx::Detached(tx) => tx.poll_closed(cx),
            Tx::Done => Poll::Ready(()),
        })
        .await;
    }

    /// The caller gave up on a call it waited for (a `no_wait` call or one
    /// already answered never counts).
    fn caller_gone(&self) -> bool {
        matches!(&self.tx, Tx::Waited(tx) if tx.is_closed())
    }
}

pin_project_lite::pin_project! {
    /// A handler serving a call, run so that its code can learn whether
    /// the caller gave up (`Context::is_cancelled`/`cancelled`), and, for
    /// `#[cancellable]` messages, dropped at its next await once the
    /// caller has. Generated code only.
    #[doc(hidden)]
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Observed<'r, F, T: 'static> {
        #[pin]
        handler: Option<F>,
        reply: &'r mut Reply<T>,
        cancel: bool,
    }
}

/// `handler`, serving the call answered by `reply`; resolves to `None` if a
/// `cancel`lable handler was dropped because its caller gave up. Generated
/// code only.
#[doc(hidden)]
pub fn observe<F: Future>(
    reply: &mut Reply<F::Output>,
    cancel: bool,
    handler: F,
) -> Observed<'_, F, F::Output> {
    Observed {
        handler: Some(handler),
        reply,
        cancel,
    }
}

impl<F: Future> Future for Observed<'_, F, F::Output> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(handler) = this.handler.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let gone = this.reply.caller_gone();
        if gone && *this.cancel {
            // Dropped here, inside the serve loop's catch: a panic from
            // its `Drop` is this request's.
            this.handler.set(None);
            scope::note_cancelled();
            return Poll::Ready(None);
        }
        let outer = scope::enter_call(gone);
        let polled = handler.poll(cx);
        let watch = scope::leave_call(outer);
        match polled {
            Poll::Ready(value) => {
                this.handler.set(None);
                Poll::Ready(Some(value))
            }
            Poll::Pending => {
                if (watch || *this.cancel)
                    && !gone
                    && let Tx::Waited(tx) = &mut this.reply.tx
                    && tx.poll_closed(cx).is_ready()
                {
                    // Gone since the check above: poll again to tell.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }
}

impl<F> fmt::Debug for Observed<'_, F, F::Output>
where
    F: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observed")
            .field("cancel", &self.cancel)
            .finish_non_exhaustive()
    }
}

impl<T: 'static> Drop for Reply<T> {
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        if scope::collects() {
            // Dropped while server code unwinds, or while the serve loop
            // disposes of it: the loop answers once it knows with what.
            scope::defer(Box::new(move |error: &CallError| {
                let _ = tx.send(Err(error.clone()));
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

/// What the serve loop learns from a request's reply before serving it.
#[doc(hidden)]
#[derive(Debug)]
pub enum Begin {
    /// The caller has gone and did not ask for the request to run anyway:
    /// skip it.
    Abandoned,
    /// Serve it, for a caller waited for by these servers.
    Serve(Option<Arc<Chain>>),
}

/// What the runtime needs from the reply inside a request, whatever its
/// value type. Generated code exposes it through
/// `Message::reply_slot`; not a
/// public API.
#[doc(hidden)]
pub trait ReplySlot: Send {
    /// Whether to serve the request, and for which waiting servers.
    fn begin(&mut self) -> Begin;
    /// Run the request even if nobody waits for the answer
    /// ([`no_wait`](crate::Call::no_wait)).
    fn detach(&mut self);
    /// Answer with an error instead of a value.
    fn fail(&mut self, error: CallError);
    /// The request is waited for by the servers in `chain`.
    fn wait_through(&mut self, chain: Arc<Chain>);
    /// When and as which call the request was made.
    fn sent(&self) -> crate::sent::Sent;
    /// The caller gives up at `at` (its timeout): a remote server is told.
    #[cfg(feature = "nats")]
    fn set_deadline(&mut self, at: tokio::time::Instant);
}

impl<T: Send + 'static> ReplySlot for Reply<T> {
    fn sent(&self) -> crate::sent::Sent {
        self.sent.clone()
    }

    fn begin(&mut self) -> Begin {
        match &self.tx {
            Tx::Waited(tx) if tx.is_closed() => Begin::Abandoned,
            _ => Begin::Serve(self.chain.take()),
        }
    }

    fn detach(&mut self) {
        if let Tx::Waited(tx) = std::mem::replace(&mut self.tx, Tx::Done) {
            self.tx = Tx::Detached(tx);
        }
    }

    fn fail(&mut self, error: CallError) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(error));
        }
    }

    fn wait_through(&mut self, chain: Arc<Chain>) {
        self.chain = Some(chain);
    }

    #[cfg(feature = "nats")]
    fn set_deadline(&mut self, at: tokio::time::Instant) {
        self.deadline = Some(at);
    }
}

impl<T> ReplyReceiver<T> {
    /// The answer if it has arrived, without waiting.
    pub(crate) fn try_recv(&mut self) -> Option<Outcome<T>> {
        match self.0.try_recv() {
            Ok(outcome) => Some(outcome),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(CallError::Closed)),
        }
    }
}

impl<T> Future for ReplyReceiver<T> {
    type Output = Outcome<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<T>> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|received| match received {
                Ok(outcome) => outcome,
                // Every path of the runtime answers a reply before dropping
                // it. A reply leaked with `mem::forget` never answers nor
                // closes: its caller waits for its timeout, or for the
                // server's end if the call is deferred.
                Err(_) => Err(CallError::Closed),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Control;
    use crate::error::PanicMessage;
    use crate::scope;

    #[tokio::test]
    async fn a_panic_answers_the_replies_it_dropped_with_its_message() {
        let (first, first_rx) = channel::<u32>();
        let (second, second_rx) = channel::<u32>();
        let control = Control::new(None, 1);
        let result = scope::catch(&control, async move {
            let _held = (first, second);
            panic!("broken state");
        })
        .await;
        let expected = CallError::Panicked(PanicMessage::new("broken state"));
        assert_eq!(result.map(|_: ()| ()).unwrap_err().as_str(), "broken state");
        assert_eq!(first_rx.await, Err(expected.clone()));
        assert_eq!(second_rx.await, Err(expected));
    }

    #[test]
    fn a_reply_dropped_by_a_panic_outside_any_server_still_answers() {
        let (reply, rx) = channel::<u32>();
        let thread = std::thread::spawn(move || {
            let _held = reply;
            panic!("elsewhere");
        });
        assert!(thread.join().is_err());
        let answer = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(rx);
        assert!(matches!(answer, Err(CallError::Panicked(_))));
    }

    #[tokio::test]
    async fn disposing_answers_held_replies_with_the_given_error() {
        let (reply, rx) = channel::<u32>();
        assert_eq!(scope::dispose(vec![reply], &CallError::Closed), Ok(()));
        assert_eq!(rx.await, Err(CallError::Closed));
    }

    #[tokio::test]
    async fn an_unfinished_handler_dropped_answers_closed() {
        let (reply, rx) = channel::<u32>();
        let control = Control::new(None, 1);
        let mut handler = Box::pin(scope::catch(&control, async move {
            let _held = reply;
            std::future::pending::<()>().await;
        }));
        assert!(futures_poll(handler.as_mut()).is_pending());
        drop(handler);
        assert_eq!(rx.await, Err(CallError::Closed));
    }

    fn futures_poll<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
        let waker = std::task::Waker::noop();
        fut.poll(&mut Context::from_waker(waker))
    }
}
