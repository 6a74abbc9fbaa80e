//! Speed: switchboard against the hand-written tokio actor pattern, side by
//! side in one run. `cargo bench --bench actor`; BENCHMARKS.md has a table.

mod impls;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use impls::{Account, ChannelActor, MutexAccount, Switchboard, TokioActor};
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

/// Runs `f` for each implementation under the same benchmark group.
macro_rules! for_each_impl {
    ($f:ident, $($args:expr),*) => {
        $f::<Switchboard>("switchboard", $($args),*);
        $f::<TokioActor>("tokio_mpsc", $($args),*);
        $f::<ChannelActor>("async_channel", $($args),*);
        $f::<MutexAccount>("mutex", $($args),*);
    };
}

/// One caller, sequential calls.
fn seq(c: &mut Criterion) {
    for (runtime_name, make) in [
        ("current_thread", current_thread as fn() -> Runtime),
        ("multi_thread_2", two_workers),
    ] {
        let mut group = c.benchmark_group(format!("seq/{runtime_name}"));
        group.throughput(Throughput::Elements(1));
        let runtime = make();
        fn one<A: Account>(
            name: &str,
            group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
            runtime: &Runtime,
        ) {
            let account = runtime.block_on(async { A::spawn() });
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            std::hint::black_box(account.deposit(1).await);
                        }
                        start.elapsed()
                    })
                })
            });
        }
        for_each_impl!(one, &mut group, &runtime);
        group.finish();
    }
}

/// 64 concurrent callers on a 2-worker runtime.
fn contended(c: &mut Criterion) {
    const CALLERS: u64 = 64;
    let mut group = c.benchmark_group("contended/64_callers");
    group.throughput(Throughput::Elements(1));
    let runtime = two_workers();
    fn one<A: Account>(
        name: &str,
        group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        runtime: &Runtime,
    ) {
        let account = runtime.block_on(async { A::spawn() });
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let per_caller = iters.div_ceil(CALLERS);
                runtime.block_on(async {
                    let start = Instant::now();
                    let callers: Vec<_> = (0..CALLERS)
                        .map(|_| {
                            let account = account.clone();
                            tokio::spawn(async move {
                                for _ in 0..per_caller {
                                    std::hint::black_box(account.deposit(1).await);
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
                })
            })
        });
    }
    for_each_impl!(one, &mut group, &runtime);
    group.finish();
}

/// One-way messages, then one call to wait for them all.
fn cast(c: &mut Criterion) {
    let mut group = c.benchmark_group("cast/current_thread");
    group.throughput(Throughput::Elements(1));
    let runtime = current_thread();
    fn one<A: Account>(
        name: &str,
        group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        runtime: &Runtime,
    ) {
        let account = runtime.block_on(async { A::spawn() });
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        account.deposit_cast(1).await;
                    }
                    std::hint::black_box(account.balance().await);
                    start.elapsed()
                })
            })
        });
    }
    for_each_impl!(one, &mut group, &runtime);
    group.finish();
}

/// Spawn 10 000 servers, then one call to each, awaited one by one.
fn spawn(c: &mut Criterion) {
    const SERVERS: usize = 10_000;
    let mut group = c.benchmark_group("spawn/10k_servers");
    group.throughput(Throughput::Elements(SERVERS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let runtime = current_thread();
    fn one<A: Account>(
        name: &str,
        group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        runtime: &Runtime,
    ) {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let servers: Vec<A> = (0..SERVERS).map(|_| A::spawn()).collect();
                        for server in &servers {
                            std::hint::black_box(server.deposit(1).await);
                        }
                        total += start.elapsed();
                        drop(servers);
                        tokio::task::yield_now().await;
                    }
                    total
                })
            })
        });
    }
    for_each_impl!(one, &mut group, &runtime);
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = seq, contended, cast, spawn
}
criterion_main!(benches);
