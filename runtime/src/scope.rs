//! What runs on this thread right now: the handler, hook or timer of which
//! server. Set around every poll of server code, it serves two purposes:
//! catching panics (and answering the replies they dropped with the panic's
//! message), and detecting a server that calls itself.
//!
//! Thread-locals set around each poll of server code: cheaper than a
//! task-local around the whole serve task.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::PanicMessage;

/// Answers one reply dropped during an unwind, once the message is known.
pub(crate) type Victim = Box<dyn FnOnce(&PanicMessage)>;

thread_local! {
    /// The id of the server whose code is being polled; 0 for none. Kept
    /// apart from the victims so that it has no destructor: reading it is a
    /// plain thread-local load, on every poll of every handler and call.
    static SERVING: Cell<usize> = const { Cell::new(0) };
    /// Some reply was dropped during an unwind and waits in `VICTIMS`.
    static HAS_VICTIMS: Cell<bool> = const { Cell::new(false) };
    /// Replies dropped during an unwind, waiting for the panic message.
    static VICTIMS: RefCell<Vec<Victim>> = const { RefCell::new(Vec::new()) };
}

/// `true` when called from code of the server `id`.
pub(crate) fn serving(id: usize) -> bool {
    SERVING.get() == id
}

/// Called by a reply dropped while its thread panics.
pub(crate) fn defer(victim: Victim) {
    if SERVING.get() == 0 {
        // Dropped by a panicking thread that no serve loop watches, e.g. a
        // task the handler spawned with the reply.
        victim(&PanicMessage::new("the task holding the reply panicked"));
        return;
    }
    VICTIMS.with_borrow_mut(|victims| victims.push(victim));
    HAS_VICTIMS.set(true);
}

/// Answers every reply dropped during the unwind with `message`.
fn answer_victims(message: &PanicMessage) {
    HAS_VICTIMS.set(false);
    let victims = VICTIMS.with_borrow_mut(std::mem::take);
    victims.into_iter().for_each(|victim| victim(message));
}

pin_project_lite::pin_project! {
    /// Polls server code inside the scope of server `server`, turning a
    /// panic into `Err(message)`.
    pub(crate) struct CatchUnwind<F> {
        #[pin]
        inner: F,
        server: usize,
    }
}

/// `inner`, run as code of the server `server`.
pub(crate) fn catch<F: Future>(server: usize, inner: F) -> CatchUnwind<F> {
    CatchUnwind { inner, server }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, PanicMessage>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let outer = SERVING.replace(*this.server);
        let result = catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
        SERVING.set(outer);
        match result {
            Ok(poll) => {
                if HAS_VICTIMS.get() {
                    // A panic that the handler caught itself still dropped
                    // these replies mid-unwind.
                    answer_victims(&PanicMessage::new(
                        "a panic inside the handler dropped the reply",
                    ));
                }
                poll.map(Ok)
            }
            Err(payload) => {
                let message = PanicMessage::from_payload(&*payload);
                answer_victims(&message);
                Poll::Ready(Err(message))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CallError;
    use crate::reply;

    #[tokio::test]
    async fn a_panic_answers_the_replies_it_dropped_with_its_message() {
        let (first, first_rx) = reply::channel::<u32>();
        let (second, second_rx) = reply::channel::<u32>();
        let result = catch(7, async move {
            let _held = (first, second);
            panic!("broken state");
        })
        .await;
        let expected = CallError::Panicked(PanicMessage::new("broken state"));
        assert_eq!(result.map(|_: ()| ()).unwrap_err().as_str(), "broken state");
        assert_eq!(first_rx.await, Err(expected.clone()));
        assert_eq!(second_rx.await, Err(expected));
    }

    #[tokio::test]
    async fn serving_is_set_only_while_the_server_code_is_polled() {
        assert!(!serving(7));
        let inside = catch(7, async { serving(7) && !serving(8) }).await;
        assert_eq!(inside, Ok(true));
        assert!(!serving(7));
    }

    #[test]
    fn a_reply_dropped_by_a_panic_outside_any_server_still_answers() {
        let (reply, rx) = reply::channel::<u32>();
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
}
