//! Property 8 of RELIABILITY.md: the example servers agree with sequential
//! models under random operations from several concurrent clients. The
//! examples' own code is tested, included from `examples/`.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{PAUSED_LIMIT, within};
use patchboard::Server;
use proptest::prelude::*;

#[allow(dead_code)]
#[path = "../examples/account.rs"]
mod account;
#[allow(dead_code)]
#[path = "../examples/kv_store.rs"]
mod kv_store;
#[allow(dead_code)]
#[path = "../examples/rate_limiter.rs"]
mod rate_limiter;

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

#[derive(Clone, Debug)]
enum AccountOp {
    Deposit(u64),
    Withdraw(u64),
    Balance,
}

fn account_op() -> impl Strategy<Value = AccountOp> {
    prop_oneof![
        (1..50u64).prop_map(AccountOp::Deposit),
        (1..80u64).prop_map(AccountOp::Withdraw),
        Just(AccountOp::Balance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every answer is consistent on its own, and the final balance equals
    /// the model: deposits minus the withdrawals the server accepted.
    #[test]
    fn account_agrees_with_the_model(clients in prop::collection::vec(prop::collection::vec(account_op(), 0..40), 1..6)) {
        paused_runtime().block_on(within(PAUSED_LIMIT, async {
            let account = account::Account { balance: 0 }.spawn();
            let tasks: Vec<_> = clients.into_iter().map(|ops| {
                let account = account.clone();
                tokio::spawn(async move {
                    let mut net: i128 = 0;
                    for op in ops {
                        match op {
                            AccountOp::Deposit(n) => {
                                let after = account.deposit(n).await.unwrap();
                                assert!(after >= n);
                                net += i128::from(n);
                            }
                            AccountOp::Withdraw(n) => match account.withdraw(n).await.unwrap() {
                                Ok(_) => net -= i128::from(n),
                                Err(refused) => {
                                    assert_eq!(refused.requested, n);
                                    assert!(refused.balance < n);
                                }
                            },
                            AccountOp::Balance => { account.balance().await.unwrap(); }
                        }
                        tokio::task::yield_now().await;
                    }
                    net
                })
            }).collect();
            let mut net = 0;
            for task in tasks {
                net += task.await.unwrap();
            }
            assert_eq!(i128::from(account.balance().await.unwrap()), net);
        }));
    }

    /// Each client owns its keys, so every answer it gets must match its
    /// own sequential model of those keys; the final size is the sum.
    #[test]
    fn kv_store_agrees_with_the_model(clients in prop::collection::vec(prop::collection::vec((0..3u8, 0..8u32, any::<u16>()), 0..40), 1..6)) {
        paused_runtime().block_on(within(PAUSED_LIMIT, async {
            let store: kv_store::KvStoreHandle<(usize, u32), u16> = kv_store::KvStore::new().spawn();
            let tasks: Vec<_> = clients.into_iter().enumerate().map(|(client, ops)| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut model: HashMap<u32, u16> = HashMap::new();
                    for (op, key, value) in ops {
                        let k = (client, key);
                        match op {
                            0 => assert_eq!(store.put(k, value).await.unwrap(), model.insert(key, value)),
                            1 => assert_eq!(store.get(k).await.unwrap(), model.get(&key).copied()),
                            _ => assert_eq!(store.remove(k).await.unwrap(), model.remove(&key)),
                        }
                        tokio::task::yield_now().await;
                    }
                    model.len()
                })
            }).collect();
            let mut total = 0;
            for task in tasks {
                total += task.await.unwrap();
            }
            assert_eq!(store.len().await.unwrap(), total);
        }));
    }

    /// Within one window, exactly `limit` checks per key are allowed,
    /// whoever makes them, and the dump counts every check.
    #[test]
    fn rate_limiter_agrees_with_the_model(clients in prop::collection::vec(prop::collection::vec(0..4u8, 0..40), 1..6), limit in 1..10u32) {
        paused_runtime().block_on(within(PAUSED_LIMIT, async {
            let limiter = rate_limiter::RateLimiter::new(limit, Duration::from_secs(3600)).spawn();
            let mut checks: HashMap<String, u32> = HashMap::new();
            for ops in &clients {
                for key in ops {
                    *checks.entry(format!("key-{key}")).or_default() += 1;
                }
            }
            let tasks: Vec<_> = clients.into_iter().map(|ops| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    for key in ops {
                        limiter.check(format!("key-{key}")).await.unwrap();
                        tokio::task::yield_now().await;
                    }
                })
            }).collect();
            for task in tasks {
                task.await.unwrap();
            }
            let dump = limiter.dump().await.unwrap();
            assert_eq!(dump.len(), checks.len());
            for (key, total) in checks {
                let counts = dump[&key];
                assert_eq!(counts.allowed, total.min(limit), "{key}");
                assert_eq!(counts.allowed + counts.denied, total, "{key}");
            }
        }));
    }
}
