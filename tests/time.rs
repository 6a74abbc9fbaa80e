//! Time belongs to its server: delayed messages (`Call::after`,
//! `Context::after`) arrive after their delay and not before, cancelled
//! ones never arrive, and none outlives the server it targets (no task, and
//! memory flat over 100 000 scheduled-then-stopped servers).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{PAUSED_LIMIT, until, within};
use patchboard::{
    Builder, CallError, Context, PanicMessage, Scheduled, Server, StopReason, server,
};
use tokio::time::Instant;

#[global_allocator]
static GLOBAL: common::alloc::Counting = common::alloc::Counting;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Notes what arrives, and when (since it started).
struct Log {
    start: Instant,
    seen: Vec<(u32, Duration)>,
    kept: Vec<Scheduled<()>>,
}

impl Log {
    fn new() -> Self {
        Log {
            start: Instant::now(),
            seen: Vec::new(),
            kept: Vec::new(),
        }
    }
}

#[server]
impl Log {
    #[cast]
    fn note(&mut self, n: u32) {
        self.seen.push((n, self.start.elapsed()));
    }

    /// A call: notes `n` and answers its double.
    fn double(&mut self, n: u32) -> u32 {
        self.seen.push((n, self.start.elapsed()));
        n * 2
    }

    fn seen(&self) -> Vec<(u32, Duration)> {
        self.seen.clone()
    }

    /// A one-shot timer to itself, forgotten (dropping it does not cancel).
    fn remind(&mut self, n: u32, after: Duration, ctx: &Context<Self>) {
        ctx.after(after, |me| me.note(n));
    }

    /// A one-shot timer to itself, kept for `cancel_kept`.
    fn remind_kept(&mut self, n: u32, after: Duration, ctx: &Context<Self>) {
        self.kept.push(ctx.after(after, |me| me.note(n)));
    }

    /// Notes `n` every `period`, kept for `cancel_kept`.
    fn repeat(&mut self, n: u32, period: Duration, ctx: &Context<Self>) {
        self.kept.push(ctx.interval(period, move |me| me.note(n)));
    }

    /// Holds the server for `d`: ticks queue meanwhile.
    async fn busy(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// Cancels every kept timer: how many had not been sent.
    fn cancel_kept(&mut self) -> usize {
        self.kept
            .drain(..)
            .map(Scheduled::cancel)
            .filter(|&c| c)
            .count()
    }
}

#[tokio::test(start_paused = true)]
async fn a_delayed_message_arrives_after_its_delay_and_not_before() {
    within(PAUSED_LIMIT, async {
        let start = Instant::now();
        let log = Log::new().spawn();
        let cast = log.note(1).after(ms(100));
        log.remind(2, ms(50)).await.unwrap();
        let call = log.double(21).after(ms(1_000));
        assert!(cast.is_pending() && call.is_pending());

        tokio::time::sleep(ms(49)).await;
        assert_eq!(log.seen().await.unwrap(), [], "nothing before its time");
        tokio::time::sleep_until(start + ms(99)).await;
        assert_eq!(log.seen().await.unwrap(), [(2, ms(50))]);
        // A cast's `Scheduled` resolves once the message is in the mailbox.
        assert_eq!(cast.await, Ok(()));
        assert_eq!(start.elapsed(), ms(100));
        assert_eq!(log.seen().await.unwrap(), [(2, ms(50)), (1, ms(100))]);
        // A call's resolves with the reply, once served after its delay.
        assert_eq!(call.await, Ok(42));
        assert_eq!(start.elapsed(), ms(1_000));
        assert_eq!(
            log.seen().await.unwrap(),
            [(2, ms(50)), (1, ms(100)), (21, ms(1_000))]
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn many_senders_delayed_messages_each_arrive_at_its_time_in_time_order() {
    within(PAUSED_LIMIT, async {
        let log = Log::new().spawn();
        let senders: Vec<_> = (0..32u32)
            .map(|sender| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut scheduled = Vec::new();
                    for i in 0..16u32 {
                        let n = sender * 16 + i;
                        // Distinct times: 1 ms apart, interleaved across senders.
                        let delay = ms(u64::from(i * 32 + sender + 1));
                        if i % 2 == 0 {
                            scheduled.push(log.note(n).after(delay));
                        } else {
                            log.remind(n, delay).await.unwrap();
                        }
                    }
                    for scheduled in scheduled {
                        assert_eq!(scheduled.await, Ok(()));
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.await.unwrap();
        }
        tokio::time::sleep(ms(1_000)).await;
        let seen = log.seen().await.unwrap();
        assert_eq!(seen.len(), 32 * 16, "every delayed message arrived once");
        for &(n, at) in &seen {
            let (sender, i) = (n / 16, n % 16);
            assert_eq!(at, ms(u64::from(i * 32 + sender + 1)), "message {n}");
        }
        assert!(seen.windows(2).all(|w| w[0].1 < w[1].1), "in time order");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn cancelled_delayed_messages_never_arrive() {
    within(PAUSED_LIMIT, async {
        let log = Log::new().spawn();
        let mut kept = Vec::new();
        for n in 0..100u32 {
            let scheduled = log.note(n).after(ms(10 * u64::from(n) + 10));
            if n % 2 == 0 {
                assert!(scheduled.cancel(), "not sent yet");
            } else {
                kept.push(scheduled);
            }
        }
        // From a handler: kept timers cancelled by another handler.
        for n in 100..110 {
            log.remind_kept(n, ms(5)).await.unwrap();
        }
        assert_eq!(log.cancel_kept().await, Ok(10));
        // Half-way: the odd ones before 500 ms have arrived; cancelling
        // one that was sent says so.
        tokio::time::sleep(ms(505)).await;
        let late = kept.remove(0);
        assert!(!late.is_pending());
        assert!(!late.cancel(), "sent already: too late to cancel");
        tokio::time::sleep(ms(1_000)).await;
        let seen: Vec<u32> = log
            .seen()
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(seen, (1..100).step_by(2).collect::<Vec<u32>>());
        for scheduled in kept {
            assert_eq!(scheduled.await, Ok(()));
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn no_delayed_message_outlives_its_server() {
    within(PAUSED_LIMIT, async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let (log, exit) = Builder::new(Log::new()).spawn_with_exit();
        let pending = log.double(1).after(Duration::from_secs(3600));
        log.remind(2, Duration::from_secs(3600)).await.unwrap();
        let forever = log.note(3).after(Duration::MAX);
        assert_eq!(metrics.num_alive_tasks(), 4, "the server and three timers");
        log.stop().await;
        assert_eq!(exit.await.state.unwrap().seen, []);
        // Their tasks are gone at the server's end, not an hour later.
        until(|| metrics.num_alive_tasks() == 0).await;
        assert_eq!(pending.await, Err(CallError::Closed));
        assert!(forever.cancel(), "dropped with its server: never sent");

        // Scheduled to a server that has ended: no task stays behind.
        let late = log.note(4).after(Duration::from_secs(3600));
        until(|| metrics.num_alive_tasks() == 0).await;
        assert_eq!(late.await, Err(CallError::Closed));

        // A pending timer does not keep its server alive: every handle
        // dropped, the server drains and ends, and its timer with it.
        let (log, exit) = Builder::new(Log::new()).spawn_with_exit();
        log.remind_kept(5, Duration::from_secs(60)).await.unwrap();
        let outside = log.note(6).after(Duration::from_secs(60));
        drop(log);
        let exited = exit.await;
        assert_eq!(exited.reason, StopReason::HandlesDropped);
        assert_eq!(exited.state.unwrap().seen, []);
        assert_eq!(outside.await, Err(CallError::Closed));
        until(|| metrics.num_alive_tasks() == 0).await;
    })
    .await;
}

/// 100 000 servers, each with delayed messages from outside and from its
/// own code, stopped before any is due: the live heap does not grow from
/// one batch to the next, and no task stays behind.
#[test]
fn memory_is_flat_over_100_000_scheduled_then_stopped_servers() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(within(Duration::from_secs(300), async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let mut baseline = None;
        let mut growth = Vec::new();
        for batch in 0..10 {
            for _ in 0..10_000 {
                let log = Log::new().spawn();
                let _outside = log.note(1).after(Duration::from_secs(3600));
                log.remind(2, Duration::from_secs(3600)).await.unwrap();
                log.remind_kept(3, Duration::from_secs(3600)).await.unwrap();
                log.stop().await;
            }
            until(|| metrics.num_alive_tasks() == 0).await;
            let live = common::alloc::live_bytes();
            if batch == 1 {
                baseline = Some(live);
            } else if let Some(baseline) = baseline {
                growth.push(live - baseline);
            }
        }
        let worst = growth.iter().copied().max().unwrap_or(0);
        assert!(
            worst < 64 * 1024,
            "memory grew by {worst} bytes: {growth:?}"
        );
    }));
}

/// A heartbeat whose period changes at run time, beside a fixed timer.
struct Beat {
    start: Instant,
    every: Option<Duration>,
    beats: Vec<Duration>,
    fixed: u32,
}

#[server]
impl Beat {
    #[every(self.every)]
    fn beat(&mut self, ctx: &Context<Self>) {
        self.beats.push(self.start.elapsed());
        // Backoff, while it is asked for: each period twice the last.
        if let Some(every) = self.every
            && every >= Duration::from_secs(100)
        {
            self.every = Some(every * 2);
            ctx.reschedule();
        }
    }

    #[every(Duration::from_secs(7))]
    fn fixed(&mut self) {
        self.fixed += 1;
    }

    /// A reconfigured period: `None` stops the beat, `Some` restarts it.
    fn set_every(&mut self, every: Option<Duration>, ctx: &Context<Self>) {
        self.every = every;
        ctx.reschedule();
    }

    fn beats(&self) -> Vec<Duration> {
        self.beats.clone()
    }

    fn fixed_count(&self) -> u32 {
        self.fixed
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn a_changed_period_takes_effect_at_the_next_tick() {
    within(PAUSED_LIMIT, async {
        let start = Instant::now();
        let beat = Beat {
            start,
            every: Some(secs(10)),
            beats: Vec::new(),
            fixed: 0,
        }
        .spawn();
        tokio::time::sleep_until(start + secs(21)).await;
        assert_eq!(beat.beats().await.unwrap(), [secs(10), secs(20)]);
        // Shorter: the next beat is 3 s after the last (20 s), not at 30 s.
        // (The server is idle: this call is served on this task, and the
        // loop evaluates the periods before anything else.)
        beat.set_every(Some(secs(3))).await.unwrap();
        tokio::time::sleep_until(start + secs(30)).await;
        assert_eq!(
            beat.beats().await.unwrap(),
            [secs(10), secs(20), secs(23), secs(26), secs(29)]
        );
        // Off: nothing for a long while; on again: one period from now.
        beat.set_every(None).await.unwrap();
        tokio::time::sleep_until(start + secs(50)).await;
        assert_eq!(beat.beats().await.unwrap().len(), 5, "stopped");
        beat.set_every(Some(secs(5))).await.unwrap();
        tokio::time::sleep_until(start + secs(61)).await;
        assert_eq!(beat.beats().await.unwrap()[5..], [secs(55), secs(60)]);
        // Longer, changed from the beat itself (backoff): 100, then 200,
        // then 400 s after each beat.
        beat.set_every(Some(secs(100))).await.unwrap();
        tokio::time::sleep_until(start + secs(1_000)).await;
        assert_eq!(
            beat.beats().await.unwrap()[7..],
            [secs(160), secs(360), secs(760)]
        );
        // The fixed timer kept its own schedule all along.
        assert_eq!(beat.fixed_count().await, Ok(1_000 / 7));
    })
    .await;
}

/// Starts futures off its loop and takes their results back as messages.
#[derive(Default)]
struct Piper {
    log: Vec<String>,
    kept: Vec<Scheduled<()>>,
}

/// Sets its flag when dropped: whether a piped future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[server(capacity = 4)]
impl Piper {
    /// Pipes `name` back after `after`; `Err` if the future panics.
    fn start(&mut self, name: String, after: Duration, panics: bool, ctx: &Context<Self>) {
        let piped = ctx.pipe(
            async move {
                tokio::time::sleep(after).await;
                assert!(!panics, "the piped future of {name} failed");
                name
            },
            |me, result| me.piped(result),
        );
        self.kept.push(piped);
    }

    /// Pipes a future that never ends, holding `flag`.
    fn start_forever(&mut self, flag: Arc<AtomicBool>, ctx: &Context<Self>) {
        let held = DropFlag(flag);
        ctx.pipe(
            async move {
                std::future::pending::<()>().await;
                drop(held);
            },
            |me, _| me.note("never".to_owned()),
        );
    }

    #[cast]
    fn piped(&mut self, result: Result<String, PanicMessage>) {
        self.log.push(match result {
            Ok(name) => format!("piped {name}"),
            Err(panic) => format!("panicked: {panic}"),
        });
    }

    #[cast]
    fn note(&mut self, what: String) {
        self.log.push(what);
    }

    /// Holds the server for `d`: requests queue meanwhile.
    async fn busy(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn cancel_kept(&mut self) -> Vec<bool> {
        self.kept.drain(..).map(Scheduled::cancel).collect()
    }

    /// Pipes a result whose message cannot be made: the closure panics.
    fn start_bad_closure(&mut self, ctx: &Context<Self>) {
        let piped = ctx.pipe(async { 1 }, |me, one: Result<u32, PanicMessage>| {
            assert!(one.is_err(), "the closure that makes the message failed");
            me.note("never".to_owned())
        });
        self.kept.push(piped);
    }

    fn take_kept(&mut self) -> Vec<Scheduled<()>> {
        std::mem::take(&mut self.kept)
    }

    fn log(&self) -> Vec<String> {
        self.log.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn a_piped_result_comes_after_what_was_sent_before_it_was_ready_and_before_what_after() {
    within(PAUSED_LIMIT, async {
        let start = Instant::now();
        let piper = Piper::default().spawn();
        piper.start("a".into(), secs(1), false).await.unwrap();
        tokio::time::sleep_until(start + ms(500)).await;
        piper.note("before a".into()).await.unwrap();
        tokio::time::sleep_until(start + ms(1_500)).await;
        piper.note("after a".into()).await.unwrap();
        assert_eq!(
            piper.log().await.unwrap(),
            ["before a", "piped a", "after a"]
        );

        // The same through a busy mailbox: the server held from 1.9 s to
        // 4 s, the result ready at 3 s, while others wait for room too.
        let start = Instant::now();
        let piper = Piper::default().spawn();
        piper.start("b".into(), secs(3), false).await.unwrap();
        let busy = {
            let piper = piper.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(start + ms(1_900)).await;
                piper.busy(ms(2_100)).await.unwrap();
            })
        };
        let senders: Vec<_> = (0..8u64)
            .map(|i| {
                let piper = piper.clone();
                tokio::spawn(async move {
                    // Four before the result is ready, four after; the
                    // mailbox holds four, so most wait for room.
                    let at = if i < 4 {
                        2_000 + i * 100
                    } else {
                        3_000 + i * 100
                    };
                    tokio::time::sleep_until(start + ms(at)).await;
                    piper.note(format!("{at}")).await.unwrap();
                })
            })
            .collect();
        for sender in senders {
            sender.await.unwrap();
        }
        busy.await.unwrap();
        assert_eq!(
            piper.log().await.unwrap(),
            [
                "2000", "2100", "2200", "2300", "piped b", "3400", "3500", "3600", "3700"
            ]
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn piped_results_from_many_handlers_arrive_in_the_order_they_are_ready() {
    within(PAUSED_LIMIT, async {
        let piper = Piper::default().spawn();
        let callers: Vec<_> = (0..16u64)
            .map(|caller| {
                let piper = piper.clone();
                tokio::spawn(async move {
                    for i in 0..8u64 {
                        // Ready at distinct times, given in a shuffled order.
                        let ready = (i * 16 + (caller * 7) % 16) * 10 + 10;
                        piper
                            .start(format!("{ready}"), ms(ready), false)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap();
        }
        tokio::time::sleep(secs(10)).await;
        let log = piper.log().await.unwrap();
        let ready: Vec<u64> = log
            .iter()
            .map(|line| line.strip_prefix("piped ").unwrap().parse().unwrap())
            .collect();
        let mut sorted = ready.clone();
        sorted.sort();
        assert_eq!(ready.len(), 128, "every result arrived once");
        assert_eq!(ready, sorted, "in the order they were ready");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_piped_future_is_reported_to_its_server_which_keeps_serving() {
    within(PAUSED_LIMIT, async {
        let (piper, exit) = Builder::new(Piper::default()).spawn_with_exit();
        piper.start("x".into(), secs(1), true).await.unwrap();
        piper.start("y".into(), secs(2), false).await.unwrap();
        tokio::time::sleep(secs(3)).await;
        assert_eq!(
            piper.log().await.unwrap(),
            ["panicked: the piped future of x failed", "piped y"]
        );
        drop(piper);
        assert_eq!(exit.await.reason, StopReason::HandlesDropped, "not a panic");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_piped_future_is_dropped_when_its_server_stops_or_it_is_cancelled() {
    within(PAUSED_LIMIT, async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let (piper, exit) = Builder::new(Piper::default()).spawn_with_exit();
        let dropped = Arc::new(AtomicBool::new(false));
        piper.start_forever(dropped.clone()).await.unwrap();
        piper.start("late".into(), secs(60), false).await.unwrap();
        piper.stop().await;
        until(|| metrics.num_alive_tasks() == 0).await;
        assert!(dropped.load(Ordering::SeqCst), "dropped with its server");
        let mut state = exit.await.state.unwrap();
        assert_eq!(state.log, Vec::<String>::new());
        let late = state.kept.pop().unwrap();
        assert_eq!(late.await, Err(CallError::Closed));

        // Cancelled: the future is dropped, its result never sent.
        let piper = Piper::default().spawn();
        piper.start("soon".into(), secs(1), false).await.unwrap();
        piper.start("later".into(), secs(5), false).await.unwrap();
        tokio::time::sleep(secs(2)).await;
        assert_eq!(piper.cancel_kept().await, Ok(vec![false, true]));
        tokio::time::sleep(secs(10)).await;
        assert_eq!(piper.log().await.unwrap(), ["piped soon"]);
        until(|| metrics.num_alive_tasks() == 1).await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_interval_ticks_at_its_rate_and_stops_when_cancelled_or_ended() {
    within(PAUSED_LIMIT, async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let start = Instant::now();
        let (log, exit) = Builder::new(Log::new()).spawn_with_exit();
        log.repeat(1, ms(100)).await.unwrap();
        log.repeat(2, ms(250)).await.unwrap();
        tokio::time::sleep_until(start + ms(350)).await;
        // Held from 350 ms to 1 s: the ticks are sent on time, and wait in
        // the mailbox (which has room) for the server.
        log.busy(ms(650)).await.unwrap();
        tokio::time::sleep_until(start + ms(1_050)).await;
        assert_eq!(log.cancel_kept().await, Ok(2));
        tokio::time::sleep_until(start + ms(5_000)).await;
        let seen = log.seen().await.unwrap();
        let served =
            |n: u32| -> Vec<Duration> { seen.iter().filter(|s| s.0 == n).map(|s| s.1).collect() };
        let held = |due: u64| {
            ms(if due < 350 || due == 1_000 {
                due
            } else {
                1_000
            })
        };
        assert_eq!(
            served(1),
            (1..=10).map(|i| held(i * 100)).collect::<Vec<_>>()
        );
        assert_eq!(
            served(2),
            (1..=4).map(|i| held(i * 250)).collect::<Vec<_>>()
        );
        assert_eq!(seen.len(), 14, "none after the cancel");

        // Ended with its server.
        log.repeat(3, ms(10)).await.unwrap();
        tokio::time::sleep(ms(35)).await;
        log.stop().await;
        assert_eq!(exit.await.state.unwrap().seen.len(), seen.len() + 3);
        until(|| metrics.num_alive_tasks() == 0).await;
    })
    .await;
}

/// A one-slot mailbox: a tick that finds it full waits for room.
struct Tiny {
    start: Instant,
    beats: Vec<Duration>,
    beating: Option<Scheduled<()>>,
}

#[server(capacity = 1)]
impl Tiny {
    fn start(&mut self, period: Duration, ctx: &Context<Self>) {
        self.beating = Some(ctx.interval(period, |me| me.beat()));
    }

    /// Whether the interval was cancelled before a tick was on its way.
    fn cancel(&mut self) -> Option<bool> {
        self.beating.take().map(Scheduled::cancel)
    }

    #[cast]
    fn beat(&mut self) {
        self.beats.push(self.start.elapsed());
    }

    async fn busy(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn beats(&self) -> Vec<Duration> {
        self.beats.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn an_interval_waiting_for_room_skips_the_ticks_it_missed() {
    within(PAUSED_LIMIT, async {
        let start = Instant::now();
        let tiny = Tiny {
            start,
            beats: Vec::new(),
            beating: None,
        }
        .spawn();
        tiny.start(ms(100)).await.unwrap();
        // Held until 1 s: the tick of 100 ms fills the one slot, the tick
        // of 200 ms waits for room until 1 s; those of 300 to 1 000 ms are
        // skipped, and the rate resumes from there.
        tiny.busy(secs(1)).await.unwrap();
        tokio::time::sleep_until(start + ms(1_250)).await;
        assert_eq!(tiny.cancel().await, Ok(Some(true)));
        tokio::time::sleep(secs(5)).await;
        assert_eq!(
            tiny.beats().await.unwrap(),
            [ms(1_000), ms(1_000), ms(1_100), ms(1_200)]
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_delayed_calls_options_apply_from_when_it_is_sent() {
    within(PAUSED_LIMIT, async {
        let start = Instant::now();
        let tiny = Tiny {
            start,
            beats: Vec::new(),
            beating: None,
        }
        .spawn();
        // The timeout counts from the send, not from the scheduling.
        let answered = tiny.beats().timeout(secs(1)).after(secs(10));
        // Held from 20 s to 30 s with its one slot taken: `try_now` is
        // refused at 25 s; without it, the call waits for room.
        let refused = tiny.beats().try_now().after(secs(25));
        let waited = tiny.beats().after(secs(26));
        let late = tiny.beats().timeout(secs(1)).after(secs(27));
        assert_eq!(answered.await, Ok(vec![]));
        assert_eq!(start.elapsed(), secs(10));
        let busy = {
            let tiny = tiny.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(start + secs(20)).await;
                tiny.busy(secs(10)).await.unwrap();
            })
        };
        tokio::time::sleep_until(start + secs(21)).await;
        tiny.beat().await.unwrap(); // the one slot
        assert_eq!(refused.await, Err(CallError::Full));
        assert_eq!(late.await, Err(CallError::Timeout));
        assert_eq!(start.elapsed(), secs(28));
        assert_eq!(waited.await, Ok(vec![secs(30)]));
        assert_eq!(start.elapsed(), secs(30));
        busy.await.unwrap();
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_of_the_closure_that_makes_the_message_is_the_scheduled_ones() {
    within(PAUSED_LIMIT, async {
        let piper = Piper::default().spawn();
        piper.start_bad_closure().await.unwrap();
        let mut kept = piper.take_kept().await.unwrap();
        let outcome = kept.pop().unwrap().await;
        let Err(CallError::Panicked(panic)) = outcome else {
            panic!("expected Panicked, got {outcome:?}");
        };
        assert_eq!(panic.as_str(), "the closure that makes the message failed");
        assert_eq!(piper.log().await.unwrap(), Vec::<String>::new());
    })
    .await;
}
