//! The foundation: every reply reaches its caller, and every way a server
//! ends releases everyone who waits on it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{LIMIT, within};
use patchboard::{Builder, CallError, Server, StopReason, server};
use tokio::sync::Notify;

struct Echo {
    served: u64,
}

#[server]
impl Echo {
    fn echo(&mut self, caller: u32, seq: u32) -> (u32, u32) {
        self.served += 1;
        (caller, seq)
    }

    async fn echo_later(&mut self, value: u64) -> u64 {
        tokio::task::yield_now().await;
        self.served += 1;
        value * 2
    }

    fn served(&self) -> u64 {
        self.served
    }

    fn into_served(self) -> u64 {
        self.served
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_reply_reaches_the_caller_that_asked() {
    within(LIMIT, async {
        let echo = Builder::new(Echo { served: 0 }).capacity(16).spawn();
        let callers = (0..64u32).map(|caller| {
            let echo = echo.clone();
            tokio::spawn(async move {
                for seq in 0..2_000u32 {
                    assert_eq!(echo.echo(caller, seq).await, Ok((caller, seq)));
                }
            })
        });
        for caller in callers.collect::<Vec<_>>() {
            caller.await.expect("caller task");
        }
        assert_eq!(echo.served().await, Ok(64 * 2_000));
    })
    .await;
}

#[tokio::test]
async fn async_messages_are_awaited_one_at_a_time() {
    within(LIMIT, async {
        let echo = Echo { served: 0 }.spawn();
        let calls: Vec<_> = (0..100).map(|i| echo.echo_later(i)).collect();
        let mut results = Vec::new();
        for call in calls {
            results.push(call.await.unwrap());
        }
        assert_eq!(results, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(echo.served().await, Ok(100));
    })
    .await;
}

#[tokio::test]
async fn terminal_method_returns_the_state_and_later_calls_get_closed() {
    within(LIMIT, async {
        let echo = Echo { served: 0 }.spawn();
        echo.echo(1, 1).await.unwrap();
        echo.echo(1, 2).await.unwrap();
        assert_eq!(echo.into_served().await, Ok(2));
        assert_eq!(echo.served().await, Err(CallError::Closed));
        assert!(echo.is_closed());
        assert_eq!(echo.closed().await, StopReason::Terminal);
    })
    .await;
}

/// Counts drops of the server state: proves the server task ended.
struct Tracked {
    dropped: Arc<Notify>,
    drops: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        self.dropped.notify_one();
    }
}

#[server]
impl Tracked {
    fn ping(&self) -> &'static str {
        "pong"
    }

    fn boom(&mut self, message: String) {
        panic!("{message}");
    }

    /// Holds the server inside a handler until `release`, so that other
    /// requests queue up behind it.
    async fn park(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }
}

fn tracked() -> (Tracked, Arc<Notify>, Arc<AtomicUsize>) {
    let dropped = Arc::new(Notify::new());
    let drops = Arc::new(AtomicUsize::new(0));
    let state = Tracked {
        dropped: dropped.clone(),
        drops: drops.clone(),
    };
    (state, dropped, drops)
}

#[tokio::test]
async fn dropping_every_handle_ends_the_server() {
    within(LIMIT, async {
        let (state, dropped, drops) = tracked();
        let handle = state.spawn();
        let clone = handle.clone();
        assert_eq!(handle.ping().await, Ok("pong"));
        drop(handle);
        assert_eq!(
            clone.ping().await,
            Ok("pong"),
            "one handle left keeps it alive"
        );
        drop(clone);
        dropped.notified().await;
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    })
    .await;
}

/// Parks the server inside a handler; returns the parked call and the
/// notify that releases it.
async fn park(
    handle: &TrackedHandle,
) -> (tokio::task::JoinHandle<Result<(), CallError>>, Arc<Notify>) {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let parked = tokio::spawn({
        let handle = handle.clone();
        let (entered, release) = (entered.clone(), release.clone());
        async move { handle.park(entered, release).await }
    });
    entered.notified().await;
    (parked, release)
}

#[tokio::test]
async fn stop_serves_what_was_queued_before_it_and_closes_after() {
    within(LIMIT, async {
        let (state, _, _) = tracked();
        let handle = Builder::new(state).capacity(64).spawn();
        let (parked, release) = park(&handle).await;
        let early: Vec<_> = (0..10)
            .map(|_| {
                let handle = handle.clone();
                tokio::spawn(async move { handle.ping().await })
            })
            .collect();
        common::until_queued(|| handle.queued(), 10).await;
        let stopping = tokio::spawn({
            let handle = handle.clone();
            async move { handle.stop().await }
        });
        common::until(|| handle.is_closed()).await;
        // Made after the stop: refused at once, while the queued ones wait.
        let late = tokio::spawn({
            let handle = handle.clone();
            async move { handle.ping().await }
        });
        assert_eq!(handle.queued(), 10);
        release.notify_one();
        stopping.await.unwrap();
        assert_eq!(parked.await.unwrap(), Ok(()));
        for call in early {
            assert_eq!(call.await.unwrap(), Ok("pong"));
        }
        assert_eq!(late.await.unwrap(), Err(CallError::Closed));
        assert_eq!(handle.closed().await, StopReason::Stopped);
        assert_eq!(handle.ping().await, Err(CallError::Closed));
        // Stopping again is harmless and immediate.
        handle.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_answers_the_caller_and_releases_every_queued_caller() {
    within(LIMIT, async {
        let (state, dropped, _) = tracked();
        let handle = Builder::new(state).capacity(128).spawn();
        let (parked, release) = park(&handle).await;
        let boom = tokio::spawn({
            let handle = handle.clone();
            async move { handle.boom("state is broken".into()).await }
        });
        common::until_queued(|| handle.queued(), 1).await;
        let queued: Vec<_> = (0..50)
            .map(|_| {
                let handle = handle.clone();
                tokio::spawn(async move { handle.ping().await })
            })
            .collect();
        common::until_queued(|| handle.queued(), 51).await;
        release.notify_one();
        assert_eq!(parked.await.unwrap(), Ok(()));
        match boom.await.unwrap() {
            Err(CallError::Panicked(message)) => assert_eq!(message.as_str(), "state is broken"),
            other => panic!("expected Panicked, got {other:?}"),
        }
        for caller in queued {
            assert_eq!(caller.await.unwrap(), Err(CallError::Closed));
        }
        assert!(matches!(handle.closed().await, StopReason::Panicked(_)));
        assert_eq!(handle.ping().await, Err(CallError::Closed));
        drop(handle);
        dropped.notified().await;
    })
    .await;
}
