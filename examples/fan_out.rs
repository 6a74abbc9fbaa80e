//! Fan-out and fan-in with bounded parallelism, from the essay
//! (`chanCities.Par.BoundedMap(pool, resolver)`): twenty lookups on a pool
//! of five workers, at most five in flight, every seventh failing. Results
//! arrive in completion order; each failure stays in its own slot.
//!
//! Run with `cargo run --example fan_out`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use patchboard::{Builder, CallError, bounded_map, server};

/// One worker of the pool; clones share the counter of lookups in flight.
#[derive(Clone, Default)]
pub struct Resolver {
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

#[server]
impl Resolver {
    /// Resolves task `id` (a few milliseconds of "I/O"); every seventh
    /// fails.
    pub async fn resolve(&self, id: u32) -> Result<String, String> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10 + u64::from(id * 37 % 23))).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        if id.is_multiple_of(7) {
            Err(format!("task {id}: upstream refused"))
        } else {
            Ok(format!("task {id}: {} bytes", id * 128))
        }
    }

    /// The most lookups that ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

#[tokio::main]
async fn main() -> Result<(), CallError> {
    let pool = Builder::new(Resolver::default()).pool(5).spawn();
    let started = Instant::now();

    let mut results = bounded_map(1..=20, 5, |id| pool.resolve(id));
    let (mut ok, mut failed, mut order) = (Vec::new(), Vec::new(), Vec::new());
    while let Some((index, result)) = results.next().await {
        order.push(index + 1);
        match result? {
            Ok(line) => ok.push(line),
            Err(why) => failed.push(why),
        }
    }

    println!("completion order: {order:?}");
    println!("{} succeeded, {} failed:", ok.len(), failed.len());
    for why in &failed {
        println!("  {why}");
    }
    let peak = pool.peak().await?;
    println!("at most {peak} in flight, {:.0?} in all", started.elapsed());
    assert_eq!((ok.len(), failed.len()), (18, 2));
    assert!(peak <= 5);
    Ok(())
}
