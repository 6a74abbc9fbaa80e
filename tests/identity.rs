//! Identity: every server has a `ServerId`, unique in the process, the same
//! for its whole life (restarts included), reported wherever the server is
//! (`Handle::id`, `WeakHandle::id`, `Context::id`, `Down::id`).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{LIMIT, within};
use patchboard::{
    Builder, CallError, Context, Down, Restart, Server, ServerId, StopReason, server,
};

#[derive(Clone, Default)]
struct Cheap;

#[server]
impl Cheap {
    fn me(&self, ctx: &Context<Self>) -> ServerId {
        ctx.id()
    }

    fn fail(&self) {
        panic!("asked to fail");
    }
}

#[derive(Default)]
struct Watcher {
    downs: Vec<Down>,
}

#[server]
impl Watcher {
    #[on_down]
    fn down(&mut self, down: Down) {
        self.downs.push(down);
    }

    fn downs(&self) -> Vec<(ServerId, StopReason)> {
        self.downs
            .iter()
            .map(|down| (down.id, down.reason().clone()))
            .collect()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn ids_are_unique_across_a_million_spawns() {
    within(Duration::from_secs(300), async {
        const SPAWNS: usize = 1_000_000;
        let mut seen = HashSet::with_capacity(SPAWNS);
        for round in 0..SPAWNS / 10_000 {
            for _ in 0..10_000 {
                // Dropped at once: the server drains and ends when its task
                // runs, so at most one round is alive at a time.
                let id = Cheap.spawn().id();
                assert!(seen.insert(id), "id {id} handed out twice (round {round})");
            }
            // Lets the round's servers end (on this one thread, every task
            // spawned so far runs before this one again).
            tokio::task::yield_now().await;
        }
        assert_eq!(seen.len(), SPAWNS);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_unique_when_spawned_from_many_tasks_at_once() {
    within(LIMIT, async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                tokio::spawn(async { (0..5_000).map(|_| Cheap.spawn().id()).collect::<Vec<_>>() })
            })
            .collect();
        let mut seen = HashSet::new();
        for task in tasks {
            for id in task.await.unwrap() {
                assert!(seen.insert(id), "id {id} handed out twice");
            }
        }
        assert_eq!(seen.len(), 40_000);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn every_view_of_a_server_reports_the_same_id() {
    within(LIMIT, async {
        let cheap = Cheap.spawn();
        let weak = cheap.downgrade();
        assert_eq!(cheap.me().await, Ok(cheap.id()));
        assert_eq!(weak.id(), cheap.id());
        assert_eq!(cheap.clone().id(), cheap.id());
        let other = Cheap.spawn();
        assert_ne!(other.id(), cheap.id());
        assert!(other.id() > cheap.id(), "ids follow spawn order");
        // `Debug` shows it too.
        assert!(format!("{cheap:?}").contains(&format!("{:?}", cheap.id())));
        // Outliving the server: a weak handle still says whose it was.
        let id = cheap.id();
        cheap.stop().await;
        assert_eq!(weak.id(), id);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn every_replica_of_a_pool_is_the_one_server() {
    within(LIMIT, async {
        let pool = Builder::new(Cheap).pool(4).spawn();
        for _ in 0..16 {
            assert_eq!(pool.me().await, Ok(pool.id()));
        }
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_id_stays_the_same_across_restarts_and_down_carries_it() {
    within(LIMIT, async {
        let watcher = Watcher::default().spawn();
        let flaky = Builder::new(Cheap)
            .restart(Restart::new(|| Cheap).max_restarts(2).window(Duration::MAX))
            .spawn();
        watcher.monitor(&flaky);
        let id = flaky.id();
        for _ in 0..2 {
            assert!(matches!(flaky.fail().await, Err(CallError::Panicked(_))));
            assert_eq!(flaky.me().await, Ok(id), "restarted, the same server");
        }
        assert!(
            watcher.downs().await.unwrap().is_empty(),
            "restarts are not ends"
        );
        // The third panic is beyond the policy: the server ends.
        assert!(matches!(flaky.fail().await, Err(CallError::Panicked(_))));
        let reason = flaky.closed().await;
        let downs = watcher.downs().await.unwrap();
        assert_eq!(downs, [(flaky.id(), reason)]);
        assert!(
            downs[0].0 == flaky.id(),
            "an owned id compares with a handle's"
        );
    })
    .await;
}

#[derive(Default)]
struct Countdown(u32);

#[server]
impl Countdown {
    /// Synchronous: stops its own server without `.await`.
    fn tick(&mut self, ctx: &Context<Self>) -> u32 {
        self.0 -= 1;
        if self.0 == 0 {
            ctx.stop();
        }
        self.0
    }
}

#[tokio::test(flavor = "current_thread")]
async fn ctx_stop_from_a_synchronous_handler_stops_after_it() {
    within(LIMIT, async {
        let (countdown, exit) = Builder::new(Countdown(2)).spawn_with_exit();
        // Queued behind the stopping call: refused, not served.
        let (one, two, three) = tokio::join!(countdown.tick(), countdown.tick(), countdown.tick());
        assert_eq!((one, two), (Ok(1), Ok(0)));
        assert_eq!(three, Err(CallError::Closed));
        assert_eq!(countdown.tick().await, Err(CallError::Closed));
        assert_eq!(exit.await.reason, StopReason::Stopped);
    })
    .await;
}
