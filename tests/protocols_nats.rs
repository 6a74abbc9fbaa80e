//! Protocols over a real `nats-server` (the `nats` feature): a protocol
//! declared `#[protocol(remote)]` crosses NATS with the servers that
//! implement it, so one client type reaches a local server and remote ones
//! alike. Run with `cargo test --features nats --test protocols_nats`.

#[cfg(feature = "nats")]
#[allow(dead_code)]
mod common;
#[cfg(feature = "nats")]
#[allow(dead_code)]
#[path = "common/nats_server.rs"]
mod nats_server;

#[cfg(feature = "nats")]
mod with_nats {
    use std::collections::HashMap;
    use std::time::Duration;

    use patchboard::nats::{Remote, Service, async_nats};
    use patchboard::{CallError, Server, protocol, server};

    use super::common::within;
    use super::nats_server::NatsServer;

    /// Something that stores sessions, in any process.
    #[protocol(remote)]
    pub trait Store {
        /// The value of `key`, if any.
        fn get(&self, key: String) -> Option<String>;
        /// Sets `key`; returns the value it replaced.
        fn put(&mut self, key: String, value: String) -> Option<String>;
        /// Notes `text`, one-way.
        #[cast]
        fn note(&mut self, text: String);
        /// How many keys and notes are stored.
        async fn count(&self) -> usize;
        /// Which implementation answers.
        fn kind(&self) -> String;
    }

    /// Sessions in a map.
    #[derive(Default)]
    pub struct Memory {
        map: HashMap<String, String>,
        notes: Vec<String>,
    }

    #[server(remote, protocols(Store))]
    impl Memory {
        /// The notes: an inherent message, remote too.
        fn notes(&self) -> Vec<String> {
            self.notes.clone()
        }
    }

    #[server]
    impl Store for Memory {
        fn get(&self, key: String) -> Option<String> {
            self.map.get(&key).cloned()
        }

        fn put(&mut self, key: String, value: String) -> Option<String> {
            self.map.insert(key, value)
        }

        fn note(&mut self, text: String) {
            self.notes.push(text);
        }

        async fn count(&self) -> usize {
            self.map.len() + self.notes.len()
        }

        fn kind(&self) -> String {
            "memory".to_owned()
        }
    }

    /// Sessions in a list: a second implementation, with no messages of
    /// its own.
    #[derive(Default)]
    pub struct List {
        entries: Vec<(String, String)>,
        notes: usize,
    }

    #[server(remote, protocols(Store))]
    impl List {}

    #[server]
    impl Store for List {
        fn get(&self, key: String) -> Option<String> {
            self.entries
                .iter()
                .rev()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
        }

        fn put(&mut self, key: String, value: String) -> Option<String> {
            let old = self.get(key.clone());
            self.entries.retain(|(k, _)| *k != key);
            self.entries.push((key, value));
            old
        }

        fn note(&mut self, _text: String) {
            self.notes += 1;
        }

        async fn count(&self) -> usize {
            self.entries.len() + self.notes
        }

        fn kind(&self) -> String {
            "list".to_owned()
        }
    }

    const LIMIT: Duration = Duration::from_secs(60);

    async fn connect(server: &NatsServer) -> async_nats::Client {
        async_nats::connect(server.url())
            .await
            .expect("the test's nats-server accepts connections")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_client_type_reaches_local_and_remote_implementations() {
        let Some(nats) = NatsServer::start() else {
            return;
        };
        within(LIMIT, async {
            // Two implementations served over NATS, each by its own
            // service, and one local.
            let memory = Memory::default().spawn();
            let _memory_service = Service::new(&connect(&nats).await, "sessions-memory")
                .serve(&memory)
                .await
                .unwrap();
            let list = List::default().spawn();
            let _list_service = Service::new(&connect(&nats).await, "sessions-list")
                .serve(&list)
                .await
                .unwrap();
            let remote_memory =
                Remote::new(&connect(&nats).await, "sessions-memory").handle::<Memory>();
            let remote_list = Remote::new(&connect(&nats).await, "sessions-list").handle::<List>();
            let stores: Vec<StoreClient> = vec![
                StoreClient::from(remote_memory.clone()),
                StoreClient::from(remote_list),
                StoreClient::from(Memory::default().spawn()),
            ];
            let mut kinds = Vec::new();
            for store in &stores {
                kinds.push(store.kind().await.unwrap());
                assert_eq!(store.put("a".into(), "1".into()).await, Ok(None));
                assert_eq!(
                    store.put("a".into(), "2".into()).await,
                    Ok(Some("1".into()))
                );
                assert_eq!(store.get("a".into()).await, Ok(Some("2".into())));
                assert_eq!(store.get("b".into()).await, Ok(None));
                // One-way messages sent before a call are served before it.
                for n in 0..10 {
                    store.note(format!("note {n}")).await.unwrap();
                }
                assert_eq!(store.count().await, Ok(11));
                // The options cross too.
                let timed = store.get("a".into()).timeout(Duration::from_secs(5)).await;
                assert_eq!(timed, Ok(Some("2".into())));
                store.put("c".into(), "3".into()).no_wait().await.unwrap();
                assert_eq!(store.get("c".into()).await, Ok(Some("3".into())));
            }
            assert_eq!(kinds, ["memory", "list", "memory"]);
            // The server's own messages still cross beside the protocol's.
            assert_eq!(remote_memory.notes().await.unwrap().len(), 10);
            assert_eq!(memory.notes().await.unwrap()[0], "note 0");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_protocol_call_to_nobody_ends_with_no_responders() {
        let Some(nats) = NatsServer::start() else {
            return;
        };
        within(LIMIT, async {
            let nobody = Remote::new(&connect(&nats).await, "sessions-nobody")
                .timeout(Duration::from_secs(3600))
                .handle::<Memory>();
            let store = StoreClient::from(nobody);
            assert_eq!(store.get("a".into()).await, Err(CallError::NoResponders));
        })
        .await;
    }
}

#[cfg(not(feature = "nats"))]
#[test]
fn protocol_nats_tests_need_the_nats_feature() {
    eprintln!(
        "SKIPPED: protocols over NATS (run them with `cargo test --features nats --test protocols_nats`)"
    );
}
