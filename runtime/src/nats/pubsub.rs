//! Subscriptions across processes: a server's [`Subscription`] published
//! to a subject, and a typed subscription of a subject.

use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{round_trip, wire};
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
/// # Errors
///
/// When NATS refuses the subscription (the connection is closed), or does
/// not confirm it within the client's request timeout.
pub async fn subscribe<T>(
    client: &async_nats::Client,
    subject: impl Into<String>,
    capacity: usize,
) -> Result<Subscription<T>, async_nats::Error>
where
    T: DeserializeOwned + Send + 'static,
{
    let mut incoming = client.subscribe(subject.into()).await?;
    round_trip(client).await?;
    let (subscriber, subscription) = subscription(capacity);
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = incoming.next() => message,
                () = subscriber.closed() => break,
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

