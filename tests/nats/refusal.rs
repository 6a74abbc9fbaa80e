//! A refused subscription is an error from the call that asked for it
//! (issue 26, item 13): users of a real `nats-server` without subscribe
//! permission on a service's subjects, on a subscription's subject, in the
//! service's queue group, on `$SRV.>` or on `_INBOX.>`; a permission
//! withdrawn while serving; and the refusal seen 50 times in a row on each
//! runtime flavour under load.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use patchboard::nats;

use super::nats_server::{NatsServer, User};
use super::*;

/// What the services protocol and the round trips need.
const BASICS: &[&str] = &["_INBOX.>", "$SRV.>"];

/// The users of these tests: their names say what they lack.
const USERS: &[User<'static>] = &[
    User {
        name: "full",
        publish: None,
        subscribe: None,
    },
    // May not subscribe to the service's subjects (nor `forbidden.>`).
    User {
        name: "no-subjects",
        publish: Some(BASICS),
        subscribe: Some(&["_INBOX.>", "$SRV.>", "allowed.>"]),
    },
    // May subscribe to them in another queue group only.
    User {
        name: "other-queue",
        publish: Some(BASICS),
        subscribe: Some(&["_INBOX.>", "$SRV.>", "guarded.* other"]),
    },
    // May not join the services protocol.
    User {
        name: "no-srv",
        publish: Some(BASICS),
        subscribe: Some(&["_INBOX.>", "guarded.>"]),
    },
    // May not receive answers (nor the round trip's echo).
    User {
        name: "no-inbox",
        publish: Some(BASICS),
        subscribe: Some(&["$SRV.>", "inboxless.>"]),
    },
];

/// A client of `user`, with patchboard's watcher.
async fn watched(nats: &NatsServer, user: &str) -> async_nats::Client {
    let options = async_nats::ConnectOptions::new().user_and_password(user.into(), user.into());
    nats::connect(nats.url(), options)
        .await
        .expect("the test's nats-server accepts the user")
}

/// The error's text, which must name `subject` as refused.
fn names(error: &async_nats::Error, subject: &str) -> String {
    let text = error.to_string();
    assert!(
        text.contains(&format!("refused the subscription to `{subject}")),
        "the error names `{subject}`: {text}"
    );
    assert!(text.contains("subscribe permission"), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_fails_naming_a_subject_the_user_may_not_subscribe_to() {
    let Some(nats) = NatsServer::start_with_users(USERS) else {
        return;
    };
    within(LIMIT, async {
        let account = Account::default().spawn();
        let full = watched(&nats, "full").await;

        let refused = Service::new(&watched(&nats, "no-subjects").await, "guarded")
            .serve(&account)
            .await
            .expect_err("a user that may not subscribe to the subjects is refused");
        let text = names(&refused, "guarded.");
        assert!(text.contains("in queue group `q`"), "{text}");

        let refused = Service::new(&watched(&nats, "other-queue").await, "guarded")
            .serve(&account)
            .await
            .expect_err("a user allowed another queue group only is refused");
        let text = names(&refused, "guarded.");
        assert!(text.contains("in queue group `q`"), "{text}");

        let refused = Service::new(&watched(&nats, "no-srv").await, "guarded")
            .serve(&account)
            .await
            .expect_err("a user that may not join the services protocol is refused");
        names(&refused, "$SRV.");

        // Refused, the round trip's echo never comes: the refusal ends the
        // wait, long before the client's request timeout (10 s). (Under
        // another name: without an echo, its endpoints' leaving cannot be
        // confirmed.)
        let started = Instant::now();
        let refused = Service::new(&watched(&nats, "no-inbox").await, "inboxless")
            .serve(&account)
            .await
            .expect_err("a user that may not receive on its inbox is refused");
        names(&refused, "_INBOX.");
        assert!(started.elapsed() < Duration::from_secs(5));

        // Nothing of the refused services is left to take a call: the
        // endpoints NATS did accept have left by the time `serve` fails.
        let remote = Remote::new(&full, "guarded").handle::<Account>();
        assert_eq!(remote.deposit(1).await, Err(CallError::NoResponders));

        // A client without the watcher: as before, `Ok` for a service that
        // nobody can reach.
        let unwatched = async_nats::ConnectOptions::new()
            .user_and_password("no-subjects".into(), "no-subjects".into())
            .connect(nats.url())
            .await
            .unwrap();
        let unseen = Service::new(&unwatched, "guarded").serve(&account).await;
        assert!(
            unseen.is_ok(),
            "without the watcher the refusal goes unseen"
        );
        assert_eq!(remote.deposit(1).await, Err(CallError::NoResponders));
        drop(unseen);

        // A user with every permission serves as before.
        let serving = Service::new(&full, "guarded")
            .serve(&account)
            .await
            .unwrap();
        assert_eq!(remote.deposit(5).await, Ok(5));
        serving.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_fails_on_a_forbidden_subject_and_only_there() {
    let Some(nats) = NatsServer::start_with_users(USERS) else {
        return;
    };
    within(LIMIT, async {
        let full = watched(&nats, "full").await;
        let client = watched(&nats, "no-subjects").await;

        let refused = nats::subscribe::<u64>(&client, "forbidden.ticks", 8)
            .await
            .expect_err("a forbidden subject is refused");
        names(&refused, "forbidden.ticks`");

        let mut ticks = nats::subscribe::<u64>(&client, "allowed.ticks", 8)
            .await
            .expect("an allowed subject is not");
        full.publish("allowed.ticks", patchboard_wire(7).into())
            .await
            .unwrap();
        assert_eq!(ticks.recv().await, Some(7));

        // At once on one connection: the refusal of one subject does not
        // fail the other.
        let (forbidden, allowed) = tokio::join!(
            nats::subscribe::<u64>(&client, "forbidden.a", 8),
            nats::subscribe::<u64>(&client, "allowed.b", 8),
        );
        names(&forbidden.expect_err("refused"), "forbidden.a`");
        let mut allowed = allowed.expect("the allowed subject's subscription stands");
        full.publish("allowed.b", patchboard_wire(8).into())
            .await
            .unwrap();
        assert_eq!(allowed.recv().await, Some(8));

        // At once on two connections, one subject: each is told of its own.
        let (refused, permitted) = tokio::join!(
            nats::subscribe::<u64>(&client, "forbidden.c", 8),
            nats::subscribe::<u64>(&full, "forbidden.c", 8),
        );
        names(&refused.expect_err("refused"), "forbidden.c`");
        let mut permitted = permitted.expect("another user's subscription stands");
        full.publish("forbidden.c", patchboard_wire(9).into())
            .await
            .unwrap();
        assert_eq!(permitted.recv().await, Some(9));

        // A subject NATS quotes with escapes comes back whole.
        let odd = "forbidden.\"odd\".'q'.\u{e9}";
        let refused = nats::subscribe::<u64>(&client, odd, 8)
            .await
            .expect_err("refused");
        names(&refused, &format!("{odd}`"));

        // The connection is still sound.
        full.publish("allowed.ticks", patchboard_wire(10).into())
            .await
            .unwrap();
        assert_eq!(ticks.recv().await, Some(10));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_withdrawn_later_ends_the_service_and_the_subscription() {
    let teller = |subscribe: &'static [&'static str]| User {
        name: "teller",
        publish: Some(BASICS),
        subscribe: Some(subscribe),
    };
    let before = [
        teller(&["_INBOX.>", "$SRV.>", "guarded.>", "allowed.>"]),
        USERS[0],
    ];
    let after = [teller(BASICS), USERS[0]];
    let Some(mut nats) = NatsServer::start_with_users(&before) else {
        return;
    };
    within(LIMIT, async {
        let client = watched(&nats, "teller").await;
        let full = watched(&nats, "full").await;
        let account = Account::default().spawn();
        let mut serving = Service::new(&client, "guarded")
            .serve(&account)
            .await
            .unwrap();
        let mut ticks = nats::subscribe::<u64>(&client, "allowed.ticks", 8)
            .await
            .unwrap();
        let remote = Remote::new(&full, "guarded").handle::<Account>();
        assert_eq!(remote.deposit(2).await, Ok(2));

        let reload = tokio::task::spawn_blocking(move || {
            nats.reload_users(&after);
            nats
        });
        let nats = reload.await.unwrap();

        let ended = serving
            .ended()
            .await
            .expect_err("the service ends, refused");
        names(&ended, "guarded.");
        names(
            &serving.ended().await.expect_err("asked again, the same"),
            "guarded.",
        );
        assert_eq!(ticks.recv().await, None, "the subscription ends");
        // The server itself goes on for local callers.
        assert_eq!(account.balance().await, Ok(2));
        drop(nats);
    })
    .await;
}

/// Under load (a served account taking calls from 32 tasks, two tasks
/// that never stop yielding), on each runtime flavour in turn, 50 times in
/// a row: every refused `serve` and `subscribe` is an error.
#[test]
fn a_refusal_is_reported_under_load_on_both_runtime_flavours() {
    let Some(nats) = NatsServer::start_with_users(USERS) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    for flavour in ["current_thread", "multi_thread"] {
        let runtime = match flavour {
            "current_thread" => tokio::runtime::Builder::new_current_thread(),
            _ => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(2);
                builder
            }
        }
        .enable_all()
        .build()
        .unwrap();
        let left = deadline.saturating_duration_since(Instant::now());
        runtime.block_on(within(left, async {
            let full = watched(&nats, "full").await;
            let account = Account::default().spawn();
            let _busy = Service::new(&full, "busy").serve(&account).await.unwrap();
            let remote = Remote::new(&watched(&nats, "full").await, "busy").handle::<Account>();
            // Stops the load however the test ends, so that a failure
            // does not leave the runtime's shutdown waiting on it.
            let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
            let calls = Arc::new(AtomicUsize::new(0));
            let mut load = Vec::new();
            for _ in 0..32 {
                let (remote, stop, calls) = (remote.clone(), stop.0.clone(), calls.clone());
                load.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match remote.deposit(1).await {
                            Ok(_) => drop(calls.fetch_add(1, Ordering::Relaxed)),
                            Err(_) => tokio::task::yield_now().await,
                        }
                    }
                }));
            }
            for _ in 0..2 {
                let stop = stop.0.clone();
                load.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        tokio::task::yield_now().await;
                    }
                }));
            }
            let client = watched(&nats, "no-subjects").await;
            let guarded = Account::default().spawn();
            for round in 0..50 {
                match Service::new(&client, "guarded").serve(&guarded).await {
                    Err(refused) => drop(names(&refused, "guarded.")),
                    Ok(_) => panic!("{flavour}, round {round}: `serve` missed the refusal"),
                }
                match nats::subscribe::<u64>(&client, "forbidden.ticks", 4).await {
                    Err(refused) => drop(names(&refused, "forbidden.ticks`")),
                    Ok(_) => panic!("{flavour}, round {round}: `subscribe` missed the refusal"),
                }
            }
            drop(stop);
            for task in load {
                task.await.unwrap();
            }
            assert!(
                calls.load(Ordering::Relaxed) > 0,
                "{flavour}: the load was served meanwhile"
            );
        }));
    }
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
