//! Names and groups: a `Registry` finds running servers by name as their
//! own typed handles, refuses taken names, forgets a server when it ends,
//! and lists the live members of a group, under concurrent use.

mod common;

use std::future::Future;
use std::time::Duration;

use common::{LIMIT, within};
use patchboard::{
    Builder, CallError, Context, LookupError, RegisterError, Registry, Server, ServerId, server,
};

#[derive(Clone, Default)]
struct Echo;

#[server]
impl Echo {
    fn me(&self, ctx: &Context<Self>) -> ServerId {
        ctx.id()
    }

    fn fail(&self) {
        panic!("asked to fail");
    }
}

struct Other;

#[server]
impl Other {
    fn other(&self) {}
}

#[tokio::test(flavor = "current_thread")]
async fn a_name_finds_its_server_as_its_own_handle() {
    within(LIMIT, async {
        let registry = Registry::new();
        let echo = Echo.spawn();
        registry.register("echo", &echo).unwrap();
        let found = registry.lookup::<Echo>("echo").unwrap();
        assert_eq!(found.me().await, Ok(echo.id()));
        assert_eq!(registry.whereis("echo"), Some(echo.id()));
        assert_eq!(registry.names(), ["echo"]);
        assert_eq!(
            registry.lookup::<Echo>("nobody").unwrap_err(),
            LookupError::NotFound
        );
        // A clone is the same table.
        assert_eq!(registry.clone().whereis("echo"), Some(echo.id()));
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_wrong_type_is_an_error_that_names_both_types() {
    within(LIMIT, async {
        let registry = Registry::new();
        let echo = Echo.spawn();
        registry.register("echo", &echo).unwrap();
        let error = registry.lookup::<Other>("echo").unwrap_err();
        let LookupError::WrongType { expected, found } = &error else {
            panic!("expected WrongType, got {error:?}");
        };
        assert!(
            expected.ends_with("Other") && found.ends_with("Echo"),
            "{error}"
        );
        assert!(error.to_string().contains("not a `"), "{error}");
        // The entry is untouched.
        assert!(registry.lookup::<Echo>("echo").is_ok());
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_taken_name_is_refused_until_its_server_ends() {
    within(LIMIT, async {
        let registry = Registry::new();
        let (first, second) = (Echo.spawn(), Echo.spawn());
        registry.register("echo", &first).unwrap();
        assert_eq!(
            registry.register("echo", &second),
            Err(RegisterError::Taken(first.id()))
        );
        first.stop().await;
        registry.register("echo", &second).unwrap();
        assert_eq!(registry.whereis("echo"), Some(second.id()));
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn every_way_of_ending_frees_the_name() {
    within(LIMIT, async {
        let registry = Registry::new();
        // Stopped.
        let echo = Echo.spawn();
        registry.register("stopped", &echo).unwrap();
        echo.stop().await;
        // Panicked.
        let echo = Echo.spawn();
        registry.register("panicked", &echo).unwrap();
        assert!(matches!(echo.fail().await, Err(CallError::Panicked(_))));
        echo.closed().await;
        // Every handle dropped: the registry does not keep it alive.
        let (echo, exit) = Builder::new(Echo).spawn_with_exit();
        registry.register("dropped", &echo).unwrap();
        drop(echo);
        exit.await;
        for name in ["stopped", "panicked", "dropped"] {
            assert_eq!(
                registry.lookup::<Echo>(name).unwrap_err(),
                LookupError::NotFound
            );
        }
        assert!(registry.names().is_empty());
        assert_eq!(registry.entries(), 0, "ended servers leave no entry behind");
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_stopping_server_is_not_found_and_cannot_be_registered() {
    within(LIMIT, async {
        let registry = Registry::new();
        let echo = Echo.spawn();
        registry.register("echo", &echo).unwrap();
        // Draining from now on (the drain's first poll starts it):
        // refuses calls from outside.
        let mut drain = std::pin::pin!(echo.drain());
        let started =
            std::future::poll_fn(|cx| std::task::Poll::Ready(drain.as_mut().poll(cx).is_pending()));
        assert!(started.await);
        assert!(echo.is_closed());
        assert_eq!(
            registry.lookup::<Echo>("echo").unwrap_err(),
            LookupError::NotFound
        );
        assert_eq!(
            registry.register("again", &echo),
            Err(RegisterError::Closed)
        );
        // Its name can be taken over at once.
        let next = Echo.spawn();
        registry.register("echo", &next).unwrap();
        drain.await;
        assert_eq!(
            registry.whereis("echo"),
            Some(next.id()),
            "the old end removed only its own entry"
        );
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn unregister_frees_the_name_and_leaves_the_server_running() {
    within(LIMIT, async {
        let registry = Registry::new();
        let echo = Echo.spawn();
        registry.register("echo", &echo).unwrap();
        assert_eq!(registry.unregister("echo"), Some(echo.id()));
        assert_eq!(registry.unregister("echo"), None);
        assert!(registry.lookup::<Echo>("echo").is_err());
        assert_eq!(echo.me().await, Ok(echo.id()));
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_group_lists_its_live_members() {
    within(LIMIT, async {
        let registry = Registry::new();
        let members: Vec<_> = (0..4).map(|_| Echo.spawn()).collect();
        for member in &members {
            registry.join("workers", member).unwrap();
        }
        let other = Other.spawn();
        registry.join("workers", &other).unwrap();
        let listed: Vec<ServerId> = registry
            .members::<Echo>("workers")
            .iter()
            .map(|m| m.id())
            .collect();
        let expected: Vec<ServerId> = members.iter().map(|m| m.id()).collect();
        assert_eq!(listed, expected, "the members of that type, in join order");
        assert_eq!(registry.member_ids("workers").len(), 5);
        // One ends, one leaves.
        members[1].stop().await;
        assert_eq!(registry.leave("workers", members[2].id()), 1);
        let listed: Vec<ServerId> = registry
            .members::<Echo>("workers")
            .iter()
            .map(|m| m.id())
            .collect();
        assert_eq!(listed, [members[0].id(), members[3].id()]);
        assert_eq!(registry.groups(), ["workers"]);
        for member in [&members[0], &members[3]] {
            member.stop().await;
        }
        other.stop().await;
        assert!(registry.member_ids("workers").is_empty());
        assert!(registry.groups().is_empty());
        assert_eq!(registry.entries(), 0);
        // The stopped servers' ends found nothing left to remove.
        assert!(registry.members::<Echo>("workers").is_empty());
    })
    .await;
}

/// Many tasks register, look up, call and end servers under a handful of
/// names at once: a lookup never returns a server that had ended before
/// it, a call on what a lookup returned answers (or finds the server
/// ended since), nothing panics, and no entry is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_lookup_and_end_race_from_many_tasks() {
    within(Duration::from_secs(60), async {
        const TASKS: usize = 16;
        const ROUNDS: usize = 500;
        let registry = Registry::new();
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let registry = registry.clone();
                tokio::spawn(async move {
                    let mut registered = 0;
                    for round in 0..ROUNDS {
                        let name = format!("n{}", (task + round) % 4);
                        let group = format!("g{}", round % 3);
                        let (echo, exit) = Builder::new(Echo).spawn_with_exit();
                        if registry.register(&name, &echo).is_ok() {
                            registered += 1;
                        }
                        registry.join(&group, &echo).unwrap();
                        for look in 0..4 {
                            if let Ok(found) = registry.lookup::<Echo>(&format!("n{look}")) {
                                match found.me().await {
                                    Ok(id) => assert_eq!(id, found.id()),
                                    // Ended after the lookup: allowed.
                                    Err(error) => assert_eq!(error, CallError::Closed),
                                }
                            }
                        }
                        for member in registry.members::<Echo>(&group) {
                            assert!(matches!(member.me().await, Ok(_) | Err(CallError::Closed)));
                        }
                        // End it, one of three ways.
                        let id = echo.id();
                        match round % 3 {
                            0 => echo.stop().await,
                            1 => {
                                let _ = echo.fail().await;
                                echo.closed().await;
                            }
                            // Every handle dropped (the registry's do not count).
                            _ => drop(echo),
                        }
                        exit.await;
                        // Ended: no lookup finds it from now on.
                        assert_ne!(registry.whereis(&name), Some(id));
                        if let Ok(found) = registry.lookup::<Echo>(&name) {
                            assert_ne!(found.id(), id, "a stale handle");
                        }
                        assert!(!registry.member_ids(&group).contains(&id));
                    }
                    registered
                })
            })
            .collect();
        let mut registered = 0;
        for task in tasks {
            registered += task.await.unwrap();
        }
        assert!(registered > 0);
        assert!(registry.names().is_empty());
        assert!(registry.groups().is_empty());
        assert_eq!(registry.entries(), 0, "no stale entry");
    })
    .await;
}
