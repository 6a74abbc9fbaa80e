//! Shared test helpers.

#[allow(dead_code)]
pub mod alloc;

use std::future::Future;
use std::time::Duration;

/// Runs `test` and fails (instead of hanging CI) if it takes longer than
/// `limit` of real time.
#[allow(dead_code)]
pub async fn within<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, test).await {
        Ok(value) => value,
        Err(_) => panic!("test did not finish within {limit:?}: something hangs"),
    }
}

/// Ten seconds: generous for any of these tests, short enough for CI.
#[allow(dead_code)]
pub const LIMIT: Duration = Duration::from_secs(10);

/// For tests under `tokio::time::pause()`: the limit is in paused time,
/// which jumps ahead whenever the runtime is idle, so a deadlocked test
/// fails at once while a test that sleeps for minutes of paused time passes.
#[allow(dead_code)]
pub const PAUSED_LIMIT: Duration = Duration::from_secs(3600);

/// Holds a server inside a handler so that later requests queue up behind
/// it. `start` sends the holding call, given the `entered` and `release`
/// notifies its handler must use; returns once the handler has entered,
/// with the notify that releases it.
#[allow(dead_code)]
pub async fn hold<F, Fut>(start: F) -> std::sync::Arc<tokio::sync::Notify>
where
    F: FnOnce(std::sync::Arc<tokio::sync::Notify>, std::sync::Arc<tokio::sync::Notify>) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send,
{
    let entered = std::sync::Arc::new(tokio::sync::Notify::new());
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let _held = tokio::spawn(start(entered.clone(), release.clone()));
    entered.notified().await;
    release
}

/// Yields until `queued()` reports at least `n` requests waiting: the way
/// tests line requests up behind a held server without sleeping.
#[allow(dead_code)]
pub async fn until_queued(queued: impl Fn() -> usize, n: usize) {
    until(|| queued() >= n).await;
}

/// Yields until `condition()` holds; panics after a million yields, so a
/// condition that never comes fails the test instead of spinning (a paused
/// clock never advances while a task keeps yielding).
#[allow(dead_code)]
pub async fn until(condition: impl Fn() -> bool) {
    for _ in 0..1_000_000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the condition never held");
}
