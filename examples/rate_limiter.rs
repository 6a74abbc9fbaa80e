//! A per-client rate limiter as a server: a fixed window of `limit` requests
//! per key, reset by a timer inside the loop, and a `#[priority]` analytics
//! dump that overtakes a queue of checks.
//!
//! Run with `cargo run --example rate_limiter`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use patchboard::{CallError, Server, server};

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Over the limit for this window.
    Deny,
}

/// Allowed and denied counts for one key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Checks answered `Allow`.
    pub allowed: u32,
    /// Checks answered `Deny`.
    pub denied: u32,
}

/// The limiter's state.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    used: HashMap<String, u32>,
    totals: BTreeMap<String, Counts>,
}

impl RateLimiter {
    /// A limiter allowing `limit` checks per key in each `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        RateLimiter {
            limit,
            window,
            used: HashMap::new(),
            totals: BTreeMap::new(),
        }
    }
}

#[server(capacity = 256)]
impl RateLimiter {
    /// Decides whether `key` may make one more request in this window.
    pub fn check(&mut self, key: String) -> Decision {
        let used = self.used.entry(key.clone()).or_default();
        let counts = self.totals.entry(key).or_default();
        if *used < self.limit {
            *used += 1;
            counts.allowed += 1;
            Decision::Allow
        } else {
            counts.denied += 1;
            Decision::Deny
        }
    }

    /// Starts a new window for every key.
    #[every(self.window)]
    fn reset(&mut self) {
        self.used.clear();
    }

    /// Analytics: allowed/denied per key so far. Served ahead of queued
    /// checks.
    #[priority]
    pub fn dump(&self) -> BTreeMap<String, Counts> {
        self.totals.clone()
    }
}

#[tokio::main]
async fn main() -> Result<(), CallError> {
    let limiter = RateLimiter::new(5, Duration::from_millis(100)).spawn();

    // Twelve clients on three IPs, each making 20 requests 10ms apart:
    // 4 clients x 10 requests per 100ms window per IP, limit 5.
    let clients: Vec<_> = (0..12)
        .map(|client| {
            let limiter = limiter.clone();
            let ip = format!("10.0.0.{}", client % 3 + 1);
            tokio::spawn(async move {
                for _ in 0..20 {
                    limiter.check(ip.clone()).await?;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok::<_, CallError>(())
            })
        })
        .collect();

    // A burst of 200 checks from one noisy client, enqueued without
    // waiting; the dump, in the priority lane, overtakes most of them.
    for _ in 0..200 {
        limiter.check("10.0.0.99".to_owned()).no_wait().await?;
    }
    let early = limiter.dump().await?;
    let seen = early.get("10.0.0.99").map_or(0, |c| c.allowed + c.denied);
    println!("priority dump was served after only {seen} of the 200 queued burst checks");

    for client in clients {
        client.await.expect("client task")?;
    }
    let totals = limiter.dump().await?;
    for (ip, counts) in &totals {
        println!(
            "{ip}: allowed {:3}, denied {:3}",
            counts.allowed, counts.denied
        );
        let expected = if ip == "10.0.0.99" { 200 } else { 80 };
        assert_eq!(counts.allowed + counts.denied, expected);
        assert!(
            counts.denied > 0,
            "four busy clients per IP must hit the limit"
        );
    }
    Ok(())
}
