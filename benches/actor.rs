//! Speed: patchboard against the hand-written tokio actor pattern, side by
//! side in one run. `cargo bench --bench actor`; BENCHMARKS.md has a table.

mod impls;

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use impls::{Account, ChannelActor, MutexAccount, Patchboard, TokioActor};
use tokio::runtime::Runtime;

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn two_workers() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Benchmarks `workload` for each implementation in `group`. A workload is
/// given one account (spawned once) and criterion's iteration count, and
/// returns the time it measured.
macro_rules! for_each_impl {
    ($group:expr, $runtime:expr, $workload:ident) => {
        measure::<Patchboard, _, _>($group, $runtime, "patchboard", $workload::<Patchboard>);
        measure::<TokioActor, _, _>($group, $runtime, "tokio_mpsc", $workload::<TokioActor>);
        measure::<ChannelActor, _, _>($group, $runtime, "async_channel", $workload::<ChannelActor>);
        measure::<MutexAccount, _, _>($group, $runtime, "mutex", $workload::<MutexAccount>);
    };
}

fn measure<A, F, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &Runtime,
    name: &str,
    workload: F,
) where
    A: Account,
    F: Fn(A, u64) -> Fut,
    Fut: Future<Output = Duration> + Send + 'static,
{
    let account = runtime.block_on(async { A::spawn() });
    // The workload runs as a task of the runtime, as callers do (and as
    // the independent harness measured): on a 2-worker runtime a
    // `block_on` thread would make every call a wake-up of a parked thread.
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let workload = workload(account.clone(), iters);
            runtime.block_on(async { tokio::spawn(workload).await.expect("workload") })
        })
    });
}

/// One caller, sequential calls.
async fn sequential<A: Account>(account: A, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(account.deposit(1).await);
    }
    start.elapsed()
}

/// One caller, sequential calls to an `async fn` handler (always through
/// the mailbox).
async fn sequential_async<A: Account>(account: A, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(account.deposit_async(1).await);
    }
    start.elapsed()
}

/// 64 concurrent callers of an `async fn` handler.
async fn contended_async<A: Account>(account: A, iters: u64) -> Duration {
    contended_by(account, iters, |account| async move {
        std::hint::black_box(account.deposit_async(1).await);
    })
    .await
}

/// 64 concurrent callers.
async fn contended_calls<A: Account>(account: A, iters: u64) -> Duration {
    contended_by(account, iters, |account| async move {
        std::hint::black_box(account.deposit(1).await);
    })
    .await
}

/// 64 concurrent callers, each making its share of `iters` calls with
/// `call`.
async fn contended_by<A, F, Fut>(account: A, iters: u64, call: F) -> Duration
where
    A: Account,
    F: Fn(A) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    const CALLERS: u64 = 64;
    let per_caller = iters.div_ceil(CALLERS);
    let start = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let account = account.clone();
            tokio::spawn(async move {
                for _ in 0..per_caller {
                    call(account.clone()).await;
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    // Normalised to the `iters` criterion asked for.
    start
        .elapsed()
        .mul_f64(iters as f64 / (per_caller * CALLERS) as f64)
}

/// One-way messages, then one call to wait for them all.
async fn casts<A: Account>(account: A, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        account.deposit_cast(1).await;
    }
    std::hint::black_box(account.balance().await);
    start.elapsed()
}

/// Issue 31's flood: a fresh server, 1 000 000 casts into its 64-slot
/// mailbox, then one call that sees them all; `iters` floods.
async fn floods<A: Account>(_: A, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let account = A::spawn();
        let start = Instant::now();
        for _ in 0..FLOOD {
            account.deposit_cast(1).await;
        }
        std::hint::black_box(account.balance().await);
        total += start.elapsed();
    }
    total
}

const FLOOD: u64 = 1_000_000;

/// Spawn 10 000 servers, then one call to each, awaited one by one. The
/// account given is not used: every round spawns its own. A round's
/// servers are dropped and their tasks run to their end before the next
/// round, untimed (`lifecycles` times that part too): otherwise one
/// round's teardown runs on the other worker inside the next round's
/// timing, a different amount each time.
async fn spawns<A: Account>(_: A, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let alive = alive_tasks();
        let start = Instant::now();
        let servers = spawn_and_call::<A>().await;
        total += start.elapsed();
        drop(servers);
        ended(alive).await;
    }
    total
}

/// The whole life of 10 000 short-lived servers: spawn, one call each,
/// dropped, and every task of theirs ended.
async fn lifecycles<A: Account>(_: A, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let alive = alive_tasks();
        drop(spawn_and_call::<A>().await);
        ended(alive).await;
    }
    start.elapsed()
}

async fn spawn_and_call<A: Account>() -> Vec<A> {
    let servers: Vec<A> = (0..SERVERS).map(|_| A::spawn()).collect();
    for server in &servers {
        std::hint::black_box(server.deposit(1).await);
    }
    servers
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Until the runtime has no more tasks alive than `alive`: the servers
/// spawned since have ended.
async fn ended(alive: usize) {
    while alive_tasks() > alive {
        tokio::task::yield_now().await;
    }
}

const SERVERS: usize = 10_000;

type MakeRuntime = fn() -> Runtime;

/// Both runtime flavours the issue measures: a current-thread runtime and
/// a 2-worker one.
const RUNTIMES: [(&str, MakeRuntime); 2] = [
    ("current_thread", current_thread),
    ("multi_thread_2", two_workers),
];

fn seq(c: &mut Criterion) {
    for (runtime_name, make) in RUNTIMES {
        let mut group = c.benchmark_group(format!("seq/{runtime_name}"));
        group.throughput(Throughput::Elements(1));
        let runtime = make();
        for_each_impl!(&mut group, &runtime, sequential);
        group.finish();
    }
}

fn seq_async(c: &mut Criterion) {
    for (runtime_name, make) in RUNTIMES {
        let mut group = c.benchmark_group(format!("seq_async/{runtime_name}"));
        group.throughput(Throughput::Elements(1));
        let runtime = make();
        for_each_impl!(&mut group, &runtime, sequential_async);
        group.finish();
    }
}

fn contended(c: &mut Criterion) {
    for (runtime_name, make) in RUNTIMES {
        let mut group = c.benchmark_group(format!("contended_64/{runtime_name}"));
        group.throughput(Throughput::Elements(1));
        let runtime = make();
        for_each_impl!(&mut group, &runtime, contended_calls);
        group.finish();
        let mut group = c.benchmark_group(format!("contended_64_async/{runtime_name}"));
        group.throughput(Throughput::Elements(1));
        for_each_impl!(&mut group, &runtime, contended_async);
        group.finish();
    }
}

fn flood(c: &mut Criterion) {
    for (runtime_name, make) in RUNTIMES {
        let mut group = c.benchmark_group(format!("cast_flood_1m/{runtime_name}"));
        group.throughput(Throughput::Elements(FLOOD));
        group.sample_size(10);
        let runtime = make();
        for_each_impl!(&mut group, &runtime, floods);
        group.finish();
    }
}

fn cast(c: &mut Criterion) {
    for (runtime_name, make) in RUNTIMES {
        let mut group = c.benchmark_group(format!("cast/{runtime_name}"));
        group.throughput(Throughput::Elements(1));
        let runtime = make();
        for_each_impl!(&mut group, &runtime, casts);
        group.finish();
    }
}

fn spawn(c: &mut Criterion) {
    for (runtime_name, make) in RUNTIMES {
        let mut group = c.benchmark_group(format!("spawn_10k/{runtime_name}"));
        group.throughput(Throughput::Elements(SERVERS as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(5));
        let runtime = make();
        for_each_impl!(&mut group, &runtime, spawns);
        group.finish();
        let mut group = c.benchmark_group(format!("lifecycle_10k/{runtime_name}"));
        group.throughput(Throughput::Elements(SERVERS as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(5));
        for_each_impl!(&mut group, &runtime, lifecycles);
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = seq, seq_async, contended, cast, flood, spawn
}
criterion_main!(benches);
