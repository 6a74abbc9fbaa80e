//! A pool: four replicas of one server on one shared mailbox, behind one
//! handle. Sixteen concurrent fetches run four at a time.
//!
//! Run with `cargo run --example fetch_pool`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use patchboard::{Builder, CallError, server};

/// One replica. Clones share the counters, so the demo can observe the
/// whole pool.
#[derive(Clone, Default)]
pub struct Fetcher {
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

#[server]
impl Fetcher {
    /// Pretends to fetch `url` (100ms) and returns its "size".
    pub async fn fetch(&self, url: String) -> usize {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.active.fetch_sub(1, Ordering::SeqCst);
        url.len() * 100
    }

    /// The most fetches that ran at the same time.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

#[tokio::main]
async fn main() -> Result<(), CallError> {
    let pool = Builder::new(Fetcher::default()).pool(4).spawn();

    let started = Instant::now();
    let fetches: Vec<_> = (0..16)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.fetch(format!("https://example.test/{i}")).await })
        })
        .collect();
    let mut total = 0;
    for fetch in fetches {
        total += fetch.await.expect("fetch task")?;
    }
    let elapsed = started.elapsed();

    let peak = pool.peak().await?;
    println!("16 fetches of 100ms on pool(4): {elapsed:?} (4 rounds), total size {total}");
    println!("peak parallelism observed: {peak}");
    assert_eq!(peak, 4);
    pool.stop().await;
    Ok(())
}
