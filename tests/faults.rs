//! The fault promises of RELIABILITY.md, one test (or a few) per property.
//! Property 1 lives in `every_request_resolves.rs`, self-calls in
//! `call_control.rs`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{LIMIT, PAUSED_LIMIT, within};
use patchboard::{Builder, CallError, PanicPolicy, Restart, Server, StopReason, server};
use tokio::sync::Notify;

#[derive(Default)]
struct Worker {
    /// Calls served by this instance.
    served: u64,
    /// Shared across instances: how many instances were started.
    starts: Arc<AtomicUsize>,
    stops: Arc<AtomicUsize>,
    fail_start: bool,
}

#[server(capacity = 64)]
impl Worker {
    #[on_start]
    fn start(&mut self) -> Result<(), String> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        if self.fail_start {
            Err("no".into())
        } else {
            Ok(())
        }
    }

    #[on_stop]
    fn stop_hook(&mut self) {
        self.stops.fetch_add(1, Ordering::SeqCst);
    }

    fn serve(&mut self) -> u64 {
        self.served += 1;
        self.served
    }

    fn boom(&mut self, message: String) -> u64 {
        panic!("{message}");
    }

    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }

    fn finish(self) -> u64 {
        self.served
    }
}

fn worker() -> (Worker, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let w = Worker::default();
    let (starts, stops) = (w.starts.clone(), w.stops.clone());
    (w, starts, stops)
}

/// Holds the server inside a handler until the returned notify fires.
async fn hold(handle: &WorkerHandle) -> Arc<Notify> {
    let handle = handle.clone();
    common::hold(move |entered, release| async move { handle.hold(entered, release).await }).await
}

/// Queues `n` `serve` calls behind a held server.
async fn queue(
    handle: &WorkerHandle,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<u64, CallError>>> {
    let before = handle.queued();
    let calls = (0..n)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move { handle.serve().await })
        })
        .collect();
    common::until_queued(|| handle.queued(), before + n).await;
    calls
}

// Property 2 ---------------------------------------------------------------

#[tokio::test]
async fn queued_callers_are_released_when_a_handler_panics() {
    within(LIMIT, async {
        let (state, _, stops) = worker();
        let handle = state.spawn();
        let release = hold(&handle).await;
        let boom = tokio::spawn({
            let handle = handle.clone();
            async move { handle.boom("broken".into()).await }
        });
        common::until_queued(|| handle.queued(), 1).await;
        let queued = queue(&handle, 40).await;
        release.notify_one();
        assert!(matches!(boom.await.unwrap(), Err(CallError::Panicked(_))));
        for call in queued {
            assert_eq!(call.await.unwrap(), Err(CallError::Closed));
        }
        assert_eq!(stops.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test]
async fn queued_callers_are_released_when_a_terminal_method_runs() {
    within(LIMIT, async {
        let (state, _, stops) = worker();
        let handle = state.spawn();
        let release = hold(&handle).await;
        let finish = tokio::spawn({
            let handle = handle.clone();
            async move { handle.finish().await }
        });
        common::until_queued(|| handle.queued(), 1).await;
        let queued = queue(&handle, 40).await;
        release.notify_one();
        assert_eq!(finish.await.unwrap(), Ok(0));
        for call in queued {
            assert_eq!(call.await.unwrap(), Err(CallError::Closed));
        }
        assert_eq!(stops.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[test]
fn queued_callers_are_released_when_the_runtime_shuts_down() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (state, _, _) = worker();
    let (handle, calls) = runtime.block_on(async {
        let handle = state.spawn();
        let release = hold(&handle).await;
        std::mem::forget(release);
        let calls: Vec<_> = (0..10).map(|_| handle.serve().no_wait()).collect();
        for call in calls {
            call.await.unwrap();
        }
        (handle.clone(), handle)
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    // The serve task was dropped mid-handler; its guard closed the mailbox.
    assert!(handle.is_closed());
    // A deadline, so that a missing guard fails instead of hanging.
    let after = calls.serve().timeout(Duration::from_secs(10)).blocking();
    assert_eq!(after, Err(CallError::Closed));
}

// Property 3 ---------------------------------------------------------------

#[tokio::test]
async fn a_panic_answers_with_its_message_and_stops_by_default() {
    within(LIMIT, async {
        let (state, _, _) = worker();
        let handle = state.spawn();
        match handle.boom("the message".into()).await {
            Err(CallError::Panicked(message)) => assert_eq!(message.as_str(), "the message"),
            other => panic!("{other:?}"),
        }
        match handle.closed().await {
            StopReason::Panicked(message) => assert_eq!(message.as_str(), "the message"),
            other => panic!("{other:?}"),
        }
        assert_eq!(handle.serve().await, Err(CallError::Closed));
    })
    .await;
}

#[tokio::test]
async fn on_panic_continue_keeps_serving_with_the_same_state() {
    within(LIMIT, async {
        let (state, starts, stops) = worker();
        let handle = Builder::new(state).on_panic(PanicPolicy::Continue).spawn();
        assert_eq!(handle.serve().await, Ok(1));
        assert!(matches!(
            handle.boom("x".into()).await,
            Err(CallError::Panicked(_))
        ));
        assert_eq!(handle.serve().await, Ok(2), "same state");
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        assert_eq!(stops.load(Ordering::SeqCst), 0);
    })
    .await;
}

// Property 4 ---------------------------------------------------------------

fn restarting(max: usize, window: Duration) -> (WorkerHandle, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (state, starts, stops) = worker();
    let (s2, t2) = (starts.clone(), stops.clone());
    let factory = move || Worker {
        starts: s2.clone(),
        stops: t2.clone(),
        ..Worker::default()
    };
    let handle = Builder::new(state)
        .restart(Restart::new(factory).max_restarts(max).window(window))
        .spawn();
    (handle, starts, stops)
}

#[tokio::test(start_paused = true)]
async fn restart_rebuilds_the_state_and_keeps_the_handle() {
    within(PAUSED_LIMIT, async {
        let (handle, starts, stops) = restarting(3, Duration::from_secs(5));
        assert_eq!(handle.serve().await, Ok(1));
        assert_eq!(handle.serve().await, Ok(2));
        assert!(matches!(
            handle.boom("x".into()).await,
            Err(CallError::Panicked(_))
        ));
        assert_eq!(handle.serve().await, Ok(1), "a fresh state");
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "on_start ran for the new instance"
        );
        assert_eq!(
            stops.load(Ordering::SeqCst),
            1,
            "on_stop ran for the broken one"
        );
        assert!(!handle.is_closed());
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn callers_queued_across_a_restart_are_served_by_the_new_instance() {
    within(PAUSED_LIMIT, async {
        let (handle, _, _) = restarting(3, Duration::from_secs(5));
        let release = hold(&handle).await;
        let boom = tokio::spawn({
            let handle = handle.clone();
            async move { handle.boom("x".into()).await }
        });
        common::until_queued(|| handle.queued(), 1).await;
        let queued = queue(&handle, 20).await;
        release.notify_one();
        assert!(matches!(boom.await.unwrap(), Err(CallError::Panicked(_))));
        let mut served: Vec<u64> = Vec::new();
        for call in queued {
            served.push(call.await.unwrap().unwrap());
        }
        served.sort_unstable();
        assert_eq!(served, (1..=20).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn restarts_beyond_the_intensity_stop_the_server() {
    within(PAUSED_LIMIT, async {
        let (handle, starts, _) = restarting(2, Duration::from_secs(5));
        for _ in 0..2 {
            assert!(matches!(
                handle.boom("x".into()).await,
                Err(CallError::Panicked(_))
            ));
            assert_eq!(handle.serve().await, Ok(1));
        }
        assert!(matches!(
            handle.boom("x".into()).await,
            Err(CallError::Panicked(_))
        ));
        assert_eq!(handle.serve().await, Err(CallError::Closed));
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert!(matches!(handle.closed().await, StopReason::Panicked(_)));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_restart_count_resets_after_the_window() {
    within(PAUSED_LIMIT, async {
        let (handle, starts, _) = restarting(2, Duration::from_secs(5));
        for _ in 0..10 {
            for _ in 0..2 {
                assert!(matches!(
                    handle.boom("x".into()).await,
                    Err(CallError::Panicked(_))
                ));
                assert_eq!(handle.serve().await, Ok(1));
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        assert_eq!(starts.load(Ordering::SeqCst), 21);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_start_restarts_only_when_asked() {
    within(PAUSED_LIMIT, async {
        let attempts = Arc::new(AtomicUsize::new(0));
        let factory = {
            let attempts = attempts.clone();
            move || Worker {
                // The first rebuilt state fails too; the second starts.
                fail_start: attempts.fetch_add(1, Ordering::SeqCst) < 1,
                ..Worker::default()
            }
        };
        let failing = Worker {
            fail_start: true,
            ..Worker::default()
        };
        let handle = Builder::new(failing)
            .restart(Restart::new(factory.clone()).on_start_failure(true))
            .spawn();
        assert_eq!(handle.serve().await, Ok(1));
        assert_eq!(attempts.load(Ordering::SeqCst), 2);

        let failing = Worker {
            fail_start: true,
            ..Worker::default()
        };
        let handle = Builder::new(failing).restart(Restart::new(factory)).spawn();
        assert_eq!(
            handle.serve().await,
            Err(CallError::StartFailed("no".into()))
        );
    })
    .await;
}

// Property 6 ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_calls_at_any_await_point_disturbs_no_one() {
    within(LIMIT, async {
        let (state, _, _) = worker();
        let handle = Builder::new(state).capacity(4).spawn();
        let release = hold(&handle).await;
        // 4 queued (waiting for their reply), 8 more waiting for space.
        let calls: Vec<_> = (0..12)
            .map(|_| {
                let handle = handle.clone();
                tokio::spawn(async move { handle.serve().await })
            })
            .collect();
        common::until_queued(|| handle.queued(), 4).await;
        // Let the other eight reach their wait for space. Not needed for
        // the assertions (a call dropped anywhere must not run, and every
        // kept one must), only to make "dropped while waiting for space"
        // the likely case.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        // Drop every other call: some while waiting for a reply, some
        // while waiting for space.
        let mut kept = Vec::new();
        for (i, call) in calls.into_iter().enumerate() {
            if i % 2 == 0 {
                call.abort();
                let _ = call.await;
            } else {
                kept.push(call);
            }
        }
        release.notify_one();
        let mut served: Vec<u64> = Vec::new();
        for call in kept {
            served.push(call.await.unwrap().unwrap());
        }
        served.sort_unstable();
        // Only the six callers still waiting were served, in sequence:
        // dropped requests never ran.
        assert_eq!(served, (1..=6).collect::<Vec<_>>());
        assert_eq!(handle.serve().await, Ok(7));
    })
    .await;
}

// Property 7 ---------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn calls_after_death_fail_at_once() {
    within(PAUSED_LIMIT, async {
        let (state, _, _) = worker();
        let handle = state.spawn();
        let _ = handle.boom("x".into()).await;
        handle.closed().await;
        let start = tokio::time::Instant::now();
        assert_eq!(handle.serve().await, Err(CallError::Closed));
        assert_eq!(
            handle.serve().timeout(Duration::from_secs(60)).await,
            Err(CallError::Closed)
        );
        assert_eq!(handle.serve().try_now().await, Err(CallError::Closed));
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "no waiting on a dead server"
        );
    })
    .await;
}

// Stress ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_injection_stress() {
    // Thousands of expected panics: keep the log readable.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<String>().map(String::as_str) != Some("injected") {
            default(info);
        }
    }));
    within(Duration::from_secs(60), async {
        for iteration in 0..1_000u32 {
            let policy = iteration % 3;
            let (state, _, _) = worker();
            let builder = Builder::new(state).capacity(8);
            let handle = match policy {
                0 => builder.spawn(),
                1 => builder.on_panic(PanicPolicy::Continue).spawn(),
                _ => builder.restart(Restart::new(Worker::default)).spawn(),
            };
            let calls: Vec<_> = (0..16u32)
                .map(|i| {
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        if (i + iteration) % 5 == 0 {
                            handle.boom("injected".into()).await
                        } else {
                            handle.serve().await
                        }
                    })
                })
                .collect();
            let mut outcomes = 0;
            for call in calls {
                match call.await.unwrap() {
                    Ok(_) | Err(CallError::Panicked(_)) | Err(CallError::Closed) => outcomes += 1,
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(outcomes, 16);
        }
    })
    .await;
}
