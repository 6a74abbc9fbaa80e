//! The `tokio-console` feature: with `RUSTFLAGS="--cfg tokio_unstable"`,
//! every serve task is named after its server, as tokio-console shows
//! tasks. Read here from tokio's own `runtime.spawn` spans with a capturing
//! subscriber. Run with
//! `RUSTFLAGS="--cfg tokio_unstable" cargo test --features tokio-console --test console`
//! (in a target directory of its own: the flag rebuilds everything).
#![cfg(all(tokio_unstable, feature = "tokio-console"))]

mod common;

use std::sync::{Arc, Mutex};

use common::{LIMIT, within};
use patchboard::{Builder, Server, server};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Every task name tokio announced.
#[derive(Default)]
struct Names(Mutex<Vec<String>>);

struct NameField(Option<String>);

impl Visit for NameField {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "task.name" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl Subscriber for Names {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        if span.metadata().name() == "runtime.spawn" {
            let mut field = NameField(None);
            span.record(&mut field);
            if let Some(name) = field.0 {
                self.0.lock().unwrap().push(name);
            }
        }
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[derive(Clone)]
struct Worker;

#[server]
impl Worker {
    fn work(&mut self) {}
}

#[test]
fn serve_tasks_carry_their_servers_name() {
    let names = Arc::new(Names::default());
    let _guard = tracing::subscriber::set_default(names.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(within(LIMIT, async {
        let named = Builder::new(Worker).name("bank").spawn();
        let unnamed = Worker.spawn();
        let pool = Builder::new(Worker).name("fetchers").pool(2).spawn();
        named.work().await.unwrap();
        unnamed.work().await.unwrap();
        pool.work().await.unwrap();

        let names = names.0.lock().unwrap().clone();
        let count = |name: String| names.iter().filter(|seen| **seen == name).count();
        assert_eq!(
            count(format!("patchboard bank {}", named.id())),
            1,
            "{names:?}"
        );
        assert_eq!(
            count(format!("patchboard Worker {}", unnamed.id())),
            1,
            "{names:?}"
        );
        // Both replicas of the pool.
        assert_eq!(
            count(format!("patchboard fetchers {}", pool.id())),
            2,
            "{names:?}"
        );
    }));
}
