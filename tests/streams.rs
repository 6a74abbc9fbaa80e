//! Streams in: an attached stream's items arrive whole and in order, with
//! backpressure (never more queued than the mailbox holds, a fast stream
//! waits), other callers still served meanwhile; its end hook; detached
//! when the server stops; a subscription forwarded into another server's
//! method (the output port), dropping or with backpressure.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use common::{LIMIT, PAUSED_LIMIT, hold, until, within};
use futures_core::Stream;
use patchboard::{
    Builder, Context, Delivery, Server, Subscriber, Subscription, attach, attach_with_end, server,
    subscription,
};
use tokio::sync::Notify;

/// `from..to`, always ready: as fast as a stream can be. Notes when it is
/// dropped.
struct Count {
    next: u64,
    to: u64,
    dropped: Option<Arc<AtomicBool>>,
}

fn count(to: u64) -> Count {
    Count {
        next: 0,
        to,
        dropped: None,
    }
}

impl Stream for Count {
    type Item = u64;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<Option<u64>> {
        if self.next == self.to {
            return Poll::Ready(None);
        }
        self.next += 1;
        Poll::Ready(Some(self.next - 1))
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        if let Some(dropped) = &self.dropped {
            dropped.store(true, Ordering::SeqCst);
        }
    }
}

/// Takes items; checks their order and how full its mailbox ever was.
#[derive(Default)]
struct Sink {
    next: u64,
    received: u64,
    out_of_order: u64,
    most_queued: usize,
    ended: bool,
}

#[server(capacity = 16)]
impl Sink {
    #[cast]
    fn item(&mut self, n: u64, ctx: &Context<Self>) {
        if n < self.next {
            self.out_of_order += 1;
        }
        self.next = n + 1;
        self.received += 1;
        self.most_queued = self.most_queued.max(ctx.queued());
    }

    /// A call (its reply is dropped when attached).
    fn item_call(&mut self, n: u64, ctx: &Context<Self>) -> u64 {
        self.item(n, ctx);
        n
    }

    #[cast]
    fn end(&mut self) {
        self.ended = true;
    }

    /// A caller besides the stream.
    fn received(&self) -> u64 {
        self.received
    }

    /// Holds the server for `ms` (async: the stream waits meanwhile).
    async fn busy(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// Holds the server until released (`common::hold`).
    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_items_into_a_16_slot_mailbox_arrive_whole_and_in_order_while_others_are_served()
{
    within(Duration::from_secs(120), async {
        let (sink, exit) = Builder::new(Sink::default()).spawn_with_exit();
        let attached = attach(&sink, count(1_000_000), |me, n| me.item(n));
        // Eight other callers, 50 calls each, while the stream pours in.
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    for _ in 0..50 {
                        seen.push(sink.received().await.unwrap());
                    }
                    seen
                })
            })
            .collect();
        let mut served_meanwhile = 0;
        for caller in callers {
            let seen = caller.await.unwrap();
            assert!(seen.windows(2).all(|w| w[0] <= w[1]));
            served_meanwhile += seen.iter().filter(|&&n| n < 1_000_000).count();
        }
        assert!(
            served_meanwhile > 0,
            "the other callers were served while the stream was attached"
        );
        assert_eq!(attached.finished().await, 1_000_000);
        sink.end().await.unwrap();
        drop(sink);
        let state = exit.await.state.unwrap();
        assert_eq!(state.received, 1_000_000, "whole");
        assert_eq!(state.next, 1_000_000);
        assert_eq!(state.out_of_order, 0, "in order");
        assert!(
            state.most_queued <= 16,
            "never more queued than the mailbox holds: {}",
            state.most_queued
        );
    })
    .await;
}

#[tokio::test]
async fn the_end_hook_follows_every_item_and_calls_are_sent_one_way() {
    within(LIMIT, async {
        let (sink, exit) = Builder::new(Sink::default()).spawn_with_exit();
        let attached =
            attach_with_end(&sink, count(10_000), |me, n| me.item_call(n), |me| me.end());
        assert_eq!(attached.finished().await, 10_000);
        drop(sink);
        let state = exit.await.state.unwrap();
        assert!(state.ended);
        assert_eq!((state.received, state.out_of_order), (10_000, 0));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_stream_is_detached_and_dropped_when_its_server_stops_and_can_be_detached_before() {
    within(PAUSED_LIMIT, async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let dropped = Arc::new(AtomicBool::new(false));
        let endless = Count {
            next: 0,
            to: u64::MAX,
            dropped: Some(dropped.clone()),
        };
        let (sink, exit) = Builder::new(Sink::default()).spawn_with_exit();
        let attached = attach_with_end(&sink, endless, |me, n| me.item(n), |me| me.end());
        until(|| attached.sent() > 1_000).await;
        assert!(attached.is_attached());
        sink.stop().await;
        until(|| metrics.num_alive_tasks() == 0).await;
        assert!(
            dropped.load(Ordering::SeqCst),
            "the stream went with its task"
        );
        assert!(!attached.is_attached());
        let state = exit.await.state.unwrap();
        assert!(!state.ended, "no end message: the stream did not end");
        assert_eq!(state.out_of_order, 0);

        // Detached by hand: no more items, the queued ones still served.
        let sink = Sink::default().spawn();
        let attached = attach(&sink, count(u64::MAX), |me, n| me.item(n));
        until(|| attached.sent() >= 100).await;
        assert!(attached.detach(), "it was attached");
        let received = sink.received().await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            sink.received().await.unwrap() <= received + 1,
            "at most the one item already taken"
        );
        until(|| metrics.num_alive_tasks() == 1).await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_try_now_stream_drops_items_that_find_the_mailbox_full_and_keeps_order() {
    within(PAUSED_LIMIT, async {
        let (sink, exit) = Builder::new(Sink::default()).spawn_with_exit();
        let held = sink.clone();
        let release =
            hold(|entered, release| async move { held.hold(entered, release).await }).await;
        let attached = attach(&sink, count(100), |me, n| me.item(n).try_now());
        let sent = attached.finished().await;
        assert_eq!(sent, 16, "the 16 slots filled, the other items dropped");
        release.notify_one();
        drop(sink);
        let state = exit.await.state.unwrap();
        assert_eq!(state.received, sent);
        assert_eq!(state.out_of_order, 0);
    })
    .await;
}

/// Publishes values to its subscribers, dropping or waiting.
#[derive(Default)]
struct Publisher {
    subscribers: Vec<Subscriber<u64>>,
}

#[server]
impl Publisher {
    fn subscribe(&mut self, capacity: usize) -> Subscription<u64> {
        let (subscriber, subscription) = subscription(capacity);
        self.subscribers.push(subscriber);
        subscription
    }

    /// `send`: a full subscriber misses the value.
    fn publish(&mut self, n: u64) -> usize {
        self.subscribers
            .iter()
            .filter(|s| s.send(n) == Delivery::Delivered)
            .count()
    }

    /// `send_waiting`: the publisher waits for a full subscriber.
    async fn publish_waiting(&mut self, n: u64) {
        for subscriber in &self.subscribers {
            assert_eq!(subscriber.send_waiting(n).await, Delivery::Delivered);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_subscription_forwarded_into_another_servers_method_is_an_output_port() {
    within(PAUSED_LIMIT, async {
        // Backpressure: every value arrives, in order, though the consumer
        // is slower than the publisher and both buffers are small.
        let publisher = Publisher::default().spawn();
        let (sink, exit) = Builder::new(Sink::default()).spawn_with_exit();
        let port = publisher.subscribe(4).await.unwrap();
        let attached = attach(&sink, port, |me, n| me.item(n));
        let slow = {
            let sink = sink.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    sink.busy(10).await.unwrap();
                }
            })
        };
        for n in 0..1_000 {
            publisher.publish_waiting(n).await.unwrap();
        }
        slow.await.unwrap();
        drop(publisher); // the subscription ends: the port's stream too
        assert_eq!(attached.finished().await, 1_000);
        drop(sink);
        let state = exit.await.state.unwrap();
        assert_eq!((state.received, state.out_of_order), (1_000, 0));

        // Drop-when-full: the subscription's own policy; the publisher
        // never waits, a held consumer misses values, the rest arrive in
        // order.
        let publisher = Publisher::default().spawn();
        let (sink, exit) = Builder::new(Sink::default()).spawn_with_exit();
        let port = publisher.subscribe(4).await.unwrap();
        let attached = attach(&sink, port, |me, n| me.item(n));
        let held = sink.clone();
        let release =
            hold(|entered, release| async move { held.hold(entered, release).await }).await;
        let mut delivered = 0;
        for n in 0..1_000 {
            delivered += publisher.publish(n).await.unwrap();
        }
        // 16 in the mailbox, 4 in the subscription, one on its way.
        assert!(
            delivered < 100,
            "a held consumer misses values: {delivered}"
        );
        release.notify_one();
        drop(publisher);
        assert_eq!(attached.finished().await, delivered as u64);
        drop(sink);
        let state = exit.await.state.unwrap();
        assert_eq!(state.received, delivered as u64);
        assert_eq!(state.out_of_order, 0);
    })
    .await;
}

#[tokio::test]
async fn a_call_the_closure_makes_to_another_server_goes_there() {
    within(LIMIT, async {
        let (attached_to, exit) = Builder::new(Sink::default()).spawn_with_exit();
        let (other, other_exit) = Builder::new(Sink::default()).spawn_with_exit();
        // A handle that outlives every call: the closure may call it
        // instead of the one it is given.
        let other: &'static SinkHandle = Box::leak(Box::new(other));
        let attached = attach(&attached_to, count(100), move |_, n| other.item(n));
        assert_eq!(attached.finished().await, 100);
        drop(attached_to);
        assert_eq!(exit.await.state.unwrap().received, 0);
        other.stop().await;
        assert_eq!(other_exit.await.state.unwrap().received, 100);
    })
    .await;
}

#[tokio::test]
async fn a_server_whose_handles_are_all_dropped_drains_and_its_stream_stops() {
    within(LIMIT, async {
        let (sink, exit) = Builder::new(Sink::default()).spawn_with_exit();
        let attached = attach(&sink, count(u64::MAX), |me, n| me.item(n));
        until(|| attached.sent() >= 100).await;
        // The stream does not keep the server alive: it drains, refuses
        // the stream's next item, and the feeding ends.
        drop(sink);
        let state = exit.await.state.unwrap();
        assert!(!attached.is_attached());
        let sent = attached.finished().await;
        assert_eq!(state.received, sent, "every item sent was served");
        assert_eq!(state.out_of_order, 0);
    })
    .await;
}
