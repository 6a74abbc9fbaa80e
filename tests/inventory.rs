//! The `inventory` feature: every running server listed with its state and
//! figures, events when servers start and end, and the table exact under
//! churn with nothing leaked. Run with
//! `cargo test --features inventory --test inventory`.
//!
//! The inventory is one per process: the tests of this file take turns
//! (`TURN`), and each ends every server it started before its turn ends.
#![cfg(feature = "inventory")]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{LIMIT, hold, until, until_queued, within};
use patchboard::inventory::{self, Event, State, WatchKind};
use patchboard::{Builder, CallError, PanicPolicy, Restart, Server, ServerId, server};
use tokio::sync::Notify;

#[global_allocator]
static GLOBAL: common::alloc::Counting = common::alloc::Counting;

/// One test at a time sees the process's inventory.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone, Default)]
struct Worker {
    done: u64,
}

#[server]
impl Worker {
    fn work(&mut self) -> u64 {
        self.done += 1;
        self.done
    }

    #[priority]
    fn urgent(&mut self) -> u64 {
        self.done
    }

    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }

    fn crash(&mut self) {
        panic!("crash on purpose");
    }

    fn finish(self) -> u64 {
        self.done
    }

    /// Asks `echo` to call `me` (this very server) back: a cycle.
    async fn via(&self, echo: EchoHandle, me: WorkerHandle) -> Result<u64, CallError> {
        echo.call_back(me).await?
    }

    /// Calls `me`, this very server.
    async fn call_self(&self, me: WorkerHandle) -> Result<u64, CallError> {
        me.work().await
    }
}

/// Calls whoever it is given.
struct Echo;

#[server]
impl Echo {
    async fn call_back(&self, caller: WorkerHandle) -> Result<u64, CallError> {
        caller.work().await
    }
}

/// A server whose `#[on_start]` waits for a go.
struct Slow {
    go: Arc<Notify>,
}

#[server]
impl Slow {
    #[on_start]
    async fn begin(&mut self) -> Result<(), String> {
        self.go.notified().await;
        Ok(())
    }

    fn ping(&self) {}
}

fn ids() -> BTreeSet<ServerId> {
    inventory::snapshot()
        .into_iter()
        .map(|info| info.id)
        .collect()
}

#[tokio::test]
async fn a_server_is_listed_with_its_name_type_state_and_figures() {
    let _turn = TURN.lock().await;
    within(LIMIT, async {
        let worker = Builder::new(Worker::default()).name("worker").spawn();
        assert_eq!(worker.work().await, Ok(1));
        assert_eq!(worker.work().await, Ok(2));

        let info = inventory::server(worker.id()).expect("listed");
        assert_eq!(info.id, worker.id());
        assert_eq!(info.name.as_deref(), Some("worker"));
        assert!(
            info.server_type.ends_with("::Worker"),
            "{}",
            info.server_type
        );
        assert_eq!(info.state, State::Idle);
        assert_eq!(info.served, 2);
        assert_eq!(info.restarts, 0);
        assert_eq!(info.replicas, 1);
        assert_eq!(info.supervisor, None);
        // The normal lane and the one priority level, both empty.
        assert_eq!(info.mailbox, [0, 0]);
        assert_eq!(info.serving_for(), None);
        let first = info.uptime;

        // Held in a handler: serving, with requests waiting per lane.
        let release = hold(|entered, release| worker.hold(entered, release).owned()).await;
        let normal: Vec<_> = (0..3)
            .map(|_| tokio::spawn(worker.work().owned()))
            .collect();
        let urgent = tokio::spawn(worker.urgent().owned());
        until_queued(|| worker.queued(), 4).await;
        let info = inventory::server(worker.id()).unwrap();
        assert!(
            matches!(info.state, State::Serving { .. }),
            "{:?}",
            info.state
        );
        assert!(info.serving_for().is_some());
        assert_eq!(info.mailbox, [3, 1]);
        assert_eq!(info.queued(), 4);
        assert!(info.uptime >= first);
        release.notify_one();
        for call in normal {
            call.await.unwrap().unwrap();
        }
        assert_eq!(urgent.await.unwrap(), Ok(2));
        let info = inventory::server(worker.id()).unwrap();
        // hold + 2 + 3 work + urgent.
        assert_eq!(info.served, 7);
        assert_eq!(info.mailbox, [0, 0]);

        let id = worker.id();
        worker.stop().await;
        assert!(inventory::server(id).is_none(), "gone once stop returns");
        assert!(!ids().contains(&id));
    })
    .await;
}

#[tokio::test]
async fn starting_draining_restarts_pools_and_watches_are_shown() {
    let _turn = TURN.lock().await;
    within(LIMIT, async {
        // Starting until `#[on_start]` returns.
        let go = Arc::new(Notify::new());
        let slow = Slow { go: go.clone() }.spawn();
        assert_eq!(inventory::server(slow.id()).unwrap().state, State::Starting);
        go.notify_one();
        slow.ping().await.unwrap();
        assert_eq!(inventory::server(slow.id()).unwrap().state, State::Idle);

        // Restarts counted, the id unchanged.
        let restarting = Builder::new(Worker::default())
            .restart(Restart::new(Worker::default))
            .spawn();
        for _ in 0..3 {
            assert!(matches!(
                restarting.crash().await,
                Err(CallError::Panicked(_))
            ));
        }
        restarting.work().await.unwrap();
        let info = inventory::server(restarting.id()).unwrap();
        assert_eq!(info.restarts, 3);
        assert_eq!(info.served, 4, "the panicked calls count as served");

        // A pool: its replicas.
        let pool = Builder::new(Worker::default()).pool(4).spawn();
        pool.work().await.unwrap();
        assert_eq!(inventory::server(pool.id()).unwrap().replicas, 4);

        // Watches, from both ends.
        let watcher = Worker::default().spawn();
        watcher.monitor(&slow);
        watcher.stop_with(&restarting);
        pool.drain_after(&slow);
        let snapshot = inventory::snapshot();
        let of = |id| snapshot.iter().find(|info| info.id == id).unwrap();
        let mut watched_by = of(slow.id()).watched_by.clone();
        watched_by.sort_by_key(|watch| watch.id);
        assert_eq!(
            watched_by
                .iter()
                .map(|watch| (watch.id, watch.kind))
                .collect::<Vec<_>>(),
            [
                (pool.id(), WatchKind::DrainAfter),
                (watcher.id(), WatchKind::Monitor)
            ]
        );
        let mut watching = of(watcher.id()).watching.clone();
        watching.sort_by_key(|watch| watch.id);
        assert_eq!(
            watching
                .iter()
                .map(|watch| (watch.id, watch.kind))
                .collect::<Vec<_>>(),
            [
                (slow.id(), WatchKind::Monitor),
                (restarting.id(), WatchKind::StopWith)
            ]
        );

        // Draining while what is queued is served.
        let release = hold(|entered, release| watcher.hold(entered, release).owned()).await;
        let queued = tokio::spawn(watcher.work().owned());
        until_queued(|| watcher.queued(), 1).await;
        let drain = tokio::spawn({
            let watcher = watcher.clone();
            async move { watcher.drain().await }
        });
        let id = watcher.id();
        until(|| inventory::server(id).is_some_and(|info| info.state == State::Draining)).await;
        release.notify_one();
        assert_eq!(queued.await.unwrap(), Ok(1));
        drain.await.unwrap();
        assert!(inventory::server(id).is_none());

        let all = [slow.id(), restarting.id(), pool.id()];
        slow.stop().await;
        restarting.stop().await;
        pool.stop().await;
        let left = ids();
        assert!(all.iter().all(|id| !left.contains(id)));
    })
    .await;
}

#[tokio::test]
async fn calls_refused_as_deadlocks_are_counted_on_the_server_called() {
    let _turn = TURN.lock().await;
    within(LIMIT, async {
        let worker = Builder::new(Worker::default()).name("worker").spawn();
        let echo = Echo.spawn();
        assert_eq!(
            worker.via(echo.clone(), worker.clone()).await,
            Ok(Err(CallError::Deadlock))
        );
        let info = inventory::server(worker.id()).unwrap();
        assert_eq!(info.deadlocks_refused, 1);
        assert_eq!(info.last_deadlock_from, Some(echo.id()));
        assert_eq!(inventory::server(echo.id()).unwrap().deadlocks_refused, 0);

        assert_eq!(
            worker.call_self(worker.clone()).await,
            Ok(Err(CallError::SelfCall))
        );
        let info = inventory::server(worker.id()).unwrap();
        assert_eq!(info.deadlocks_refused, 2);
        assert_eq!(info.last_deadlock_from, Some(worker.id()));
        worker.stop().await;
        echo.stop().await;
    })
    .await;
}

#[tokio::test]
async fn events_tell_of_every_start_and_end_with_the_reason() {
    let _turn = TURN.lock().await;
    within(LIMIT, async {
        let mut events = inventory::events(16);
        let (worker, exit) = Builder::new(Worker::default())
            .name("told")
            .spawn_with_exit();
        let id = worker.id();
        assert_eq!(worker.finish().await, Ok(0));
        exit.await;
        let crashing = Builder::new(Worker::default())
            .on_panic(PanicPolicy::Stop)
            .spawn();
        let crashed = crashing.id();
        let _ = crashing.crash().await;
        crashing.closed().await;

        let mut seen = Vec::new();
        while seen.len() < 4 {
            seen.push(events.recv().await.expect("the stream never ends"));
        }
        match &seen[..] {
            [
                Event::Started {
                    id: a,
                    name: Some(name),
                    ..
                },
                Event::Ended {
                    id: b,
                    reason: first,
                    ..
                },
                Event::Started {
                    id: c, name: None, ..
                },
                Event::Ended {
                    id: d,
                    reason: second,
                    server_type,
                    ..
                },
            ] => {
                assert_eq!((*a, *b, &**name), (id, id, "told"));
                assert_eq!((*c, *d), (crashed, crashed));
                assert_eq!(first.to_string(), "consumed by a terminal message");
                assert!(second.to_string().contains("crash on purpose"), "{second}");
                assert!(server_type.ends_with("::Worker"));
            }
            other => panic!("unexpected events {other:?}"),
        }
        assert_eq!(events.missed(), 0);
    })
    .await;
}

/// Starts and ends `n` servers in every way a server ends, from 8 tasks at
/// once, while another task keeps taking snapshots.
async fn churn(n: usize) {
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            tokio::spawn(async move {
                for i in 0..n / 8 {
                    let (worker, exit) = Builder::new(Worker::default()).spawn_with_exit();
                    assert_eq!(worker.work().await, Ok(1));
                    match (task + i) % 5 {
                        0 => worker.stop().await,
                        1 => worker.drain().await,
                        2 => assert_eq!(worker.finish().await, Ok(1)),
                        3 => {
                            let _ = worker.crash().await;
                            worker.closed().await;
                        }
                        _ => {
                            // Every handle dropped: it drains and ends,
                            // which only its `Exit` can tell.
                            drop(worker);
                            exit.await;
                        }
                    }
                }
            })
        })
        .collect();
    let looking = tokio::spawn(async {
        let mut seen = 0;
        for _ in 0..200 {
            seen = seen.max(inventory::snapshot().len());
            tokio::task::yield_now().await;
        }
        seen
    });
    for task in tasks {
        task.await.unwrap();
    }
    looking.await.unwrap();
}

/// Panics on purpose print nothing (there are thousands); any other panic
/// prints as usual.
fn quiet_crashes() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<&str>();
        if message != Some(&"crash on purpose") {
            print(info);
        }
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_servers_started_and_ended_leave_the_inventory_exact_and_nothing_leaked() {
    let _turn = TURN.lock().await;
    quiet_crashes();
    within(LIMIT * 6, async {
        let kept: Vec<_> = (0..10).map(|_| Worker::default().spawn()).collect();
        let kept_ids: BTreeSet<_> = kept.iter().map(|worker| worker.id()).collect();
        let mut events = inventory::events(32 * 1024);

        // Warm-up: the runtime's, the allocator's and the table's first
        // allocations.
        churn(2_000).await;
        while events.try_recv().is_some() {}

        churn(10_000).await;
        assert_eq!(ids(), kept_ids, "exactly the servers still running");
        assert_eq!(inventory::len(), kept.len());
        let (mut started, mut ended) = (BTreeSet::new(), BTreeSet::new());
        while let Some(event) = events.try_recv() {
            match event {
                Event::Started { id, .. } => assert!(started.insert(id)),
                Event::Ended { id, .. } => assert!(ended.insert(id)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(events.missed(), 0);
        assert_eq!(started.len(), 10_000);
        assert_eq!(started, ended, "every server told started was told ended");
        // A dropped stream's buffer is freed at the next start or end.
        drop(events);
        Worker::default().spawn().stop().await;

        // Memory flat across another 10 000 (with no stream of events,
        // whose buffer would grow): a leak of even 8 bytes a server would
        // show as 80 000.
        let before = common::alloc::live_bytes();
        churn(10_000).await;
        assert_eq!(ids(), kept_ids);
        let after = common::alloc::live_bytes();
        eprintln!("{} bytes more after 10 000 servers", after - before);
        assert!(
            after - before < 32 * 1024,
            "{} bytes more after 10 000 servers",
            after - before
        );

        for worker in &kept {
            worker.stop().await;
        }
        assert!(ids().is_disjoint(&kept_ids));
    })
    .await;
}

/// A supervised child.
#[derive(Default)]
struct Ward;

#[server]
impl Ward {
    fn ping(&self) {}
}

/// A supervisor's children are listed with its id as their supervisor, and
/// keep it across a restart in place; a server spawned on its own has none.
#[tokio::test]
async fn supervised_children_name_their_supervisor() {
    within(LIMIT, async {
        let supervisor = patchboard::SupervisorBuilder::new(patchboard::Strategy::OneForOne)
            .child(patchboard::Child::new(Ward::default).name("ward"))
            .start()
            .await
            .unwrap();
        let ward = supervisor.child::<Ward>("ward").unwrap();
        ward.ping().await.unwrap();
        let listed = inventory::server(ward.id()).expect("the child is listed");
        assert_eq!(listed.supervisor, Some(supervisor.id()));
        let alone = Ward.spawn();
        alone.ping().await.unwrap();
        assert_eq!(inventory::server(alone.id()).unwrap().supervisor, None);
        supervisor.shutdown().await;
        assert!(inventory::server(ward.id()).is_none(), "gone once it ended");
    })
    .await;
}
