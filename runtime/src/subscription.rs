//! Typed subscriptions: a message that answers with a stream of values.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::sync::mpsc;

/// Creates a subscription that buffers up to `capacity` values (at least
/// one): the server keeps the [`Subscriber`], the caller gets the
/// [`Subscription`].
///
/// A message method returns the `Subscription` like any other value:
///
/// ```
/// use switchboard::{server, subscription, Server, Subscriber, Subscription};
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
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let missed = Arc::new(AtomicU64::new(0));
    (
        Subscriber {
            tx,
            missed: missed.clone(),
        },
        Subscription { rx, missed },
    )
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
    missed: Arc<AtomicU64>,
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
    pub fn send(&self, value: T) -> Delivery {
        match self.tx.try_send(value) {
            Ok(()) => Delivery::Delivered,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.missed.fetch_add(1, Ordering::Relaxed);
                Delivery::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Disconnected,
        }
    }

    /// `true` once the subscriber has gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
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
/// (`None`) when the server drops the [`Subscriber`], for example when the
/// server stops. Dropping it unsubscribes: the server's next
/// [`Subscriber::send`] reports [`Delivery::Disconnected`].
pub struct Subscription<T> {
    rx: mpsc::Receiver<T>,
    missed: Arc<AtomicU64>,
}

impl<T> Subscription<T> {
    /// The next value, or `None` once the server has dropped its end and
    /// the buffer is empty.
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await
    }

    /// The next value if one is buffered.
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// How many values were dropped for this subscriber because its buffer
    /// was full.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }
}

impl<T> futures_core::Stream for Subscription<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
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
