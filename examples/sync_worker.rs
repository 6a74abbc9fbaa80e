//! A file-sync worker: syncs every period, can be asked to sync now, reports
//! whether it is running, and stops cleanly. Hand-written, this is a
//! `select!` over a timer, a request channel and an exit channel.
//!
//! Run with `cargo run --example sync_worker`.

use std::time::Duration;

use patchboard::{CallError, Server, server};

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Which sync this was, counting from 1.
    pub number: u32,
    /// Files copied.
    pub files: u32,
}

/// A sync that went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncError(pub String);

/// How to sync: swap in a real one, or a fake in tests.
pub type Strategy = Box<dyn FnMut(u32) -> Result<Report, SyncError> + Send>;

/// The worker's state.
pub struct SyncWorker {
    strategy: Strategy,
    period: Duration,
    syncs: u32,
}

#[server]
impl SyncWorker {
    #[on_start]
    fn connect(&mut self) {
        println!("[worker] connected; syncing every {:?}", self.period);
    }

    #[every(self.period)]
    fn periodic(&mut self) {
        match self.run() {
            Ok(report) => println!("[worker] periodic sync: {report:?}"),
            Err(error) => println!("[worker] periodic sync failed: {error:?}"),
        }
    }

    #[on_stop]
    fn flush(&mut self) {
        println!("[worker] stopping after {} syncs", self.syncs);
    }

    /// Syncs now, out of band, and returns what the strategy said.
    pub fn sync_now(&mut self) -> Result<Report, SyncError> {
        self.run()
    }

    /// How many syncs ran so far.
    pub fn syncs(&self) -> u32 {
        self.syncs
    }
}

impl SyncWorker {
    fn run(&mut self) -> Result<Report, SyncError> {
        self.syncs += 1;
        (self.strategy)(self.syncs)
    }
}

#[tokio::main]
async fn main() -> Result<(), CallError> {
    // A strategy that fails on every third sync.
    let strategy: Strategy = Box::new(|number| {
        if number % 3 == 0 {
            Err(SyncError(format!("disk busy on sync {number}")))
        } else {
            Ok(Report {
                number,
                files: number * 10,
            })
        }
    });
    let worker = SyncWorker {
        strategy,
        period: Duration::from_millis(100),
        syncs: 0,
    }
    .spawn();

    tokio::time::sleep(Duration::from_millis(250)).await;
    println!("[main] out-of-band sync -> {:?}", worker.sync_now().await?);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Sync 3 or 6 failed along the way; the worker is still running.
    println!("[main] running: {}", !worker.is_closed());
    println!("[main] syncs so far: {}", worker.syncs().await?);

    worker.stop().await;
    println!(
        "[main] running: {}, stopped because: {}",
        !worker.is_closed(),
        worker.closed().await
    );
    Ok(())
}
