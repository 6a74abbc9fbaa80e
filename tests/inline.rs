//! Calls served by their callers: when a server is idle, a call to one of
//! its synchronous methods runs on the caller's task, with no handoff to the
//! server's task, and every promise of the serve loop still holds (the
//! runtime's `inline.rs` says why). Each test here fails without the piece
//! of it that it names.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{LIMIT, within};
use patchboard::{Builder, CallError, Context, Restart, Server, StopReason, server};

/// Records where its handlers ran, and checks that no two of them (nor a
/// tick) ever run at once.
struct Probe {
    /// Set while a handler or tick runs.
    busy: Arc<AtomicBool>,
    /// The last value each caller pushed.
    last: Vec<u64>,
    ticks: Arc<AtomicUsize>,
    stopped: Arc<AtomicBool>,
}

/// Runs `f` as the only code of its server running, or panics.
fn alone<T>(busy: &AtomicBool, f: impl FnOnce() -> T) -> T {
    assert!(
        !busy.swap(true, Ordering::SeqCst),
        "two handlers of one server ran at once"
    );
    // Long enough for another thread to be caught inside.
    for _ in 0..200 {
        std::hint::spin_loop();
    }
    let value = f();
    busy.store(false, Ordering::SeqCst);
    value
}

impl Probe {
    fn new() -> Self {
        Probe {
            busy: Arc::new(AtomicBool::new(false)),
            last: vec![0; 16],
            ticks: Arc::new(AtomicUsize::new(0)),
            stopped: Arc::new(AtomicBool::new(false)),
        }
    }
}

#[server]
impl Probe {
    /// The id of the task the handler runs on.
    fn task(&self) -> Option<tokio::task::Id> {
        tokio::task::try_id()
    }

    #[cast]
    fn push(&mut self, caller: usize, value: u64) {
        alone(&self.busy, || self.last[caller] = value);
    }

    /// Pushes the value after the last one `caller` pushed, or panics.
    #[cast]
    fn push_next(&mut self, caller: usize, value: u64) {
        alone(&self.busy, || {
            assert_eq!(value, self.last[caller] + 1, "a cast arrived out of order");
            self.last[caller] = value;
        });
    }

    /// The last value `caller` pushed.
    fn last(&self, caller: usize) -> u64 {
        alone(&self.busy, || self.last[caller])
    }

    /// Sets and returns, checking order per caller.
    fn set(&mut self, caller: usize, value: u64) -> bool {
        alone(&self.busy, || {
            let in_order = value > self.last[caller];
            self.last[caller] = value;
            in_order
        })
    }

    fn boom(&self) -> u64 {
        panic!("probe broke")
    }

    async fn slow(&self) {
        tokio::task::yield_now().await;
    }

    #[every(Duration::from_millis(1))]
    fn tick(&mut self) {
        alone(&self.busy, || self.ticks.fetch_add(1, Ordering::SeqCst));
    }

    #[on_stop]
    fn on_stop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

/// The same probe without a timer, where the difference is easiest to see.
struct Plain;

#[server]
impl Plain {
    fn task(&self) -> Option<tokio::task::Id> {
        tokio::task::try_id()
    }

    fn own_name(&self, ctx: &Context<Self>) -> Option<String> {
        ctx.name().map(str::to_owned)
    }

    async fn task_async(&self) -> Option<tokio::task::Id> {
        tokio::task::try_id()
    }
}

#[tokio::test]
async fn an_idle_servers_synchronous_call_runs_on_the_callers_task() {
    let caller = tokio::spawn(within(LIMIT, async {
        let plain = Builder::new(Plain).name("plain").spawn();
        let caller = tokio::task::try_id();
        assert!(caller.is_some());
        // An async method is served by the server's task, as before; then
        // the server is idle.
        let served = plain.task_async().await.unwrap();
        assert!(served.is_some() && served != caller);
        assert_eq!(plain.task().await, Ok(caller));
        // The context is the server's own.
        assert_eq!(plain.own_name().await, Ok(Some("plain".to_owned())));
    }));
    caller.await.unwrap();
}

/// Where its cast ran.
#[derive(Default)]
struct Recorder {
    seen: Option<tokio::task::Id>,
}

#[server]
impl Recorder {
    #[cast]
    fn record(&mut self) {
        self.seen = tokio::task::try_id();
    }

    fn seen(&self) -> Option<tokio::task::Id> {
        self.seen
    }
}

#[tokio::test]
async fn an_idle_servers_synchronous_cast_runs_on_the_callers_task() {
    let caller = tokio::spawn(within(LIMIT, async {
        let recorder = Recorder::default().spawn();
        // Served by the loop, which is idle afterwards.
        assert_eq!(recorder.seen().await, Ok(None));
        recorder.record().await.unwrap();
        assert_eq!(recorder.seen().await, Ok(tokio::task::try_id()));
    }));
    caller.await.unwrap();
}

/// Runs `step` in a loop on this task until a task spawned first has run;
/// fails if it never does (the loop never yielded).
async fn another_task_runs_while<F: Future<Output = ()>>(mut step: impl FnMut() -> F) {
    let ran = Arc::new(AtomicBool::new(false));
    tokio::spawn({
        let ran = ran.clone();
        async move { ran.store(true, Ordering::SeqCst) }
    });
    for _ in 0..100_000 {
        if ran.load(Ordering::SeqCst) {
            return;
        }
        step().await;
    }
    panic!("the other task never ran");
}

#[tokio::test(flavor = "current_thread")]
async fn a_caller_casting_in_a_loop_still_yields_to_the_other_tasks() {
    within(LIMIT, async {
        let recorder = Recorder::default().spawn();
        recorder.seen().await.unwrap();
        // Casts never wait for room here (each is served at once): without
        // a share of the task budget per cast this loop would never yield.
        another_task_runs_while(|| async { recorder.record().await.unwrap() }).await;
    })
    .await;
}

#[test]
fn a_blocking_call_is_served_by_the_servers_task() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // One call served, and the server is idle when `block_on` returns.
    let plain = runtime.block_on(async {
        let plain = Plain.spawn();
        plain.task_async().await.unwrap();
        plain
    });
    // On a plain thread there is no runtime for the handler to use: the
    // server's task serves it.
    let caller = std::thread::spawn(move || plain.task().timeout(LIMIT).blocking());
    let served = runtime.block_on(within(LIMIT, async {
        while !caller.is_finished() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        caller.join().unwrap()
    }));
    assert!(matches!(served, Ok(Some(_))), "{served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_never_passes_a_cast_its_caller_sent_before_it() {
    within(LIMIT, async {
        let probe = Probe::new().spawn();
        let callers: Vec<_> = (0..8)
            .map(|caller| {
                let probe = probe.clone();
                tokio::spawn(async move {
                    for value in 1..=300 {
                        probe.push(caller, value).await.unwrap();
                        assert_eq!(probe.last(caller).await, Ok(value));
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handlers_and_ticks_never_overlap_and_each_callers_calls_keep_their_order() {
    within(LIMIT, async {
        let probe = Probe::new();
        let ticks = probe.ticks.clone();
        let probe = probe.spawn();
        let callers: Vec<_> = (0..8)
            .map(|caller| {
                let probe = probe.clone();
                tokio::spawn(async move {
                    for value in 1..=500 {
                        // A mix of calls served by the caller, by the loop
                        // (async), and queued behind one another.
                        if value % 50 == 0 {
                            probe.slow().await.unwrap();
                        }
                        assert_eq!(probe.set(caller, value).await, Ok(true));
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap();
        }
        // The timer ran meanwhile (a tick that overlapped a handler would
        // have panicked and stopped the server).
        while ticks.load(Ordering::SeqCst) < 5 {
            probe.slow().await.unwrap();
        }
        assert_eq!(probe.last(0).await, Ok(500));
    })
    .await;
}

#[tokio::test]
async fn a_panic_served_by_the_caller_stops_the_server_as_the_loop_would() {
    within(LIMIT, async {
        let probe = Probe::new();
        let stopped = probe.stopped.clone();
        let (probe, exit) = Builder::new(probe).spawn_with_exit();
        // Served by the loop, which is idle afterwards.
        assert_eq!(probe.last(0).await, Ok(0));
        let answer = probe.boom().await;
        assert!(
            matches!(&answer, Err(CallError::Panicked(m)) if m.as_str() == "probe broke"),
            "{answer:?}"
        );
        // The server stops, runs `#[on_stop]`, and says why.
        let exited = exit.await;
        assert!(
            matches!(&exited.reason, StopReason::Panicked(m) if m.as_str() == "probe broke"),
            "{:?}",
            exited.reason
        );
        assert!(stopped.load(Ordering::SeqCst));
        assert_eq!(probe.last(0).await, Err(CallError::Closed));
    })
    .await;
}

#[tokio::test]
async fn a_panic_served_by_the_caller_restarts_the_server_under_its_policy() {
    within(LIMIT, async {
        let probe = Builder::new(Probe::new())
            .restart(Restart::new(Probe::new))
            .spawn();
        assert_eq!(probe.set(0, 7).await, Ok(true));
        assert!(matches!(probe.boom().await, Err(CallError::Panicked(_))));
        // A fresh state serves the next call.
        assert_eq!(probe.last(0).await, Ok(0));
    })
    .await;
}

struct Tolerant {
    count: u64,
}

#[server(on_panic = "continue")]
impl Tolerant {
    fn add(&mut self) -> u64 {
        self.count += 1;
        self.count
    }

    fn boom(&mut self) {
        self.count += 10;
        panic!("tolerated");
    }
}

#[tokio::test]
async fn a_panic_served_by_the_caller_keeps_a_tolerant_server_serving() {
    within(LIMIT, async {
        let tolerant = Tolerant { count: 0 }.spawn();
        assert_eq!(tolerant.add().await, Ok(1));
        assert!(matches!(tolerant.boom().await, Err(CallError::Panicked(_))));
        assert_eq!(
            tolerant.add().await,
            Ok(12),
            "the state as the panic left it"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_contention_a_panic_leaves_no_caller_waiting() {
    within(LIMIT, async {
        let probe = Probe::new().spawn();
        let callers: Vec<_> = (0..16)
            .map(|caller| {
                let probe = probe.clone();
                tokio::spawn(async move {
                    let mut value = 0;
                    loop {
                        value += 1;
                        match probe.set(caller, value).await {
                            Ok(in_order) => assert!(in_order),
                            Err(CallError::Closed) => return,
                            Err(other) => panic!("{other:?}"),
                        }
                    }
                })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(matches!(probe.boom().await, Err(CallError::Panicked(_))));
        for caller in callers {
            caller.await.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn a_stopped_or_draining_server_serves_no_caller() {
    within(LIMIT, async {
        let probe = Probe::new().spawn();
        assert_eq!(probe.set(0, 1).await, Ok(true));
        probe.stop().await;
        assert_eq!(probe.last(0).await, Err(CallError::Closed));

        let probe = Probe::new().spawn();
        let other = probe.clone();
        let drained = tokio::spawn(async move { other.drain().await });
        common::until(|| probe.is_closed()).await;
        assert_eq!(probe.last(0).await, Err(CallError::Closed));
        drained.await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_caller_serving_itself_still_yields_to_the_other_tasks() {
    within(LIMIT, async {
        let plain = Plain.spawn();
        // The loop yields when its task budget is spent, as it would
        // waiting for replies from the server's task.
        another_task_runs_while(|| async {
            plain.task().await.unwrap();
        })
        .await;
    })
    .await;
}

/// A server whose state is not ready before `#[on_start]` has run.
#[derive(Default)]
struct Starting {
    started: bool,
}

#[server]
impl Starting {
    #[on_start]
    fn start(&mut self) {
        self.started = true;
    }

    fn started(&self) -> bool {
        self.started
    }
}

#[tokio::test]
async fn a_new_server_with_a_start_hook_starts_before_any_caller_serves_itself() {
    let caller = tokio::spawn(within(LIMIT, async {
        let starting = Starting::default().spawn();
        assert_eq!(starting.started().await, Ok(true));
        // Idle now: served by the caller, on the started state.
        assert_eq!(starting.started().await, Ok(true));
    }));
    caller.await.unwrap();
}

/// A server whose one synchronous handler runs for a long time.
struct Slow {
    entered: Arc<AtomicBool>,
}

#[server]
impl Slow {
    /// Blocks its thread for `millis`: a handler doing synchronous work.
    fn work(&self, millis: u64) {
        self.entered.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(millis));
    }

    fn task(&self) -> Option<tokio::task::Id> {
        tokio::task::try_id()
    }
}

/// Calls `task()` until it is served on the calling task: the server's
/// loop has gone idle and lent its state.
async fn until_idle(slow: &SlowHandle) {
    for _ in 0..10_000 {
        if slow.task().await.unwrap() == tokio::task::try_id() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the server never went idle");
}

/// Issue 26, item 1: while a caller runs a long synchronous handler on an
/// idle server's state, a call that wakes the loop must not block the
/// loop's worker thread waiting for the state: an unrelated task ticking
/// every 5 ms keeps ticking (before the fix the loop took the slot's lock
/// and froze the second worker for the whole handler).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_waits_for_a_caller_serving_itself_as_a_task_not_by_blocking() {
    within(LIMIT, async {
        let entered = Arc::new(AtomicBool::new(false));
        let slow = Slow {
            entered: entered.clone(),
        }
        .spawn();
        until_idle(&slow).await;
        // The caller serves a 400 ms handler on its own worker.
        let long = tokio::spawn({
            let slow = slow.clone();
            async move { slow.work(400).await }
        });
        common::until(|| entered.load(Ordering::SeqCst)).await;
        // The server is busy with its caller: this call queues and wakes
        // the loop, which finds the state taken.
        let queued = tokio::spawn({
            let slow = slow.clone();
            async move { slow.work(0).await }
        });
        // Meanwhile, on the other worker, a task that ticks every 5 ms.
        let started = std::time::Instant::now();
        let mut longest = Duration::ZERO;
        let mut last = started;
        while !long.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let now = std::time::Instant::now();
            longest = longest.max(now - last);
            last = now;
        }
        assert_eq!(long.await.unwrap(), Ok(()));
        assert_eq!(queued.await.unwrap(), Ok(()));
        assert!(
            longest < Duration::from_millis(200),
            "a 5 ms ticker stalled for {longest:?} while a caller served itself"
        );
    })
    .await;
}

/// Asks another server with `.blocking()` from inside its handler.
struct Asker;

#[server]
impl Asker {
    fn ask(&self, other: SlowHandle) -> Result<(), CallError> {
        other.work(0).blocking()
    }

    fn ping(&self) {}

    fn task(&self) -> Option<tokio::task::Id> {
        tokio::task::try_id()
    }
}

/// Issue 26, item 1: on a one-worker multi-thread runtime whose `block_on`
/// thread is the caller, a handler served there that makes a `.blocking()`
/// call gets `BlockingInRuntime` (it runs as server code on a thread that
/// drives the runtime), never a deadlock, while another call wakes the
/// server's loop on the only worker.
#[test]
fn a_blocking_call_from_a_handler_served_on_a_block_on_thread_is_refused() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let answer = runtime.block_on(async {
            let asker = Asker.spawn();
            let other = Slow {
                entered: Arc::new(AtomicBool::new(false)),
            }
            .spawn();
            // Until the asker is idle: a call served on this thread, which
            // is no task, sees no task id.
            let mut idle = false;
            for _ in 0..10_000 {
                if asker.task().await.unwrap().is_none() {
                    idle = true;
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert!(idle, "the server never went idle");
            let pinger = tokio::spawn({
                let asker = asker.clone();
                async move { asker.ping().await }
            });
            let answer = asker.ask(other).await;
            assert_eq!(pinger.await.unwrap(), Ok(()));
            answer
        });
        let _ = done.send(answer);
    });
    let answer = finished
        .recv_timeout(LIMIT)
        .expect("the runtime deadlocked");
    assert_eq!(answer, Ok(Err(CallError::BlockingInRuntime)));
}

/// Issue 26, item 2: a call with a deadline gets control back by it even
/// when the server is idle (it is not served on its caller's task, where
/// nothing could interrupt the handler).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_deadline_holds_when_the_server_is_idle() {
    within(LIMIT, async {
        let slow = Slow {
            entered: Arc::new(AtomicBool::new(false)),
        }
        .spawn();
        until_idle(&slow).await;
        let started = std::time::Instant::now();
        let answer = slow.work(300).timeout(Duration::from_millis(10)).await;
        let waited = started.elapsed();
        assert_eq!(answer, Err(CallError::Timeout));
        assert!(
            waited < Duration::from_millis(250),
            "a 10 ms deadline returned after {waited:?}"
        );
    })
    .await;
}

/// A periodic worker, as users write them.
struct Ticker {
    ticks: u64,
}

#[server]
impl Ticker {
    #[every(Duration::from_secs(1))]
    fn tick(&mut self) {
        self.ticks += 1;
    }

    fn counts(&self) -> u64 {
        self.ticks
    }
}

/// Issue 26, item 3: under tokio's paused clock, advance past a tick, then
/// call: the due tick runs before the call, as it does through the mailbox
/// (before the fix the caller served itself first and saw one tick fewer).
#[tokio::test(start_paused = true)]
async fn a_due_tick_runs_before_a_later_call_served_by_its_caller() {
    within(common::PAUSED_LIMIT, async {
        let ticker = Ticker { ticks: 0 }.spawn();
        assert_eq!(ticker.counts().await, Ok(0));
        for expected in 1..=20 {
            tokio::time::advance(Duration::from_millis(1_000)).await;
            assert_eq!(ticker.counts().await, Ok(expected));
            // Idle again between ticks: later calls are served here.
            assert_eq!(ticker.counts().await, Ok(expected));
        }
    })
    .await;
}

/// A flood of casts from many senders into a mailbox with room for one or
/// two: each sender that waits for room is handed its cast back when the
/// loop has emptied the mailbox, to serve it itself if the server is idle.
/// Every cast arrives, each sender's in its order, and no sender is left
/// waiting for room that another took (the turn is passed on).
async fn flood(capacity: usize) {
    within(LIMIT, async {
        let probe = Builder::new(Probe::new()).capacity(capacity).spawn();
        let senders: Vec<_> = (0..8)
            .map(|caller| {
                let probe = probe.clone();
                tokio::spawn(async move {
                    for value in 1..=5_000 {
                        probe.push_next(caller, value).await.unwrap();
                        if value % 1_000 == 0 {
                            // Now and then through the loop, too.
                            probe.slow().await.unwrap();
                        }
                    }
                    // A call after the casts sees the last of them.
                    assert_eq!(probe.last(caller).await, Ok(5_000));
                })
            })
            .collect();
        for sender in senders {
            sender.await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_casts_into_a_small_mailbox_arrives_whole_and_in_order() {
    flood(1).await;
    flood(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_casts_from_many_threads_arrives_whole_and_in_order() {
    flood(1).await;
    flood(2).await;
}

/// After callers contended for the state (one serving itself while others
/// had to queue calls they could have served), the loop serves the next
/// requests through the mailbox (`serve.rs`, `CALM`), then lends the state
/// again: a lone caller is served on its own task once more, every call
/// answered throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_callers_contend_a_lone_caller_serves_itself_again() {
    within(LIMIT, async {
        let plain = Plain.spawn();
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let plain = plain.clone();
                tokio::spawn(async move {
                    for _ in 0..2_000 {
                        assert!(plain.task().await.is_ok());
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap();
        }
        let caller = tokio::task::try_id();
        let mut calls = 0;
        while plain.task().await.unwrap() != caller {
            calls += 1;
            assert!(
                calls < 1_000,
                "still through the mailbox after {calls} calls"
            );
            tokio::task::yield_now().await;
        }
    })
    .await;
}
