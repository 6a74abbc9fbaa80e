//! A server with no messages at all: only a timer and a stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use patchboard::{Server, StopReason, server};

struct Ticker {
    ticks: Arc<AtomicU64>,
}

#[server]
impl Ticker {
    #[every(Duration::from_millis(10))]
    fn tick(&mut self) {
        self.ticks.fetch_add(1, Ordering::SeqCst);
    }
}

struct Generic<T> {
    _marker: std::marker::PhantomData<fn() -> T>,
}

#[server]
impl<T> Generic<T> {
    #[on_stop]
    fn bye(&mut self) {}
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    // In paused time a deadlock reaches this limit at once.
    tokio::time::timeout(Duration::from_secs(3600), run())
        .await
        .expect("no hang");
}

async fn run() {
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = Ticker { ticks: ticks.clone() }.spawn();
    tokio::time::sleep(Duration::from_millis(55)).await;
    ticker.stop().await;
    assert_eq!(ticker.closed().await, StopReason::Stopped);
    assert_eq!(ticks.load(Ordering::SeqCst), 5);

    let generic: GenericHandle<u8> = Generic { _marker: std::marker::PhantomData }.spawn();
    generic.stop().await;
}
