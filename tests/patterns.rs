//! The essays' patterns as one-liners: owned calls, flat results, priority
//! levels, and the combinators (first response, bounded map, fan-in).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{LIMIT, PAUSED_LIMIT, hold, until_queued, within};
use switchboard::{CallError, OwnedCall, Server, server};

/// Doubles numbers, counting how many it has served.
#[derive(Default)]
struct Doubler {
    served: u32,
}

#[server(capacity = 4)]
impl Doubler {
    fn double(&mut self, n: u32) -> u32 {
        self.served += 1;
        n * 2
    }

    fn served(&self) -> u32 {
        self.served
    }
}

/// Adds one: another server with the same reply type.
struct Incrementer;

#[server]
impl Incrementer {
    fn increment(&self, n: u32) -> u32 {
        n + 1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_calls_move_into_spawned_tasks_without_cloning_the_handle() {
    within(LIMIT, async {
        let doubler = Doubler::default().spawn();
        // 64 tasks, far more than the mailbox holds: each owned call waits
        // for room in its own task.
        let tasks: Vec<_> = (0..64)
            .map(|n| tokio::spawn(doubler.double(n).owned()))
            .collect();
        for (n, task) in (0..64).zip(tasks) {
            assert_eq!(task.await.unwrap(), Ok(n * 2));
        }
        assert_eq!(doubler.served().await, Ok(64));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_owned_call_keeps_its_server_alive_like_a_handle() {
    within(PAUSED_LIMIT, async {
        let doubler = Doubler::default().spawn();
        let weak = doubler.downgrade();
        let call = doubler.double(21).owned();
        // Every handle dropped before the call is even polled: without the
        // call holding the server, it would drain and refuse it.
        drop(doubler);
        assert_eq!(call.await, Ok(42));
        // The call was the last holder: the server drains and stops.
        tokio::time::timeout(LIMIT, async {
            while weak.upgrade().is_some() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the server stops once the owned call has resolved");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn owned_calls_to_different_servers_collect_into_one_vec() {
    within(PAUSED_LIMIT, async {
        let doubler = Doubler::default().spawn();
        let incrementer = Incrementer.spawn();
        let calls: Vec<OwnedCall<u32>> = vec![
            doubler.double(5).owned(),
            incrementer.increment(5).owned(),
            doubler.double(7).timeout(Duration::from_secs(1)).owned(),
        ];
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await);
        }
        assert_eq!(answers, [Ok(10), Ok(6), Ok(14)]);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_owned_call_keeps_its_options() {
    within(PAUSED_LIMIT, async {
        let slow = Slow.spawn();
        let release = hold(|entered, release| slow.hold(entered, release).owned()).await;
        let late = slow.answer().timeout(Duration::from_millis(50)).owned();
        assert_eq!(tokio::spawn(late).await.unwrap(), Err(CallError::Timeout));
        release.notify_one();
        assert_eq!(slow.answer().owned().await, Ok(42));
    })
    .await;
}

struct Slow;

#[server]
impl Slow {
    async fn hold(&self, entered: Arc<tokio::sync::Notify>, release: Arc<tokio::sync::Notify>) {
        entered.notify_one();
        release.notified().await;
    }

    fn answer(&self) -> u32 {
        42
    }
}

/// A bank error that a failed call turns into.
#[derive(Debug, PartialEq)]
enum BankError {
    Insufficient { balance: u64 },
    Call(CallError),
}

impl From<CallError> for BankError {
    fn from(error: CallError) -> Self {
        BankError::Call(error)
    }
}

struct Account {
    balance: u64,
}

#[server]
impl Account {
    fn withdraw(&mut self, amount: u64) -> Result<u64, BankError> {
        match self.balance.checked_sub(amount) {
            Some(left) => {
                self.balance = left;
                Ok(left)
            }
            None => Err(BankError::Insufficient {
                balance: self.balance,
            }),
        }
    }

    fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }
}

/// `?` in one step, in a function returning the handler's own error.
async fn transfer(from: &AccountHandle, to: &AccountHandle, amount: u64) -> Result<u64, BankError> {
    from.withdraw(amount).flatten().await?;
    Ok(to.deposit(amount).await?)
}

#[tokio::test(start_paused = true)]
async fn flatten_gives_the_handlers_result_with_call_errors_folded_in() {
    within(PAUSED_LIMIT, async {
        let alice = Account { balance: 100 }.spawn();
        let bob = Account { balance: 0 }.spawn();
        assert_eq!(transfer(&alice, &bob, 60).await, Ok(60));
        assert_eq!(
            transfer(&alice, &bob, 60).await,
            Err(BankError::Insufficient { balance: 40 })
        );
        alice.stop().await;
        assert_eq!(
            transfer(&alice, &bob, 1).await,
            Err(BankError::Call(CallError::Closed))
        );
        // The same through an owned call, in a spawned task.
        let owned = bob.withdraw(1_000).owned().flatten();
        assert_eq!(
            tokio::spawn(owned).await.unwrap(),
            Err(BankError::Insufficient { balance: 60 })
        );
        // Box<dyn Error> takes a CallError too.
        let boxed: Result<u64, Box<dyn std::error::Error + Send + Sync>> = async {
            let left = bob.deposit(1).await?;
            Ok(left)
        }
        .await;
        assert_eq!(boxed.unwrap(), 61);
    })
    .await;
}

/// The essay's multiplexer: events of three priorities on one server.
#[derive(Default)]
struct Mux {
    log: Vec<String>,
}

#[server(capacity = 64)]
impl Mux {
    #[priority(2)]
    fn critical(&mut self, event: u32) {
        self.log.push(format!("critical {event}"));
    }

    #[priority]
    fn user(&mut self, event: u32) {
        self.log.push(format!("user {event}"));
    }

    fn metrics(&mut self, event: u32) {
        self.log.push(format!("metrics {event}"));
    }

    async fn hold(&self, entered: Arc<tokio::sync::Notify>, release: Arc<tokio::sync::Notify>) {
        entered.notify_one();
        release.notified().await;
    }

    #[priority(7)]
    fn log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }
}

#[tokio::test(start_paused = true)]
async fn three_priority_levels_are_served_in_level_order_and_fifo_within_each() {
    within(PAUSED_LIMIT, async {
        let mux = Mux::default().spawn();
        let release = hold(|entered, release| mux.hold(entered, release).owned()).await;
        // Queued together, interleaved, while the server is busy.
        for event in 0..3 {
            mux.metrics(event).no_wait().await.unwrap();
            mux.user(event).no_wait().await.unwrap();
            mux.critical(event).no_wait().await.unwrap();
        }
        until_queued(|| mux.queued(), 9).await;
        release.notify_one();
        let expected: Vec<String> = ["critical", "user", "metrics"]
            .iter()
            .flat_map(|level| (0..3).map(move |event| format!("{level} {event}")))
            .collect();
        assert_eq!(mux.log().priority(0).await.unwrap(), expected);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_call_can_override_its_messages_priority() {
    within(PAUSED_LIMIT, async {
        let mux = Mux::default().spawn();
        let release = hold(|entered, release| mux.hold(entered, release).owned()).await;
        mux.critical(1).priority(0).no_wait().await.unwrap(); // demoted
        mux.metrics(2).no_wait().await.unwrap();
        mux.metrics(3).priority(2).no_wait().await.unwrap(); // promoted
        mux.user(4).priority(200).no_wait().await.unwrap(); // lowered to the highest, 7
        until_queued(|| mux.queued(), 4).await;
        release.notify_one();
        assert_eq!(
            mux.log().priority(0).await.unwrap(),
            ["user 4", "metrics 3", "critical 1", "metrics 2"]
        );
        assert_eq!(switchboard::MAX_PRIORITY, 7);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_critical_events_never_starves_the_lower_levels() {
    within(PAUSED_LIMIT, async {
        let mux = Mux::default().spawn();
        let release = hold(|entered, release| mux.hold(entered, release).owned()).await;
        mux.metrics(0).no_wait().await.unwrap();
        mux.user(0).no_wait().await.unwrap();
        for event in 0..40 {
            mux.critical(event).no_wait().await.unwrap();
        }
        until_queued(|| mux.queued(), 42).await;
        release.notify_one();
        let log = mux.log().priority(0).await.unwrap();
        let position = |entry: &str| log.iter().position(|e| e == entry).unwrap();
        let burst = switchboard::PRIORITY_BURST;
        assert_eq!(position("metrics 0"), burst);
        assert_eq!(position("user 0"), burst + 1);
        assert_eq!(log.len(), 42);
    })
    .await;
}
