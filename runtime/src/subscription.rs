//! Typed subscriptions: a message that answers with a stream of values.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use tokio::sync::{Semaphore, mpsc};

use crate::control::Ends;
use crate::scope;

/// Creates a subscription that buffers up to `capacity` values (at least
/// one, at most [`Semaphore::MAX_PERMITS`]): the server keeps the
/// [`Subscriber`], the caller gets the [`Subscription`].
///
/// Created by a server's own code (a handler, hook or timer), the
/// subscription is bound to that server: it ends when the server stops, even
/// if the `Subscriber` lives on (in the final state returned by
/// [`Exit`](crate::Exit)). Created elsewhere, it ends when the `Subscriber`
/// is dropped.
///
/// A message method returns the `Subscription` like any other value:
///
/// ```
/// use patchboard::{server, subscription, Server, Subscriber, Subscription};
///
/// #[derive(Default)]
/// struct Ticker { subscribers: Vec<Subscriber<u64>> }
///
/// #[server]
/// impl Ticker {
///     fn subscribe(&mut self) -> Subscription<u64> {
///         let (subscriber, subscription) = subscription(16);
///         self.subscribers.push(subscriber);
///         subscription
///     }
///
///     /// Returns how many subscribers are still there.
///     fn tick(&mut self, n: u64) -> usize {
///         self.subscribers.retain(|s| s.send(n).is_connected());
///         self.subscribers.len()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ticker = Ticker::default().spawn();
/// let mut ticks = ticker.subscribe().await.unwrap();
/// ticker.tick(1).await.unwrap();
/// assert_eq!(ticks.recv().await, Some(1));
/// drop(ticks);
/// assert_eq!(ticker.tick(2).await, Ok(0)); // the gone subscriber was removed
/// # }
/// ```
pub fn subscription<T>(capacity: usize) -> (Subscriber<T>, Subscription<T>) {
    let (tx, rx) = mpsc::channel(capacity.clamp(1, Semaphore::MAX_PERMITS));
    let shared = Arc::new(Shared::default());
    let weak: Weak<dyn Ends> = Arc::downgrade(&shared) as Weak<dyn Ends>;
    scope::bind(weak);
    let subscriber = Subscriber {
        tx,
        shared: shared.clone(),
    };
    (subscriber, Subscription { rx, shared })
}

/// What both ends of one subscription share.
#[derive(Default)]
struct Shared {
    missed: AtomicU64,
    /// The server that created the subscription has stopped.
    ended: AtomicBool,
    /// The subscription's task, to wake when it ends.
    waker: Mutex<Option<Waker>>,
}

impl Ends for Shared {
    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Shared {
    fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// `true` if ended; otherwise `cx` is woken when it ends.
    fn poll_ended(&self, cx: &mut Context<'_>) -> bool {
        if self.is_ended() {
            return true;
        }
        {
            let mut waker = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            match &mut *waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        self.is_ended()
    }
}

/// The server's end of a subscription: [`send`](Self::send) never waits.
///
/// Slow-subscriber policy: when the subscriber's buffer is full, the value
/// is **dropped for that subscriber** (it can see how many it missed with
/// [`Subscription::missed`]) and `send` returns [`Delivery::Dropped`], so a
/// slow subscriber never delays the server or the other subscribers. A
/// server that prefers to disconnect laggards drops the `Subscriber` when it
/// sees `Dropped`; the subscription then ends after its buffered values.
pub struct Subscriber<T> {
    tx: mpsc::Sender<T>,
    shared: Arc<Shared>,
}

/// What happened to one value sent to one subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a `Disconnected` subscriber should be removed"]
pub enum Delivery {
    /// Buffered for the subscriber.
    Delivered,
    /// The subscriber's buffer was full: this value was dropped for it.
    Dropped,
    /// The subscriber is gone (its `Subscription` was dropped): remove it.
    Disconnected,
}

impl Delivery {
    /// `false` only for [`Disconnected`](Self::Disconnected): handy in
    /// `subscribers.retain(|s| s.send(v.clone()).is_connected())`.
    pub fn is_connected(self) -> bool {
        self != Delivery::Disconnected
    }
}

impl<T> Subscriber<T> {
    /// Offers `value` to the subscriber without waiting.
    ///
    /// (`send`, not tokio's `try_send`: it never fails the publisher; a full
    /// buffer is the subscriber's loss, reported as a [`Delivery`].)
    pub fn send(&self, value: T) -> Delivery {
        if self.shared.is_ended() {
            return Delivery::Disconnected;
        }
        match self.tx.try_send(value) {
            Ok(()) => Delivery::Delivered,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.missed.fetch_add(1, Ordering::Relaxed);
                Delivery::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Disconnected,
        }
    }

    /// Sends `value`, waiting for room in the subscriber's buffer instead
    /// of dropping it: backpressure, where [`send`](Self::send) drops.
    /// A server that awaits this in a handler waits for its slowest such
    /// subscriber (which is the point: attached to another server's method
    /// with [`attach`](crate::attach), the subscription then paces the
    /// publisher to that server's mailbox). `Delivered`, or `Disconnected`
    /// once the subscription has been dropped (never `Dropped`).
    pub async fn send_waiting(&self, value: T) -> Delivery {
        if self.shared.is_ended() {
            return Delivery::Disconnected;
        }
        match self.tx.send(value).await {
            Ok(()) => Delivery::Delivered,
            Err(_) => Delivery::Disconnected,
        }
    }

    /// A value for this subscriber was lost before it could be sent (it did
    /// not decode): counted like one dropped for a full buffer.
    #[cfg(feature = "nats")]
    pub(crate) fn count_missed(&self) -> Delivery {
        self.shared.missed.fetch_add(1, Ordering::Relaxed);
        Delivery::Dropped
    }

    /// Waits until the subscription has been dropped (for the task that
    /// feeds a subscription from NATS).
    #[cfg(feature = "nats")]
    pub(crate) async fn closed(&self) {
        self.tx.closed().await;
    }

    /// `true` once the subscriber has gone (or the subscription ended with
    /// its server).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.shared.is_ended()
    }
}

impl<T> fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The caller's end of a subscription: a bounded stream of values.
///
/// Read it with [`recv`](Self::recv) or as a `futures_core::Stream`. It ends
/// (`None`, after the values already buffered) when the server drops the
/// [`Subscriber`], and when the server that created it stops. Dropping it
/// unsubscribes: the server's next [`Subscriber::send`] reports
/// [`Delivery::Disconnected`].
pub struct Subscription<T> {
    rx: mpsc::Receiver<T>,
    shared: Arc<Shared>,
}

impl<T> Subscription<T> {
    /// The next value, or `None` once the subscription has ended and the
    /// buffer is empty.
    pub async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_value(cx)).await
    }

    /// The next value if one is buffered; `None` if none is (whether or
    /// not the subscription has ended: `recv().await` tells the two apart,
    /// so an `Option` is enough where tokio returns a `Result`).
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// How many values were dropped for this subscriber because its buffer
    /// was full.
    pub fn missed(&self) -> u64 {
        self.shared.missed.load(Ordering::Relaxed)
    }

    fn poll_value(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Poll::Ready(value) = self.rx.poll_recv(cx) {
            return Poll::Ready(value);
        }
        if self.shared.poll_ended(cx) {
            // Ended with its server: what was buffered before still counts.
            return Poll::Ready(self.rx.try_recv().ok());
        }
        Poll::Pending
    }
}

impl<T> futures_core::Stream for Subscription<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.poll_value(cx)
    }
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("buffered", &self.rx.len())
            .field("missed", &self.missed())
            .finish()
    }
}
