//! Call options: timeouts, try-calls, fire-and-forget, priority, casts,
//! blocking callers, abandoned requests and self-calls.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{LIMIT, PAUSED_LIMIT, within};
use patchboard::{Builder, CallError, PRIORITY_BURST, Server, server};
use tokio::sync::Notify;

struct Desk {
    /// Handler invocations of `work`.
    worked: Arc<AtomicUsize>,
    order: Vec<String>,
    me: Option<DeskHandle>,
}

#[server(capacity = 4)]
impl Desk {
    /// Holds the server until released.
    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }

    /// Takes `millis` of (paused) time.
    async fn work(&mut self, millis: u64) -> u64 {
        self.worked.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    }

    fn note(&mut self, what: String) {
        self.order.push(what);
    }

    #[priority]
    fn urgent(&mut self, what: String) {
        self.order.push(what);
    }

    #[cast]
    fn hint(&mut self, what: String) {
        self.order.push(what);
    }

    fn order(&self) -> Vec<String> {
        self.order.clone()
    }

    #[timeout("50ms")]
    async fn slow_default(&self) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    fn remember(&mut self, me: DeskHandle) {
        self.me = Some(me);
    }

    async fn call_myself(&self) -> Result<Vec<String>, CallError> {
        self.me.as_ref().expect("remembered").order().await
    }
}

fn desk() -> (Desk, Arc<AtomicUsize>) {
    let worked = Arc::new(AtomicUsize::new(0));
    let desk = Desk {
        worked: worked.clone(),
        order: Vec::new(),
        me: None,
    };
    (desk, worked)
}

/// Holds the server inside a handler; returns the notify that releases it.
async fn hold(handle: &DeskHandle) -> Arc<Notify> {
    let handle = handle.clone();
    common::hold(move |entered, release| async move { handle.hold(entered, release).await }).await
}

#[tokio::test(start_paused = true)]
async fn timeout_fires_and_the_server_keeps_serving() {
    within(PAUSED_LIMIT, async {
        let (state, _) = desk();
        let desk = state.spawn();
        let late = desk.work(1_000).timeout(Duration::from_millis(100)).await;
        assert_eq!(late, Err(CallError::Timeout));
        assert_eq!(desk.work(10).timeout(Duration::from_secs(5)).await, Ok(10));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn method_default_timeout_applies_and_the_call_site_wins() {
    within(PAUSED_LIMIT, async {
        let (state, _) = desk();
        let desk = state.spawn();
        assert_eq!(desk.slow_default().await, Err(CallError::Timeout));
        assert_eq!(
            desk.slow_default().timeout(Duration::from_secs(5)).await,
            Ok(())
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn timeout_counts_the_wait_for_mailbox_space() {
    within(PAUSED_LIMIT, async {
        let (state, worked) = desk();
        let desk = state.spawn();
        let release = hold(&desk).await;
        for _ in 0..4 {
            desk.hint("fill".into()).await.unwrap();
        }
        let blocked = desk.work(1).timeout(Duration::from_millis(100)).await;
        assert_eq!(blocked, Err(CallError::Timeout));
        release.notify_one();
        assert_eq!(desk.order().await.unwrap().len(), 4);
        assert_eq!(
            worked.load(Ordering::SeqCst),
            0,
            "the timed-out call never ran"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn try_now_on_a_full_mailbox_returns_full_at_once() {
    within(PAUSED_LIMIT, async {
        let (state, _) = desk();
        let desk = state.spawn();
        let release = hold(&desk).await;
        for _ in 0..4 {
            desk.note("queued".into())
                .try_now()
                .no_wait()
                .await
                .unwrap();
        }
        let start = tokio::time::Instant::now();
        assert_eq!(
            desk.note("one more".into()).try_now().await,
            Err(CallError::Full)
        );
        assert_eq!(start.elapsed(), Duration::ZERO);
        release.notify_one();
        assert_eq!(desk.order().await.unwrap(), vec!["queued"; 4]);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn no_wait_returns_before_the_handler_ran_and_the_handler_still_runs() {
    within(PAUSED_LIMIT, async {
        let (state, worked) = desk();
        let desk = state.spawn();
        let release = hold(&desk).await;
        assert_eq!(desk.work(5).no_wait().await, Ok(()));
        assert_eq!(worked.load(Ordering::SeqCst), 0);
        release.notify_one();
        desk.order().await.unwrap();
        assert_eq!(worked.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_cast_resolves_on_enqueue() {
    within(PAUSED_LIMIT, async {
        let (state, _) = desk();
        let desk = state.spawn();
        let release = hold(&desk).await;
        desk.hint("cast".into()).await.unwrap();
        assert_eq!(desk.queued(), 1);
        release.notify_one();
        assert_eq!(desk.order().await.unwrap(), ["cast"]);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_priority_call_overtakes_queued_normal_calls() {
    within(PAUSED_LIMIT, async {
        let (state, _) = desk();
        let desk = Builder::new(state).capacity(64).spawn();
        let release = hold(&desk).await;
        for i in 0..10 {
            desk.hint(format!("normal {i}")).await.unwrap();
        }
        desk.urgent("urgent".into()).no_wait().await.unwrap();
        release.notify_one();
        let order = desk.order().await.unwrap();
        assert_eq!(order[0], "urgent");
        assert_eq!(order.len(), 11);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn priority_cannot_starve_the_normal_lane() {
    within(PAUSED_LIMIT, async {
        let (state, _) = desk();
        let burst = PRIORITY_BURST + 8;
        let desk = Builder::new(state).capacity(burst).spawn();
        let release = hold(&desk).await;
        desk.hint("normal".into()).await.unwrap();
        for i in 0..burst {
            desk.urgent(format!("urgent {i}")).no_wait().await.unwrap();
        }
        release.notify_one();
        let order = desk.order().await.unwrap();
        let normal_at = order.iter().position(|s| s == "normal").unwrap();
        assert_eq!(
            normal_at, PRIORITY_BURST,
            "one normal request after a full burst"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn abandoned_requests_are_not_started() {
    within(PAUSED_LIMIT, async {
        let (state, worked) = desk();
        let desk = Builder::new(state).capacity(64).spawn();
        let release = hold(&desk).await;
        // Ten callers give up while queued: five time out, five drop.
        let timed_out: Vec<_> = (0..5)
            .map(|_| {
                let desk = desk.clone();
                tokio::spawn(async move { desk.work(1).timeout(Duration::from_millis(10)).await })
            })
            .collect();
        let dropped: Vec<_> = (0..5)
            .map(|_| {
                let desk = desk.clone();
                tokio::spawn(async move { desk.work(1).await })
            })
            .collect();
        common::until_queued(|| desk.queued(), 10).await;
        for call in dropped {
            call.abort();
        }
        for call in timed_out {
            assert_eq!(call.await.unwrap(), Err(CallError::Timeout));
        }
        release.notify_one();
        assert_eq!(desk.work(1).await, Ok(1));
        assert_eq!(worked.load(Ordering::SeqCst), 1, "only the last call ran");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_handler_calling_its_own_server_gets_self_call() {
    within(PAUSED_LIMIT, async {
        let (state, _) = desk();
        let desk = state.spawn();
        desk.remember(desk.clone()).await.unwrap();
        assert_eq!(desk.call_myself().await, Ok(Err(CallError::SelfCall)));
        // The server is still fine.
        assert_eq!(desk.order().await, Ok(vec![]));
    })
    .await;
}

#[test]
fn blocking_calls_work_from_plain_threads() {
    // A watchdog instead of a runtime timeout: this test has no runtime on
    // its own thread.
    let (done, finished) = std::sync::mpsc::channel();
    let test = std::thread::spawn(move || {
        blocking_calls_body();
        done.send(()).unwrap();
    });
    if finished.recv_timeout(LIMIT).is_err() {
        panic!("blocking calls did not finish within {LIMIT:?}: something hangs");
    }
    test.join().unwrap();
}

fn blocking_calls_body() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (state, _) = desk();
    let desk = runtime.block_on(async { state.spawn() });
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let desk = desk.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    desk.note(format!("{t}-{i}")).blocking().unwrap();
                }
                desk.work(1).timeout(Duration::from_secs(10)).blocking()
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), Ok(1));
    }
    assert_eq!(desk.order().blocking().unwrap().len(), 800);
    let from_blocking_pool = runtime.block_on({
        let desk = desk.clone();
        async move {
            tokio::task::spawn_blocking(move || desk.order().blocking())
                .await
                .unwrap()
        }
    });
    assert_eq!(from_blocking_pool.map(|o| o.len()), Ok(800));
}

#[tokio::test]
async fn blocking_on_a_runtime_thread_is_an_error_not_a_deadlock() {
    within(LIMIT, async {
        let (state, _) = desk();
        let desk = state.spawn();
        assert_eq!(desk.order().blocking(), Err(CallError::BlockingInRuntime));
        assert_eq!(desk.order().await, Ok(vec![]));
    })
    .await;
}

struct Sluggish;

#[server(timeout = "100ms")]
impl Sluggish {
    async fn nap(&self, millis: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    }

    #[timeout("1s")]
    async fn long_nap(&self, millis: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    }
}

#[tokio::test(start_paused = true)]
async fn the_server_wide_default_timeout_applies_and_a_method_timeout_overrides_it() {
    within(PAUSED_LIMIT, async {
        let sluggish = Sluggish.spawn();
        assert_eq!(sluggish.nap(50).await, Ok(50));
        assert_eq!(sluggish.nap(500).await, Err(CallError::Timeout));
        assert_eq!(sluggish.long_nap(500).await, Ok(500));
        assert_eq!(
            sluggish.nap(500).timeout(Duration::from_secs(1)).await,
            Ok(500)
        );
    })
    .await;
}
