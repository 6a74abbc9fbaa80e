//! A bounded, randomized soak: servers of every kind (plain, pool, restart,
//! timers, deferred replies, subscriptions, priority), clients on both
//! runtime flavours doing calls, casts, timeouts, cancellations, `stop()`s,
//! drops and injected panics. Checked at the end of every round: every call
//! resolved (none hangs), every answer is a possible one, `#[on_stop]` ran
//! exactly once per started incarnation, nothing is left queued; and across
//! rounds, memory stays flat.
//!
//! It prints its seed; `CHAOS_SEED=<seed> cargo test --test chaos` replays
//! it (`CHAOS_ROUNDS` sets the number of rounds, 40 by default).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use patchboard::{
    Builder, CallError, PanicPolicy, Reply, Restart, Subscriber, Subscription, server, subscription,
};

#[global_allocator]
static GLOBAL: common::alloc::Counting = common::alloc::Counting;

/// splitmix64: small, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How many incarnations started and stopped, per server.
#[derive(Default)]
struct Counts {
    starts: AtomicUsize,
    stops: AtomicUsize,
}

struct Chaos {
    counts: Arc<Counts>,
    kept: Vec<Reply<u64>>,
    subscribers: Vec<Subscriber<u64>>,
    ticks: u64,
}

/// A pool's replicas start empty.
impl Clone for Chaos {
    fn clone(&self) -> Self {
        chaos(&self.counts)
    }
}

#[server(capacity = 8)]
impl Chaos {
    #[on_start]
    fn started(&mut self) {
        self.counts.starts.fetch_add(1, Ordering::SeqCst);
    }

    #[on_stop]
    fn stopped(&mut self) {
        self.counts.stops.fetch_add(1, Ordering::SeqCst);
    }

    #[every(Duration::from_millis(1))]
    fn tick(&mut self) {
        self.ticks += 1;
        let ticks = self.ticks;
        self.subscribers.retain(|s| s.send(ticks).is_connected());
        if let Some(reply) = self.kept.pop() {
            let _ = reply.send(ticks);
        }
    }

    fn echo(&self, n: u64) -> u64 {
        n
    }

    async fn slow(&self, n: u64) -> u64 {
        tokio::time::sleep(Duration::from_micros(n % 700)).await;
        n
    }

    fn boom(&mut self) -> u64 {
        panic!("injected")
    }

    #[cast]
    fn hint(&mut self, _n: u64) {}

    fn keep(&mut self, reply: Reply<u64>) {
        self.kept.push(reply);
    }

    fn subscribe(&mut self) -> Subscription<u64> {
        let (subscriber, subscription) = subscription(2);
        self.subscribers.push(subscriber);
        subscription
    }

    #[priority]
    fn status(&self) -> u64 {
        self.ticks
    }
}

fn chaos(counts: &Arc<Counts>) -> Chaos {
    Chaos {
        counts: counts.clone(),
        kept: Vec::new(),
        subscribers: Vec::new(),
        ticks: 0,
    }
}

/// A call's outcome must be one the server could give.
fn check(outcome: &Result<u64, CallError>, expected: Option<u64>) {
    match outcome {
        Ok(value) => {
            if let Some(expected) = expected {
                assert_eq!(*value, expected, "a wrong answer");
            }
        }
        Err(CallError::Closed | CallError::Timeout | CallError::Full | CallError::Panicked(_)) => {}
        Err(other) => panic!("an impossible outcome: {other:?}"),
    }
}

/// One client: `ops` random operations against `server`; returns how many
/// operations resolved.
async fn client(server: ChaosHandle, seed: u64, ops: usize) -> usize {
    let mut rng = Rng(seed);
    let mut resolved = 0;
    let short = Duration::from_micros(300);
    for _ in 0..ops {
        let n = rng.below(1_000);
        match rng.below(12) {
            0 | 1 => check(&server.echo(n).await, Some(n)),
            2 => check(&server.slow(n).await, Some(n)),
            // A caller that gives up (the call is dropped by its timeout).
            3 => check(&server.slow(n).timeout(short).await, Some(n)),
            4 => check(&server.echo(n).try_now().await.map(|_| n), Some(n)),
            5 => check(&server.hint(n).await.map(|()| n), Some(n)),
            6 => check(&server.echo(n).no_wait().await.map(|()| n), Some(n)),
            7 if rng.below(4) == 0 => check(&server.boom().await, None),
            8 => check(&server.keep().timeout(Duration::from_millis(5)).await, None),
            9 => match server.subscribe().await {
                Ok(mut values) => {
                    for _ in 0..rng.below(3) {
                        let _ = tokio::time::timeout(short, values.recv()).await;
                    }
                }
                Err(error) => check(&Err(error), None),
            },
            10 => check(&server.status().await, None),
            // Dropped before it is ever polled: nothing is sent.
            _ => drop(server.echo(n)),
        }
        resolved += 1;
    }
    resolved
}

/// One round: servers of random kinds, clients, stops and drops; returns
/// the calls issued and resolved.
async fn round(rng: &mut Rng) {
    const SERVERS: usize = 6;
    const CLIENTS: usize = 4;
    const OPS: usize = 40;
    let mut servers = Vec::new();
    for _ in 0..SERVERS {
        let counts = Arc::new(Counts::default());
        let mut builder = Builder::new(chaos(&counts));
        match rng.below(4) {
            0 => {}
            1 => builder = builder.pool(1 + rng.below(3) as usize),
            2 => {
                let fresh = counts.clone();
                builder = builder.restart(
                    Restart::new(move || chaos(&fresh)).max_restarts(1 + rng.below(4) as usize),
                );
            }
            _ => builder = builder.on_panic(PanicPolicy::Continue),
        }
        let (handle, exit) = builder.spawn_with_exit();
        servers.push((handle, exit, counts));
    }
    let mut tasks = Vec::new();
    for (handle, _, _) in &servers {
        for _ in 0..CLIENTS {
            let seed = rng.next();
            tasks.push(tokio::spawn(client(handle.clone(), seed, OPS)));
        }
    }
    // Some servers are stopped while their clients run.
    for (handle, _, _) in &servers {
        if rng.below(3) == 0 {
            let handle = handle.clone();
            let delay = Duration::from_micros(rng.below(2_000));
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                handle.stop().await;
            });
        }
    }
    let mut resolved = 0;
    for task in tasks {
        resolved += task.await.expect("a client panicked");
    }
    assert_eq!(
        resolved,
        SERVERS * CLIENTS * OPS,
        "every operation resolves"
    );
    for (handle, exit, counts) in servers {
        // Half are stopped, half left to end by dropping every handle.
        if rng.below(2) == 0 {
            handle.stop().await;
            assert_eq!(handle.queued(), 0, "nothing is left queued");
        }
        drop(handle);
        let _ = exit.await;
        let (starts, stops) = (
            counts.starts.load(Ordering::SeqCst),
            counts.stops.load(Ordering::SeqCst),
        );
        assert!(starts >= 1);
        assert_eq!(
            starts, stops,
            "#[on_stop] runs exactly once per started incarnation"
        );
    }
}

#[test]
fn chaos_soak() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let rounds: usize = std::env::var("CHAOS_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(40);
    println!("chaos seed {seed} ({rounds} rounds): replay with CHAOS_SEED={seed}");
    // The injected panics are expected: printing them (and resolving their
    // backtraces, whose symbol cache grows) would only hide what matters.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"injected") {
            report(info);
        }
    }));
    let mut rng = Rng(seed);
    let mut baseline = None;
    let mut growth = Vec::new();
    for index in 0..rounds {
        let runtime = if index % 2 == 0 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        }
        .unwrap();
        runtime.block_on(common::within(common::LIMIT, round(&mut rng)));
        drop(runtime);
        let live = common::alloc::live_bytes();
        // The first rounds warm up lazily allocated thread-locals and
        // tables; from then on, nothing may accumulate.
        if index == 3 {
            baseline = Some(live);
        } else if let Some(baseline) = baseline {
            growth.push(live - baseline);
        }
    }
    let worst = growth.iter().copied().max().unwrap_or(0);
    assert!(
        worst < 64 * 1024,
        "memory grew by {worst} bytes across rounds (seed {seed}): {growth:?}"
    );
}
