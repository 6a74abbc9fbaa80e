//! `#[on_start]`, `#[on_stop]` and `#[every]`: hooks run when they should,
//! exactly once, and timers tick on schedule inside the serial loop.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{PAUSED_LIMIT, within};
use patchboard::{CallError, Server, StopReason, server};

/// Records hook runs in shared counters the test can read.
#[derive(Default, Clone)]
struct Counters {
    starts: Arc<AtomicUsize>,
    stops: Arc<AtomicUsize>,
    ticks: Arc<AtomicUsize>,
}

impl Counters {
    fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

struct Hooked {
    counters: Counters,
    fail_start: bool,
    period: Duration,
    /// How long the next tick takes (paused time); later ones are instant.
    tick_cost: Duration,
    log: Vec<&'static str>,
}

#[derive(Debug)]
struct NoDatabase;

impl std::fmt::Display for NoDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("database unreachable")
    }
}

#[server(on_panic = "stop")]
impl Hooked {
    #[on_start]
    async fn connect(&mut self) -> Result<(), NoDatabase> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        self.counters.starts.fetch_add(1, Ordering::SeqCst);
        self.log.push("start");
        if self.fail_start {
            Err(NoDatabase)
        } else {
            Ok(())
        }
    }

    #[on_stop]
    fn flush(&mut self) {
        self.counters.stops.fetch_add(1, Ordering::SeqCst);
    }

    #[every(self.period)]
    async fn sync(&mut self) {
        self.counters.ticks.fetch_add(1, Ordering::SeqCst);
        self.log.push("tick");
        tokio::time::sleep(std::mem::take(&mut self.tick_cost)).await;
    }

    fn log(&self) -> Vec<&'static str> {
        self.log.clone()
    }

    fn mark(&mut self) {
        self.log.push("call");
    }

    fn boom(&mut self) {
        panic!("boom");
    }

    fn finish(self) -> usize {
        self.log.len()
    }
}

fn hooked(counters: &Counters) -> Hooked {
    Hooked {
        counters: counters.clone(),
        fail_start: false,
        period: Duration::from_secs(1),
        tick_cost: Duration::ZERO,
        log: Vec::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn requests_sent_before_start_completes_wait_and_are_served_in_order() {
    within(PAUSED_LIMIT, async {
        let counters = Counters::default();
        let server = hooked(&counters).spawn();
        // Sent at once; `connect` takes 10ms.
        let (a, b) = tokio::join!(server.mark(), server.mark());
        assert_eq!((a, b), (Ok(()), Ok(())));
        assert_eq!(server.log().await.unwrap(), ["start", "call", "call"]);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_start_releases_every_waiting_caller_with_the_reason() {
    within(PAUSED_LIMIT, async {
        let counters = Counters::default();
        let server = Hooked {
            fail_start: true,
            ..hooked(&counters)
        }
        .spawn();
        let waiting: Vec<_> = (0..20)
            .map(|_| {
                let server = server.clone();
                tokio::spawn(async move { server.log().await })
            })
            .collect();
        for caller in waiting {
            let error = caller.await.unwrap().unwrap_err();
            assert_eq!(error, CallError::StartFailed("database unreachable".into()));
        }
        assert_eq!(
            server.closed().await,
            StopReason::StartFailed("database unreachable".into())
        );
        // Later callers learn the reason too, at once.
        assert_eq!(
            server.log().await,
            Err(CallError::StartFailed("database unreachable".into()))
        );
        // `on_stop` is for servers that started.
        assert_eq!(Counters::get(&counters.stops), 0);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn on_stop_runs_exactly_once_after_stop() {
    within(PAUSED_LIMIT, async {
        let counters = Counters::default();
        let server = hooked(&counters).spawn();
        server.mark().await.unwrap();
        server.stop().await;
        server.stop().await;
        assert_eq!(Counters::get(&counters.stops), 1);
        assert_eq!(server.closed().await, StopReason::Stopped);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn on_stop_runs_exactly_once_after_a_terminal_method() {
    within(PAUSED_LIMIT, async {
        let counters = Counters::default();
        let server = hooked(&counters).spawn();
        assert_eq!(server.finish().await, Ok(1));
        assert_eq!(server.closed().await, StopReason::Terminal);
        assert_eq!(Counters::get(&counters.stops), 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn on_stop_runs_exactly_once_after_a_panic() {
    within(PAUSED_LIMIT, async {
        let counters = Counters::default();
        let server = hooked(&counters).spawn();
        assert!(matches!(server.boom().await, Err(CallError::Panicked(_))));
        assert!(matches!(server.closed().await, StopReason::Panicked(_)));
        assert_eq!(Counters::get(&counters.stops), 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn on_stop_runs_exactly_once_after_every_handle_is_dropped() {
    within(PAUSED_LIMIT, async {
        let counters = Counters::default();
        let server = hooked(&counters).spawn();
        server.mark().await.unwrap();
        drop(server);
        while Counters::get(&counters.stops) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(Counters::get(&counters.stops), 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn ticks_follow_the_period() {
    within(PAUSED_LIMIT, async {
        let counters = Counters::default();
        let server = hooked(&counters).spawn();
        server.mark().await.unwrap(); // started
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        let ticks = Counters::get(&counters.ticks);
        assert!((9..=11).contains(&ticks), "10 periods gave {ticks} ticks");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn calls_interleave_with_ticks() {
    within(PAUSED_LIMIT, async {
        let counters = Counters::default();
        let server = hooked(&counters).spawn();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            server.mark().await.unwrap();
        }
        let log = server.log().await.unwrap();
        assert_eq!(
            log,
            [
                "start", "tick", "call", "tick", "call", "tick", "tick", "call"
            ][..log.len()]
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_tick_does_not_cause_a_burst_of_catch_up_ticks() {
    within(PAUSED_LIMIT, async {
        let counters = Counters::default();
        let server = Hooked {
            tick_cost: Duration::from_millis(3_500),
            ..hooked(&counters)
        }
        .spawn();
        server.mark().await.unwrap();
        // The first tick (t=1s) takes 3.5 periods. Without catch-up, the
        // next ticks come at 5.5s and 6.5s: two ticks by 6.2s. A catch-up
        // burst would add the missed 2s, 3s and 4s ticks at 4.5s.
        tokio::time::sleep(Duration::from_millis(6_200)).await;
        let ticks = Counters::get(&counters.ticks);
        assert_eq!(ticks, 2, "a burst of catch-up ticks happened");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn ticks_stop_after_stop() {
    within(PAUSED_LIMIT, async {
        let counters = Counters::default();
        let server = hooked(&counters).spawn();
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        server.stop().await;
        let ticks = Counters::get(&counters.ticks);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(Counters::get(&counters.ticks), ticks);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_exit_future_returns_the_final_state_and_the_reason() {
    within(PAUSED_LIMIT, async {
        let counters = Counters::default();
        let (server, exit) = patchboard::Builder::new(hooked(&counters)).spawn_with_exit();
        server.mark().await.unwrap();
        server.stop().await;
        let exited = exit.await;
        assert_eq!(exited.reason, StopReason::Stopped);
        let state = exited.state.expect("the state after on_stop");
        assert_eq!(state.log, ["start", "call"]);
        assert_eq!(Counters::get(&counters.stops), 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_exit_future_sees_every_handle_dropped() {
    within(PAUSED_LIMIT, async {
        let counters = Counters::default();
        let (server, exit) = patchboard::Builder::new(hooked(&counters)).spawn_with_exit();
        server.mark().await.unwrap();
        drop(server);
        let exited = exit.await;
        assert_eq!(exited.reason, StopReason::HandlesDropped);
        assert_eq!(exited.state.map(|s| s.log.len()), Some(2));
    })
    .await;
}

/// Async hooks and timers, `&self` timers, and several timers per server.
struct AsyncHooks {
    log: Arc<std::sync::Mutex<Vec<&'static str>>>,
}

#[server]
impl AsyncHooks {
    #[on_start]
    async fn start(&mut self) {
        tokio::task::yield_now().await;
        self.log.lock().unwrap().push("start");
    }

    #[on_stop]
    async fn stop_hook(&mut self) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.log.lock().unwrap().push("stop");
    }

    #[every(Duration::from_secs(2))]
    async fn slow(&self) {
        self.log.lock().unwrap().push("slow");
    }

    #[every(Duration::from_millis(1_500))]
    fn fast(&self) {
        self.log.lock().unwrap().push("fast");
    }

    fn ping(&self) {}
}

#[tokio::test(start_paused = true)]
async fn async_hooks_and_several_timers_run_in_order() {
    within(PAUSED_LIMIT, async {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let server = AsyncHooks { log: log.clone() }.spawn();
        server.ping().await.unwrap();
        tokio::time::sleep(Duration::from_millis(4_100)).await;
        server.stop().await;
        assert_eq!(
            *log.lock().unwrap(),
            ["start", "fast", "slow", "fast", "slow", "stop"]
        );
    })
    .await;
}
