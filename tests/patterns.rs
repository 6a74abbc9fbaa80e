//! The essays' patterns as one-liners: owned calls, flat results, priority
//! levels, and the combinators (first response, bounded map, fan-in).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{LIMIT, PAUSED_LIMIT, hold, until_queued, within};
use patchboard::{CallError, OwnedCall, Server, server};

/// Doubles numbers, counting how many it has served.
#[derive(Default)]
struct Doubler {
    served: u32,
}

#[server(capacity = 4)]
impl Doubler {
    fn double(&mut self, n: u32) -> u32 {
        self.served += 1;
        n * 2
    }

    fn served(&self) -> u32 {
        self.served
    }
}

/// Adds one: another server with the same reply type.
struct Incrementer;

#[server]
impl Incrementer {
    fn increment(&self, n: u32) -> u32 {
        n + 1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_calls_move_into_spawned_tasks_without_cloning_the_handle() {
    within(LIMIT, async {
        let doubler = Doubler::default().spawn();
        // 64 tasks, far more than the mailbox holds: each owned call waits
        // for room in its own task.
        let tasks: Vec<_> = (0..64)
            .map(|n| tokio::spawn(doubler.double(n).owned()))
            .collect();
        for (n, task) in (0..64).zip(tasks) {
            assert_eq!(task.await.unwrap(), Ok(n * 2));
        }
        assert_eq!(doubler.served().await, Ok(64));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_owned_call_keeps_its_server_alive_like_a_handle() {
    within(PAUSED_LIMIT, async {
        let doubler = Doubler::default().spawn();
        let weak = doubler.downgrade();
        let call = doubler.double(21).owned();
        // Every handle dropped before the call is even polled: without the
        // call holding the server, it would drain and refuse it.
        drop(doubler);
        assert_eq!(call.await, Ok(42));
        // The call was the last holder: the server drains and stops.
        tokio::time::timeout(LIMIT, async {
            while weak.upgrade().is_some() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the server stops once the owned call has resolved");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn owned_calls_to_different_servers_collect_into_one_vec() {
    within(PAUSED_LIMIT, async {
        let doubler = Doubler::default().spawn();
        let incrementer = Incrementer.spawn();
        let calls: Vec<OwnedCall<u32>> = vec![
            doubler.double(5).owned(),
            incrementer.increment(5).owned(),
            doubler.double(7).timeout(Duration::from_secs(1)).owned(),
        ];
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await);
        }
        assert_eq!(answers, [Ok(10), Ok(6), Ok(14)]);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_owned_call_keeps_its_options() {
    within(PAUSED_LIMIT, async {
        let slow = Slow.spawn();
        let release = hold(|entered, release| slow.hold(entered, release).owned()).await;
        let late = slow.answer().timeout(Duration::from_millis(50)).owned();
        assert_eq!(tokio::spawn(late).await.unwrap(), Err(CallError::Timeout));
        release.notify_one();
        assert_eq!(slow.answer().owned().await, Ok(42));
    })
    .await;
}

struct Slow;

#[server]
impl Slow {
    async fn hold(&self, entered: Arc<tokio::sync::Notify>, release: Arc<tokio::sync::Notify>) {
        entered.notify_one();
        release.notified().await;
    }

    fn answer(&self) -> u32 {
        42
    }
}

/// A bank error that a failed call turns into.
#[derive(Debug, PartialEq)]
enum BankError {
    Insufficient { balance: u64 },
    Call(CallError),
}

impl From<CallError> for BankError {
    fn from(error: CallError) -> Self {
        BankError::Call(error)
    }
}

struct Account {
    balance: u64,
}

#[server]
impl Account {
    fn withdraw(&mut self, amount: u64) -> Result<u64, BankError> {
        match self.balance.checked_sub(amount) {
            Some(left) => {
                self.balance = left;
                Ok(left)
            }
            None => Err(BankError::Insufficient {
                balance: self.balance,
            }),
        }
    }

    fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }
}

/// `?` in one step, in a function returning the handler's own error.
async fn transfer(from: &AccountHandle, to: &AccountHandle, amount: u64) -> Result<u64, BankError> {
    from.withdraw(amount).flatten().await?;
    Ok(to.deposit(amount).await?)
}

#[tokio::test(start_paused = true)]
async fn flatten_gives_the_handlers_result_with_call_errors_folded_in() {
    within(PAUSED_LIMIT, async {
        let alice = Account { balance: 100 }.spawn();
        let bob = Account { balance: 0 }.spawn();
        assert_eq!(transfer(&alice, &bob, 60).await, Ok(60));
        assert_eq!(
            transfer(&alice, &bob, 60).await,
            Err(BankError::Insufficient { balance: 40 })
        );
        alice.stop().await;
        assert_eq!(
            transfer(&alice, &bob, 1).await,
            Err(BankError::Call(CallError::Closed))
        );
        // The same through an owned call, in a spawned task.
        let owned = bob.withdraw(1_000).owned().flatten();
        assert_eq!(
            tokio::spawn(owned).await.unwrap(),
            Err(BankError::Insufficient { balance: 60 })
        );
        // Box<dyn Error> takes a CallError too.
        let boxed: Result<u64, Box<dyn std::error::Error + Send + Sync>> = async {
            let left = bob.deposit(1).await?;
            Ok(left)
        }
        .await;
        assert_eq!(boxed.unwrap(), 61);
    })
    .await;
}

/// The essay's multiplexer: events of three priorities on one server.
#[derive(Default)]
struct Mux {
    log: Vec<String>,
}

#[server(capacity = 64)]
impl Mux {
    #[priority(2)]
    fn critical(&mut self, event: u32) {
        self.log.push(format!("critical {event}"));
    }

    #[priority]
    fn user(&mut self, event: u32) {
        self.log.push(format!("user {event}"));
    }

    fn metrics(&mut self, event: u32) {
        self.log.push(format!("metrics {event}"));
    }

    async fn hold(&self, entered: Arc<tokio::sync::Notify>, release: Arc<tokio::sync::Notify>) {
        entered.notify_one();
        release.notified().await;
    }

    #[priority(7)]
    fn log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }
}

#[tokio::test(start_paused = true)]
async fn three_priority_levels_are_served_in_level_order_and_fifo_within_each() {
    within(PAUSED_LIMIT, async {
        let mux = Mux::default().spawn();
        let release = hold(|entered, release| mux.hold(entered, release).owned()).await;
        // Queued together, interleaved, while the server is busy.
        for event in 0..3 {
            mux.metrics(event).no_wait().await.unwrap();
            mux.user(event).no_wait().await.unwrap();
            mux.critical(event).no_wait().await.unwrap();
        }
        until_queued(|| mux.queued(), 9).await;
        release.notify_one();
        let expected: Vec<String> = ["critical", "user", "metrics"]
            .iter()
            .flat_map(|level| (0..3).map(move |event| format!("{level} {event}")))
            .collect();
        assert_eq!(mux.log().priority(0).await.unwrap(), expected);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_call_can_override_its_messages_priority() {
    within(PAUSED_LIMIT, async {
        let mux = Mux::default().spawn();
        let release = hold(|entered, release| mux.hold(entered, release).owned()).await;
        mux.critical(1).priority(0).no_wait().await.unwrap(); // demoted
        mux.metrics(2).no_wait().await.unwrap();
        mux.metrics(3).priority(2).no_wait().await.unwrap(); // promoted
        mux.user(4).priority(200).no_wait().await.unwrap(); // lowered to the highest, 7
        until_queued(|| mux.queued(), 4).await;
        release.notify_one();
        assert_eq!(
            mux.log().priority(0).await.unwrap(),
            ["user 4", "metrics 3", "critical 1", "metrics 2"]
        );
        assert_eq!(patchboard::MAX_PRIORITY, 7);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_critical_events_never_starves_the_lower_levels() {
    within(PAUSED_LIMIT, async {
        let mux = Mux::default().spawn();
        let release = hold(|entered, release| mux.hold(entered, release).owned()).await;
        mux.metrics(0).no_wait().await.unwrap();
        mux.user(0).no_wait().await.unwrap();
        for event in 0..40 {
            mux.critical(event).no_wait().await.unwrap();
        }
        until_queued(|| mux.queued(), 42).await;
        release.notify_one();
        let log = mux.log().priority(0).await.unwrap();
        let position = |entry: &str| log.iter().position(|e| e == entry).unwrap();
        let burst = patchboard::PRIORITY_BURST;
        assert_eq!(position("metrics 0"), burst);
        assert_eq!(position("user 0"), burst + 1);
        assert_eq!(log.len(), 42);
    })
    .await;
}

/// A redundant replica: answers after its latency, or fails.
struct Replica {
    latency: Duration,
    fails: bool,
    finished: u32,
}

#[server]
impl Replica {
    #[cancellable]
    async fn lookup(&mut self, query: u32) -> Result<u32, String> {
        tokio::time::sleep(self.latency).await;
        self.finished += 1;
        if self.fails {
            Err(format!("replica down for {query}"))
        } else {
            Ok(query * 10)
        }
    }

    fn finished(&self) -> u32 {
        self.finished
    }
}

fn replicas(setup: [(u64, bool); 3]) -> Vec<ReplicaHandle> {
    setup
        .into_iter()
        .map(|(ms, fails)| {
            Replica {
                latency: Duration::from_millis(ms),
                fails,
                finished: 0,
            }
            .spawn()
        })
        .collect()
}

/// The handler's own error, or the call's.
#[derive(Debug, PartialEq)]
enum LookupError {
    Replica(String),
    Call(CallError),
}

impl From<CallError> for LookupError {
    fn from(error: CallError) -> Self {
        LookupError::Call(error)
    }
}

impl From<String> for LookupError {
    fn from(error: String) -> Self {
        LookupError::Replica(error)
    }
}

/// The replicas' `lookup`, flattened into `LookupError`.
fn lookups(
    replicas: &[ReplicaHandle],
    query: u32,
) -> impl Iterator<Item = impl std::future::Future<Output = Result<u32, LookupError>> + '_> {
    replicas
        .iter()
        .map(move |replica| async move { Ok(replica.lookup(query).await??) })
}

#[tokio::test(start_paused = true)]
async fn first_ok_returns_the_first_success_and_cancels_the_losers() {
    within(PAUSED_LIMIT, async {
        // The fastest replica fails: the first *success* wins.
        let replicas = replicas([(30, true), (60, false), (90, false)]);
        let start = tokio::time::Instant::now();
        let answer = patchboard::first_ok(lookups(&replicas, 4), Duration::from_millis(400)).await;
        assert_eq!(answer, Ok(40));
        assert_eq!(start.elapsed(), Duration::from_millis(60));
        // The slowest replica's lookup was dropped when the winner answered:
        // its next caller is served at once, and it never finished.
        assert_eq!(replicas[2].finished().await, Ok(0));
        assert_eq!(start.elapsed(), Duration::from_millis(60));
        assert_eq!(replicas[0].finished().await, Ok(1));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn first_ok_reports_every_error_in_order_when_none_succeeds() {
    within(PAUSED_LIMIT, async {
        let replicas = replicas([(30, true), (10, true), (500, false)]);
        let answer = patchboard::first_ok(lookups(&replicas, 1), Duration::from_millis(100)).await;
        assert_eq!(
            answer,
            Err(vec![
                LookupError::Replica("replica down for 1".to_owned()),
                LookupError::Replica("replica down for 1".to_owned()),
                LookupError::Call(CallError::Timeout),
            ])
        );
        // Plain calls race on the call alone (the error type is CallError):
        // a handler's `Err` is a delivered answer, so the fastest wins.
        replicas[2].stop().await;
        let plain = replicas.iter().map(|replica| replica.lookup(2));
        let answer = patchboard::first_ok(plain, Duration::from_millis(100)).await;
        assert_eq!(answer, Ok(Err("replica down for 2".to_owned())));
        for replica in &replicas {
            replica.stop().await;
        }
        let closed = replicas.iter().map(|replica| replica.lookup(3));
        let answer = patchboard::first_ok(closed, Duration::from_millis(100)).await;
        assert_eq!(answer, Err(vec![CallError::Closed; 3]));
        let no_calls: Vec<patchboard::OwnedCall<u32>> = Vec::new();
        assert_eq!(
            patchboard::first_ok(no_calls, Duration::from_secs(1)).await,
            Err(vec![])
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn first_ok_retries_with_a_growing_deadline_as_in_the_essay() {
    within(PAUSED_LIMIT, async {
        let replicas = replicas([(700, false), (900, false), (1_200, false)]);
        let mut deadline = Duration::from_millis(400);
        let mut attempts = 0;
        let answer = loop {
            attempts += 1;
            match patchboard::first_ok(lookups(&replicas, 3), deadline).await {
                Ok(value) => break value,
                Err(_) => deadline *= 2,
            }
        };
        assert_eq!((answer, attempts), (30, 2));
    })
    .await;
}

/// A worker of a pool that resolves city ids, tracking how many run at
/// once across the whole pool.
#[derive(Clone)]
struct Resolver {
    running: Arc<std::sync::atomic::AtomicUsize>,
    most: Arc<std::sync::atomic::AtomicUsize>,
}

#[server(capacity = 64)]
impl Resolver {
    async fn resolve(&self, id: u32) -> Result<String, String> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        // Later ids are faster, so that completion order differs from
        // input order.
        tokio::time::sleep(Duration::from_millis(u64::from(100 - id))).await;
        self.running.fetch_sub(1, SeqCst);
        if id.is_multiple_of(7) {
            Err(format!("city {id} failed"))
        } else {
            Ok(format!("city {id}"))
        }
    }
}

/// A pool of `workers` resolvers, and the most that ever ran at once.
fn resolver_pool(workers: usize) -> (ResolverHandle, Arc<std::sync::atomic::AtomicUsize>) {
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let resolver = Resolver {
        running: Arc::default(),
        most: most.clone(),
    };
    (
        patchboard::Builder::new(resolver).pool(workers).spawn(),
        most,
    )
}

fn expected_city(id: u32) -> Result<String, String> {
    if id.is_multiple_of(7) {
        Err(format!("city {id} failed"))
    } else {
        Ok(format!("city {id}"))
    }
}

#[tokio::test(start_paused = true)]
async fn bounded_map_keeps_to_its_limit_and_collects_every_slot_in_input_order() {
    use std::sync::atomic::Ordering::SeqCst;
    within(PAUSED_LIMIT, async {
        let (pool, most) = resolver_pool(8);
        let results = patchboard::bounded_map(0..20, 3, |id| pool.resolve(id))
            .collect()
            .await;
        let expected: Vec<_> = (0..20).map(|id| Ok(expected_city(id))).collect();
        assert_eq!(results, expected);
        assert_eq!(
            most.load(SeqCst),
            3,
            "at most (and at some point exactly) 3 in flight"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn bounded_map_streams_results_in_completion_order_with_their_index() {
    within(PAUSED_LIMIT, async {
        let (pool, _) = resolver_pool(5);
        let pool = &pool;
        let mut results = patchboard::bounded_map(0..20, 5, |id| async move {
            Ok::<_, LookupError>(pool.resolve(id).await??)
        });
        let mut seen = Vec::new();
        while let Some((index, result)) = results.next().await {
            assert_eq!(
                result,
                expected_city(index as u32).map_err(LookupError::Replica)
            );
            seen.push(index);
        }
        // Completion order is not input order (later ids are faster)...
        assert_ne!(seen, (0..20).collect::<Vec<_>>());
        // ...and every input is there exactly once.
        seen.sort_unstable();
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_in_a_bounded_map_is_an_error_in_its_slot() {
    within(PAUSED_LIMIT, async {
        let (pool, _) = resolver_pool(2);
        let stopped = pool.clone();
        let results = patchboard::bounded_map(0..6, 2, |id| {
            let call = pool.resolve(id).owned();
            let stopped = stopped.clone();
            async move {
                if id == 4 {
                    stopped.stop().await;
                }
                call.await
            }
        })
        .collect()
        .await;
        assert_eq!(results.len(), 6);
        // Everything enqueued before the stop is served; the calls made
        // after it are refused, each in its own slot.
        for (id, result) in results.iter().enumerate().take(4) {
            assert_eq!(*result, Ok(expected_city(id as u32)));
        }
        assert_eq!(
            results[4..],
            [Err(CallError::Closed), Err(CallError::Closed)]
        );
        assert_eq!(
            patchboard::bounded_map(0..0, 0, |id| pool.resolve(id))
                .collect()
                .await,
            []
        );
    })
    .await;
}

/// A source of events that anyone can subscribe to.
#[derive(Default)]
struct Source {
    subscribers: Vec<patchboard::Subscriber<String>>,
}

#[server]
impl Source {
    fn subscribe(&mut self) -> patchboard::Subscription<String> {
        let (subscriber, subscription) = patchboard::subscription(64);
        self.subscribers.push(subscriber);
        subscription
    }

    fn publish(&mut self, event: String) {
        self.subscribers
            .retain(|subscriber| subscriber.send(event.clone()).is_connected());
    }
}

#[tokio::test(start_paused = true)]
async fn merge_fans_in_every_subscription_and_ends_when_all_have_ended() {
    within(PAUSED_LIMIT, async {
        let sources: Vec<_> = (0..3).map(|_| Source::default().spawn()).collect();
        let mut subscriptions = Vec::new();
        for source in &sources {
            subscriptions.push(source.subscribe().await.unwrap());
        }
        let mut merged = patchboard::merge(subscriptions);
        for round in 0..4 {
            for (name, source) in sources.iter().enumerate() {
                source.publish(format!("{name}.{round}")).await.unwrap();
            }
        }
        // Every source has items ready: they are taken in turn, none first
        // every time, and each source's own order is kept.
        let mut first_six = Vec::new();
        for _ in 0..6 {
            first_six.push(merged.next().await.unwrap());
        }
        assert_eq!(first_six, ["0.0", "1.0", "2.0", "0.1", "1.1", "2.1"]);
        sources[1].stop().await;
        let mut rest = Vec::new();
        // Still open: two sources live on, so stop them after one more.
        sources[0].publish("0.late".to_owned()).await.unwrap();
        for source in &sources {
            source.stop().await;
        }
        while let Some(event) = merged.next().await {
            rest.push(event);
        }
        assert_eq!(rest, ["0.2", "1.2", "2.2", "0.3", "1.3", "2.3", "0.late"]);
    })
    .await;
}
