//! A typed pub/sub broker: topics and events are checked at compile time,
//! a slow subscriber cannot hold up the broker, and a subscriber that goes
//! away is removed.
//!
//! Run with `cargo run --example broker`.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use patchboard::{CallError, Delivery, Server, Subscriber, Subscription, server, subscription};

/// Subscribers by topic.
pub struct Broker<Topic, Event> {
    topics: HashMap<Topic, Vec<Subscriber<Event>>>,
    buffer: usize,
}

/// What one publish did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Subscribers that got the event.
    pub delivered: usize,
    /// Subscribers whose buffer was full: the event was dropped for them.
    pub dropped: usize,
    /// Subscribers found gone, and removed.
    pub removed: usize,
}

#[server]
impl<Topic: Hash + Eq, Event: Clone> Broker<Topic, Event> {
    /// A broker whose subscribers buffer up to `buffer` events each.
    pub fn new(buffer: usize) -> Self {
        Broker {
            topics: HashMap::new(),
            buffer,
        }
    }

    /// Subscribes to `topic`; drop the subscription to unsubscribe.
    pub fn subscribe(&mut self, topic: Topic) -> Subscription<Event> {
        let (subscriber, subscription) = subscription(self.buffer);
        self.topics.entry(topic).or_default().push(subscriber);
        subscription
    }

    /// Offers `event` to every subscriber of `topic`, never waiting.
    pub fn publish(&mut self, topic: Topic, event: Event) -> Published {
        let mut published = Published::default();
        if let Some(subscribers) = self.topics.get_mut(&topic) {
            subscribers.retain(|subscriber| match subscriber.send(event.clone()) {
                Delivery::Delivered => {
                    published.delivered += 1;
                    true
                }
                Delivery::Dropped => {
                    published.dropped += 1;
                    true
                }
                Delivery::Disconnected => {
                    published.removed += 1;
                    false
                }
            });
        }
        published
    }
}

/// The topics of this demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Trades.
    Trades,
    /// Quotes.
    Quotes,
}

#[tokio::main]
async fn main() -> Result<(), CallError> {
    let broker: BrokerHandle<Topic, String> = Broker::new(8).spawn();

    // A subscriber that keeps up.
    let mut fast = broker.subscribe(Topic::Trades).await?;
    let fast = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(event) = fast.recv().await {
            got.push(event);
        }
        (got, fast.missed())
    });
    // One that reads slowly: its buffer of 8 fills up.
    let mut slow = broker.subscribe(Topic::Trades).await?;
    let slow = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(event) = slow.recv().await {
            got.push(event);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (got, slow.missed())
    });
    // One that leaves after its first event.
    let mut leaver = Some(broker.subscribe(Topic::Trades).await?);
    // One on another topic.
    let mut quotes = broker.subscribe(Topic::Quotes).await?;

    for n in 1..=30 {
        let published = broker.publish(Topic::Trades, format!("trade {n}")).await?;
        if let Some(mut leaving) = leaver.take() {
            println!("leaver got {:?} and leaves", leaving.recv().await);
        }
        println!("publish trade {n}: {published:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    broker.publish(Topic::Quotes, "quote 1".to_owned()).await?;
    println!("quotes subscriber got {:?}", quotes.recv().await);

    broker.stop().await; // ends every subscription
    let (fast, fast_missed) = fast.await.expect("fast subscriber");
    let (slow, missed) = slow.await.expect("slow subscriber");
    println!(
        "fast subscriber got {} trades, missed {fast_missed}",
        fast.len()
    );
    println!("slow subscriber got {} trades, missed {missed}", slow.len());
    // Every event is either received or counted as missed, per subscriber.
    assert_eq!(fast.len() as u64 + fast_missed, 30);
    assert_eq!(slow.len() as u64 + missed, 30);
    assert!(missed > 0, "the slow subscriber could not keep up");
    Ok(())
}
