//! The tests themselves: `tests/nats.rs` includes this file with the
//! `nats` feature on.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/nats_server.rs"]
mod nats_server;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use patchboard::nats::{Remote, Service, async_nats, confirm};
use patchboard::{Builder, CallError, Server, Subscription, server, subscription};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use common::within;
use nats_server::{NatsCluster, NatsServer};

/// The account of the examples, offered remotely.
#[derive(Default, Clone)]
struct Account {
    balance: u64,
    notes: Vec<String>,
    /// How many `hold`s have started: a test waits on it to know the
    /// server is held.
    holds: Arc<AtomicUsize>,
    /// The ids `record` has seen.
    seen: HashSet<u64>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct Overdrawn {
    short_by: u64,
}

#[server(remote, on_panic = "continue")]
impl Account {
    fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }

    fn withdraw(&mut self, amount: u64) -> Result<u64, Overdrawn> {
        if amount > self.balance {
            return Err(Overdrawn {
                short_by: amount - self.balance,
            });
        }
        self.balance -= amount;
        Ok(self.balance)
    }

    fn balance(&self) -> u64 {
        self.balance
    }

    #[cast]
    fn note(&mut self, text: String) {
        self.notes.push(text);
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn explode(&self) -> u64 {
        panic!("kaboom")
    }

    /// Holds the server for `ms` milliseconds.
    async fn hold(&self, ms: u64) -> u64 {
        self.holds.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }

    #[priority]
    fn urgent(&self) -> String {
        "urgent".to_owned()
    }

    fn process(&self) -> u32 {
        std::process::id()
    }

    /// Takes a big argument (for the payload limit).
    fn store(&mut self, blob: Vec<u8>) -> usize {
        blob.len()
    }

    /// Records `id`: `false` if it was recorded before (a request served
    /// twice).
    fn record(&mut self, id: u64) -> bool {
        self.seen.insert(id)
    }

    /// How many ids were recorded.
    fn recorded(&self) -> usize {
        self.seen.len()
    }

    /// Panics with `message` (for error text on the wire).
    fn fail(&self, message: String) -> u64 {
        panic!("{message}")
    }

    /// A one-way message with a big argument (for the payload limit).
    #[cast]
    fn stash(&mut self, blob: Vec<u8>) {
        self.notes.push(format!("stash of {}", blob.len()));
    }
}

/// A server that only publishes: its ticks go to a subject.
#[derive(Default)]
struct Ticker {
    subscribers: Vec<patchboard::Subscriber<u64>>,
}

#[server]
impl Ticker {
    fn subscribe(&mut self) -> Subscription<u64> {
        let (subscriber, subscription) = subscription(16);
        self.subscribers.push(subscriber);
        subscription
    }

    fn tick(&mut self, n: u64) -> usize {
        self.subscribers.retain(|s| s.send(n).is_connected());
        self.subscribers.len()
    }
}

const LIMIT: Duration = Duration::from_secs(60);

async fn connect(server: &NatsServer) -> async_nats::Client {
    async_nats::connect(server.url())
        .await
        .expect("the test's nats-server accepts connections")
}

/// A test's nats-server, or a skip (see the module docs).
macro_rules! nats_server {
    () => {
        match NatsServer::start() {
            Some(server) => server,
            None => return,
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_account_answers_through_its_own_handle_type() {
    let nats = nats_server!();
    within(LIMIT, async {
        let account = Account::default().spawn();
        let serving = Service::new(&connect(&nats).await, "bank")
            .serve(&account)
            .await
            .unwrap();
        assert_eq!(serving.subjects()[0], "bank.deposit");

        // Another connection, as another process would have.
        let remote: AccountHandle = Remote::new(&connect(&nats).await, "bank").handle::<Account>();
        assert_eq!(remote.deposit(5).await, Ok(5));
        assert_eq!(remote.deposit(7).await, Ok(12));
        assert_eq!(remote.withdraw(2).await, Ok(Ok(10)));
        assert_eq!(
            remote.withdraw(100).await,
            Ok(Err(Overdrawn { short_by: 90 })),
            "the server's own error arrives typed"
        );
        match remote.explode().await {
            Err(CallError::Panicked(message)) => assert_eq!(message.as_str(), "kaboom"),
            other => panic!("a remote panic is `Panicked`, got {other:?}"),
        }
        assert_eq!(
            remote.balance().await,
            Ok(10),
            "the server survived its panic"
        );
        assert_eq!(remote.urgent().await, Ok("urgent".to_owned()));

        // Casts and `no_wait` are published; their order on one connection
        // holds, so a later call sees them.
        remote.note("one".into()).await.unwrap();
        remote.deposit(1).no_wait().await.unwrap();
        remote.note("two".into()).await.unwrap();
        assert_eq!(remote.notes().await, Ok(vec!["one".into(), "two".into()]));
        assert_eq!(
            account.balance().await,
            Ok(11),
            "the local handle sees the same state"
        );

        // A timeout is the request's deadline: a remote server held longer
        // fails the call with `Timeout`, and is not held by it afterwards.
        assert_eq!(
            remote.hold(2_000).timeout(Duration::from_millis(100)).await,
            Err(CallError::Timeout)
        );
        assert_eq!(remote.hold(1).await, Ok(1));
        serving.stop().await;
        assert_eq!(
            remote.balance().await,
            Err(CallError::NoResponders),
            "a stopped service leaves the subject"
        );
        assert_eq!(
            account.balance().await,
            Ok(11),
            "the local server keeps serving"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_serving_is_an_error_at_once_not_a_timeout() {
    let nats = nats_server!();
    within(LIMIT, async {
        let remote = Remote::new(&connect(&nats).await, "nobody")
            .timeout(Duration::from_secs(3600))
            .handle::<Account>();
        // With an hour's deadline, only "no responders" can end it in time.
        assert_eq!(remote.balance().await, Err(CallError::NoResponders));
    })
    .await;
}

/// A cast and then a call, from each of eight remote handles, many times
/// over: the call always sees the cast, although each travels on a subject of its
/// own (the service holds a call for one more pass over its subjects, so
/// that the one-way messages sent before it are served first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_sees_the_casts_sent_before_it_on_other_subjects() {
    let nats = nats_server!();
    within(LIMIT, async {
        let account = Account::default().spawn();
        let _serving = Service::new(&connect(&nats).await, "ryw")
            .serve(&account)
            .await
            .unwrap();
        // Eight callers, each on a connection of its own, so that the
        // service keeps finding some subjects with messages and others
        // without.
        let mut callers = Vec::new();
        for caller in 0..8 {
            let remote = Remote::new(&connect(&nats).await, "ryw").handle::<Account>();
            callers.push(tokio::spawn(async move {
                for round in 0..100 {
                    let note = format!("{caller}-{round}");
                    remote.note(note.clone()).await.unwrap();
                    let notes = remote.notes().await.unwrap();
                    assert!(
                        notes.contains(&note),
                        "caller {caller}, round {round}: the call overtook the cast before it"
                    );
                }
            }));
        }
        for caller in callers {
            caller.await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_handle_keeps_the_local_options_meaning() {
    let nats = nats_server!();
    within(LIMIT, async {
        let state = Account::default();
        let holds = state.holds.clone();
        let account = state.spawn();
        let _serving = Service::new(&connect(&nats).await, "opts")
            .serve(&account)
            .await
            .unwrap();
        let remote = Remote::new(&connect(&nats).await, "opts")
            .capacity(1)
            .handle::<Account>();
        // One call in flight and one queued fill the forwarder: `try_now`
        // is `Full` at once, a plain call waits its turn.
        let held = tokio::spawn({
            let remote = remote.clone();
            async move { remote.hold(1_000).await }
        });
        // In flight: the remote server is running it.
        while holds.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        let queued = tokio::spawn({
            let remote = remote.clone();
            async move { remote.balance().await }
        });
        // The forwarder waits for the held call's answer before taking the
        // next: the queued one sits in its mailbox.
        while remote.queued() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(remote.balance().try_now().await, Err(CallError::Full));
        assert_eq!(remote.balance().await, Ok(0));
        assert_eq!(held.await.unwrap(), Ok(1_000));
        assert_eq!(queued.await.unwrap(), Ok(0));

        // Priority reaches the remote mailbox: with the server held, an
        // urgent call queued after ordinary ones is served first.
        let remote = Remote::new(&connect(&nats).await, "opts").handle::<Account>();
        let hold = tokio::spawn({
            let remote = remote.clone();
            async move { remote.hold(1_000).await }
        });
        while holds.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        let calls: Vec<_> = (0..2)
            .map(|_| {
                let remote = remote.clone();
                tokio::spawn(async move { remote.deposit(1).await })
            })
            .collect();
        while account.queued() < 2 {
            tokio::task::yield_now().await;
        }
        // The balance as the urgent call sees it tells when it was served.
        let urgent = remote.balance().priority(1).await;
        for call in calls {
            call.await.unwrap().unwrap();
        }
        hold.await.unwrap().unwrap();
        assert_eq!(
            urgent,
            Ok(0),
            "served before the deposits queued ahead of it"
        );
        assert_eq!(account.balance().await, Ok(2));

        // `stop` ends this process's forwarder, not the remote server.
        remote.stop().await;
        assert!(remote.is_closed());
        assert_eq!(remote.balance().await, Err(CallError::Closed));
        assert_eq!(account.balance().await, Ok(2));
    })
    .await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random bytes on every subject, including valid payloads of the
    /// wrong message: each gets an error answer (or, for the messages
    /// whose arguments are all optional, a value), and the server keeps
    /// serving.
    #[test]
    fn undecodable_requests_are_answered_with_an_error(
        payloads in proptest::collection::vec(
            (0usize..12, proptest::collection::vec(any::<u8>(), 0..64)),
            1..16,
        )
    ) {
        let Some(nats) = NatsServer::start() else { return Ok(()) };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(within(LIMIT, async {
            let client = connect(&nats).await;
            let account = Account::default().spawn();
            let _serving = Service::new(&client, "fuzz").serve(&account).await.unwrap();
            let subjects = ["deposit", "withdraw", "balance", "note", "notes", "explode",
                "hold", "urgent", "process", "store", "missing", "deposit.extra"];
            for (at, mut payload) in payloads {
                // Half of them carry the right version byte.
                if at % 2 == 0 { payload.insert(0, patchboard::nats::VERSION); }
                let subject = format!("fuzz.{}", subjects[at]);
                match client.request(subject, payload.into()).await {
                    Ok(answer) => {
                        let error = answer.headers.as_ref()
                            .and_then(|h| h.get("Nats-Service-Error-Code"))
                            .is_some();
                        prop_assert!(error || !answer.payload.is_empty());
                    }
                    // Casts and unknown subjects have nobody to answer.
                    Err(error) => prop_assert!(matches!(
                        error.kind(),
                        async_nats::RequestErrorKind::NoResponders
                            | async_nats::RequestErrorKind::TimedOut
                    )),
                }
            }
            let remote = Remote::new(&client, "fuzz").handle::<Account>();
            prop_assert_eq!(remote.deposit(1).await.map(|b| b > 0), Ok(true));
            Ok(())
        }))?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_reads_the_service_and_counts_its_requests() {
    let nats = nats_server!();
    within(LIMIT, async {
        let client = connect(&nats).await;
        let account = Account::default().spawn();
        let _serving = Service::new(&client, "ledger")
            .version("1.2.0")
            .description("the bank's ledger")
            .serve(&account)
            .await
            .unwrap();
        let remote = Remote::new(&client, "ledger").handle::<Account>();
        for _ in 0..3 {
            remote.deposit(1).await.unwrap();
        }
        let _ = remote.explode().await;

        let info = client.request("$SRV.INFO.ledger", "".into()).await.unwrap();
        let info: serde_json::Value = serde_json::from_slice(&info.payload).unwrap();
        assert_eq!(info["name"], "ledger");
        assert_eq!(info["version"], "1.2.0");
        assert_eq!(info["description"], "the bank's ledger");
        let subjects: HashSet<&str> = info["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["subject"].as_str().unwrap())
            .collect();
        assert!(subjects.contains("ledger.deposit") && subjects.contains("ledger.store"));

        let stats = client
            .request("$SRV.STATS.ledger", "".into())
            .await
            .unwrap();
        let stats: serde_json::Value = serde_json::from_slice(&stats.payload).unwrap();
        let endpoint = |name: &str| {
            stats["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .cloned()
                .unwrap()
        };
        assert_eq!(endpoint("deposit")["num_requests"], 3);
        assert_eq!(endpoint("explode")["num_errors"], 1);
    })
    .await;
}

/// Another process serving `Account` under a name: this test binary again.
struct ChildServer(Child);

impl ChildServer {
    fn start(nats: &NatsServer, name: &str) -> Self {
        Self::start_at(&nats.url(), name, None)
    }

    /// Serving `name` through the NATS servers `urls` (comma-separated);
    /// with `panics`, its stderr is read and each panic counted there.
    fn start_at(urls: &str, name: &str, panics: Option<Arc<AtomicUsize>>) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "with_nats::role_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SB_ROLE", format!("serve:{name}"))
            .env("SB_NATS_URL", urls)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if panics.is_some() {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .unwrap();
        if let (Some(panics), Some(stderr)) = (panics, child.stderr.take()) {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("panicked") {
                        eprintln!("serving child: {line}");
                        panics.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                // libtest prints the test's name on the same line.
                Some(Ok(line)) if line.ends_with("READY") => break,
                Some(Ok(_)) => {}
                other => panic!("the serving child ended before it was ready: {other:?}"),
            }
        }
        ChildServer(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The child's role: serve `Account` under the given name until killed
/// (or until its parent closes stdin). A no-op in an ordinary run.
#[test]
fn role_child() {
    let Ok(role) = std::env::var("SB_ROLE") else {
        return;
    };
    let name = role.strip_prefix("serve:").unwrap().to_owned();
    let url = std::env::var("SB_NATS_URL").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let urls: Vec<&str> = url.split(',').collect();
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(urls.as_slice())
            .await
            .unwrap();
        let account = Builder::new(Account::default()).pool(2).spawn();
        let _serving = Service::new(&client, name).serve(&account).await.unwrap();
        println!("READY");
        // Until the parent goes: its end of stdin closes.
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
        })
        .await
        .unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_spans_three_processes_and_survives_one_stopping() {
    let nats = nats_server!();
    let mut children: Vec<ChildServer> =
        (0..3).map(|_| ChildServer::start(&nats, "pool")).collect();
    let pids: HashSet<u32> = children.iter().map(ChildServer::pid).collect();
    within(LIMIT, async {
        let remote = Remote::new(&connect(&nats).await, "pool").handle::<Account>();
        let mut seen = HashSet::new();
        for _ in 0..300 {
            seen.insert(remote.process().await.unwrap());
        }
        assert_eq!(
            seen, pids,
            "NATS spreads the calls over all three processes"
        );

        children[0].kill();
        let gone = children[0].pid();
        let mut after = HashSet::new();
        for _ in 0..300 {
            // A call that was on its way to the killed process when it died
            // fails within its deadline; every later one is served.
            match remote.process().timeout(Duration::from_secs(2)).await {
                Ok(pid) => {
                    after.insert(pid);
                }
                Err(CallError::Timeout | CallError::NoResponders) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert!(!after.contains(&gone));
        assert_eq!(after.len(), 2, "the other two serve every later call");
        for _ in 0..100 {
            remote.process().await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_process_dying_mid_load_fails_every_caller_within_its_deadline() {
    let nats = nats_server!();
    let mut child = ChildServer::start(&nats, "dying");
    within(LIMIT, async {
        let remote = Remote::new(&connect(&nats).await, "dying")
            .timeout(Duration::from_secs(2))
            .handle::<Account>();
        let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let callers: Vec<_> = (0..32)
            .map(|_| {
                let (remote, served) = (remote.clone(), served.clone());
                tokio::spawn(async move {
                    let mut errors = 0;
                    for _ in 0..200 {
                        match remote.hold(2).await {
                            Ok(_) => {
                                served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(CallError::Timeout | CallError::NoResponders) => errors += 1,
                            Err(other) => panic!("unexpected {other:?}"),
                        }
                    }
                    errors
                })
            })
            .collect();
        while served.load(std::sync::atomic::Ordering::Relaxed) < 64 {
            tokio::task::yield_now().await;
        }
        child.kill();
        let mut errors = 0;
        for caller in callers {
            errors += caller.await.unwrap();
        }
        assert!(errors > 0, "calls after the death failed");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_succeed_again_after_nats_server_restarts() {
    let mut nats = nats_server!();
    within(LIMIT, async {
        let account = Account::default().spawn();
        let serving_client = connect(&nats).await;
        let _serving = Service::new(&serving_client, "phoenix")
            .serve(&account)
            .await
            .unwrap();
        let remote = Remote::new(&connect(&nats).await, "phoenix")
            .timeout(Duration::from_millis(500))
            .handle::<Account>();
        assert_eq!(remote.deposit(1).await, Ok(1));
        nats.restart();
        // Every call ends within its deadline while NATS is away, and once
        // both clients have reconnected (and resubscribed) calls succeed.
        let mut served = 0;
        for _ in 0..200 {
            match remote.deposit(1).await {
                Ok(_) => {
                    served += 1;
                    if served == 10 {
                        break;
                    }
                }
                Err(CallError::Timeout | CallError::NoResponders | CallError::Transport(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(served, 10, "calls are served again after the restart");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_permissions_and_the_payload_limit_are_nats_s() {
    let config = r#"
        max_payload: 4096
        authorization {
            users = [
                { user: teller, password: s3cret, permissions: {
                    publish: ["bank.>", "_INBOX.>", "$SRV.>"],
                    subscribe: ["bank.>", "_INBOX.>", "$SRV.>"] } }
                { user: guest, password: guest, permissions: {
                    publish: ["shop.>", "_INBOX.>"],
                    subscribe: ["_INBOX.>"] } }
            ]
        }
    "#;
    let Some(nats) = NatsServer::start_with_config(config) else {
        return;
    };
    within(LIMIT, async {
        let connect_as = |user: &'static str, password: &'static str| {
            async_nats::ConnectOptions::new()
                .user_and_password(user.into(), password.into())
                .max_reconnects(Some(1))
                .connect(nats.url())
        };
        assert!(
            async_nats::connect(nats.url()).await.is_err(),
            "a client without credentials is refused"
        );
        let teller = connect_as("teller", "s3cret").await.unwrap();
        let account = Account::default().spawn();
        let _serving = Service::new(&teller, "bank").serve(&account).await.unwrap();

        let permitted =
            Remote::new(&connect_as("teller", "s3cret").await.unwrap(), "bank").handle::<Account>();
        assert_eq!(permitted.deposit(3).await, Ok(3));

        // NATS reports a permission violation to the connection, not to the
        // request: the call ends at its deadline, it never hangs.
        let denied = Remote::new(&connect_as("guest", "guest").await.unwrap(), "bank")
            .timeout(Duration::from_millis(300))
            .handle::<Account>();
        assert!(matches!(
            denied.deposit(3).await,
            Err(CallError::Timeout | CallError::NoResponders)
        ));
        assert_eq!(
            account.balance().await,
            Ok(3),
            "the denied call never arrived"
        );

        match permitted.store(vec![7; 10_000]).await {
            Err(CallError::Transport(why)) => assert!(why.contains("max_payload"), "{why}"),
            other => panic!("a payload over max_payload is refused, got {other:?}"),
        }
        assert_eq!(permitted.store(vec![7; 100]).await, Ok(100));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_crosses_processes_and_a_slow_subscriber_never_blocks() {
    let nats = nats_server!();
    within(LIMIT, async {
        let ticker = Ticker::default().spawn();
        let publisher = connect(&nats).await;
        let _publishing =
            patchboard::nats::publish(&publisher, "ticks", ticker.subscribe().await.unwrap());

        let subscriber = connect(&nats).await;
        let mut ticks: Subscription<u64> = patchboard::nats::subscribe(&subscriber, "ticks", 8)
            .await
            .unwrap();
        // One that never reads.
        let _slow: Subscription<u64> = patchboard::nats::subscribe(&subscriber, "ticks", 1)
            .await
            .unwrap();

        ticker.tick(1).await.unwrap();
        assert_eq!(ticks.recv().await, Some(1));
        // Thousands of ticks past the slow subscriber's buffer: the server
        // answers every one at once.
        for n in 2..5_000 {
            ticker.tick(n).await.unwrap();
        }
        let mut last = 0;
        while last < 4_999 {
            match tokio::time::timeout(Duration::from_secs(5), ticks.recv()).await {
                Ok(Some(n)) => last = n,
                _ => break,
            }
        }
        assert!(last > 1, "the reading subscriber kept receiving");

        // Garbage on the subject is counted, not delivered.
        let mut fresh: Subscription<u64> = patchboard::nats::subscribe(&subscriber, "ticks", 64)
            .await
            .unwrap();
        // Published on the ticks' own connection, so it arrives before
        // the tick that follows it.
        publisher.publish("ticks", "junk".into()).await.unwrap();
        ticker.tick(9_999).await.unwrap();
        assert_eq!(fresh.recv().await, Some(9_999));
        assert_eq!(fresh.missed(), 1);
    })
    .await;
}

// ------------------------------------------- issue 26, items 8 to 17

/// Item 8: a call sees every one-way message sent before it, however long
/// the burst and however busy the server (the service takes at most 32
/// messages of a subject per pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_sees_every_cast_of_a_long_burst_sent_before_it() {
    let nats = nats_server!();
    within(LIMIT, async {
        let state = Account::default();
        let holds = state.holds.clone();
        let account = state.spawn();
        let _serving = Service::new(&connect(&nats).await, "burst")
            .serve(&account)
            .await
            .unwrap();
        let remote = Remote::new(&connect(&nats).await, "burst").handle::<Account>();
        let mut sent = 0;
        for burst in [200, 400, 1_000] {
            for n in 0..burst {
                remote.note(format!("{burst}-{n}")).await.unwrap();
            }
            sent += burst;
            assert_eq!(
                remote.notes().await.unwrap().len(),
                sent,
                "a call after a burst of {burst} casts sees them all"
            );
        }
        // With the server busy: its mailbox fills while the casts arrive.
        let held = tokio::spawn({
            let account = account.clone();
            async move { account.hold(300).await }
        });
        while holds.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        for n in 0..300 {
            remote.note(format!("busy-{n}")).await.unwrap();
        }
        sent += 300;
        let seen = remote.notes().await.unwrap().len();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let later = remote.notes().await.unwrap().len();
        assert_eq!((seen, later), (sent, sent), "busy server");
        held.await.unwrap().unwrap();
    })
    .await;
}

/// Item 9: with NATS gone, every call ends by its deadline (the remote
/// default here), even with more calls in flight than async-nats' send
/// buffer (2 048 messages) holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_ends_by_its_deadline_during_an_outage() {
    let mut nats = nats_server!();
    within(LIMIT, async {
        let client = connect(&nats).await;
        let remotes: Vec<AccountHandle> = (0..12)
            .map(|_| {
                Remote::new(&client, "outage")
                    .timeout(Duration::from_secs(1))
                    .handle::<Account>()
            })
            .collect();
        nats.kill();
        let started = std::time::Instant::now();
        let calls: Vec<_> = remotes
            .iter()
            .flat_map(|remote| (0..256).map(move |_| remote.balance().owned()))
            .map(tokio::spawn)
            .collect();
        for call in calls {
            let outcome = call.await.unwrap();
            assert!(outcome.is_err(), "nobody can answer: {outcome:?}");
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(2_500),
            "3 072 calls with a 1 s deadline all ended after {took:?}"
        );
    })
    .await;
}

/// Item 9: a burst of casts that cannot be sent (NATS gone, the send
/// buffer full) does not hold the calls behind it past their deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_behind_casts_that_cannot_be_sent_ends_by_its_deadline() {
    let mut nats = nats_server!();
    within(LIMIT, async {
        let remote = Remote::new(&connect(&nats).await, "stuck")
            .timeout(Duration::from_millis(500))
            .handle::<Account>();
        nats.kill();
        // Enough to fill async-nats' send buffer and the handle's mailbox.
        let casts = tokio::spawn({
            let remote = remote.clone();
            async move {
                for n in 0..3_000 {
                    let _ = remote.note(format!("{n}")).await;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        let outcome = remote.balance().await;
        let took = started.elapsed();
        assert!(outcome.is_err(), "{outcome:?}");
        assert!(
            took < Duration::from_millis(1_500),
            "a call with a 500 ms deadline ended after {took:?}"
        );
        casts.abort();
        // The casts that could not be sent are reported, by their
        // deadline: dropped at once beyond the `capacity` waiting to be
        // sent (`Full`), or given up at their deadline (`Timeout`).
        let started = std::time::Instant::now();
        let reported = confirm(&remote).await;
        assert!(
            matches!(reported, Err(CallError::Full | CallError::Timeout)),
            "{reported:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(1_500));
    })
    .await;
}

/// Item 10: error text with any bytes, of any length, arrives intact, and
/// the connection carries on (no reconnect, the next call at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_text_of_any_bytes_and_length_arrives_intact() {
    let nats = nats_server!();
    within(LIMIT, async {
        let account = Account::default().spawn();
        let serving_client = connect(&nats).await;
        let _serving = Service::new(&serving_client, "texts")
            .serve(&account)
            .await
            .unwrap();
        let client = connect(&nats).await;
        let remote = Remote::new(&client, "texts")
            .timeout(Duration::from_secs(2))
            .handle::<Account>();
        let long = "é".repeat(10_000); // 20 000 bytes
        let assertion = "assertion `left == right` failed\n  left: 1\n right: 2".to_owned();
        for message in [
            "line one\nline two".to_owned(),
            "carriage\r\nreturn and a tab\tand a nul \0".to_owned(),
            assertion,
            long,
        ] {
            match remote.fail(message.clone()).await {
                Err(CallError::Panicked(got)) => assert_eq!(got.as_str(), message),
                other => panic!("a remote panic is `Panicked`, got {other:?}"),
            }
            assert_eq!(remote.balance().await, Ok(0), "the next call is answered");
        }
        let reconnects =
            |client: &async_nats::Client| client.statistics().connects.load(Ordering::Relaxed);
        assert_eq!(
            reconnects(&client),
            1,
            "the caller's connection was never cut"
        );
        assert_eq!(reconnects(&serving_client), 1, "nor the server's");
    })
    .await;
}

/// Item 11: the payload limit counts what NATS counts (headers included):
/// a request just under `max_payload` with a deadline is `Transport`, an
/// oversized cast is refused, and nothing else is disturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payload_limit_counts_the_headers_and_disturbs_nothing_else() {
    let Some(nats) = NatsServer::start_with_config("max_payload: 4096") else {
        return;
    };
    within(LIMIT, async {
        let account = Account::default().spawn();
        let serving_client = connect(&nats).await;
        let _serving = Service::new(&serving_client, "limit")
            .serve(&account)
            .await
            .unwrap();
        let client = connect(&nats).await;
        let remote = Remote::new(&client, "limit").handle::<Account>();
        // 4 086 bytes of payload: under the limit alone, over it with the
        // headers this call adds.
        let blob = vec![7u8; 4_070];
        match remote
            .store(blob.clone())
            .timeout(Duration::from_secs(1))
            .priority(1)
            .await
        {
            Err(CallError::Transport(why)) => assert!(why.contains("max_payload"), "{why}"),
            other => panic!("over the limit with its headers is `Transport`, got {other:?}"),
        }
        assert_eq!(remote.deposit(1).await, Ok(1), "the connection carries on");
        // An oversized cast, then 200 small ones: those all arrive.
        remote.stash(vec![1; 10_000]).await.unwrap();
        match confirm(&remote).await {
            Err(CallError::Transport(why)) => assert!(why.contains("max_payload"), "{why}"),
            other => panic!("`confirm` reports the oversized cast, got {other:?}"),
        }
        for n in 0..200 {
            remote.note(format!("{n}")).await.unwrap();
        }
        let notes = remote.notes().await.unwrap();
        assert_eq!(notes.len(), 200, "{:?}", &notes[..notes.len().min(3)]);
        let connects =
            |client: &async_nats::Client| client.statistics().connects.load(Ordering::Relaxed);
        assert_eq!(
            connects(&client),
            1,
            "the caller's connection was never cut"
        );
        assert_eq!(connects(&serving_client), 1, "nor the server's");
    })
    .await;
}

/// Item 12: a remote handle whose runtime has shut down answers `Closed`
/// at once, as a local one does.
#[test]
fn a_remote_handle_whose_runtime_has_shut_down_answers_closed_at_once() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let first = tokio::runtime::Runtime::new().unwrap();
    let (remote, account, _serving) = first.block_on(async {
        let account = Account::default().spawn();
        let serving = Service::new(&connect(&nats).await, "gone")
            .serve(&account)
            .await
            .unwrap();
        let remote = Remote::new(&connect(&nats).await, "gone").handle::<Account>();
        assert_eq!(remote.deposit(1).await, Ok(1));
        (remote, account, serving)
    });
    drop(first);
    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        let started = std::time::Instant::now();
        assert_eq!(remote.balance().await, Err(CallError::Closed));
        assert_eq!(account.balance().await, Err(CallError::Closed));
        assert!(started.elapsed() < Duration::from_millis(500));
    });
}

/// Item 15: `Remote::new` checks the name as `Service::serve` does: a
/// name NATS cannot carry fails each call at once, and the shared
/// connection is not disturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_with_an_invalid_name_fails_at_once_and_disturbs_nothing() {
    let nats = nats_server!();
    within(LIMIT, async {
        let client = connect(&nats).await;
        let account = Account::default().spawn();
        let _serving = Service::new(&client, "named")
            .serve(&account)
            .await
            .unwrap();
        assert!(
            Service::new(&client, "bad name")
                .serve(&account)
                .await
                .is_err()
        );
        for name in ["bad name", "a.b", "", "star*", "gt>"] {
            let bad = Remote::new(&client, name)
                .timeout(Duration::from_secs(3600))
                .handle::<Account>();
            match bad.balance().await {
                Err(CallError::Transport(why)) => assert!(why.contains("name"), "{why}"),
                other => panic!("{name:?}: an invalid name is `Transport`, got {other:?}"),
            }
            bad.note("lost".into()).await.unwrap();
        }
        let good = Remote::new(&client, "named").handle::<Account>();
        assert_eq!(good.deposit(2).await, Ok(2));
        assert_eq!(client.statistics().connects.load(Ordering::Relaxed), 1);
    })
    .await;
}

/// Item 16, as documented: a call's own timeout is the deadline the
/// remote server sees, and a call it cannot start in time is skipped; the
/// remote default (`Remote::timeout`) bounds the call in the caller only,
/// and the server may run it after its caller was told `Timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sees_a_call_s_own_deadline_not_the_remote_default() {
    let nats = nats_server!();
    within(LIMIT, async {
        let state = Account::default();
        let holds = state.holds.clone();
        let account = state.spawn();
        let _serving = Service::new(&connect(&nats).await, "late")
            .serve(&account)
            .await
            .unwrap();
        let remote = Remote::new(&connect(&nats).await, "late")
            .timeout(Duration::from_millis(200))
            .handle::<Account>();
        for (round, own) in [(1, true), (2, false)] {
            let held = tokio::spawn({
                let account = account.clone();
                async move { account.hold(600).await }
            });
            while holds.load(Ordering::SeqCst) < round {
                tokio::task::yield_now().await;
            }
            let call = remote.deposit(1);
            let call = if own {
                call.timeout(Duration::from_millis(200))
            } else {
                call
            };
            assert_eq!(call.await, Err(CallError::Timeout));
            held.await.unwrap().unwrap();
            assert_eq!(
                account.balance().await,
                Ok(if own { 0 } else { 1 }),
                "own deadline {own}: skipped with it, run after its caller gave up without"
            );
        }
    })
    .await;
}

/// Item 17: a cast is published once (NATS core: at most once); with
/// `confirm_casts`, `confirm` says whether every cast before it reached
/// the server's mailbox: `NoResponders` when nobody serves, `Ok` once the
/// service has enqueued them, in order with the calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_cast_says_whether_the_service_took_it() {
    let nats = nats_server!();
    within(LIMIT, async {
        let client = connect(&nats).await;
        // Nobody serves: a plain cast is sent (and lost), `confirm` can
        // only say it was sent; a confirmed one says nobody took it.
        let plain = Remote::new(&client, "ledger").handle::<Account>();
        plain.note("lost".into()).await.unwrap();
        assert_eq!(confirm(&plain).await, Ok(()));
        let confirmed = Remote::new(&client, "ledger")
            .timeout(Duration::from_secs(3600))
            .confirm_casts()
            .handle::<Account>();
        confirmed.note("lost too".into()).await.unwrap();
        assert_eq!(confirm(&confirmed).await, Err(CallError::NoResponders));
        assert_eq!(
            confirm(&confirmed).await,
            Ok(()),
            "each failure is told once"
        );

        let account = Account::default().spawn();
        let _serving = Service::new(&connect(&nats).await, "ledger")
            .serve(&account)
            .await
            .unwrap();
        for n in 0..300 {
            confirmed.note(format!("{n}")).await.unwrap();
            if n % 100 == 99 {
                assert_eq!(confirm(&confirmed).await, Ok(()));
                // Taken: the local handle, whose call queues behind them,
                // sees them all.
                assert_eq!(account.notes().await.unwrap().len(), n + 1);
            }
        }
        // Confirmed casts keep their order, with each other and with the
        // calls after them.
        let expected: Vec<String> = (0..300).map(|n| n.to_string()).collect();
        assert_eq!(confirmed.notes().await.unwrap(), expected);
        // A local handle's casts are taken when their `.await` returns.
        assert_eq!(confirm(&account).await, Ok(()));
        confirmed.stop().await;
        assert_eq!(confirm(&confirmed).await, Err(CallError::Closed));
    })
    .await;
}

/// Item 14: on a real three-node cluster, joining and leaving are
/// confirmed on the node the service (or subscriber) is connected to, and
/// only there: a caller on that node is served from the moment `serve`
/// returns and finds `NoResponders` from the moment `stop` returns; a
/// caller on another node may, until the cluster's routes have carried
/// the change (typically milliseconds), see `NoResponders` after `serve`
/// and `Timeout` after `stop`, and a value published there right after
/// `subscribe` may be lost. Every call still ends by its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_a_cluster_joining_and_leaving_are_confirmed_on_the_serving_node() {
    let Some(cluster) = NatsCluster::start(3) else {
        return;
    };
    tokio::task::block_in_place(|| cluster.routed());
    within(LIMIT, async {
        let deadline = Duration::from_millis(500);
        let serving_client = connect(&cluster.nodes[0]).await;
        let same_node = connect(&cluster.nodes[0]).await;
        let other_node = connect(&cluster.nodes[1]).await;
        for round in 0..3 {
            let name = format!("cluster{round}");
            let account = Account::default().spawn();
            let near = Remote::new(&same_node, &name)
                .timeout(deadline)
                .handle::<Account>();
            let far = Remote::new(&other_node, &name)
                .timeout(deadline)
                .handle::<Account>();
            let serving = Service::new(&serving_client, &name)
                .serve(&account)
                .await
                .unwrap();
            // Right after `serve`: through the same node, every call is
            // served; through another, each is served or `NoResponders`,
            // and within a short while all are served.
            let (near_calls, far_calls) = tokio::join!(
                all((0..100).map(|_| near.deposit(1).owned())),
                all((0..100).map(|_| far.deposit(1).owned())),
            );
            assert!(near_calls.iter().all(Result::is_ok), "{near_calls:?}");
            let refused = far_calls
                .iter()
                .filter(|call| **call == Err(CallError::NoResponders))
                .count();
            assert!(
                far_calls
                    .iter()
                    .all(|call| call.is_ok() || *call == Err(CallError::NoResponders)),
                "{far_calls:?}"
            );
            let settled = std::time::Instant::now();
            while far.deposit(1).await.is_err() {
                assert!(settled.elapsed() < Duration::from_secs(2), "the route never carried the service");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            eprintln!("round {round}: {refused} of 100 calls through another node right after `serve` found no responders");

            // Right after `stop`: through the same node, `NoResponders`
            // at once; through another, every call ends by its deadline.
            serving.stop().await;
            let started = std::time::Instant::now();
            let (near_calls, far_calls) = tokio::join!(
                all((0..100).map(|_| near.deposit(1).owned())),
                all((0..100).map(|_| far.deposit(1).owned())),
            );
            assert!(
                near_calls.iter().all(|call| *call == Err(CallError::NoResponders)),
                "{near_calls:?}"
            );
            assert!(far_calls.iter().all(|call| matches!(
                call,
                Err(CallError::NoResponders | CallError::Timeout)
            )));
            assert!(started.elapsed() < deadline + Duration::from_millis(500));
            let timed_out = far_calls
                .iter()
                .filter(|call| **call == Err(CallError::Timeout))
                .count();
            eprintln!("round {round}: {timed_out} of 100 calls through another node right after `stop` timed out");
        }

        // A subscription on one node, values published through another:
        // what is published once the route has carried the subscription
        // arrives; right after `subscribe`, some may be lost.
        let mut values: Subscription<u64> = patchboard::nats::subscribe(&other_node, "values", 1_000)
            .await
            .unwrap();
        for n in 0..100u64 {
            serving_client
                .publish("values", patchboard_wire(n).into())
                .await
                .unwrap();
        }
        serving_client.flush().await.unwrap();
        let mut received = 0;
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), values.recv()).await {
            received += 1;
        }
        eprintln!("{received} of 100 values published through another node right after `subscribe` arrived");
        assert!(received <= 100);
    })
    .await;
}

/// `n` as patchboard's wire format (`nats::publish` writes it so).
fn patchboard_wire(n: u64) -> Vec<u8> {
    let mut out = vec![patchboard::nats::VERSION];
    out.extend(rmp_serde::to_vec_named(&n).unwrap());
    out
}

/// Makes every call at once and collects their outcomes, in order.
async fn all<T: Send + 'static>(
    calls: impl Iterator<Item = patchboard::OwnedCall<T>>,
) -> Vec<Result<T, CallError>> {
    let tasks: Vec<_> = calls.map(tokio::spawn).collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

/// A small seeded generator (xorshift64*): the soak's choices, replayable
/// from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// This process's resident memory, in bytes (Linux; 0 elsewhere).
fn resident() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Item 20: a seeded, bounded soak across processes and a real three-node
/// cluster. Serving processes (pools of `Account`) and NATS nodes are
/// killed and restarted, a service in this process stops and joins again,
/// and clients on every node make calls with and without deadlines, send
/// confirmed casts in bursts, oversized requests, and garbage on the
/// subjects. At the end: every call ended by its deadline (with 1 s of
/// slack for a loaded machine), no request ran twice, every cast of a burst
/// that `confirm` accepted was delivered, and every client's casts in
/// order; no serving process panicked; this process's memory flat across
/// rounds.
///
/// It prints its seed; `SB_SOAK_SEED=<seed>` replays the same choices
/// (the timing of the machine is not replayed), `SB_SOAK_SECS` sets its
/// length (default 20 s, at most 60).
#[test]
fn soak_across_processes_and_a_cluster_keeps_every_promise() {
    if std::env::var("SB_ROLE").is_ok() {
        return;
    }
    let Some(mut cluster) = NatsCluster::start(3) else {
        return;
    };
    cluster.routed();
    let seed = std::env::var("SB_SOAK_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let secs: u64 = std::env::var("SB_SOAK_SECS")
        .ok()
        .and_then(|secs| secs.parse().ok())
        .unwrap_or(20)
        .min(60);
    eprintln!(
        "soak seed {seed}, {secs} s (replay: SB_SOAK_SEED={seed} cargo test --features nats --test nats soak)"
    );
    let mut rng = Rng(seed | 1);
    let urls: Vec<String> = cluster.nodes.iter().map(NatsServer::url).collect();
    let all_urls = urls.join(",");
    let panics = Arc::new(AtomicUsize::new(0));
    let mut children: Vec<ChildServer> = (0..2)
        .map(|_| ChildServer::start_at(&all_urls, "soakpool", Some(panics.clone())))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let deadline_slack = Duration::from_secs(1);
    let rounds = 4;
    let round_length = Duration::from_secs(secs) / rounds;
    let mut memory = Vec::new();
    runtime.block_on(async {
        let connect_to = |first: usize| {
            // Every node, starting with `first`: a client reconnects to
            // another when its node goes.
            let mut order: Vec<&str> = urls.iter().map(String::as_str).collect();
            order.rotate_left(first);
            let order: Vec<String> = order.into_iter().map(str::to_owned).collect();
            async move {
                async_nats::ConnectOptions::new()
                    .retry_on_initial_connect()
                    .connect(order.as_slice())
                    .await
                    .unwrap()
            }
        };
        let ordered = Account::default().spawn();
        let serving_client = connect_to(0).await;
        let mut serving = Some(
            Service::new(&serving_client, "soakordered")
                .serve(&ordered)
                .await
                .unwrap(),
        );
        let mut clients = Vec::new();
        for at in 0..3 {
            let client = connect_to(at).await;
            let pool = Remote::new(&client, "soakpool")
                .timeout(Duration::from_millis(700))
                .handle::<Account>();
            let casts = Remote::new(&client, "soakordered")
                .timeout(Duration::from_millis(700))
                .confirm_casts()
                .handle::<Account>();
            let calls = Remote::new(&client, "soakordered")
                .timeout(Duration::from_millis(700))
                .handle::<Account>();
            clients.push((client, pool, casts, calls));
        }
        let raw = connect_to(1).await;
        let mut dead_node: Option<usize> = None;
        let mut calls = Vec::new();
        let mut next_id = 0u64;
        let mut next_seq = vec![0u64; clients.len()];
        // Bursts `confirm` accepted: (client, first seq, end seq).
        let mut confirmed = Vec::new();
        let started = std::time::Instant::now();
        for round in 0..rounds {
            let round_end = started + round_length * (round + 1);
            while std::time::Instant::now() < round_end {
                let which = rng.below(clients.len() as u64) as usize;
                let (_, pool, casts, ordered_calls) = &clients[which];
                match rng.below(20) {
                    // Calls, with and without deadlines, on both services:
                    // a few at once, about a thousand a second in all.
                    0..=7 => for _ in 0..1 + rng.below(8) {
                        let own = rng.below(2) == 0;
                        let deadline = if own {
                            Duration::from_millis(50 + rng.below(450))
                        } else {
                            Duration::from_millis(700)
                        };
                        let id = next_id;
                        next_id += 1;
                        let call = if rng.below(2) == 0 {
                            let call = pool.record(id);
                            if own { call.timeout(deadline).owned() } else { call.owned() }
                        } else {
                            let call = ordered_calls.record(id);
                            if own { call.timeout(deadline).owned() } else { call.owned() }
                        };
                        calls.push(tokio::spawn(async move {
                            let sent = std::time::Instant::now();
                            let outcome = call.await;
                            (deadline, sent.elapsed(), outcome)
                        }));
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    },
                    // A burst of confirmed casts, then `confirm`.
                    8..=10 => {
                        let client = which;
                        let first = next_seq[client];
                        let count = 1 + rng.below(120);
                        for seq in first..first + count {
                            casts.note(format!("{client}-{seq}")).await.unwrap();
                        }
                        next_seq[client] = first + count;
                        if confirm(casts).await.is_ok() {
                            confirmed.push((client, first, first + count));
                        }
                    }
                    // Over the NATS server's max_payload (1 MiB).
                    11 => match pool.store(vec![0; 1_100_000]).await {
                        Err(CallError::Transport(_)) => {}
                        other => panic!("seed {seed}: an oversized request got {other:?}"),
                    },
                    // Garbage on the subjects.
                    12 => {
                        let subject = ["soakpool.record", "soakordered.note", "soakpool.store"]
                            [rng.below(3) as usize];
                        let mut junk = vec![0u8; rng.below(64) as usize];
                        for byte in &mut junk {
                            *byte = rng.below(256) as u8;
                        }
                        let _ = raw.publish(subject, junk.into()).await;
                    }
                    // A NATS node dies, or comes back.
                    13 => match dead_node.take() {
                        Some(node) => tokio::task::block_in_place(|| cluster.nodes[node].restart()),
                        None => {
                            // Never the ordered service's own node: its
                            // order is checked across the others' faults.
                            let node = 1 + rng.below(2) as usize;
                            cluster.nodes[node].kill();
                            dead_node = Some(node);
                        }
                    },
                    // A serving process dies, or another joins.
                    14 => {
                        if children.len() > 1 && rng.below(2) == 0 {
                            let at = rng.below(children.len() as u64) as usize;
                            children.remove(at).kill();
                        } else if children.len() < 3 {
                            let urls = all_urls.clone();
                            let panics = panics.clone();
                            let child = tokio::task::spawn_blocking(move || {
                                ChildServer::start_at(&urls, "soakpool", Some(panics))
                            })
                            .await
                            .unwrap();
                            children.push(child);
                        }
                    }
                    // The ordered service leaves, or joins again.
                    15 => match serving.take() {
                        Some(running) => running.stop().await,
                        None => {
                            serving = Service::new(&serving_client, "soakordered")
                                .serve(&ordered)
                                .await
                                .ok();
                        }
                    },
                    _ => tokio::time::sleep(Duration::from_millis(rng.below(20))).await,
                }
            }
            // The round's calls, each ended by its deadline.
            for call in calls.drain(..) {
                let (deadline, took, outcome) = call.await.unwrap();
                assert!(
                    took <= deadline + deadline_slack,
                    "seed {seed}: a call with a {deadline:?} deadline took {took:?} ({outcome:?})"
                );
                match outcome {
                    Ok(true) => {}
                    Ok(false) => panic!("seed {seed}: a request ran twice"),
                    Err(CallError::Timeout | CallError::NoResponders | CallError::Transport(_)) => {}
                    Err(other) => panic!("seed {seed}: unexpected {other:?}"),
                }
            }
            memory.push(resident());
            eprintln!(
                "soak round {round}: {} ids, {} serving processes, node down: {dead_node:?}, resident {} MiB",
                next_id,
                children.len(),
                memory.last().unwrap() / (1 << 20)
            );
        }
        if let Some(node) = dead_node.take() {
            tokio::task::block_in_place(|| cluster.nodes[node].restart());
        }
        // Every client's casts in order; every confirmed burst whole.
        let notes = ordered.notes().await.unwrap();
        let mut last: Vec<Option<u64>> = vec![None; clients.len()];
        let mut delivered: Vec<HashSet<u64>> = vec![HashSet::new(); clients.len()];
        for note in &notes {
            let Some((client, seq)) = note.split_once('-') else {
                continue; // Garbage that happened to decode.
            };
            let (Ok(client), Ok(seq)) = (client.parse::<usize>(), seq.parse::<u64>()) else {
                continue;
            };
            assert!(
                last[client].is_none_or(|last| last < seq),
                "seed {seed}: client {client}'s cast {seq} after {:?}",
                last[client]
            );
            last[client] = Some(seq);
            delivered[client].insert(seq);
        }
        for (client, first, end) in confirmed {
            for seq in first..end {
                assert!(
                    delivered[client].contains(&seq),
                    "seed {seed}: client {client}'s cast {seq} was confirmed but not delivered"
                );
            }
        }
        assert!(ordered.recorded().await.unwrap() > 0, "seed {seed}: the soak made calls");
    });
    drop(runtime);
    for mut child in children {
        child.kill();
    }
    assert_eq!(
        panics.load(Ordering::SeqCst),
        0,
        "seed {seed}: a serving process panicked"
    );
    // Flat: the last round holds no more than the first and some slack
    // (allocator, buffers grown once).
    let (first, last) = (memory[0], *memory.last().unwrap());
    assert!(
        last <= first + first / 2 + (32 << 20),
        "seed {seed}: memory grew from {first} to {last} bytes across the rounds"
    );
}

#[path = "refusal.rs"]
mod refusal;
