//! Subscriptions across processes: a server's [`Subscription`] published
//! to a subject, and a typed subscription of a subject.

use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::refusal::{Joining, Wanted};
use super::wire;
use crate::subscription::{Subscription, subscription};

/// Publishes every value of `subscription` to `subject` until it ends:
/// how a server's [`Subscriber`](crate::Subscriber) reaches other
/// processes. Publishing never waits for remote subscribers (NATS drops
/// values for a subscriber too slow to take them).
pub fn publish<T>(
    client: &async_nats::Client,
    subject: impl Into<String>,
    mut subscription: Subscription<T>,
) -> tokio::task::JoinHandle<()>
where
    T: Serialize + Send + 'static,
{
    let client = client.clone();
    let subject: async_nats::Subject = subject.into().into();
    tokio::spawn(async move {
        while let Some(value) = subscription.recv().await {
            if let Ok(payload) = wire::encode(&value) {
                let _ = client.publish(subject.clone(), payload).await;
            }
        }
    })
}

/// A typed [`Subscription`] of what is published to `subject` (by
/// [`publish`]), buffering up to `capacity` values: values that arrive
/// while it is full, or that do not decode as a `T`, are dropped and
/// counted in [`Subscription::missed`]. Dropping it unsubscribes.
///
/// Returns once the NATS server has the subscription: a value published
/// after that, from any connection, reaches it.
///
/// On a client from [`connect`](super::connect), a subscription the NATS
/// server refuses (the user may not subscribe to `subject`) is an error,
/// and one it refuses later (a permission withdrawn by a configuration
/// reload, or on reconnecting), or whose refusal reached patchboard only
/// after this returned (see [`connect`](super::connect)), ends the
/// subscription: its `recv` returns `None`, as when a publisher's server
/// has gone (the reason is not carried). On another client a refused
/// subscription returns `Ok` and never receives anything.
///
/// # Errors
///
/// When NATS refuses the subscription (the connection is closed; on a
/// client from [`connect`](super::connect), the user may not subscribe to
/// `subject`: the error names it), or does not confirm it within the
/// client's request timeout.
pub async fn subscribe<T>(
    client: &async_nats::Client,
    subject: impl Into<String>,
    capacity: usize,
) -> Result<Subscription<T>, async_nats::Error>
where
    T: DeserializeOwned + Send + 'static,
{
    let subject = subject.into();
    let joining = Joining::new(client, vec![Wanted::exact(subject.as_str(), None)]);
    let mut incoming = client.subscribe(subject).await?;
    let joined = joining.joined().await?;
    let (subscriber, subscription) = subscription(capacity);
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = incoming.next() => message,
                () = subscriber.closed() => break,
                _ = joined.refused() => break,
            };
            let Some(message) = message else { break };
            let delivery = match wire::decode::<T>(&message.payload) {
                Ok(value) => subscriber.send(value),
                Err(_) => subscriber.count_missed(),
            };
            if !delivery.is_connected() {
                break;
            }
        }
        let _ = incoming.unsubscribe().await;
    });
    Ok(subscription)
}
