//! Supervision trees: strategies (which children restart, in which order,
//! with which reason), restart intensity and escalation through two levels,
//! ordered start with a failing child, reverse-order shutdown with a child
//! that overruns its budget, dynamic children under churn, and what callers
//! in flight see.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use common::{LIMIT, PAUSED_LIMIT, within};
use patchboard::{
    CallError, Child, Context, RestartKind, Server, ServerId, StartError, StopReason, Strategy,
    Subscription, SupervisorBuilder, SupervisorEnd, SupervisorEvent, server,
};

/// What the children did, in order: "start a", "stop b", "fail c".
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: String) {
        self.0.lock().unwrap().push(entry);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Worker {
    name: &'static str,
    log: Log,
    /// Which incarnation this is: 1 for the first state.
    generation: u32,
    fail_start: Arc<AtomicBool>,
    /// States of its spec alive right now.
    live: Arc<AtomicUsize>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

#[server]
impl Worker {
    #[on_start]
    fn begin(&mut self) -> Result<(), String> {
        if self.fail_start.load(Ordering::SeqCst) {
            self.log.push(format!("fail {}", self.name));
            return Err(format!("{} cannot start", self.name));
        }
        self.log.push(format!("start {}", self.name));
        Ok(())
    }

    #[on_stop]
    fn end(&mut self) {
        self.log.push(format!("stop {}", self.name));
    }

    fn generation(&self) -> u32 {
        self.generation
    }

    fn me(&self, ctx: &Context<Self>) -> ServerId {
        ctx.id()
    }

    fn crash(&self) {
        panic!("{} crashed", self.name);
    }

    /// Tells `entered` it runs, then waits for `release`.
    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) -> u32 {
        entered.notify_one();
        release.notified().await;
        self.generation
    }

    async fn slow(&self, time: Duration) -> u32 {
        tokio::time::sleep(time).await;
        self.generation
    }

    /// A normal end: the server stops itself.
    fn quit(&self, ctx: &Context<Self>) {
        ctx.stop();
    }
}

/// A child spec whose factory counts generations and live states.
struct Spec {
    name: &'static str,
    log: Log,
    generations: Arc<AtomicU32>,
    fail_start: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
}

impl Spec {
    fn new(name: &'static str, log: &Log) -> Spec {
        Spec {
            name,
            log: log.clone(),
            generations: Arc::default(),
            fail_start: Arc::default(),
            live: Arc::default(),
        }
    }

    fn child(&self) -> Child<Worker> {
        let (name, log) = (self.name, self.log.clone());
        let (generations, fail_start) = (self.generations.clone(), self.fail_start.clone());
        let live = self.live.clone();
        Child::new(move || {
            live.fetch_add(1, Ordering::SeqCst);
            Worker {
                name,
                log: log.clone(),
                generation: generations.fetch_add(1, Ordering::SeqCst) + 1,
                fail_start: fail_start.clone(),
                live: live.clone(),
            }
        })
        .name(name)
    }
}

/// The events received so far.
fn drain_events(events: &mut Subscription<SupervisorEvent>) -> Vec<SupervisorEvent> {
    std::iter::from_fn(|| events.try_recv()).collect()
}

/// `(child name, reason)` of the `Restarted` events.
fn restarts(events: &[SupervisorEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|event| match event {
            SupervisorEvent::Restarted { name, reason, .. } => Some((
                name.as_deref().unwrap_or("?").to_owned(),
                reason.to_string(),
            )),
            _ => None,
        })
        .collect()
}

/// Three workers a, b, c under `strategy`; crashes b; returns the log and
/// the restarts after the crash, checking that every handle still works.
async fn crash_the_middle(
    strategy: Strategy,
    restarted: usize,
) -> (Vec<String>, Vec<(String, String)>, [u32; 3]) {
    let log = Log::default();
    let mut builder = SupervisorBuilder::new(strategy).intensity(5, Duration::from_secs(60));
    let mut events = builder.subscribe(64);
    let supervisor = builder
        .child(Spec::new("a", &log).child())
        .child(Spec::new("b", &log).child())
        .child(Spec::new("c", &log).child())
        .start()
        .await
        .unwrap();
    assert_eq!(log.take(), ["start a", "start b", "start c"]);
    let started = drain_events(&mut events);
    assert_eq!(started.len(), 3);
    let handles: Vec<_> = ["a", "b", "c"]
        .map(|name| supervisor.child::<Worker>(name).unwrap())
        .into();
    let ids: Vec<ServerId> = handles.iter().map(|h| h.id()).collect();
    assert!(matches!(
        handles[1].crash().await,
        Err(CallError::Panicked(_))
    ));
    // The supervisor restarts them in its own task: wait for its events.
    let mut seen = Vec::new();
    while restarts(&seen).len() < restarted {
        seen.push(events.recv().await.unwrap());
    }
    // Each handle reaches its restarted server.
    let mut generations = [0; 3];
    for (at, handle) in handles.iter().enumerate() {
        generations[at] = handle.generation().await.unwrap();
        assert_eq!(handle.me().await, Ok(ids[at]), "the same server, in place");
    }
    seen.extend(drain_events(&mut events));
    let restarted = restarts(&seen);
    supervisor.shutdown().await;
    (log.take(), restarted, generations)
}

#[tokio::test(flavor = "current_thread")]
async fn one_for_one_restarts_only_the_child_that_failed() {
    within(LIMIT, async {
        let (log, restarted, generations) = crash_the_middle(Strategy::OneForOne, 1).await;
        assert_eq!(log[..2], ["stop b", "start b"]);
        assert_eq!(
            restarted,
            [("b".into(), "handler panicked: b crashed".into())]
        );
        assert_eq!(generations, [1, 2, 1]);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn one_for_all_takes_the_others_down_in_reverse_and_starts_all_in_order() {
    within(LIMIT, async {
        let (log, restarted, generations) = crash_the_middle(Strategy::OneForAll, 3).await;
        assert_eq!(
            log[..6],
            [
                "stop b", "stop c", "stop a", "start a", "start b", "start c"
            ]
        );
        let with_b = "stopped with server `b` (handler panicked: b crashed)".to_owned();
        assert_eq!(
            restarted,
            [
                ("a".into(), with_b.clone()),
                ("b".into(), "handler panicked: b crashed".into()),
                ("c".into(), with_b),
            ]
        );
        assert_eq!(generations, [2, 2, 2]);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn rest_for_one_restarts_the_child_and_those_after_it() {
    within(LIMIT, async {
        let (log, restarted, generations) = crash_the_middle(Strategy::RestForOne, 2).await;
        assert_eq!(log[..4], ["stop b", "stop c", "start b", "start c"]);
        let names: Vec<&str> = restarted.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(generations, [1, 2, 2]);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_stops_children_in_reverse_order() {
    within(LIMIT, async {
        let (log, _, _) = crash_the_middle(Strategy::OneForOne, 1).await;
        assert_eq!(log[2..], ["stop c", "stop b", "stop a"]);
    })
    .await;
}

/// One-for-all takes a sibling down while callers wait on it: the call it
/// is serving is answered, the calls queued behind it and those made while
/// it is down are served by its next incarnation; none is refused.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn callers_in_flight_on_a_sibling_are_served_across_a_one_for_all_restart() {
    within(PAUSED_LIMIT, async {
        let log = Log::default();
        let supervisor = SupervisorBuilder::new(Strategy::OneForAll)
            .child(Spec::new("a", &log).child())
            .child(Spec::new("b", &log).child())
            .start()
            .await
            .unwrap();
        let (a, b) = (
            supervisor.child::<Worker>("a").unwrap(),
            supervisor.child::<Worker>("b").unwrap(),
        );
        // a serves a call that it holds; two more wait in its mailbox.
        let (held, entered) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let in_flight = tokio::spawn({
            let (a, entered, held) = (a.clone(), entered.clone(), held.clone());
            async move { a.hold(entered, held).await }
        });
        entered.notified().await;
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let a = a.clone();
                tokio::spawn(async move { a.generation().await })
            })
            .collect();
        common::until_queued(|| a.queued(), 2).await;
        log.take();
        assert!(matches!(b.crash().await, Err(CallError::Panicked(_))));
        // Made while a is being taken down: served after its restart.
        let during = tokio::spawn({
            let a = a.clone();
            async move { a.generation().await }
        });
        common::until_queued(|| a.queued(), 3).await;
        held.notify_one();
        assert_eq!(
            in_flight.await.unwrap(),
            Ok(1),
            "answered by the old incarnation"
        );
        for call in queued {
            assert_eq!(call.await.unwrap(), Ok(2), "served by the new incarnation");
        }
        assert_eq!(during.await.unwrap(), Ok(2));
        assert_eq!(log.take(), ["stop b", "stop a", "start a", "start b"]);
        supervisor.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn intensity_escalates_through_two_levels() {
    within(PAUSED_LIMIT, async {
        let log = Log::default();
        let mut root = SupervisorBuilder::new(Strategy::OneForOne)
            .name("root")
            .intensity(1, Duration::from_secs(60));
        let mut root_events = root.subscribe(64);
        let mid = SupervisorBuilder::new(Strategy::OneForOne)
            .name("mid")
            .intensity(1, Duration::from_secs(60))
            .child(Spec::new("x", &log).child());
        let root = root
            .child(Spec::new("r", &log).child())
            .supervisor(mid)
            .start()
            .await
            .unwrap();
        let mid = root.supervisor("mid").unwrap();
        let mut mid_events = mid.subscribe(64);
        let (r, x) = (
            root.child::<Worker>("r").unwrap(),
            mid.child::<Worker>("x").unwrap(),
        );
        assert_eq!(log.take(), ["start r", "start x"]);
        // 1. Within mid's intensity: mid restarts x.
        let _ = x.crash().await;
        assert_eq!(x.generation().await, Ok(2));
        let event = mid_events.recv().await.unwrap();
        assert!(matches!(event, SupervisorEvent::Restarted { child, .. } if child == x.id()));
        // 2. One too many for mid: it gives up, root restarts it (and so
        // x, in place), within root's intensity.
        let _ = x.crash().await;
        assert_eq!(
            x.generation().await,
            Ok(3),
            "the same handle, restarted by root"
        );
        let event = mid_events.recv().await.unwrap();
        assert!(
            matches!(event, SupervisorEvent::GaveUp { ref down, .. } if down.id == x.id()),
            "{event:?}"
        );
        let event = mid_events.recv().await.unwrap();
        assert!(matches!(event, SupervisorEvent::Restarted { child, .. } if child == x.id()));
        // (After the `Started` of r and mid.)
        let event = loop {
            match root_events.recv().await.unwrap() {
                SupervisorEvent::Started { .. } => continue,
                event => break event,
            }
        };
        assert_eq!(
            restarts(&[event]),
            [(
                "mid".into(),
                "stopped with server `x` (handler panicked: x crashed)".into()
            )]
        );
        // 3. Mid's history was reset by its restart: one more is allowed.
        let _ = x.crash().await;
        assert_eq!(x.generation().await, Ok(4));
        // 4. Mid gives up again: one too many for root, which gives up too
        // and, at the top, shuts everything down.
        let _ = x.crash().await;
        let end = root.closed().await;
        let SupervisorEnd::GaveUp(down) = end else {
            panic!("root should have given up, not {end:?}");
        };
        assert_eq!(down.id, mid.id());
        assert_eq!(x.generation().await, Err(CallError::Closed));
        assert_eq!(r.generation().await, Err(CallError::Closed));
        assert_eq!(mid.closed().await, SupervisorEnd::Shutdown);
        // r was never restarted: one-for-one at the root.
        assert!(!log.take().contains(&"start r".to_owned()));
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_child_that_fails_to_start_fails_the_start_and_stops_those_before_it() {
    within(LIMIT, async {
        let log = Log::default();
        let b = Spec::new("b", &log);
        b.fail_start.store(true, Ordering::SeqCst);
        let started = SupervisorBuilder::new(Strategy::OneForOne)
            .child(Spec::new("a", &log).child())
            .child(b.child())
            .child(Spec::new("c", &log).child())
            .start()
            .await;
        let error = started.unwrap_err();
        assert_eq!(
            error,
            StartError::Failed {
                name: Some("b".into()),
                reason: StopReason::StartFailed("b cannot start".into()),
            }
        );
        assert_eq!(
            error.to_string(),
            "child `b` failed to start: start failed: b cannot start"
        );
        assert_eq!(log.take(), ["start a", "fail b", "stop a"]);
    })
    .await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shutdown_gives_each_child_its_budget_then_stops_it() {
    within(PAUSED_LIMIT, async {
        let log = Log::default();
        let supervisor = SupervisorBuilder::new(Strategy::OneForOne)
            .child(Spec::new("a", &log).child())
            .child(
                Spec::new("b", &log)
                    .child()
                    .shutdown(Duration::from_secs(1)),
            )
            .child(Spec::new("c", &log).child())
            .start()
            .await
            .unwrap();
        let b = supervisor.child::<Worker>("b").unwrap();
        log.take();
        // b serves a 5-second call, with three more queued: far over its
        // one-second budget.
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move { b.slow(Duration::from_secs(5)).await })
            })
            .collect();
        common::until_queued(|| b.queued(), 3).await;
        let began = tokio::time::Instant::now();
        supervisor.shutdown().await;
        assert_eq!(log.take(), ["stop c", "stop b", "stop a"]);
        let answers: Vec<_> = futures_join(calls).await;
        // The call in flight finished; what was still queued at the budget
        // was refused.
        assert_eq!(answers[0], Ok(1));
        assert!(
            answers[1..].iter().all(|a| *a == Err(CallError::Closed)),
            "{answers:?}"
        );
        let took = began.elapsed();
        assert!(
            took >= Duration::from_secs(5) && took < Duration::from_secs(6),
            "{took:?}"
        );
        // The first reason asked for stays.
        assert_eq!(b.closed().await, StopReason::Drained);
    })
    .await;
}

async fn futures_join(
    calls: Vec<tokio::task::JoinHandle<Result<u32, CallError>>>,
) -> Vec<Result<u32, CallError>> {
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    answers
}

#[tokio::test(flavor = "current_thread")]
async fn restart_kinds_decide_after_failures_and_normal_ends() {
    within(LIMIT, async {
        let log = Log::default();
        let mut builder =
            SupervisorBuilder::new(Strategy::OneForOne).intensity(10, Duration::from_secs(60));
        let mut events = builder.subscribe(64);
        let supervisor = builder
            .child(Spec::new("permanent", &log).child())
            .child(
                Spec::new("transient", &log)
                    .child()
                    .restart(RestartKind::Transient),
            )
            .child(
                Spec::new("temporary", &log)
                    .child()
                    .restart(RestartKind::Temporary),
            )
            .start()
            .await
            .unwrap();
        drain_events(&mut events);
        let child = |name| supervisor.child::<Worker>(name).unwrap();
        // Failures: permanent and transient restart in place; temporary
        // leaves.
        for name in ["permanent", "transient", "temporary"] {
            let _ = child(name).crash().await;
        }
        assert_eq!(child("permanent").generation().await, Ok(2));
        assert_eq!(child("transient").generation().await, Ok(2));
        let temporary = supervisor.children().len();
        assert_eq!(temporary, 2, "the temporary child left");
        // Normal ends: permanent is started anew (a new server); transient
        // leaves.
        let (old, transient) = (child("permanent"), child("transient"));
        old.quit().await.unwrap();
        transient.quit().await.unwrap();
        assert_eq!(old.closed().await, StopReason::Stopped);
        assert_eq!(transient.closed().await, StopReason::Stopped);
        let names = || -> Vec<String> {
            supervisor
                .children()
                .iter()
                .map(|c| c.name.as_deref().unwrap().to_owned())
                .collect()
        };
        common::until(|| names() == ["permanent"]).await;
        common::until(|| {
            supervisor
                .child::<Worker>("permanent")
                .is_ok_and(|new| new.id() != old.id())
        })
        .await;
        let new = child("permanent");
        assert_eq!(new.generation().await, Ok(3));
        let kinds: Vec<&str> = drain_events(&mut events)
            .iter()
            .map(|event| match event {
                SupervisorEvent::Started { .. } => "started",
                SupervisorEvent::Restarted { .. } => "restarted",
                SupervisorEvent::Ended { .. } => "ended",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "restarted",
                "restarted",
                "ended",
                "ended",
                "started",
                "ended"
            ]
        );
        supervisor.shutdown().await;
    })
    .await;
}

/// Dynamic children: 10 000 cycles of start, crash (restarted in place)
/// and stop; nothing is left behind (states alive counted by their Drop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_children_under_churn_leave_nothing_behind() {
    within(Duration::from_secs(120), async {
        let log = Log::default();
        let supervisor = SupervisorBuilder::new(Strategy::OneForOne)
            .intensity(usize::MAX, Duration::from_secs(1))
            .start()
            .await
            .unwrap();
        let spec = Spec::new("dynamic", &log);
        let mut peak = 0;
        for cycle in 0..10_000u32 {
            let kind = [
                RestartKind::Permanent,
                RestartKind::Transient,
                RestartKind::Temporary,
            ][cycle as usize % 3];
            let child = supervisor
                .start_child(spec.child().name(format!("d{cycle}")).restart(kind))
                .await
                .unwrap();
            let _ = child.crash().await;
            match kind {
                RestartKind::Temporary => assert!(matches!(
                    child.closed().await,
                    StopReason::Panicked(panic) if panic.as_str() == "dynamic crashed"
                )),
                _ => {
                    assert!(child.generation().await.is_ok());
                    assert!(supervisor.terminate_child(child.id()).await.is_some());
                }
            }
            if cycle % 500 == 0 {
                log.take();
            }
            peak = peak.max(supervisor.children().len());
        }
        common::until(|| supervisor.children().is_empty()).await;
        assert!(peak <= 2, "children pile up: {peak}");
        supervisor.shutdown().await;
        assert_eq!(spec.live.load(Ordering::SeqCst), 0, "states left alive");
        assert_eq!(
            spec.generations.load(Ordering::SeqCst),
            10_000 + 6_667,
            "one state per start and per restart"
        );
    })
    .await;
}

struct Other;

#[server]
impl Other {
    fn other(&self) {}
}

#[tokio::test(flavor = "current_thread")]
async fn lookups_are_typed_names_unique_and_an_ended_supervisor_says_so() {
    within(LIMIT, async {
        let log = Log::default();
        let supervisor = SupervisorBuilder::new(Strategy::OneForOne)
            .name("top")
            .child(Spec::new("a", &log).child())
            .child(Child::new(|| Other).name("other").restart(RestartKind::Temporary))
            .start()
            .await
            .unwrap();
        let error = supervisor.child::<Other>("a").unwrap_err();
        assert!(
            matches!(error, patchboard::LookupError::WrongType { found, .. } if found.ends_with("Worker")),
            "{error}"
        );
        assert!(supervisor.child::<Other>("other").is_ok());
        assert_eq!(
            supervisor.child::<Worker>("nobody").unwrap_err(),
            patchboard::LookupError::NotFound
        );
        let children = supervisor.children();
        let listed: Vec<_> = children
            .iter()
            .map(|c| (c.name.as_deref().unwrap().to_owned(), c.restart, c.is_supervisor))
            .collect();
        assert_eq!(
            listed,
            [
                ("a".to_owned(), RestartKind::Permanent, false),
                ("other".to_owned(), RestartKind::Temporary, false)
            ]
        );
        assert_eq!(
            supervisor.start_child(Spec::new("a", &log).child()).await.unwrap_err(),
            StartError::NameTaken("a".into())
        );
        let stranger = Other.spawn();
        assert_eq!(supervisor.terminate_child(stranger.id()).await, None);
        assert_eq!(supervisor.name(), Some("top"));
        supervisor.shutdown().await;
        assert!(supervisor.is_closed());
        assert_eq!(supervisor.closed().await, SupervisorEnd::Shutdown);
        assert_eq!(
            supervisor.start_child(Spec::new("late", &log).child()).await.unwrap_err(),
            StartError::Closed
        );
        // A subscription made after the end ends at once.
        assert_eq!(supervisor.subscribe(4).recv().await, None);
    })
    .await;
}

/// OTP: a temporary child is never restarted, not even when a sibling's
/// failure takes it down under one-for-all.
#[tokio::test(flavor = "current_thread")]
async fn a_temporary_sibling_taken_down_by_one_for_all_leaves() {
    within(LIMIT, async {
        let log = Log::default();
        let supervisor = SupervisorBuilder::new(Strategy::OneForAll)
            .child(Spec::new("a", &log).child())
            .child(Spec::new("t", &log).child().restart(RestartKind::Temporary))
            .start()
            .await
            .unwrap();
        let (a, t) = (
            supervisor.child::<Worker>("a").unwrap(),
            supervisor.child::<Worker>("t").unwrap(),
        );
        let _ = a.crash().await;
        assert!(matches!(t.closed().await, StopReason::Drained));
        assert_eq!(a.generation().await, Ok(2));
        let names: Vec<_> = supervisor.children().into_iter().map(|c| c.name).collect();
        assert_eq!(names, [Some("a".into())]);
        supervisor.shutdown().await;
    })
    .await;
}

/// A nested supervisor shut down through its own handle is a normal end:
/// as a permanent child, its parent starts it anew, children and all.
#[tokio::test(flavor = "current_thread")]
async fn a_permanent_nested_supervisor_shut_down_on_its_own_is_started_anew() {
    within(LIMIT, async {
        let log = Log::default();
        let root = SupervisorBuilder::new(Strategy::OneForOne)
            .intensity(3, Duration::from_secs(60))
            .supervisor(
                SupervisorBuilder::new(Strategy::OneForOne)
                    .name("mid")
                    .child(Spec::new("x", &log).child()),
            )
            .start()
            .await
            .unwrap();
        let mid = root.supervisor("mid").unwrap();
        let x = mid.child::<Worker>("x").unwrap();
        mid.shutdown().await;
        assert_eq!(x.generation().await, Err(CallError::Closed));
        common::until(|| {
            root.supervisor("mid")
                .is_some_and(|new| new.id() != mid.id())
        })
        .await;
        let new_x = root
            .supervisor("mid")
            .unwrap()
            .child::<Worker>("x")
            .unwrap();
        assert_eq!(
            new_x.generation().await,
            Ok(2),
            "a new server from the same factory"
        );
        assert_eq!(log.take(), ["start x", "stop x", "start x"]);
        root.shutdown().await;
    })
    .await;
}

/// Many callers keep calling three one-for-all children while another task
/// crashes them at random: every call is answered by some incarnation of
/// its child, none is refused or lost, and every crash is a `Panicked`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_are_never_refused_while_one_for_all_restarts_under_load() {
    within(Duration::from_secs(60), async {
        let log = Log::default();
        let specs = ["a", "b", "c"].map(|name| Spec::new(name, &log));
        let supervisor = SupervisorBuilder::new(Strategy::OneForAll)
            .intensity(usize::MAX, Duration::from_secs(1))
            .child(specs[0].child())
            .child(specs[1].child())
            .child(specs[2].child())
            .start()
            .await
            .unwrap();
        let handles: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|name| supervisor.child::<Worker>(name).unwrap())
            .collect();
        let callers: Vec<_> = (0..8)
            .map(|caller| {
                let handles = handles.clone();
                tokio::spawn(async move {
                    for call in 0..300 {
                        let child = &handles[(caller + call) % 3];
                        let generation = child.generation().await;
                        assert!(matches!(generation, Ok(n) if n >= 1), "{generation:?}");
                    }
                })
            })
            .collect();
        let crasher = tokio::spawn({
            let handles = handles.clone();
            async move {
                for crash in 0..60 {
                    let crashed = handles[crash % 3].crash().await;
                    assert!(
                        matches!(crashed, Err(CallError::Panicked(_))),
                        "{crashed:?}"
                    );
                }
            }
        });
        for caller in callers {
            caller.await.unwrap();
        }
        crasher.await.unwrap();
        supervisor.shutdown().await;
        // Every child was restarted, and every state built was dropped.
        for spec in &specs {
            assert!(spec.generations.load(Ordering::SeqCst) > 1);
            assert_eq!(spec.live.load(Ordering::SeqCst), 0);
        }
        for handle in &handles {
            assert!(handle.is_closed());
        }
    })
    .await;
}

/// A supervisor that registers its children: found by name across a
/// restart in place (the same entry), again after a permanent child is
/// started anew, gone with the tree; a taken name fails the start.
#[tokio::test(flavor = "current_thread")]
async fn a_supervisor_registers_its_named_children() {
    within(LIMIT, async {
        let log = Log::default();
        let registry = patchboard::Registry::new();
        let supervisor = SupervisorBuilder::new(Strategy::OneForOne)
            .intensity(5, Duration::from_secs(60))
            .registry(&registry)
            .child(Spec::new("a", &log).child())
            .start()
            .await
            .unwrap();
        let a = registry.lookup::<Worker>("a").unwrap();
        let _ = a.crash().await;
        assert_eq!(a.generation().await, Ok(2));
        assert_eq!(
            registry.whereis("a"),
            Some(a.id()),
            "restarted in place: same entry"
        );
        // A normal end: started anew, registered again.
        a.quit().await.unwrap();
        a.closed().await;
        common::until(|| registry.whereis("a").is_some_and(|id| id != a.id())).await;
        let new = registry.lookup::<Worker>("a").unwrap();
        assert_eq!(new.generation().await, Ok(3));
        // A name someone else holds fails a dynamic child's start.
        let b = Child::new(|| Other).name("b");
        let other = Other.spawn();
        registry.register("b", &other).unwrap();
        let refused = supervisor.start_child(b).await.unwrap_err();
        assert!(
            matches!(&refused, StartError::Unregistered { name, .. } if &**name == "b"),
            "{refused}"
        );
        assert_eq!(
            supervisor.children().len(),
            1,
            "the refused child was stopped"
        );
        supervisor.shutdown().await;
        assert_eq!(registry.names(), ["b"], "only the squatter's name is left");
    })
    .await;
}
