//! Protocols (`#[protocol]`): one trait of message methods, several
//! servers implementing it, one client type for all of them.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{LIMIT, within};
use patchboard::{CallError, Server, protocol, server};
use tokio::sync::Notify;

/// Something that stores sessions.
#[protocol]
pub trait SessionStore {
    /// The value of `key`, if any.
    fn get(&self, key: String) -> Option<String>;
    /// Sets `key`; returns the value it replaced.
    fn put(&mut self, key: String, value: String) -> Option<String>;
    /// Forgets `key`, one-way.
    #[cast]
    fn forget(&mut self, key: String);
    /// How many keys are stored.
    async fn count(&self) -> usize;
    /// Waits until `release` is notified (after notifying `entered`).
    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>);
    /// Which implementation answers.
    #[priority]
    fn kind(&self) -> String;
}

/// Counts what it is asked.
#[protocol]
pub trait Metrics {
    /// Requests served so far through `SessionStore`.
    fn served(&self) -> u64;
}

/// Sessions in a map.
#[derive(Default)]
pub struct MemoryStore {
    map: HashMap<String, String>,
    served: u64,
}

#[server(protocols(SessionStore, Metrics), capacity = 2)]
impl MemoryStore {
    /// An inherent message beside the protocols'.
    pub fn clear(&mut self) -> usize {
        let n = self.map.len();
        self.map.clear();
        n
    }
}

#[server]
impl SessionStore for MemoryStore {
    fn get(&self, key: String) -> Option<String> {
        self.map.get(&key).cloned()
    }

    fn put(&mut self, key: String, value: String) -> Option<String> {
        self.served += 1;
        self.map.insert(key, value)
    }

    fn forget(&mut self, key: String) {
        self.map.remove(&key);
    }

    async fn count(&self) -> usize {
        self.map.len()
    }

    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }

    fn kind(&self) -> String {
        "memory".to_owned()
    }
}

#[server]
impl Metrics for MemoryStore {
    fn served(&self) -> u64 {
        self.served
    }
}

/// Sessions in a list, newest last: another implementation.
#[derive(Default)]
pub struct ListStore {
    entries: Vec<(String, String)>,
}

#[server(protocols(SessionStore))]
impl ListStore {}

#[server]
impl SessionStore for ListStore {
    fn get(&self, key: String) -> Option<String> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    fn put(&mut self, key: String, value: String) -> Option<String> {
        let old = self.get(key.clone());
        self.entries.push((key, value));
        old
    }

    fn forget(&mut self, key: String) {
        self.entries.retain(|(k, _)| *k != key);
    }

    async fn count(&self) -> usize {
        let mut keys: Vec<&String> = self.entries.iter().map(|(k, _)| k).collect();
        keys.sort();
        keys.dedup();
        keys.len()
    }

    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }

    fn kind(&self) -> String {
        "list".to_owned()
    }
}

#[tokio::test]
async fn two_implementations_behind_one_client_type_in_a_vec() {
    within(LIMIT, async {
        let memory = MemoryStore::default().spawn();
        let list = ListStore::default().spawn();
        let stores: Vec<SessionStoreClient> = vec![
            SessionStoreClient::from(memory.clone()),
            SessionStoreClient::from(list.clone()),
        ];
        for store in &stores {
            assert_eq!(store.put("a".into(), "1".into()).await, Ok(None));
            assert_eq!(
                store.put("a".into(), "2".into()).await,
                Ok(Some("1".into()))
            );
            assert_eq!(store.put("b".into(), "3".into()).await, Ok(None));
            store.forget("b".into()).await.unwrap();
            assert_eq!(store.get("a".into()).await, Ok(Some("2".into())));
            assert_eq!(store.get("b".into()).await, Ok(None));
            assert_eq!(store.count().await, Ok(1));
        }
        let kinds: Vec<String> = {
            let mut kinds = Vec::new();
            for store in &stores {
                kinds.push(store.kind().await.unwrap());
            }
            kinds
        };
        assert_eq!(kinds, ["memory", "list"]);
        // The concrete handle still has the server's own messages, and the
        // server another protocol.
        assert_eq!(memory.clear().await, Ok(1));
        assert_eq!(MetricsClient::from(memory.clone()).served().await, Ok(3));
        assert_eq!(stores[0].count().await, Ok(0));
        assert_eq!(stores[1].count().await, Ok(1));
    })
    .await;
}

#[tokio::test]
async fn a_client_keeps_its_server_alive_and_ends_with_it() {
    within(LIMIT, async {
        let handle = MemoryStore::default().spawn();
        let client = SessionStoreClient::from(handle.clone());
        let copy = client.clone();
        drop(handle);
        assert_eq!(copy.put("k".into(), "v".into()).await, Ok(None));
        assert!(!client.is_closed());
        client.stop().await;
        assert!(copy.is_closed());
        assert_eq!(copy.get("k".into()).await, Err(CallError::Closed));
        let _ = copy.closed().await;
        assert!(format!("{client:?}").contains("SessionStoreClient"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_through_a_client_take_every_option() {
    within(LIMIT, async {
        // Capacity 2 per lane.
        let handle = MemoryStore::default().spawn();
        let store = SessionStoreClient::from(handle.clone());
        store.put("k".into(), "v".into()).await.unwrap();

        // Held in a handler: later requests queue up behind it.
        let entered = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let holding = {
            let store = store.clone();
            let (entered, release) = (entered.clone(), release.clone());
            tokio::spawn(async move { store.hold(entered, release).await })
        };
        entered.notified().await;

        // `.timeout`: no answer in time (its request stays queued, and is
        // skipped when its turn comes).
        let late = store
            .get("k".into())
            .timeout(Duration::from_millis(20))
            .await;
        assert_eq!(late, Err(CallError::Timeout));

        // `.no_wait`: enqueued; the handler runs later.
        store.put("n".into(), "1".into()).no_wait().await.unwrap();
        common::until_queued(|| handle.queued(), 2).await;

        // `.try_now`: the normal lane is full.
        assert_eq!(
            store.put("q".into(), "2".into()).try_now().await,
            Err(CallError::Full)
        );
        assert_eq!(
            store.put("q".into(), "2".into()).try_now().no_wait().await,
            Err(CallError::Full)
        );

        // `.priority`: sent after the queued requests, served before them.
        let priority = {
            let store = store.clone();
            tokio::spawn(async move { store.count().priority(1).await })
        };
        common::until_queued(|| handle.queued(), 3).await;

        release.notify_one();
        holding.await.unwrap().unwrap();
        assert_eq!(priority.await.unwrap(), Ok(1), "served before `put n`");
        assert_eq!(store.get("n".into()).await, Ok(Some("1".into())));

        // `.blocking`: from a plain thread ...
        let blocking = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.get("n".into()).blocking())
        };
        assert_eq!(blocking.await.unwrap(), Ok(Some("1".into())));
        // ... refused on a runtime worker ...
        let on_worker = {
            let store = store.clone();
            tokio::spawn(async move { store.get("n".into()).blocking() })
        };
        assert_eq!(on_worker.await.unwrap(), Err(CallError::BlockingInRuntime));
        // ... and `.no_wait().blocking()`.
        let forget = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.forget("n".into()).no_wait().blocking())
        };
        forget.await.unwrap().unwrap();

        // `.owned()`: a `'static` future, for `tokio::spawn`.
        let owned = tokio::spawn(store.put("o".into(), "3".into()).owned());
        assert_eq!(owned.await.unwrap(), Ok(None));
        assert_eq!(store.get("n".into()).await, Ok(None));
        assert_eq!(store.get("o".into()).await, Ok(Some("3".into())));
    })
    .await;
}

/// A rate limiter: a protocol with a deferred reply, implemented by a
/// generic server.
#[protocol]
pub trait Limiter {
    /// Whether `client` may go on; answered through `reply`.
    fn allow(&mut self, client: String, reply: patchboard::Reply<bool>);
}

/// At most `limit` requests per key.
pub struct Counting<K> {
    limit: usize,
    seen: Vec<K>,
}

#[server(protocols(Limiter))]
impl<K: From<String> + PartialEq> Counting<K> {}

#[server]
impl<K: From<String> + PartialEq> Limiter for Counting<K> {
    fn allow(&mut self, client: String, reply: patchboard::Reply<bool>) {
        let key = K::from(client);
        let count = self.seen.iter().filter(|k| **k == key).count();
        if count < self.limit {
            self.seen.push(key);
        }
        let _ = reply.send(count < self.limit);
    }
}

#[tokio::test]
async fn a_generic_server_answers_a_deferred_protocol_method() {
    within(LIMIT, async {
        let limiter = LimiterClient::from(
            Counting::<String> {
                limit: 2,
                seen: Vec::new(),
            }
            .spawn(),
        );
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(limiter.allow("ada".into()).await.unwrap());
        }
        assert_eq!(answers, [true, true, false]);
        assert_eq!(limiter.allow("bob".into()).await, Ok(true));
    })
    .await;
}

/// The code under test depends on the protocol, not on a server.
async fn sign_in(store: &SessionStoreClient, user: &str) -> Result<String, CallError> {
    let session = format!("session-of-{user}");
    if store.get(session.clone()).await?.is_none() {
        store.put(session.clone(), user.to_owned()).await?;
    }
    Ok(session)
}

/// A fake: a small server implementing the protocol that records what it
/// was asked, answering from a script.
#[derive(Default)]
pub struct Recording {
    calls: Vec<String>,
}

#[server(protocols(SessionStore))]
impl Recording {
    /// What the fake was asked, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.clone()
    }
}

#[server]
impl SessionStore for Recording {
    fn get(&self, key: String) -> Option<String> {
        // A `&self` method cannot record: answer "absent", and let `put`
        // show that `get` came first.
        let _ = key;
        None
    }

    fn put(&mut self, key: String, value: String) -> Option<String> {
        self.calls.push(format!("put {key} = {value}"));
        None
    }

    fn forget(&mut self, key: String) {
        self.calls.push(format!("forget {key}"));
    }

    async fn count(&self) -> usize {
        0
    }

    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }

    fn kind(&self) -> String {
        "fake".to_owned()
    }
}

#[tokio::test]
async fn a_recording_fake_stands_in_for_the_real_store() {
    within(LIMIT, async {
        // The real store.
        let real = SessionStoreClient::from(MemoryStore::default().spawn());
        assert_eq!(sign_in(&real, "ada").await, Ok("session-of-ada".into()));
        assert_eq!(
            real.get("session-of-ada".into()).await,
            Ok(Some("ada".into()))
        );

        // The fake, through the same client type.
        let fake = Recording::default().spawn();
        let store = SessionStoreClient::from(fake.clone());
        assert_eq!(sign_in(&store, "bob").await, Ok("session-of-bob".into()));
        assert_eq!(
            fake.calls().await,
            Ok(vec!["put session-of-bob = bob".to_owned()])
        );
    })
    .await;
}
