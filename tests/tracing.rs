//! The `tracing` feature: a span per request with its server, message, call
//! id, queue wait, run time and outcome; events for start, stop, panic and
//! restart. Run with `cargo test --features tracing --test tracing`.
#![cfg(feature = "tracing")]

mod common;
#[cfg(feature = "nats")]
#[path = "common/nats_server.rs"]
mod nats_server;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{PAUSED_LIMIT, hold, until_queued, within};
use patchboard::{Builder, CallError, PanicPolicy, Restart, server};
use tokio::sync::Notify;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Fields by name, as text.
pub(crate) type Fields = HashMap<String, String>;

#[derive(Default)]
struct Visitor(Fields);

impl Visit for Visitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

/// A subscriber that keeps every span's fields and every event, with the
/// span that was entered when it happened.
#[derive(Default)]
pub(crate) struct Capture {
    next: AtomicU64,
    spans: Mutex<Vec<(String, Fields)>>,
    events: Mutex<Vec<(Fields, Option<u64>)>>,
    entered: Mutex<Vec<u64>>,
    /// Each span's parent, by index: explicit, or the span entered when it
    /// was made.
    parents: Mutex<Vec<Option<u64>>>,
    /// Each span's metadata, by index, for `current_span`.
    metadata: Mutex<Vec<&'static Metadata<'static>>>,
}

impl Capture {
    fn requests(&self) -> Vec<Fields> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .filter(|(name, _)| name == "request")
            .map(|(_, fields)| fields.clone())
            .collect()
    }

    fn events(&self) -> Vec<(Fields, Option<u64>)> {
        self.events.lock().unwrap().clone()
    }

    /// Every span as (id, name, `message` field, parent id).
    fn tree(&self) -> Vec<(u64, String, Option<String>, Option<u64>)> {
        let spans = self.spans.lock().unwrap();
        let parents = self.parents.lock().unwrap();
        spans
            .iter()
            .zip(parents.iter())
            .enumerate()
            .map(|(index, ((name, fields), parent))| {
                (
                    index as u64 + 1,
                    name.clone(),
                    fields.get("message").cloned(),
                    *parent,
                )
            })
            .collect()
    }

    fn messages(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|(fields, _)| fields.get("message").cloned())
            .collect()
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut visitor = Visitor::default();
        span.record(&mut visitor);
        let parent = match span.parent() {
            Some(parent) => Some(parent.into_u64()),
            None if span.is_contextual() => self.entered.lock().unwrap().last().copied(),
            None => None,
        };
        self.parents.lock().unwrap().push(parent);
        self.metadata.lock().unwrap().push(span.metadata());
        let mut spans = self.spans.lock().unwrap();
        spans.push((span.metadata().name().to_owned(), visitor.0));
        self.next.fetch_add(1, Ordering::SeqCst);
        Id::from_u64(spans.len() as u64)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut visitor = Visitor::default();
        values.record(&mut visitor);
        let mut spans = self.spans.lock().unwrap();
        let index = usize::try_from(span.into_u64()).unwrap() - 1;
        spans[index].1.extend(visitor.0);
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut visitor = Visitor::default();
        event.record(&mut visitor);
        let current = self.entered.lock().unwrap().last().copied();
        self.events.lock().unwrap().push((visitor.0, current));
    }

    fn enter(&self, span: &Id) {
        self.entered.lock().unwrap().push(span.into_u64());
    }

    fn exit(&self, _: &Id) {
        self.entered.lock().unwrap().pop();
    }

    /// What `Span::current()` asks: the span entered last.
    fn current_span(&self) -> tracing_core::span::Current {
        let Some(id) = self.entered.lock().unwrap().last().copied() else {
            return tracing_core::span::Current::none();
        };
        let metadata = self.metadata.lock().unwrap()[usize::try_from(id).unwrap() - 1];
        tracing_core::span::Current::new(Id::from_u64(id), metadata)
    }
}

pub(crate) fn capture() -> (Arc<Capture>, tracing::subscriber::DefaultGuard) {
    let capture = Arc::new(Capture::default());
    let guard = tracing::subscriber::set_default(capture.clone());
    (capture, guard)
}

#[derive(Debug, PartialEq)]
struct Refused;

#[derive(Clone, Default)]
struct Bank {
    balance: u64,
}

#[server(capacity = 8)]
impl Bank {
    async fn deposit(&mut self, amount: u64) -> u64 {
        tracing::info!(amount, "depositing");
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.balance += amount;
        self.balance
    }

    fn withdraw(&mut self, amount: u64) -> Result<u64, Refused> {
        self.balance = self.balance.checked_sub(amount).ok_or(Refused)?;
        Ok(self.balance)
    }

    #[cancellable]
    async fn slow(&self) -> u64 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        0
    }

    fn explode(&self) {
        panic!("boom");
    }

    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }
}

#[tokio::test(start_paused = true)]
async fn every_request_has_a_span_with_its_server_message_call_id_and_timings() {
    let (capture, _guard) = capture();
    within(PAUSED_LIMIT, async {
        let bank = Builder::new(Bank::default()).name("bank").spawn();
        let release = hold(|entered, release| bank.hold(entered, release).owned()).await;
        let queued = tokio::spawn(bank.deposit(10).owned());
        until_queued(|| bank.queued(), 1).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        release.notify_one();
        assert_eq!(queued.await.unwrap(), Ok(10));
        assert_eq!(bank.deposit(5).await, Ok(15));

        let requests = capture.requests();
        let deposits: Vec<_> = requests
            .iter()
            .filter(|fields| fields["message"] == "deposit")
            .collect();
        assert_eq!(deposits.len(), 2);
        for span in &deposits {
            assert_eq!(span["server"], "bank");
            assert_eq!(span["server_id"], bank.id().get().to_string());
            assert_eq!(span["outcome"], "ok");
            assert_eq!(span["run_us"], "5000", "the handler sleeps 5 ms");
        }
        assert_eq!(
            deposits[0]["queue_wait_us"], "30000",
            "queued behind a 30 ms hold"
        );
        assert_eq!(deposits[1]["queue_wait_us"], "0");
        assert_ne!(deposits[0]["call_id"], deposits[1]["call_id"]);
        // A user's event inside the handler belongs to the request's span.
        let depositing: Vec<_> = capture
            .events()
            .into_iter()
            .filter(|(fields, _)| fields.get("message").is_some_and(|m| m == "depositing"))
            .collect();
        assert_eq!(depositing.len(), 2);
        assert!(depositing.iter().all(|(_, span)| span.is_some()));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_span_tells_ok_error_panic_and_cancelled_apart() {
    let (capture, _guard) = capture();
    within(PAUSED_LIMIT, async {
        let bank = Builder::new(Bank { balance: 10 })
            .on_panic(PanicPolicy::Continue)
            .spawn();
        assert_eq!(bank.withdraw(4).await, Ok(Ok(6)));
        assert_eq!(bank.withdraw(100).await, Ok(Err(Refused)));
        assert!(matches!(bank.explode().await, Err(CallError::Panicked(_))));
        // Dropped at its await when its caller times out.
        let late = bank.slow().timeout(Duration::from_millis(10)).await;
        assert_eq!(late, Err(CallError::Timeout));
        // Skipped: its caller gave up while it was still queued.
        let release = hold(|entered, release| bank.hold(entered, release).owned()).await;
        let skipped = bank.withdraw(1).timeout(Duration::from_millis(10)).await;
        assert_eq!(skipped, Err(CallError::Timeout));
        release.notify_one();
        assert_eq!(bank.withdraw(1).await, Ok(Ok(5)));

        let outcomes: Vec<(String, String)> = capture
            .requests()
            .into_iter()
            .filter(|fields| fields["message"] != "hold")
            .map(|fields| (fields["message"].clone(), fields["outcome"].clone()))
            .collect();
        let expected = [
            ("withdraw", "ok"),
            ("withdraw", "error"),
            ("explode", "panic"),
            ("slow", "cancelled"),
            ("withdraw", "cancelled"),
            ("withdraw", "ok"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(m, o)| ((*m).to_owned(), (*o).to_owned()))
            .collect();
        assert_eq!(outcomes, expected);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn start_stop_panic_and_restart_are_events() {
    let (capture, _guard) = capture();
    within(PAUSED_LIMIT, async {
        let bank = Builder::new(Bank::default())
            .name("vault")
            .restart(Restart::new(Bank::default))
            .spawn();
        assert!(matches!(bank.explode().await, Err(CallError::Panicked(_))));
        assert_eq!(bank.withdraw(0).await, Ok(Ok(0)), "restarted");
        bank.stop().await;

        let messages = capture.messages();
        let expected = [
            "server started",
            "handler panicked",
            "server restarting",
            "server started",
            "server stopped",
        ];
        assert_eq!(messages, expected);
        let events = capture.events();
        assert!(events.iter().all(|(fields, _)| fields["server"] == "vault"));
        let id = bank.id().get().to_string();
        assert!(events.iter().all(|(fields, _)| fields["server_id"] == id));
        assert_eq!(events[1].0["panic"], "boom");
        assert_eq!(events[4].0["reason"], "stopped by a handle");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_supervisor_traces_what_happens_to_its_children() {
    let (capture, _guard) = capture();
    within(PAUSED_LIMIT, async {
        let supervisor = patchboard::SupervisorBuilder::new(patchboard::Strategy::OneForOne)
            .child(patchboard::Child::new(Bank::default).name("vault"))
            .start()
            .await
            .unwrap();
        let bank = supervisor.child::<Bank>("vault").unwrap();
        assert!(matches!(bank.explode().await, Err(CallError::Panicked(_))));
        assert_eq!(bank.withdraw(0).await, Ok(Ok(0)), "restarted");
        supervisor.shutdown().await;

        let supervised: Vec<(String, Fields)> = capture
            .events()
            .into_iter()
            .filter(|(fields, _)| fields.contains_key("supervisor"))
            .map(|(fields, _)| (fields["message"].clone(), fields))
            .collect();
        let messages: Vec<&str> = supervised.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(
            messages,
            ["child started", "child restarted", "child ended"]
        );
        let id = bank.id().to_string();
        assert!(supervised.iter().all(|(_, fields)| fields["child"] == id));
        assert!(
            supervised
                .iter()
                .all(|(_, fields)| fields["name"] == "vault")
        );
        assert_eq!(supervised[1].1["reason"], "handler panicked: boom");
    })
    .await;
}

/// A server whose handler calls the bank: caller → relay → bank.
struct Relay {
    bank: BankHandle,
}

#[server]
impl Relay {
    async fn forward(&self, amount: u64) -> Result<u64, CallError> {
        self.bank.deposit(amount).await
    }

    async fn check(&self) -> Result<Result<u64, Refused>, CallError> {
        self.bank.withdraw(0).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_span_is_a_child_of_its_callers_span_through_every_server_it_passes() {
    use tracing::Instrument;

    let (capture, _guard) = capture();
    within(PAUSED_LIMIT, async {
        let bank = Builder::new(Bank::default()).name("bank").spawn();
        let relay = Builder::new(Relay { bank: bank.clone() })
            .name("relay")
            .spawn();
        let outer = tracing::info_span!("caller");
        // Through the mailbox (an async message), and served by its caller
        // (a synchronous one, on an idle server), each from inside a
        // handler of another server.
        async {
            assert_eq!(relay.forward(5).await, Ok(Ok(5)));
            assert_eq!(relay.check().await, Ok(Ok(Ok(5))));
        }
        .instrument(outer)
        .await;
        // A call made outside any span: its request has none for parent.
        assert_eq!(bank.withdraw(0).await, Ok(Ok(5)));

        let tree = capture.tree();
        let find = |message: &str| -> Vec<(u64, Option<u64>)> {
            tree.iter()
                .filter(|(_, name, field, _)| {
                    name == "request" && field.as_deref() == Some(message)
                })
                .map(|(id, _, _, parent)| (*id, *parent))
                .collect()
        };
        let caller = tree
            .iter()
            .find(|(_, name, ..)| name == "caller")
            .unwrap()
            .0;
        let [(forward, forward_parent)] = find("forward")[..] else {
            panic!("{tree:?}")
        };
        let [(_, deposit_parent)] = find("deposit")[..] else {
            panic!("{tree:?}")
        };
        let [(check, check_parent)] = find("check")[..] else {
            panic!("{tree:?}")
        };
        let withdraws = find("withdraw");
        assert_eq!(forward_parent, Some(caller));
        assert_eq!(deposit_parent, Some(forward));
        assert_eq!(check_parent, Some(caller));
        assert_eq!(withdraws.len(), 2, "{tree:?}");
        assert_eq!(
            withdraws[0].1,
            Some(check),
            "served by its caller, the relay"
        );
        assert_eq!(withdraws[1].1, None, "no caller span: a root");
    })
    .await;
}

/// Across processes: the caller's trace and span travel in a W3C
/// `traceparent` NATS header, over a real nats-server. (Both sides in this
/// process, on separate connections, so that one subscriber sees both.)
/// Run with `cargo test --features tracing,nats --test tracing`.
#[cfg(feature = "nats")]
mod over_nats {
    use super::{Capture, capture};
    use crate::common::within;
    use crate::nats_server::NatsServer;
    use patchboard::nats::{Remote, Service, async_nats};
    use patchboard::{CallError, Server, server};
    use std::time::Duration;
    use tracing::Instrument;

    #[derive(Default)]
    pub struct Back {
        total: u64,
    }

    #[server(remote)]
    impl Back {
        fn deposit(&mut self, amount: u64) -> u64 {
            self.total += amount;
            self.total
        }
    }

    pub struct Front {
        back: BackHandle,
    }

    #[server(remote)]
    impl Front {
        /// Passes `amount` on to the back, itself remote.
        async fn forward(&self, amount: u64) -> Result<u64, String> {
            self.back.deposit(amount).await.map_err(|e| e.to_string())
        }
    }

    /// The fields of the spans named `name` whose `message` is `message`,
    /// with each span's id and parent.
    fn spans(
        capture: &Capture,
        name: &str,
        message: &str,
    ) -> Vec<(u64, Option<u64>, super::Fields)> {
        let spans = capture.spans.lock().unwrap();
        let parents = capture.parents.lock().unwrap();
        spans
            .iter()
            .zip(parents.iter())
            .enumerate()
            .filter(|(_, ((span, fields), _))| {
                span == name && fields.get("message").map(String::as_str) == Some(message)
            })
            .map(|(index, ((_, fields), parent))| (index as u64 + 1, *parent, fields.clone()))
            .collect()
    }

    #[tokio::test]
    async fn a_remote_requests_span_names_its_callers_trace_and_span_at_every_hop() {
        let Some(nats) = NatsServer::start() else {
            return;
        };
        let (capture, _guard) = capture();
        within(Duration::from_secs(60), async {
            let connect = || async {
                async_nats::connect(nats.url())
                    .await
                    .expect("the test's nats-server accepts connections")
            };
            let back = Back::default().spawn();
            let _back_service = Service::new(&connect().await, "back")
                .serve(&back)
                .await
                .unwrap();
            let back_remote = Remote::new(&connect().await, "back").handle::<Back>();
            let front = Front { back: back_remote }.spawn();
            let _front_service = Service::new(&connect().await, "front")
                .serve(&front)
                .await
                .unwrap();
            let front_remote = Remote::new(&connect().await, "front").handle::<Front>();

            let caller = tracing::info_span!("caller");
            let caller_id = caller.id().unwrap().into_u64();
            // The span current where the call is made is its caller's span.
            let answer = async { front_remote.forward(5).await }
                .instrument(caller)
                .await;
            assert_eq!(answer, Ok::<_, CallError>(Ok(5)));

            // Hop 1: the caller → the front, in another "process".
            let [(front_remote_span, _, front_fields)] =
                &spans(&capture, "remote request", "forward")[..]
            else {
                panic!("one remote request span for forward: {:?}", capture.tree())
            };
            let trace_id = front_fields["trace_id"].clone();
            assert_eq!(trace_id.len(), 32);
            assert_eq!(
                front_fields["parent_id"],
                format!("{caller_id:016x}"),
                "its parent: the caller's span"
            );
            let [(forward, forward_parent, forward_fields)] =
                &spans(&capture, "request", "forward")[..]
            else {
                panic!("one request span for forward")
            };
            assert_eq!(
                *forward_parent,
                Some(*front_remote_span),
                "the handler's span under it"
            );
            assert_eq!(forward_fields["trace_id"], trace_id);

            // Hop 2: the front's handler → the back: the same trace, the
            // front's request span as the parent.
            let [(back_remote_span, _, back_fields)] =
                &spans(&capture, "remote request", "deposit")[..]
            else {
                panic!("one remote request span for deposit")
            };
            assert_eq!(
                back_fields["trace_id"], trace_id,
                "one trace across both hops"
            );
            assert_eq!(back_fields["parent_id"], format!("{forward:016x}"));
            let [(_, deposit_parent, _)] = &spans(&capture, "request", "deposit")[..] else {
                panic!("one request span for deposit")
            };
            assert_eq!(*deposit_parent, Some(*back_remote_span));

            // Without a caller span, no context travels, and the call works.
            assert_eq!(front_remote.forward(1).await, Ok(Ok(6)));
            assert_eq!(spans(&capture, "remote request", "forward").len(), 1);
        })
        .await;
    }
}
