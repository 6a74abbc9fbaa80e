//! What the `tracing` feature records: a span per request (server, message,
//! call id, queue wait, run time, outcome) and events for start, stop,
//! panic and restart, printed by a small subscriber as they happen. Real
//! programs install `tracing-subscriber` or an OpenTelemetry exporter
//! instead.
//!
//! Run with `cargo run --example traced --features tracing`.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use patchboard::{Builder, PanicPolicy, server};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Collects `name=value` pairs.
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

/// Prints every event at once, and every request span once its outcome is
/// recorded.
#[derive(Default)]
struct Printer {
    next: AtomicU64,
    spans: Mutex<Vec<String>>,
}

impl Subscriber for Printer {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut line = Line(format!("span {}", span.metadata().name()));
        span.record(&mut line);
        self.spans.lock().unwrap().push(line.0);
        Id::from_u64(self.next.fetch_add(1, Ordering::SeqCst) + 1)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        let text = &mut spans[usize::try_from(span.into_u64()).unwrap() - 1];
        let mut line = Line(String::new());
        values.record(&mut line);
        text.push_str(&line.0);
        if line.0.contains(" outcome=") {
            println!("{text}");
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line(format!("{:>5}", event.metadata().level()));
        event.record(&mut line);
        println!("{}", line.0);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[derive(Debug)]
pub struct Refused;

pub struct Bank {
    balance: u64,
}

#[server]
impl Bank {
    pub async fn deposit(&mut self, amount: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.balance += amount;
        self.balance
    }

    pub fn withdraw(&mut self, amount: u64) -> Result<u64, Refused> {
        self.balance = self.balance.checked_sub(amount).ok_or(Refused)?;
        Ok(self.balance)
    }

    pub fn audit(&self) {
        panic!("the auditor found a hole");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing::subscriber::set_global_default(Printer::default()).expect("one subscriber");
    let bank = Builder::new(Bank { balance: 0 })
        .name("bank")
        .on_panic(PanicPolicy::Continue)
        .spawn();
    bank.deposit(100).await.expect("deposit");
    let _ = bank.withdraw(500).await; // refused: outcome=error
    let _ = bank.audit().await; // panics: outcome=panic, and an event
    bank.stop().await;
}
