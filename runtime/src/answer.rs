//! The one-shot channel a call's answer travels through, built for calls
//! (BENCHMARKS.md): one value, one waiting caller, and a server that may
//! wait for that caller to give up ([`Sender::poll_closed`]).
//!
//! Safe code: one allocation per call, one uncontended lock per step, and
//! no share of tokio's task budget on the receiving side. A call yields at
//! least once whatever the budget says (its answer cannot exist before its
//! request is served, and the request is sent in the call's first poll), so
//! a caller awaiting answers in a loop never monopolises its thread; the
//! serve loop, which could, takes a unit of the budget per request.
//!
//! Every state change happens under the lock, so a value is either
//! received or handed back by [`Sender::send`], never lost between the two.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A connected pair.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            value: None,
            sender_gone: false,
            receiver: None,
            sender: None,
        }),
        receiver_gone: AtomicBool::new(false),
    });
    (
        Sender {
            shared: Some(shared.clone()),
        },
        Receiver {
            shared,
            done: false,
        },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The receiver has gone. Written under the lock (so that `send` sees
    /// it exactly), read without it by `is_closed`, which the serve loop
    /// asks before every request.
    receiver_gone: AtomicBool,
}

struct State<T> {
    /// Sent, not yet received.
    value: Option<T>,
    /// The sender went without sending.
    sender_gone: bool,
    /// The receiver, waiting for the value.
    receiver: Option<Waker>,
    /// The sender, waiting for the receiver to go.
    sender: Option<Waker>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding it but a waker's `clone`, which
        // leaves the state consistent: a poisoned lock is sound.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending half: the server's side of a call.
pub(crate) struct Sender<T> {
    /// `None` once sent.
    shared: Option<Arc<Shared<T>>>,
}

impl<T> Sender<T> {
    /// Sends `value`; `Err(value)` if the receiver has gone.
    pub(crate) fn send(mut self, value: T) -> Result<(), T> {
        let shared = self.shared.take().expect("a sender sends once");
        let mut state = shared.lock();
        if shared.receiver_gone.load(Ordering::Relaxed) {
            return Err(value);
        }
        state.value = Some(value);
        let receiver = state.receiver.take();
        drop(state);
        if let Some(receiver) = receiver {
            receiver.wake();
        }
        Ok(())
    }

    /// `true` once the receiver has gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|shared| shared.receiver_gone.load(Ordering::Acquire))
    }

    /// `Ready` once the receiver has gone.
    pub(crate) fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(shared) = &self.shared else {
            return Poll::Ready(());
        };
        let mut state = shared.lock();
        if shared.receiver_gone.load(Ordering::Relaxed) {
            return Poll::Ready(());
        }
        match &state.sender {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.sender = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let mut state = shared.lock();
        state.sender_gone = true;
        let receiver = state.receiver.take();
        drop(state);
        if let Some(receiver) = receiver {
            receiver.wake();
        }
    }
}

/// The receiver found no value and never will: the sender went without
/// sending.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Closed;

/// Why [`Receiver::try_recv`] has no value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TryRecvError {
    /// Not sent yet.
    Empty,
    /// The sender went without sending.
    Closed,
}

/// The receiving half: the caller's side of a call.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// It has had its value (or learnt there will be none): the sender has
    /// gone, so dropping it tells nobody anything.
    done: bool,
}

impl<T> Receiver<T> {
    /// The value once sent; `Err(Closed)` if the sender went without.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, Closed>> {
        let mut state = self.shared.lock();
        if let Some(value) = state.value.take() {
            self.done = true;
            return Poll::Ready(Ok(value));
        }
        if state.sender_gone {
            self.done = true;
            return Poll::Ready(Err(Closed));
        }
        match &state.receiver {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.receiver = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The value if it has been sent, without waiting.
    pub(crate) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = self.shared.lock();
        let received = match state.value.take() {
            Some(value) => Ok(value),
            None if state.sender_gone => Err(TryRecvError::Closed),
            None => return Err(TryRecvError::Empty),
        };
        self.done = true;
        received
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.shared.lock();
        self.shared.receiver_gone.store(true, Ordering::Release);
        let value = state.value.take();
        let sender = state.sender.take();
        drop(state);
        // A value sent but never received is dropped here, outside the
        // lock: its `Drop` is the user's code.
        drop(value);
        if let Some(sender) = sender {
            sender.wake();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    fn wakes(count: &Count) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    #[test]
    fn a_value_sent_before_the_poll_is_ready_at_once() {
        let (tx, mut rx) = channel();
        assert_eq!(tx.send(7), Ok(()));
        let (_, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Ok(7)));
    }

    #[test]
    fn a_waiting_receiver_is_woken_once_by_the_send() {
        let (tx, mut rx) = channel();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        // Polled again with the same waker: registered once, not cloned.
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        assert_eq!(wakes(&count), 0);
        tx.send("answer").unwrap();
        assert_eq!(wakes(&count), 1);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Ok("answer")));
    }

    #[test]
    fn a_sender_dropped_without_sending_closes_and_wakes() {
        let (tx, mut rx) = channel::<u8>();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        drop(tx);
        assert_eq!(wakes(&count), 1);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Err(Closed)));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    }

    #[test]
    fn a_send_after_the_receiver_went_hands_the_value_back() {
        let (tx, rx) = channel();
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.send(vec![1, 2]), Err(vec![1, 2]));
    }

    #[test]
    fn the_sender_waiting_for_the_receiver_to_go_is_woken() {
        let (mut tx, rx) = channel::<u8>();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(tx.poll_closed(&mut cx), Poll::Pending);
        drop(rx);
        assert_eq!(wakes(&count), 1);
        assert_eq!(tx.poll_closed(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn a_value_never_received_is_dropped_with_the_receiver() {
        let value = Arc::new(());
        let (tx, rx) = channel();
        tx.send(value.clone()).unwrap();
        assert_eq!(Arc::strong_count(&value), 2);
        drop(rx);
        assert_eq!(Arc::strong_count(&value), 1);
    }

    /// Send racing the receiver's drop on two threads, many times: every
    /// value is either received or handed back, exactly once.
    #[test]
    fn send_racing_the_receivers_drop_loses_nothing() {
        for round in 0..2_000 {
            let (tx, mut rx) = channel::<usize>();
            let sender = std::thread::spawn(move || tx.send(round).err());
            let received = if round % 2 == 0 {
                std::thread::yield_now();
                rx.try_recv().ok()
            } else {
                None
            };
            drop(rx);
            let handed_back = sender.join().unwrap();
            let seen = usize::from(received.is_some()) + usize::from(handed_back.is_some());
            // Received, handed back, or (sent after the receive attempt
            // and before the drop) dropped with the receiver: never two.
            assert!(seen <= 1, "round {round}: {received:?} and {handed_back:?}");
            if let Some(value) = received.or(handed_back) {
                assert_eq!(value, round);
            }
        }
    }

    /// A receiver on one thread, its sender on another: the wake-up always
    /// arrives (no lost wake between the poll and the send).
    #[test]
    fn a_receiver_on_another_thread_always_gets_the_value() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let outcome = tokio::time::timeout(std::time::Duration::from_secs(30), async {
                for round in 0..2_000u32 {
                    let (tx, mut rx) = channel();
                    tokio::spawn(async move { tx.send(round).unwrap() });
                    let got = std::future::poll_fn(|cx| rx.poll_recv(cx)).await;
                    assert_eq!(got, Ok(round));
                }
            })
            .await;
            assert!(outcome.is_ok(), "a wake-up was lost");
        });
    }
}
