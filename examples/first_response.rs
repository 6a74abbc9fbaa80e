//! First response across redundant replicas, from the essay: the same query
//! goes to three replicas of a search service with different latencies and
//! failure rates; the first success within the deadline wins, the others
//! are cancelled, and a query that gets no answer in time is retried with a
//! deadline twice as long.
//!
//! Run with `cargo run --example first_response`.

use std::time::{Duration, Instant};

use patchboard::{CallError, Server, first_ok, server};

/// One replica. Latency and failures come from a small deterministic
/// generator, so that every run prints the same story.
pub struct Replica {
    name: &'static str,
    /// Typical latency; each answer takes between half and twice of it.
    latency: Duration,
    /// Out of 100 queries, how many fail.
    failure_rate: u64,
    seed: u64,
    /// Queries answered, and queries dropped because another replica won.
    answered: u32,
    cancelled: u32,
}

#[server]
impl Replica {
    /// Searches for `query`, or fails. Dropped at its next await once the
    /// caller has its answer from another replica.
    #[cancellable]
    pub async fn search(&mut self, query: String) -> Result<String, String> {
        let roll = self.next();
        let latency = self.latency.mul_f64(0.5 + (roll % 150) as f64 / 100.0);
        self.cancelled += 1; // taken back below unless dropped in the sleep
        tokio::time::sleep(latency).await;
        self.cancelled -= 1;
        self.answered += 1;
        if roll % 100 < self.failure_rate {
            Err(format!("{} failed", self.name))
        } else {
            Ok(format!(
                "{}: results for {query} in {latency:.0?}",
                self.name
            ))
        }
    }

    /// `(answered, cancelled)` so far.
    pub fn counts(&self) -> (u32, u32) {
        (self.answered, self.cancelled)
    }
}

impl Replica {
    fn new(name: &'static str, latency_ms: u64, failure_rate: u64, seed: u64) -> Self {
        Replica {
            name,
            latency: Duration::from_millis(latency_ms),
            failure_rate,
            seed,
            answered: 0,
            cancelled: 0,
        }
    }

    /// A linear congruential step: enough randomness for a demo.
    fn next(&mut self) -> u64 {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.seed >> 33
    }
}

/// The essay's error: a failed replica, or a call that did not make it.
#[derive(Debug)]
pub enum SearchError {
    Replica(String),
    Call(CallError),
}

impl From<CallError> for SearchError {
    fn from(error: CallError) -> Self {
        SearchError::Call(error)
    }
}

impl From<String> for SearchError {
    fn from(error: String) -> Self {
        SearchError::Replica(error)
    }
}

#[tokio::main]
async fn main() {
    let replicas = [
        Replica::new("replica-a", 60, 50, 7).spawn(),
        Replica::new("replica-b", 250, 20, 2).spawn(),
        Replica::new("replica-c", 350, 5, 3).spawn(),
    ];
    let started = Instant::now();
    let mut answered = 0;
    for query in ["golang", "rust", "erlang", "tokio", "nats", "actors"] {
        let mut deadline = Duration::from_millis(400);
        for attempt in 1..=3 {
            let calls = replicas.iter().map(|replica| {
                let query = query.to_owned();
                async move { Ok::<_, SearchError>(replica.search(query).await??) }
            });
            match first_ok(calls, deadline).await {
                Ok(answer) => {
                    println!("{query:>7}: {answer} (attempt {attempt})");
                    answered += 1;
                    break;
                }
                Err(errors) => {
                    println!("{query:>7}: no answer within {deadline:?}: {errors:?}");
                    deadline *= 2;
                }
            }
        }
    }
    for (name, replica) in ["replica-a", "replica-b", "replica-c"]
        .iter()
        .zip(&replicas)
    {
        let (done, cancelled) = replica.counts().await.expect("replica running");
        println!("{name}: {done} answered, {cancelled} cancelled mid-search");
    }
    println!(
        "{answered} of 6 queries answered in {:.0?}",
        started.elapsed()
    );
    assert!(
        answered >= 5,
        "three replicas and retries answer nearly every query"
    );
}
