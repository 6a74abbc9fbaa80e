//! The `metrics` feature: a known workload, and the values a recording
//! recorder (metrics-util's `DebuggingRecorder`) holds for it. Run with
//! `cargo test --features metrics --test metrics`.
#![cfg(feature = "metrics")]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{PAUSED_LIMIT, hold, until_queued, within};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use patchboard::{Builder, CallError, PanicPolicy, Restart, server};
use tokio::sync::Notify;

#[derive(Debug, PartialEq)]
struct Refused;

#[derive(Default)]
struct Bank {
    balance: u64,
}

#[server]
impl Bank {
    async fn deposit(&mut self, amount: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.balance += amount;
        self.balance
    }

    fn withdraw(&mut self, amount: u64) -> Result<u64, Refused> {
        self.balance = self.balance.checked_sub(amount).ok_or(Refused)?;
        Ok(self.balance)
    }

    fn explode(&self) {
        panic!("boom");
    }

    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }
}

/// A metric's name and labels, sorted, as one string:
/// `name{a=1,b=2}`.
fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

#[tokio::test(start_paused = true)]
async fn a_known_workload_gives_known_counts_histograms_and_gauges() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");
    within(PAUSED_LIMIT, async {
        let bank = Builder::new(Bank::default())
            .name("bank")
            .on_panic(PanicPolicy::Stop)
            .restart(Restart::new(Bank::default))
            .spawn();
        // Held for 50 ms with two deposits queued behind it: each waits
        // at least that long, and the mailbox is 1 deep when the first
        // of them begins, then 0.
        let release = hold(|entered, release| bank.hold(entered, release).owned()).await;
        let first = tokio::spawn(bank.deposit(1).owned());
        let second = tokio::spawn(bank.deposit(2).owned());
        until_queued(|| bank.queued(), 2).await;
        // A call that gives up while queued: cancelled, never run.
        assert_eq!(
            bank.withdraw(1).timeout(Duration::from_millis(10)).await,
            Err(CallError::Timeout)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.notify_one();
        assert_eq!(first.await.unwrap(), Ok(1));
        assert_eq!(second.await.unwrap(), Ok(3));
        assert_eq!(bank.withdraw(2).await, Ok(Ok(1)));
        assert_eq!(bank.withdraw(5).await, Ok(Err(Refused)));
        assert!(matches!(bank.explode().await, Err(CallError::Panicked(_))));
        assert_eq!(bank.withdraw(0).await, Ok(Ok(0)), "restarted");
        bank.stop().await;
    })
    .await;

    let mut counters = HashMap::new();
    let mut gauges = HashMap::new();
    let mut histograms = HashMap::new();
    for (composite, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = composite.key();
        let labels: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
        let name = self::key(key.name(), &labels);
        match value {
            DebugValue::Counter(n) => counters.insert(name, n),
            DebugValue::Gauge(v) => gauges.insert(name, v.into_inner()).map(|_| 0),
            DebugValue::Histogram(v) => histograms
                .insert(
                    name,
                    v.into_iter().map(|v| v.into_inner()).collect::<Vec<_>>(),
                )
                .map(|_| 0),
        };
    }
    let calls = |message, outcome| {
        counters
            .get(&key(
                "patchboard_calls_total",
                &[
                    ("server", "bank"),
                    ("message", message),
                    ("outcome", outcome),
                ],
            ))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(calls("hold", "ok"), 1);
    assert_eq!(calls("deposit", "ok"), 2);
    assert_eq!(
        calls("withdraw", "ok"),
        2,
        "one before, one after the restart"
    );
    assert_eq!(calls("withdraw", "error"), 1, "the handler's own `Err`");
    assert_eq!(calls("withdraw", "cancelled"), 1, "timed out while queued");
    assert_eq!(calls("explode", "panic"), 1);
    let bank = [("server", "bank")];
    assert_eq!(counters[&key("patchboard_restarts_total", &bank)], 1);
    assert_eq!(counters[&key("patchboard_panics_total", &bank)], 1);
    assert_eq!(gauges[&key("patchboard_servers", &bank)], 0.0, "stopped");
    assert_eq!(gauges[&key("patchboard_mailbox_depth", &bank)], 0.0);

    let deposit = [("server", "bank"), ("message", "deposit")];
    let waits = &histograms[&key("patchboard_queue_wait_seconds", &deposit)];
    assert_eq!(waits.len(), 2);
    assert!(waits.iter().all(|wait| *wait >= 0.05), "{waits:?}");
    let runs = &histograms[&key("patchboard_run_seconds", &deposit)];
    assert_eq!(runs.len(), 2);
    assert!(
        runs.iter().all(|run| (0.02..0.03).contains(run)),
        "{runs:?}"
    );
    // A cancelled call waited, but never ran.
    let withdraw = [("server", "bank"), ("message", "withdraw")];
    assert_eq!(
        histograms[&key("patchboard_run_seconds", &withdraw)].len(),
        3
    );
    // Bounded label sets: no id, no per-call label.
    for name in counters
        .keys()
        .chain(gauges.keys())
        .chain(histograms.keys())
    {
        assert!(!name.contains("id="), "{name}");
    }
}
