//! Beyond one request at a time: deferred replies, pools, subscriptions.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{PAUSED_LIMIT, within};
use patchboard::{
    Builder, CallError, Delivery, Reply, Server, StopReason, Subscriber, Subscription, WeakHandle,
    server, subscription,
};

// Deferred replies ------------------------------------------------------------

/// Squares numbers slowly, once per number however many ask at once.
struct Squarer {
    pending: HashMap<u64, Vec<Reply<u64>>>,
    computations: Arc<AtomicUsize>,
    me: Option<WeakHandle<Squarer>>,
}

#[server]
impl Squarer {
    fn attach(&mut self, me: WeakHandle<Squarer>) {
        self.me = Some(me);
    }

    fn square(&mut self, n: u64, reply: Reply<u64>) {
        if let Some(waiters) = self.pending.get_mut(&n) {
            waiters.push(reply);
            return;
        }
        self.pending.insert(n, vec![reply]);
        self.computations.fetch_add(1, Ordering::SeqCst);
        let me = self.me.clone().expect("attached");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Some(me) = me.upgrade() {
                let _ = me.done(n, n * n).await;
            }
        });
    }

    #[cast]
    fn done(&mut self, n: u64, square: u64) {
        for reply in self.pending.remove(&n).unwrap_or_default() {
            let _ = reply.send(square);
        }
    }

    fn ping(&self) -> &'static str {
        "pong"
    }

    /// Drops the reply without answering.
    fn forget(&mut self, reply: Reply<u64>) {
        drop(reply);
    }

    /// Keeps the reply; answers only if someone still waits.
    fn park(&mut self, reply: Reply<u64>) {
        self.pending.entry(0).or_default().push(reply);
    }

    fn waiting_for_zero(&mut self) -> usize {
        let waiters = self.pending.remove(&0).unwrap_or_default();
        let open: Vec<_> = waiters.into_iter().filter(|r| !r.is_closed()).collect();
        let count = open.len();
        self.pending.insert(0, open);
        count
    }
}

async fn squarer() -> (SquarerHandle, Arc<AtomicUsize>) {
    let computations = Arc::new(AtomicUsize::new(0));
    let handle = Squarer {
        pending: HashMap::new(),
        computations: computations.clone(),
        me: None,
    }
    .spawn();
    handle.attach(handle.downgrade()).await.unwrap();
    (handle, computations)
}

#[tokio::test(start_paused = true)]
async fn waiters_for_the_same_key_share_one_computation() {
    within(PAUSED_LIMIT, async {
        let (handle, computations) = squarer().await;
        let calls: Vec<_> = (0..50)
            .map(|i| {
                let handle = handle.clone();
                tokio::spawn(async move { handle.square(i % 2 + 7).await })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            let n = (i % 2 + 7) as u64;
            assert_eq!(call.await.unwrap(), Ok(n * n));
        }
        assert_eq!(
            computations.load(Ordering::SeqCst),
            2,
            "one computation per key"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_server_answers_other_calls_while_replies_are_pending() {
    within(PAUSED_LIMIT, async {
        let (handle, _) = squarer().await;
        let slow = tokio::spawn({
            let handle = handle.clone();
            async move { handle.square(3).await }
        });
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            assert_eq!(handle.ping().await, Ok("pong"));
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "pings did not wait for the square"
        );
        assert!(!slow.is_finished());
        assert_eq!(slow.await.unwrap(), Ok(9));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_reply_gives_the_caller_no_reply() {
    within(PAUSED_LIMIT, async {
        let (handle, _) = squarer().await;
        assert_eq!(handle.forget().await, Err(CallError::NoReply));
        assert_eq!(handle.ping().await, Ok("pong"));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_stored_reply_knows_when_its_caller_is_gone() {
    within(PAUSED_LIMIT, async {
        let (handle, _) = squarer().await;
        let gave_up = handle.park().timeout(Duration::from_millis(10)).await;
        assert_eq!(gave_up, Err(CallError::Timeout));
        let waiting = tokio::spawn({
            let handle = handle.clone();
            async move { handle.park().await }
        });
        while handle.waiting_for_zero().await.unwrap() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            handle.waiting_for_zero().await,
            Ok(1),
            "the timed-out one is closed"
        );
        handle.stop().await;
        // Stored replies end with the server: the waiter is released with
        // why (it stopped), not a bare `NoReply`.
        assert_eq!(waiting.await.unwrap(), Err(CallError::Closed));
    })
    .await;
}

// Pools -------------------------------------------------------------------------

#[derive(Clone)]
struct Fetcher {
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    starts: Arc<AtomicUsize>,
    stops: Arc<AtomicUsize>,
}

#[server]
impl Fetcher {
    #[on_start]
    fn start(&mut self) {
        self.starts.fetch_add(1, Ordering::SeqCst);
    }

    #[on_stop]
    fn stop_hook(&mut self) {
        self.stops.fetch_add(1, Ordering::SeqCst);
    }

    async fn fetch(&self, url: String) -> usize {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.active.fetch_sub(1, Ordering::SeqCst);
        url.len()
    }

    async fn fail_later(&self) -> usize {
        tokio::time::sleep(Duration::from_millis(50)).await;
        panic!("replica broke");
    }
}

fn fetcher() -> Fetcher {
    Fetcher {
        active: Arc::new(AtomicUsize::new(0)),
        peak: Arc::new(AtomicUsize::new(0)),
        starts: Arc::new(AtomicUsize::new(0)),
        stops: Arc::new(AtomicUsize::new(0)),
    }
}

#[tokio::test(start_paused = true)]
async fn pool_peak_parallelism_is_exactly_its_size() {
    within(PAUSED_LIMIT, async {
        let state = fetcher();
        let peak = state.peak.clone();
        let pool = Builder::new(state).pool(4).spawn();
        let start = tokio::time::Instant::now();
        let calls: Vec<_> = (0..16)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.fetch(format!("url-{i:02}")).await })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap(), Ok(6));
        }
        assert_eq!(peak.load(Ordering::SeqCst), 4);
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(400),
            "16 calls in 4 rounds of 4"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn stopping_a_pool_ends_every_replica_and_runs_each_on_stop() {
    within(PAUSED_LIMIT, async {
        let state = fetcher();
        let (starts, stops) = (state.starts.clone(), state.stops.clone());
        let pool = Builder::new(state).pool(3).spawn();
        assert_eq!(pool.fetch("x".into()).await, Ok(1));
        pool.stop().await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert_eq!(stops.load(Ordering::SeqCst), 3);
        assert_eq!(pool.closed().await, StopReason::Stopped);
        assert_eq!(pool.fetch("x".into()).await, Err(CallError::Closed));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_replica_loses_no_other_callers_reply() {
    within(PAUSED_LIMIT, async {
        let state = fetcher();
        let stops = state.stops.clone();
        let pool = Builder::new(state).pool(4).spawn();
        let fail = tokio::spawn({
            let pool = pool.clone();
            async move { pool.fail_later().await }
        });
        let calls: Vec<_> = (0..12)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.fetch("abc".into()).await })
            })
            .collect();
        assert!(matches!(fail.await.unwrap(), Err(CallError::Panicked(_))));
        for call in calls {
            assert_eq!(call.await.unwrap(), Ok(3));
        }
        assert_eq!(
            stops.load(Ordering::SeqCst),
            1,
            "only the broken replica stopped"
        );
        assert!(!pool.is_closed());
        assert_eq!(pool.fetch("abcd".into()).await, Ok(4));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_ends_every_replica() {
    within(PAUSED_LIMIT, async {
        let state = fetcher();
        let stops = state.stops.clone();
        let (pool, exit) = Builder::new(state).pool(3).spawn_with_exit();
        assert_eq!(pool.fetch("x".into()).await, Ok(1));
        drop(pool);
        let exited = exit.await;
        assert_eq!(exited.reason, StopReason::HandlesDropped);
        assert_eq!(stops.load(Ordering::SeqCst), 3);
    })
    .await;
}

// Subscriptions --------------------------------------------------------------------

struct Broker {
    subscribers: HashMap<String, Vec<Subscriber<u32>>>,
}

#[server]
impl Broker {
    fn subscribe(&mut self, topic: String, buffer: usize) -> Subscription<u32> {
        let (subscriber, subscription) = subscription(buffer);
        self.subscribers.entry(topic).or_default().push(subscriber);
        subscription
    }

    /// Returns the deliveries (delivered, dropped) and prunes gone
    /// subscribers.
    fn publish(&mut self, topic: String, event: u32) -> (usize, usize) {
        let subscribers = self.subscribers.entry(topic).or_default();
        let mut counts = (0, 0);
        subscribers.retain(|s| match s.send(event) {
            Delivery::Delivered => {
                counts.0 += 1;
                true
            }
            Delivery::Dropped => {
                counts.1 += 1;
                true
            }
            Delivery::Disconnected => false,
        });
        counts
    }

    fn subscribers(&self, topic: String) -> usize {
        self.subscribers.get(&topic).map_or(0, Vec::len)
    }
}

fn broker() -> BrokerHandle {
    Broker {
        subscribers: HashMap::new(),
    }
    .spawn()
}

#[tokio::test(start_paused = true)]
async fn a_disconnected_subscriber_is_removed() {
    within(PAUSED_LIMIT, async {
        let broker = broker();
        let mut stays = broker.subscribe("t".into(), 8).await.unwrap();
        let leaves = broker.subscribe("t".into(), 8).await.unwrap();
        assert_eq!(broker.subscribers("t".into()).await, Ok(2));
        drop(leaves);
        assert_eq!(broker.publish("t".into(), 1).await, Ok((1, 0)));
        assert_eq!(broker.subscribers("t".into()).await, Ok(1));
        assert_eq!(stays.recv().await, Some(1));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_does_not_delay_publishing() {
    within(PAUSED_LIMIT, async {
        let broker = broker();
        let slow = broker.subscribe("t".into(), 2).await.unwrap();
        let mut fast = broker.subscribe("t".into(), 1_000).await.unwrap();
        let start = tokio::time::Instant::now();
        for event in 0..100 {
            broker.publish("t".into(), event).await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "publishing never waited");
        for event in 0..100 {
            assert_eq!(fast.recv().await, Some(event));
        }
        assert_eq!(slow.missed(), 98, "the slow one kept 2 and missed the rest");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn subscriptions_end_when_the_server_stops() {
    within(PAUSED_LIMIT, async {
        let broker = broker();
        let mut subscription = broker.subscribe("t".into(), 8).await.unwrap();
        broker.publish("t".into(), 5).await.unwrap();
        broker.stop().await;
        assert_eq!(subscription.recv().await, Some(5));
        assert_eq!(subscription.recv().await, None);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn stopping_a_pool_serves_what_was_queued_before_the_stop() {
    within(PAUSED_LIMIT, async {
        let state = fetcher();
        let pool = Builder::new(state).pool(2).spawn();
        // Two fetches occupy both replicas; four more queue behind them.
        let calls: Vec<_> = (0..6)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.fetch("x".repeat(i + 1)).await })
            })
            .collect();
        common::until_queued(|| pool.queued(), 4).await;
        let stopping = tokio::spawn({
            let pool = pool.clone();
            async move { pool.stop().await }
        });
        common::until(|| pool.is_closed()).await;
        let late = tokio::spawn({
            let pool = pool.clone();
            async move { pool.fetch("late".into()).await }
        });
        stopping.await.unwrap();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap(), Ok(i + 1));
        }
        assert_eq!(late.await.unwrap(), Err(CallError::Closed));
    })
    .await;
}
