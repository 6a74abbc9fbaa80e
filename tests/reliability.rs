//! Reliability, part 2: each test pins one promise that an adversarial user
//! broke on an earlier version (RELIABILITY.md lists them with their
//! numbers).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{LIMIT, PAUSED_LIMIT, within};
use patchboard::PRIORITY_BURST;
use patchboard::{
    Builder, CallError, PanicPolicy, Reply, Restart, Server, StopReason, Subscriber, Subscription,
    server, subscription,
};
use tokio::sync::Notify;

// 1. Fairness --------------------------------------------------------------------

struct Busy {
    served: Arc<AtomicUsize>,
    /// `served` when the first tick ran.
    first_tick: Arc<AtomicUsize>,
}

#[server(capacity = 16)]
impl Busy {
    /// About 100 µs of work that never awaits.
    #[cast]
    fn work(&mut self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_micros(100) {
            std::hint::spin_loop();
        }
        self.served.fetch_add(1, Ordering::SeqCst);
    }

    fn nothing(&self) {}

    #[every(Duration::from_millis(10))]
    fn tick(&mut self) {
        let served = self.served.load(Ordering::SeqCst);
        let _ = self.first_tick.compare_exchange(
            usize::MAX,
            served,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
}

/// A server whose mailbox never empties (8 producer threads, a 100 µs
/// handler that never awaits) on a current-thread runtime: the other task's
/// sleep, a caller's timeout and the server's own timer all happen while the
/// flood is still going, not after it.
#[test]
fn a_flooded_server_lets_its_runtime_breathe() {
    const PRODUCERS: usize = 8;
    const EACH: usize = 250;
    const TOTAL: usize = PRODUCERS * EACH;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let first_tick = Arc::new(AtomicUsize::new(usize::MAX));
    let busy = runtime.block_on(async {
        Busy {
            served: served.clone(),
            first_tick: first_tick.clone(),
        }
        .spawn()
    });
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let busy = busy.clone();
            std::thread::spawn(move || {
                for _ in 0..EACH {
                    busy.work().timeout(LIMIT).blocking().unwrap();
                }
            })
        })
        .collect();
    let (slept_at, timed_out_at, timeout) = runtime.block_on(within(LIMIT, async {
        while served.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let sleeper = tokio::spawn({
            let served = served.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                served.load(Ordering::SeqCst)
            }
        });
        let caller = tokio::spawn({
            let (served, busy) = (served.clone(), busy.clone());
            async move {
                let outcome = busy.nothing().timeout(Duration::from_micros(200)).await;
                (served.load(Ordering::SeqCst), outcome)
            }
        });
        let slept_at = sleeper.await.unwrap();
        let (timed_out_at, timeout) = caller.await.unwrap();
        // Joined while the runtime still runs the server.
        tokio::task::spawn_blocking(move || producers.into_iter().try_for_each(|p| p.join()))
            .await
            .unwrap()
            .unwrap();
        (slept_at, timed_out_at, timeout)
    }));
    assert!(
        slept_at < TOTAL,
        "another task's sleep waited for the whole flood"
    );
    // Served in time when the queue happened to be short, else timed out:
    // either way, while the flood was still going.
    assert!(
        matches!(timeout, Ok(()) | Err(CallError::Timeout)),
        "{timeout:?}"
    );
    assert!(
        timed_out_at < TOTAL,
        "a caller's timeout waited for the whole flood"
    );
    assert!(
        first_tick.load(Ordering::SeqCst) < TOTAL,
        "the server's own timer waited for the whole flood"
    );
    runtime.block_on(busy.stop());
}

// 2. Pools serve what was queued before stop() --------------------------------

#[derive(Clone)]
struct Echo;

#[server(capacity = 64)]
impl Echo {
    fn echo(&self, n: usize) -> usize {
        n
    }
}

/// Polls `future` once, so that a call is enqueued before the next line:
/// its output if that was enough, else the future to await later.
async fn poll_once<F: Future + Unpin>(mut future: F) -> Result<F::Output, F> {
    let polled =
        std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut future).poll(cx)))
            .await;
    match polled {
        std::task::Poll::Ready(output) => Ok(output),
        std::task::Poll::Pending => Err(future),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_serves_every_request_queued_before_stop_in_every_interleaving() {
    within(LIMIT * 6, async {
        for _ in 0..1_000 {
            let pool = Builder::new(Echo).pool(8).spawn();
            let mut calls = Vec::new();
            for n in 0..64 {
                let call = Box::pin(std::future::IntoFuture::into_future(pool.echo(n)));
                calls.push(poll_once(call).await);
            }
            pool.stop().await;
            for (n, call) in calls.into_iter().enumerate() {
                let outcome = match call {
                    Ok(outcome) => outcome,
                    Err(call) => call.await,
                };
                assert_eq!(outcome, Ok(n), "a request queued before stop() was refused");
            }
        }
    })
    .await;
}

// 3. Every call into user code is caught -----------------------------------------

struct Hooks {
    stops: Arc<AtomicUsize>,
    period: fn() -> Duration,
}

#[server]
impl Hooks {
    fn ping(&self) -> &'static str {
        "pong"
    }

    #[every((self.period)())]
    fn tick(&mut self) {}

    #[on_stop]
    fn stopped(&mut self) {
        self.stops.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_every_expression_stops_the_server_with_its_message() {
    within(PAUSED_LIMIT, async {
        let stops = Arc::new(AtomicUsize::new(0));
        let period = || -> Duration { panic!("no period") };
        let hooks = Hooks {
            stops: stops.clone(),
            period,
        }
        .spawn();
        assert_eq!(hooks.ping().await, Err(CallError::Closed));
        let reason = hooks.closed().await;
        assert!(panicked(&reason, "no period"), "{reason:?}");
        assert_eq!(
            stops.load(Ordering::SeqCst),
            1,
            "on_stop runs: the start had succeeded"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_period_of_duration_max_means_never() {
    within(PAUSED_LIMIT, async {
        let stops = Arc::new(AtomicUsize::new(0));
        let hooks = Hooks {
            stops: stops.clone(),
            period: || Duration::MAX,
        }
        .spawn();
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(hooks.ping().await, Ok("pong"));
        hooks.stop().await;
        assert_eq!(stops.load(Ordering::SeqCst), 1);
    })
    .await;
}

/// `true` for a panic with exactly this message.
fn panicked(reason: &StopReason, text: &str) -> bool {
    matches!(reason, StopReason::Panicked(message) if message.as_str() == text)
}

struct Fragile {
    drops: Arc<AtomicUsize>,
    panic_on_drop: bool,
}

impl Drop for Fragile {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if self.panic_on_drop {
            panic!("drop of the broken state");
        }
    }
}

/// A panic payload whose own `Drop` panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("payload drop");
    }
}

#[server]
impl Fragile {
    fn ping(&self) -> &'static str {
        "pong"
    }

    fn boom(&mut self) {
        panic!("handler broke");
    }

    fn bomb(&mut self) {
        std::panic::panic_any(Bomb);
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_restart_factory_stops_the_server_with_its_message() {
    within(PAUSED_LIMIT, async {
        let drops = Arc::new(AtomicUsize::new(0));
        let state = Fragile {
            drops: drops.clone(),
            panic_on_drop: false,
        };
        let fragile = Builder::new(state)
            .restart(Restart::new(|| -> Fragile { panic!("factory broke") }))
            .spawn();
        assert!(matches!(fragile.boom().await, Err(CallError::Panicked(_))));
        let reason = fragile.closed().await;
        assert!(panicked(&reason, "factory broke"), "{reason:?}");
        assert_eq!(fragile.ping().await, Err(CallError::Closed));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_state_whose_drop_panics_is_still_restarted() {
    within(PAUSED_LIMIT, async {
        let drops = Arc::new(AtomicUsize::new(0));
        let state = Fragile {
            drops: drops.clone(),
            panic_on_drop: true,
        };
        let fresh = drops.clone();
        let fragile = Builder::new(state)
            .restart(Restart::new(move || Fragile {
                drops: fresh.clone(),
                panic_on_drop: false,
            }))
            .spawn();
        assert!(matches!(fragile.boom().await, Err(CallError::Panicked(_))));
        assert_eq!(fragile.ping().await, Ok("pong"), "the new state serves");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "the broken state was dropped"
        );
        fragile.stop().await;
        assert_eq!(fragile.closed().await, StopReason::Stopped);
    })
    .await;
}

#[tokio::test]
async fn a_panic_payload_whose_drop_panics_is_contained() {
    within(LIMIT, async {
        let state = Fragile {
            drops: Arc::new(AtomicUsize::new(0)),
            panic_on_drop: false,
        };
        let fragile = Builder::new(state).on_panic(PanicPolicy::Continue).spawn();
        let outcome = fragile.bomb().await;
        assert!(
            matches!(&outcome, Err(CallError::Panicked(m)) if m.as_str() == "non-string panic payload"),
            "{outcome:?}"
        );
        assert_eq!(fragile.ping().await, Ok("pong"), "continue: still serving");
    })
    .await;
}

// 4. No input panics the caller's process ---------------------------------------

struct Knobs {
    period: Duration,
    subscribers: Vec<Subscriber<u8>>,
}

#[server(capacity = 1)]
impl Knobs {
    fn ping(&self) -> u8 {
        1
    }

    fn subscribe(&mut self, capacity: usize) -> Subscription<u8> {
        let (subscriber, subscription) = subscription(capacity);
        let _ = subscriber.send(7);
        self.subscribers.push(subscriber);
        subscription
    }

    fn boom(&mut self) {
        panic!("boom");
    }

    #[every(self.period)]
    fn tick(&mut self) {}
}

fn knobs(period: Duration) -> Knobs {
    Knobs {
        period,
        subscribers: Vec::new(),
    }
}

/// Every numeric option at 0, 1 and its maximum: accepted with its
/// documented meaning, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_numeric_option_at_zero_one_and_max_is_accepted() {
    within(LIMIT * 3, async {
        // Capacity: 0 is raised to 1, usize::MAX lowered to MAX_CAPACITY.
        for capacity in [0, 1, usize::MAX] {
            let server = Builder::new(knobs(Duration::from_secs(1)))
                .capacity(capacity)
                .spawn();
            assert_eq!(server.ping().await, Ok(1), "capacity {capacity}");
            server.stop().await;
        }
        // Pool size: 0 is raised to 1, usize::MAX lowered to MAX_POOL_SIZE.
        for replicas in [0, 1, usize::MAX] {
            let pool = Builder::new(Echo).pool(replicas).spawn();
            assert_eq!(pool.echo(3).await, Ok(3), "pool {replicas}");
            pool.stop().await;
        }
        // Periods: zero is raised to 1 ms, Duration::MAX never fires.
        for period in [Duration::ZERO, Duration::from_nanos(1), Duration::MAX] {
            let server = knobs(period).spawn();
            assert_eq!(server.ping().await, Ok(1), "period {period:?}");
            server.stop().await;
        }
        let server = knobs(Duration::from_secs(1)).spawn();
        // Timeouts: zero fails unless answered at once, MAX never expires.
        let zero = server.ping().timeout(Duration::ZERO).await;
        assert!(matches!(zero, Ok(1) | Err(CallError::Timeout)), "{zero:?}");
        for timeout in [Duration::from_nanos(1), Duration::MAX] {
            let outcome = server.ping().timeout(timeout).await;
            assert!(
                matches!(outcome, Ok(1) | Err(CallError::Timeout)),
                "{outcome:?}"
            );
        }
        assert_eq!(server.ping().timeout(Duration::MAX).await, Ok(1));
        let blocking = server.clone();
        let outcomes = tokio::task::spawn_blocking(move || {
            [Duration::ZERO, Duration::from_nanos(1), Duration::MAX]
                .map(|timeout| blocking.ping().timeout(timeout).blocking())
        })
        .await
        .unwrap();
        assert_eq!(
            outcomes[2],
            Ok(1),
            "a blocking call with Duration::MAX waits for its answer"
        );
        for outcome in &outcomes[..2] {
            assert!(
                matches!(outcome, Ok(1) | Err(CallError::Timeout)),
                "{outcome:?}"
            );
        }
        // Subscription capacity: 0 is raised to 1, usize::MAX lowered.
        for capacity in [0, 1, usize::MAX] {
            let mut values = server.subscribe(capacity).await.unwrap();
            assert_eq!(
                values.recv().await,
                Some(7),
                "subscription capacity {capacity}"
            );
        }
        server.stop().await;
        // Restart intensity and window.
        for (max, window) in [
            (0, Duration::ZERO),
            (1, Duration::from_nanos(1)),
            (usize::MAX, Duration::MAX),
        ] {
            let server = Builder::new(knobs(Duration::from_secs(1)))
                .restart(
                    Restart::new(|| knobs(Duration::from_secs(1)))
                        .max_restarts(max)
                        .window(window),
                )
                .spawn();
            assert!(matches!(server.boom().await, Err(CallError::Panicked(_))));
            let after = server.ping().await;
            if max == 0 {
                assert_eq!(after, Err(CallError::Closed), "no restart allowed");
            } else {
                assert_eq!(after, Ok(1), "restarted (max {max}, window {window:?})");
            }
            server.stop().await;
        }
    })
    .await;
}

// 5. A call made after stop() gets Closed, on every lane ---------------------------

struct Lanes;

#[server]
impl Lanes {
    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }

    fn normal(&self) -> &'static str {
        "normal"
    }

    #[priority]
    fn urgent(&self) -> &'static str {
        "urgent"
    }
}

#[tokio::test(start_paused = true)]
async fn calls_made_after_stop_are_refused_on_every_lane() {
    within(PAUSED_LIMIT, async {
        let lanes = Lanes.spawn();
        let release = common::hold({
            let lanes = lanes.clone();
            move |entered, release| async move { lanes.hold(entered, release).await }
        })
        .await;
        let queued = tokio::spawn({
            let lanes = lanes.clone();
            async move { lanes.normal().await }
        });
        common::until_queued(|| lanes.queued(), 1).await;
        let stopping = tokio::spawn({
            let lanes = lanes.clone();
            async move { lanes.stop().await }
        });
        common::until(|| lanes.is_closed()).await;
        assert_eq!(lanes.urgent().await, Err(CallError::Closed));
        assert_eq!(lanes.normal().await, Err(CallError::Closed));
        release.notify_one();
        stopping.await.unwrap();
        assert_eq!(
            queued.await.unwrap(),
            Ok("normal"),
            "queued before the stop: served"
        );
    })
    .await;
}

// 6. Stop reasons are exact ------------------------------------------------------------

#[derive(Clone)]
struct Ending;

#[server]
impl Ending {
    fn ping(&self) -> u8 {
        1
    }

    fn finish(self) -> u8 {
        2
    }

    fn explode(self) -> u8 {
        panic!("terminal broke")
    }
}

#[tokio::test]
async fn a_pool_whose_terminal_method_ran_reports_terminal() {
    within(LIMIT, async {
        let pool = Builder::new(Ending).pool(3).spawn();
        assert_eq!(pool.ping().await, Ok(1));
        assert_eq!(pool.finish().await, Ok(2));
        assert_eq!(pool.closed().await, StopReason::Terminal);
    })
    .await;
}

#[tokio::test]
async fn a_terminal_method_that_panics_reports_panicked() {
    within(LIMIT, async {
        let ending = Ending.spawn();
        assert!(matches!(
            ending.explode().await,
            Err(CallError::Panicked(_))
        ));
        let reason = ending.closed().await;
        assert!(panicked(&reason, "terminal broke"), "{reason:?}");
    })
    .await;
}

struct Keeper {
    kept: Vec<Reply<u8>>,
    subscribers: Vec<Subscriber<u8>>,
}

#[server]
impl Keeper {
    fn keep(&mut self, reply: Reply<u8>) {
        self.kept.push(reply);
    }

    fn subscribe(&mut self) -> Subscription<u8> {
        let (subscriber, subscription) = subscription(4);
        self.subscribers.push(subscriber);
        subscription
    }

    /// Says it has started, then never ends.
    async fn forever(&self, started: Arc<AtomicBool>) {
        started.store(true, Ordering::SeqCst);
        std::future::pending::<()>().await;
    }

    fn ping(&self) -> u8 {
        1
    }

    /// How many replies the state holds.
    fn held(&self) -> usize {
        self.kept.len()
    }

    fn boom(&mut self) {
        panic!("keeper broke");
    }
}

fn keeper() -> Keeper {
    Keeper {
        kept: Vec::new(),
        subscribers: Vec::new(),
    }
}

#[test]
fn a_call_in_flight_at_runtime_shutdown_gets_the_same_error_as_the_queued_ones() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(async { keeper().spawn() });
    let serving = Arc::new(AtomicBool::new(false));
    let in_flight = std::thread::spawn({
        let server = server.clone();
        let serving = serving.clone();
        move || server.forever(serving).timeout(LIMIT).blocking()
    });
    // Until `forever` is being served (it says so): a timed-out probe
    // would mistake a slow server for a busy one.
    let started = Instant::now();
    while !serving.load(Ordering::SeqCst) {
        assert!(started.elapsed() < LIMIT, "`forever` never started");
        std::thread::yield_now();
    }
    let queued = std::thread::spawn({
        let server = server.clone();
        move || server.ping().timeout(LIMIT).blocking()
    });
    while server.queued() == 0 {
        assert!(started.elapsed() < LIMIT, "the ping was never queued");
        std::thread::yield_now();
    }
    runtime.shutdown_background();
    assert_eq!(in_flight.join().unwrap(), Err(CallError::Closed));
    assert_eq!(queued.join().unwrap(), Err(CallError::Closed));
}

#[tokio::test]
async fn replies_held_in_the_state_when_a_handler_panics_get_its_message() {
    within(LIMIT, async {
        let server = keeper().spawn();
        let kept = tokio::spawn({
            let server = server.clone();
            async move { server.keep().await }
        });
        // The two tasks' calls have no order of their own: ask until the
        // kept call is stored.
        while server.held().await != Ok(1) {
            tokio::task::yield_now().await;
        }
        assert!(!kept.is_finished(), "the kept call is stored, not answered");
        assert!(matches!(server.boom().await, Err(CallError::Panicked(_))));
        let outcome = kept.await.unwrap();
        assert!(
            matches!(&outcome, Err(CallError::Panicked(m)) if m.as_str() == "keeper broke"),
            "{outcome:?}"
        );
    })
    .await;
}

// 7. Nothing outlives its server ---------------------------------------------------------

#[tokio::test]
async fn replies_and_subscriptions_kept_in_the_final_state_end_with_the_server() {
    within(LIMIT, async {
        let (server, exit) = Builder::new(keeper()).spawn_with_exit();
        let mut values = server.subscribe().await.unwrap();
        let kept = tokio::spawn({
            let server = server.clone();
            async move { server.keep().await }
        });
        // The two tasks' calls have no order of their own: ask until the
        // kept call has been served.
        while server.held().await != Ok(1) {
            tokio::task::yield_now().await;
        }
        server.stop().await;
        // The final state, with the reply and the subscriber, is still alive
        // here: the caller and the subscriber are released all the same.
        let exited = exit.await;
        let state = exited.state.expect("the final state");
        assert_eq!((state.kept.len(), state.subscribers.len()), (1, 1));
        assert_eq!(kept.await.unwrap(), Err(CallError::Closed));
        assert_eq!(values.recv().await, None);
        assert!(state.subscribers[0].is_closed());
        drop(state);
    })
    .await;
}

// 8. Deadlocks are reported, not suffered --------------------------------------------------

struct Node {
    name: &'static str,
    next: Option<NodeHandle>,
}

#[server]
impl Node {
    fn connect(&mut self, next: NodeHandle) {
        self.next = Some(next);
    }

    /// Asks the next node, which asks its next, and so on, for `hops` hops.
    async fn relay(&self, hops: usize) -> Result<String, CallError> {
        if hops == 0 {
            return Ok(self.name.to_owned());
        }
        let next = self.next.clone().expect("connected");
        let answer = next.relay(hops - 1).await??;
        Ok(format!("{} {answer}", self.name))
    }

    async fn wait_for_myself(&self, me: NodeHandle) -> StopReason {
        me.closed().await
    }
}

fn node(name: &'static str) -> NodeHandle {
    Node { name, next: None }.spawn()
}

#[tokio::test(start_paused = true)]
async fn a_cycle_of_waiting_servers_fails_the_call_that_closes_it() {
    within(PAUSED_LIMIT, async {
        let (a, b, c) = (node("a"), node("b"), node("c"));
        a.connect(b.clone()).await.unwrap();
        b.connect(c.clone()).await.unwrap();
        c.connect(a.clone()).await.unwrap();
        // No cycle: a waits for b, b for c.
        assert_eq!(a.relay(2).await, Ok(Ok("a b c".to_owned())));
        // c calls a, which waits for b, which waits for c: refused.
        assert_eq!(a.relay(3).await, Ok(Err(CallError::Deadlock)));
        // Two servers: b asks c, c asks b's caller chain's b? c -> a -> b.
        assert_eq!(b.relay(3).await, Ok(Err(CallError::Deadlock)));
        // Nobody stays wedged.
        assert_eq!(c.relay(1).await, Ok(Ok("c a".to_owned())));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_handler_awaiting_its_own_closed_fails_instead_of_hanging() {
    within(PAUSED_LIMIT, async {
        let a = node("a");
        let outcome = a.wait_for_myself(a.clone()).await;
        assert!(
            matches!(&outcome, Err(CallError::Panicked(m)) if m.as_str().contains("own `closed()`")),
            "{outcome:?}"
        );
    })
    .await;
}

// Issue 26: the promises at their edges -----------------------------------

/// A pool member that records the order it served things in.
#[derive(Clone)]
struct Burst {
    log: Arc<std::sync::Mutex<Vec<&'static str>>>,
}

#[server(capacity = 512)]
impl Burst {
    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }

    #[cast]
    fn low(&self) {
        self.log.lock().unwrap().push("low");
    }

    /// Yields once, so that the replicas take turns.
    #[cast]
    #[priority]
    async fn high(&self) {
        self.log.lock().unwrap().push("high");
        tokio::task::yield_now().await;
    }
}

/// Issue 26, item 5: `PRIORITY_BURST` holds per server, whatever the number
/// of replicas: in `pool(4)`, a waiting level-0 request is passed over at
/// most a burst's worth of times (plus what the other replicas had taken
/// at that moment), not once per replica (128 before the fix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pools_priority_burst_is_counted_for_the_whole_pool() {
    within(LIMIT, async {
        const REPLICAS: usize = 4;
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let pool = Builder::new(Burst { log: log.clone() })
            .pool(REPLICAS)
            .spawn();
        let mut releases = Vec::new();
        for _ in 0..REPLICAS {
            let pool = pool.clone();
            releases.push(
                common::hold(
                    move |entered, release| async move { pool.hold(entered, release).await },
                )
                .await,
            );
        }
        pool.low().await.unwrap();
        for _ in 0..4 * PRIORITY_BURST {
            pool.high().await.unwrap();
        }
        for release in releases {
            release.notify_one();
        }
        common::until(|| log.lock().unwrap().len() == 4 * PRIORITY_BURST + 1).await;
        let log = log.lock().unwrap();
        let low = log.iter().position(|&served| served == "low").unwrap();
        assert!(
            low <= PRIORITY_BURST + REPLICAS,
            "the level-0 request waited behind {low} higher ones"
        );
    })
    .await;
}

/// Counts what it learns of the servers it watches.
#[derive(Default)]
struct Counter {
    downs: usize,
}

#[server]
impl Counter {
    #[on_down]
    fn down(&mut self, _down: patchboard::Down) {
        self.downs += 1;
    }

    fn downs(&self) -> usize {
        self.downs
    }
}

/// A server whose code made many subscriptions: ending them takes a while.
struct Publisher {
    subscriptions: Vec<patchboard::Subscription<u64>>,
}

#[server]
impl Publisher {
    #[on_start]
    fn subscribe(&mut self) {
        for _ in 0..2_000 {
            let (_, subscription) = patchboard::subscription(1);
            self.subscriptions.push(subscription);
        }
    }

    fn ping(&self) {}
}

/// Issue 26, item 6: once `closed()` has resolved for a watched server, a
/// call to its watcher is served after the watcher's `#[on_down]`. An
/// observer on another worker polls `closed()` as fast as it can while the
/// watched server ends (before the fix the end was published before the
/// watchers were told, and the 2 000 subscriptions its code made, ended in
/// between, held the window open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_down_runs_before_any_call_sent_once_the_end_is_observed() {
    within(LIMIT, async {
        for round in 0..50 {
            let watcher = Counter::default().spawn();
            let watched = Publisher {
                subscriptions: Vec::new(),
            }
            .spawn();
            watched.ping().await.unwrap();
            watcher.monitor(&watched);
            let stopping = tokio::spawn({
                let watched = watched.clone();
                async move { watched.stop().await }
            });
            let mut seen = false;
            for _ in 0..100_000_000u64 {
                let closed = std::pin::pin!(watched.closed());
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                if closed.poll(&mut cx).is_ready() {
                    seen = true;
                    break;
                }
                std::hint::spin_loop();
            }
            assert!(seen, "the server never ended");
            assert_eq!(watcher.downs().await, Ok(1), "round {round}");
            stopping.await.unwrap();
        }
    })
    .await;
}

/// Keeps deferred replies in its state.
#[derive(Default)]
struct Parking {
    parked: Vec<patchboard::Reply<u64>>,
}

#[server]
impl Parking {
    fn park(&mut self, reply: patchboard::Reply<u64>) {
        self.parked.push(reply);
    }

    fn count(&self) -> usize {
        self.parked.len()
    }

    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }
}

/// Issue 26, item 7: deferred replies kept in the state get `Closed` when
/// the runtime shuts down while an `async` handler runs, as they do when
/// the server was idle (before the fix they got `NoReply`: the state was
/// dropped with the task, not disposed of).
#[test]
fn held_replies_get_closed_when_the_runtime_shuts_down_mid_handler() {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    };
    for busy in [false, true] {
        let serving = runtime();
        // The callers wait on a runtime of their own, which lives on.
        let calling = runtime();
        let parking = serving.block_on(async { Parking::default().spawn() });
        let parked: Vec<_> = (0..3)
            .map(|_| {
                let parking = parking.clone();
                calling.spawn(async move { parking.park().await })
            })
            .collect();
        serving.block_on(within(LIMIT, async {
            while parking.count().await != Ok(3) {
                tokio::task::yield_now().await;
            }
            if busy {
                let parking = parking.clone();
                let release = common::hold(move |entered, release| async move {
                    parking.hold(entered, release).await
                })
                .await;
                std::mem::forget(release);
            }
        }));
        serving.shutdown_timeout(Duration::from_secs(1));
        let answers = calling.block_on(within(LIMIT, async {
            let mut answers = Vec::new();
            for call in parked {
                answers.push(call.await.unwrap());
            }
            answers
        }));
        assert_eq!(answers, vec![Err(CallError::Closed); 3], "busy: {busy}");
        drop(parking);
    }
}

/// A call refused at once (the server has ended) takes a unit of its task's
/// budget, as tokio's own channels do: a task that keeps calling an ended
/// server, local or (the same path) remote, still lets the other tasks of
/// its thread run. Before, the refusal was ready without touching the
/// budget, and on one thread the ticker below never ran during the loop.
#[tokio::test(flavor = "current_thread")]
async fn refused_calls_in_a_loop_still_yield_to_other_tasks() {
    within(LIMIT, async {
        let echo = Echo.spawn();
        echo.stop().await;
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    ticks.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
            }
        });
        for _ in 0..10_000 {
            assert_eq!(echo.echo(1).await, Err(CallError::Closed));
            assert_eq!(echo.echo(1).try_now().await, Err(CallError::Closed));
        }
        assert!(
            ticks.load(Ordering::SeqCst) > 0,
            "20 000 refused calls never let the other task run"
        );
        ticker.abort();
    })
    .await;
}
