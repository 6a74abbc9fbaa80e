//! Instructions per operation, for `benches/instructions.sh`: runs one
//! workload `n` times on a current-thread runtime, to be counted by
//! callgrind (steadier than wall time on a shared machine). Under plain
//! `cargo bench` it runs each workload once, as a smoke test.
//!
//! Usage: `instructions <patchboard|protocol|tokio_mpsc|async_channel> <seq|async|cast|flood|spawn|contended|contended_async> <n>`.

mod impls;

use impls::{Account, ChannelActor, LedgerClient, Patchboard, TokioActor};

async fn run<A: Account>(workload: &str, n: u64) {
    let account = A::spawn();
    if workload == "flood" {
        // A fresh server flooded with casts, then one call that sees them
        // all: issue 31's workload (no warm-up, as the harness ran it).
        for _ in 0..n {
            account.deposit_cast(1).await;
        }
        std::hint::black_box(account.balance().await);
        return;
    }
    // Warm-up: lazily allocated parts, first wake-ups.
    for _ in 0..100 {
        std::hint::black_box(account.deposit(1).await);
    }
    match workload {
        "seq" => {
            for _ in 0..n {
                std::hint::black_box(account.deposit(1).await);
            }
        }
        "async" => {
            for _ in 0..n {
                std::hint::black_box(account.deposit_async(1).await);
            }
        }
        "cast" => {
            for _ in 0..n {
                account.deposit_cast(1).await;
            }
            std::hint::black_box(account.balance().await);
        }
        "contended" | "contended_async" => {
            // 64 callers on the one thread, `n` calls in all.
            let callers: Vec<_> = (0..64)
                .map(|caller| {
                    let account = account.clone();
                    let calls = n / 64 + u64::from(caller < n % 64);
                    let sync = workload == "contended";
                    tokio::spawn(async move {
                        for _ in 0..calls {
                            if sync {
                                std::hint::black_box(account.deposit(1).await);
                            } else {
                                std::hint::black_box(account.deposit_async(1).await);
                            }
                        }
                    })
                })
                .collect();
            for caller in callers {
                caller.await.expect("caller");
            }
        }
        "spawn" => {
            // Spawn, one call, drop: what a short-lived server costs.
            for _ in 0..n {
                let server = A::spawn();
                std::hint::black_box(server.deposit(1).await);
                drop(server);
                tokio::task::yield_now().await;
            }
        }
        other => panic!("unknown workload {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if args.len() != 3 {
        // `cargo bench` passes `--bench`: run everything once.
        for implementation in ["patchboard", "protocol", "tokio_mpsc", "async_channel"] {
            for workload in [
                "seq",
                "async",
                "cast",
                "flood",
                "spawn",
                "contended",
                "contended_async",
            ] {
                runtime.block_on(dispatch(implementation, workload, 10));
            }
        }
        return;
    }
    let n: u64 = args[2].parse().expect("a count");
    runtime.block_on(dispatch(&args[0], &args[1], n));
}

async fn dispatch(implementation: &str, workload: &str, n: u64) {
    match implementation {
        "patchboard" => run::<Patchboard>(workload, n).await,
        "protocol" => run::<LedgerClient>(workload, n).await,
        "tokio_mpsc" => run::<TokioActor>(workload, n).await,
        "async_channel" => run::<ChannelActor>(workload, n).await,
        other => panic!("unknown implementation {other}"),
    }
}
