//! Servers composed into systems: graceful drain, links and monitors, and
//! cancellation reaching the handler.

mod common;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{LIMIT, PAUSED_LIMIT, hold, until_queued, within};
use patchboard::{Builder, CallError, Context, Down, Reply, Server, StopReason, server};
use tokio::sync::Notify;
use tokio::time::Instant;

/// A stage that pages through `1..=last` by sending itself the next page,
/// forwarding each page to its sink, if it has one.
#[derive(Default)]
struct Pager {
    pages: Vec<u32>,
    /// Follow-ups the server could not send itself.
    refused: Vec<u32>,
    sink: Option<SinkHandle>,
}

#[server(capacity = 64)]
impl Pager {
    #[cast]
    async fn page(&mut self, page: u32, last: u32, ctx: &Context<Self>) {
        self.pages.push(page);
        if let Some(sink) = &self.sink {
            sink.push(page).await.expect("the sink outlives its source");
        }
        if page < last {
            let sent = match ctx.handle() {
                Some(me) => me.page(page + 1, last).await,
                None => Err(CallError::Closed),
            };
            if sent.is_err() {
                self.refused.push(page + 1);
            }
        }
    }

    /// Holds the server until `release` is notified.
    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }

    fn pages(&self) -> Vec<u32> {
        self.pages.clone()
    }
}

/// The end of a pipeline: collects what it is sent.
#[derive(Default)]
struct Sink {
    items: Vec<u32>,
}

#[server(capacity = 64)]
impl Sink {
    #[cast]
    fn push(&mut self, item: u32) {
        self.items.push(item);
    }

    fn items(&self) -> Vec<u32> {
        self.items.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn drain_serves_the_queue_and_the_servers_own_follow_ups_and_refuses_outsiders() {
    within(PAUSED_LIMIT, async {
        let (pager, exit) = Builder::new(Pager::default()).spawn_with_exit();
        let release = hold(|entered, release| {
            let pager = pager.clone();
            async move { pager.hold(entered, release).await }
        })
        .await;
        pager.page(1, 10).await.unwrap();
        let draining = tokio::spawn({
            let pager = pager.clone();
            async move { pager.drain().await }
        });
        common::until(|| pager.is_closed()).await;
        assert_eq!(
            pager.pages().await,
            Err(CallError::Closed),
            "a call from outside is refused while the server drains"
        );
        release.notify_one();
        draining.await.unwrap();
        let exited = exit.await;
        assert_eq!(exited.reason, StopReason::Drained);
        let state = exited.state.expect("a drained server hands back its state");
        assert_eq!(state.pages, (1..=10).collect::<Vec<_>>());
        assert!(state.refused.is_empty(), "refused: {:?}", state.refused);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn stop_refuses_the_follow_ups_that_drain_would_serve() {
    within(PAUSED_LIMIT, async {
        let (pager, exit) = Builder::new(Pager::default()).spawn_with_exit();
        let release = hold(|entered, release| {
            let pager = pager.clone();
            async move { pager.hold(entered, release).await }
        })
        .await;
        pager.page(1, 10).await.unwrap();
        let stopping = tokio::spawn({
            let pager = pager.clone();
            async move { pager.stop().await }
        });
        common::until(|| pager.is_closed()).await;
        release.notify_one();
        stopping.await.unwrap();
        let state = exit.await.state.unwrap();
        assert_eq!(state.pages, [1], "the queued page is served");
        assert_eq!(state.refused, [2], "its follow-up is refused, and it knows");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_self_paging_stage_whose_handles_are_all_dropped_finishes_its_work() {
    within(PAUSED_LIMIT, async {
        let (pager, exit) = Builder::new(Pager::default()).spawn_with_exit();
        pager.page(1, 50).await.unwrap();
        drop(pager);
        let exited = exit.await;
        assert_eq!(exited.reason, StopReason::HandlesDropped);
        let state = exited.state.unwrap();
        assert_eq!(state.pages, (1..=50).collect::<Vec<_>>());
        assert!(state.refused.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_drains_every_replica_and_loses_nothing() {
    within(LIMIT, async {
        #[derive(Clone)]
        struct Counter(Arc<AtomicUsize>);
        #[server(capacity = 256)]
        impl Counter {
            #[cast]
            async fn spread(&mut self, left: u32, ctx: &Context<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                if left > 0 {
                    let me = ctx.handle().expect("own follow-ups are accepted");
                    me.spread(left - 1).await.expect("room for a follow-up");
                }
            }
        }
        let count = Arc::new(AtomicUsize::new(0));
        let (pool, exit) = Builder::new(Counter(count.clone()))
            .pool(4)
            .spawn_with_exit();
        for _ in 0..8 {
            pool.spread(20).await.unwrap();
        }
        pool.drain().await;
        assert_eq!(exit.await.reason, StopReason::Drained);
        assert_eq!(count.load(Ordering::SeqCst), 8 * 21);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_pipeline_drains_stage_by_stage_without_end_markers() {
    within(PAUSED_LIMIT, async {
        let (sink, sink_exit) = Builder::new(Sink::default()).spawn_with_exit();
        let source = Pager {
            sink: Some(sink.clone()),
            ..Pager::default()
        }
        .spawn();
        sink.drain_after(&source);
        source.page(1, 20).await.unwrap();
        // Only the source is told to finish; the test keeps its sink handle.
        source.drain().await;
        assert_eq!(sink.closed().await, StopReason::Drained);
        let items = sink_exit.await.state.unwrap().items;
        assert_eq!(items, (1..=20).collect::<Vec<_>>());
    })
    .await;
}

/// Watches other servers and records what it learns.
#[derive(Default)]
struct Watcher {
    downs: Vec<(Option<String>, StopReason)>,
    /// Deferred replies held across calls, answered never: the server's
    /// end must answer them.
    parked: Vec<Reply<u32>>,
}

#[server]
impl Watcher {
    #[on_down]
    fn down(&mut self, down: Down) {
        self.downs
            .push((down.name().map(str::to_owned), down.reason().clone()));
    }

    fn downs(&self) -> Vec<(Option<String>, StopReason)> {
        self.downs.clone()
    }

    fn park(&mut self, reply: Reply<u32>) {
        self.parked.push(reply);
    }

    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }
}

/// A server that fails on request.
struct Fragile;

#[server]
impl Fragile {
    fn fail(&self) {
        panic!("fragile broke");
    }

    fn ok(&self) {}
}

/// `reason`, with a panic shown as its message.
fn text(reason: &StopReason) -> String {
    match reason {
        StopReason::Panicked(message) => format!("panicked: {message}"),
        other => other.to_string(),
    }
}

#[tokio::test(start_paused = true)]
async fn monitor_runs_on_down_with_the_name_and_reason_of_the_stopped_server() {
    within(PAUSED_LIMIT, async {
        let watcher = Watcher::default().spawn();
        let fragile = Builder::new(Fragile).name("fragile").spawn();
        let plain = Fragile.spawn();
        watcher.monitor(&fragile);
        watcher.monitor(&plain);
        assert!(matches!(fragile.fail().await, Err(CallError::Panicked(_))));
        fragile.closed().await;
        plain.stop().await;
        let downs: Vec<_> = watcher
            .downs()
            .await
            .unwrap()
            .iter()
            .map(|(name, reason)| (name.clone(), text(reason)))
            .collect();
        assert_eq!(
            downs,
            [
                (
                    Some("fragile".to_owned()),
                    "panicked: fragile broke".to_owned()
                ),
                (None, "stopped by a handle".to_owned()),
            ]
        );
        // Watching a server that has already stopped reports at once.
        watcher.monitor(&plain);
        assert_eq!(watcher.downs().await.unwrap().len(), 3);
        assert!(
            !watcher.is_closed(),
            "monitoring alone never stops the watcher"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn stop_with_stops_the_linked_server_and_leaves_no_caller_waiting() {
    within(PAUSED_LIMIT, async {
        let (watcher, exit) = Builder::new(Watcher::default()).spawn_with_exit();
        let fragile = Builder::new(Fragile).name("db").spawn();
        watcher.stop_with(&fragile);
        // A deferred reply held in the state, a call in progress and calls
        // queued behind it.
        let mut parked = std::pin::pin!(watcher.park().into_future());
        let noop = &mut std::task::Context::from_waker(std::task::Waker::noop());
        assert!(parked.as_mut().poll(noop).is_pending(), "enqueued");
        // Served in order: once this answers, the reply is in the state.
        assert_eq!(watcher.downs().await, Ok(vec![]));
        let release = hold(|entered, release| {
            let watcher = watcher.clone();
            async move { watcher.hold(entered, release).await }
        })
        .await;
        let queued: Vec<_> = (0..3)
            .map(|_| {
                let watcher = watcher.clone();
                tokio::spawn(async move { watcher.downs().await })
            })
            .collect();
        until_queued(|| watcher.queued(), 3).await;
        assert!(fragile.fail().await.is_err());
        release.notify_one();
        for call in queued {
            assert_eq!(call.await.unwrap(), Err(CallError::Closed));
        }
        assert_eq!(parked.await, Err(CallError::Closed));
        let exited = exit.await;
        let StopReason::StoppedWith(down) = &exited.reason else {
            panic!("stopped for {:?}", exited.reason);
        };
        assert!(down.is(&fragile));
        assert_eq!(down.name(), Some("db"));
        assert_eq!(text(down.reason()), "panicked: fragile broke");
        let state = exited.state.unwrap();
        assert_eq!(state.downs.len(), 1, "its `#[on_down]` ran first");
        assert_eq!(watcher.downs().await, Err(CallError::Closed));
    })
    .await;
}

/// A replica of a redundant service: answers after `latency`.
struct Replica {
    latency: Duration,
    finished: u32,
    gave_up: u32,
}

impl Replica {
    fn new(millis: u64) -> Self {
        Replica {
            latency: Duration::from_millis(millis),
            finished: 0,
            gave_up: 0,
        }
    }
}

#[server]
impl Replica {
    /// Dropped at its next await once the caller has given up.
    #[cancellable]
    async fn lookup(&mut self, query: u32) -> u32 {
        tokio::time::sleep(self.latency).await;
        self.finished += 1;
        query * 2
    }

    /// Notices that the caller gave up and stops early.
    async fn search(&mut self, query: u32, ctx: &Context<Self>) -> Option<u32> {
        tokio::select! {
            () = tokio::time::sleep(self.latency) => {
                self.finished += 1;
                Some(query * 2)
            }
            () = ctx.cancelled() => {
                assert!(ctx.is_cancelled());
                self.gave_up += 1;
                None
            }
        }
    }

    /// Works for `latency` and reports whether the caller had given up.
    async fn work(&mut self, ctx: &Context<Self>) -> bool {
        tokio::time::sleep(self.latency).await;
        self.gave_up += u32::from(ctx.is_cancelled());
        self.finished += 1;
        ctx.is_cancelled()
    }

    fn counts(&self) -> (u32, u32) {
        (self.finished, self.gave_up)
    }
}

/// Calls `lookup` on every replica at once and returns the first answer,
/// dropping the other calls.
async fn first_response(replicas: &[ReplicaHandle; 3], query: u32) -> u32 {
    let [a, b, c] = replicas;
    tokio::select! {
        Ok(value) = a.lookup(query) => value,
        Ok(value) = b.lookup(query) => value,
        Ok(value) = c.lookup(query) => value,
    }
}

#[tokio::test(start_paused = true)]
async fn in_a_first_response_race_the_losers_stop_when_the_winner_answers() {
    within(PAUSED_LIMIT, async {
        let replicas = [
            Replica::new(50).spawn(),
            Replica::new(100).spawn(),
            Replica::new(150).spawn(),
        ];
        let start = Instant::now();
        assert_eq!(first_response(&replicas, 21).await, 42);
        assert_eq!(start.elapsed(), Duration::from_millis(50));
        // The losers' next callers are served at once, not after the
        // abandoned lookups (50 and 100 ms more).
        for replica in &replicas[1..] {
            assert_eq!(replica.counts().await, Ok((0, 0)), "the lookup was dropped");
        }
        assert_eq!(start.elapsed(), Duration::from_millis(50));
        assert_eq!(replicas[0].counts().await, Ok((1, 0)));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_handler_learns_that_its_caller_gave_up_and_stops_early() {
    within(PAUSED_LIMIT, async {
        let replica = Replica::new(60_000).spawn();
        let start = Instant::now();
        let late = replica.search(1).timeout(Duration::from_millis(10)).await;
        assert_eq!(late, Err(CallError::Timeout));
        assert_eq!(replica.counts().await, Ok((0, 1)));
        assert_eq!(start.elapsed(), Duration::from_millis(10));
        // A caller that waits gets the answer.
        let fast = Replica::new(5).spawn();
        assert_eq!(fast.search(4).await, Ok(Some(8)));
        assert_eq!(fast.counts().await, Ok((1, 0)));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_is_cancelled_but_a_no_wait_call_never_is() {
    within(PAUSED_LIMIT, async {
        let replica = Replica::new(30).spawn();
        replica.work().no_wait().await.unwrap();
        assert_eq!(
            replica.counts().await,
            Ok((1, 0)),
            "no_wait: nobody gave up"
        );
        // A call dropped mid-handler: the handler runs on (not
        // `#[cancellable]`) but can tell.
        let call = tokio::spawn({
            let replica = replica.clone();
            async move { replica.work().await }
        });
        // Paused time: 10 ms in, the 30 ms handler is running.
        tokio::time::sleep(Duration::from_millis(10)).await;
        call.abort();
        assert!(call.await.unwrap_err().is_cancelled());
        assert_eq!(replica.counts().await, Ok((2, 1)));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_deferred_reply_can_wait_for_its_caller_to_give_up() {
    within(PAUSED_LIMIT, async {
        struct Holder {
            gave_up: Arc<Notify>,
        }
        #[server]
        impl Holder {
            fn wait(&mut self, mut reply: Reply<u32>) {
                let gave_up = self.gave_up.clone();
                tokio::spawn(async move {
                    reply.closed().await;
                    assert!(reply.is_closed());
                    gave_up.notify_one();
                });
            }
        }
        let gave_up = Arc::new(Notify::new());
        let holder = Holder {
            gave_up: gave_up.clone(),
        }
        .spawn();
        let late = holder.wait().timeout(Duration::from_millis(5)).await;
        assert_eq!(late, Err(CallError::Timeout));
        gave_up.notified().await;
    })
    .await;
}
