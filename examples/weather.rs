//! Deferred replies: concurrent requests for the same city share one slow
//! lookup, and the server keeps answering other calls meanwhile.
//!
//! Run with `cargo run --example weather`.

use std::collections::HashMap;
use std::time::Duration;

use patchboard::{CallError, Context, Reply, Server, server};

/// A weather service in front of a slow upstream.
pub struct Weather {
    /// Callers waiting for a lookup in flight, by city.
    waiting: HashMap<String, Vec<Reply<f64>>>,
    lookups: u32,
    requests: u32,
}

#[server]
impl Weather {
    /// The temperature in `city`, in °C. Answered when the lookup is done;
    /// callers asking for a city already being looked up join that lookup.
    /// The lookup task reports back through `ctx`, the server's own
    /// (weak) handle, given by the runtime.
    pub fn temperature(&mut self, city: String, reply: Reply<f64>, ctx: &Context<Self>) {
        self.requests += 1;
        if let Some(waiting) = self.waiting.get_mut(&city) {
            waiting.push(reply);
            return;
        }
        self.waiting.insert(city.clone(), vec![reply]);
        self.lookups += 1;
        let me = ctx.weak();
        tokio::spawn(async move {
            let celsius = slow_upstream(&city).await;
            if let Some(me) = me.upgrade() {
                let _ = me.looked_up(city, celsius).await;
            }
        });
    }

    /// A lookup finished: answer everyone who asked for that city.
    #[cast]
    pub fn looked_up(&mut self, city: String, celsius: f64) {
        for reply in self.waiting.remove(&city).unwrap_or_default() {
            let _ = reply.send(celsius);
        }
    }

    /// (lookups, requests) so far. Answered at once, even mid-lookup.
    pub fn stats(&self) -> (u32, u32) {
        (self.lookups, self.requests)
    }
}

/// A pretend upstream: slow, and the same answer every time.
async fn slow_upstream(city: &str) -> f64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    city.bytes().map(f64::from).sum::<f64>() % 35.0
}

#[tokio::main]
async fn main() -> Result<(), CallError> {
    let weather = Weather {
        waiting: HashMap::new(),
        lookups: 0,
        requests: 0,
    }
    .spawn();

    let cities = ["Oslo", "Lima", "Oslo", "Pune", "Lima", "Oslo"];
    let callers: Vec<_> = (0..30)
        .map(|i| {
            let weather = weather.clone();
            let city = cities[i % cities.len()].to_owned();
            tokio::spawn(async move { (city.clone(), weather.temperature(city).await) })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(50)).await;
    let (lookups, requests) = weather.stats().await?;
    println!(
        "mid-lookup, the server still answers: {lookups} lookups running for {requests} requests"
    );

    let mut answers = HashMap::new();
    for caller in callers {
        let (city, celsius) = caller.await.expect("caller task");
        answers.insert(city, celsius?);
    }
    for (city, celsius) in &answers {
        println!("{city}: {celsius:.1} °C");
    }
    let (lookups, requests) = weather.stats().await?;
    println!("{lookups} lookups served {requests} requests");
    assert_eq!((lookups, requests), (3, 30));
    Ok(())
}
