//! Remote calls over a real `nats-server` (the `nats` feature): a
//! `#[server(remote)]` account called through its remote handle, against
//! the same account hand-written on `async-nats` request/reply with the
//! same encoding (one version byte, then MessagePack with named fields).
//! `cargo bench --features nats --bench remote`; BENCHMARKS.md has a table.
//! Without `nats-server` installed it says so and measures nothing.

#[path = "../tests/common/nats_server.rs"]
mod nats_server;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use patchboard::nats::{Remote, Service, async_nats};
use patchboard::{Server, server};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

#[derive(Default)]
struct Account {
    balance: u64,
}

#[server(remote)]
impl Account {
    fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }
}

/// The arguments as patchboard sends them.
#[derive(Serialize, Deserialize)]
struct Deposit {
    amount: u64,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![patchboard::nats::VERSION];
    rmp_serde::encode::write_named(&mut out, value).unwrap();
    out
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> T {
    rmp_serde::from_slice(&bytes[1..]).unwrap()
}

/// The hand-written service: one task answering `raw.deposit` in a queue
/// group, its balance a local variable.
async fn hand_written(client: async_nats::Client) {
    use futures_core::Stream;
    let mut requests = client
        .queue_subscribe("raw.deposit", "q".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    tokio::spawn(async move {
        let mut balance = 0u64;
        while let Some(message) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut requests).poll_next(cx)).await
        {
            let Deposit { amount } = decode(&message.payload);
            balance += amount;
            if let Some(reply) = message.reply {
                client
                    .publish(reply, encode(&balance).into())
                    .await
                    .unwrap();
            }
        }
    });
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn remote(c: &mut Criterion) {
    let Some(nats) = nats_server::NatsServer::start() else {
        return;
    };
    let runtime = runtime();
    let (account, raw, _serving) = runtime.block_on(async {
        let serving_client = async_nats::connect(nats.url()).await.unwrap();
        let calling_client = async_nats::connect(nats.url()).await.unwrap();
        let local = Account::default().spawn();
        let serving = Service::new(&serving_client, "bench")
            .serve(&local)
            .await
            .unwrap();
        hand_written(serving_client.clone()).await;
        let account = Remote::new(&calling_client, "bench").handle::<Account>();
        (account, calling_client, (serving, local))
    });

    let mut group = c.benchmark_group("remote/latency");
    group.throughput(Throughput::Elements(1));
    group.bench_function("patchboard", |b| {
        b.iter_custom(|iters| {
            let account = account.clone();
            runtime.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        account.deposit(1).await.unwrap();
                    }
                    start.elapsed()
                })
                .await
                .unwrap()
            })
        })
    });
    group.bench_function("async_nats", |b| {
        b.iter_custom(|iters| {
            let raw = raw.clone();
            runtime.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let answer = raw
                            .request("raw.deposit", encode(&Deposit { amount: 1 }).into())
                            .await
                            .unwrap();
                        let _: u64 = decode(&answer.payload);
                    }
                    start.elapsed()
                })
                .await
                .unwrap()
            })
        })
    });
    group.finish();

    // Throughput: 64 callers at once, each making its share of the calls.
    const CALLERS: u64 = 64;
    let mut group = c.benchmark_group("remote/throughput_64");
    group.throughput(Throughput::Elements(1));
    group.bench_function("patchboard", |b| {
        b.iter_custom(|iters| {
            let account = account.clone();
            runtime.block_on(async move {
                let start = Instant::now();
                let callers: Vec<_> = (0..CALLERS)
                    .map(|caller| {
                        let account = account.clone();
                        let calls = iters / CALLERS + u64::from(caller < iters % CALLERS);
                        tokio::spawn(async move {
                            for _ in 0..calls {
                                account.deposit(1).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for caller in callers {
                    caller.await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("async_nats", |b| {
        b.iter_custom(|iters| {
            let raw = raw.clone();
            runtime.block_on(async move {
                let start = Instant::now();
                let callers: Vec<_> = (0..CALLERS)
                    .map(|caller| {
                        let raw = raw.clone();
                        let calls = iters / CALLERS + u64::from(caller < iters % CALLERS);
                        tokio::spawn(async move {
                            for _ in 0..calls {
                                let answer = raw
                                    .request("raw.deposit", encode(&Deposit { amount: 1 }).into())
                                    .await
                                    .unwrap();
                                let _: u64 = decode(&answer.payload);
                            }
                        })
                    })
                    .collect();
                for caller in callers {
                    caller.await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    drop(nats);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = remote
}
criterion_main!(benches);
