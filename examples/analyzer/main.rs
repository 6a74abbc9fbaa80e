//! The "Twitter analyzer" of the essay *Channels are not enough*, as a
//! pipeline of servers: a timeline reader, a retweeters reader, a followers
//! reader and a reducer, over a pool of five rate-limited API tokens.
//!
//! - Each stage pages through the fake API by sending itself the next page
//!   (`max_id` or a cursor), from its own handler.
//! - Results travel on as soon as they are known: the user's own followers
//!   are asked for before the timeline is read, and every retweeter list
//!   goes straight to the reducer.
//! - The followers stage reads each user once.
//! - Each worker of the token pool suspends itself before its token hits
//!   the API's limit (45 calls per window), and the others carry on.
//! - Completion needs no end-of-input marker: each stage `drain_after`s the
//!   one feeding it, so draining the timeline drains the whole pipeline,
//!   in order, and the reducer's final state is the result.
//!
//! Run with `cargo run --example analyzer`; `tests/analyzer.rs` checks the
//! same pipeline against a model computed from the fake data.
//!
//! To watch it run: `ANALYZER_OBSERVE=127.0.0.1:9000 cargo run --example
//! analyzer --features observer`, open the address it prints, and press
//! Enter. The fake API then answers in 40 ms instead of 2, so that the
//! pipeline takes about fifteen seconds: the page shows the stages'
//! mailboxes fill and drain, the token pool's five workers, the
//! `drain_after` links between the stages, and the stages ending one after
//! the other as each drain reaches them.

mod api;
// Shared with tests/analyzer.rs, which also cancels it and drops handles.
#[allow(dead_code)]
mod pipeline;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use api::{Config, FakeApi};
use pipeline::Pipeline;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[allow(unused_mut)] // changed only when observed
    let mut config = Config::default();
    #[cfg(feature = "observer")]
    let _page = match std::env::var("ANALYZER_OBSERVE") {
        Ok(addr) => {
            config.latency = std::time::Duration::from_millis(40);
            Some(observe(&addr).await?)
        }
        Err(_) => None,
    };
    let api = Arc::new(FakeApi::new(config.clone()));
    let started = tokio::time::Instant::now();
    let pipeline = Pipeline::start(api.clone()).await?;
    let journal = pipeline.journal.clone();
    let suspensions = pipeline.suspensions.clone();
    let report = pipeline.finish().await;
    let elapsed = started.elapsed();

    println!("Tweets of @{} with the widest reach", config.user);
    println!("{:>8} {:>10} {:>8}", "tweet", "retweets", "reach");
    let mut tweets: Vec<_> = report.tweets.iter().collect();
    tweets.sort_by_key(|(tweet, (_, reach))| (std::cmp::Reverse(*reach), **tweet));
    for (tweet, (retweets, reach)) in tweets.iter().take(10) {
        println!("{tweet:>8} {retweets:>10} {reach:>8}");
    }

    println!("\nMost-followed retweeters");
    println!("{:>10} {:>10}", "user", "followers");
    let mut users: Vec<_> = report
        .followers
        .iter()
        .filter(|(user, _)| **user != config.user)
        .collect();
    users.sort_by_key(|(user, followers)| (std::cmp::Reverse(**followers), (*user).clone()));
    for (user, followers) in users.iter().take(5) {
        println!("{user:>10} {followers:>10}");
    }

    let usage = api.usage();
    println!("\nAPI tokens (limit {} calls per window)", config.limit);
    println!("{:>6} {:>6} {:>15}", "token", "calls", "busiest window");
    for (token, calls) in &usage.calls {
        let busiest = usage.busiest_window.get(token).copied().unwrap_or(0);
        println!("{token:>6} {calls:>6} {busiest:>15}");
    }
    println!(
        "\n{} tweets, {} users, @{} has {} followers; {} calls, {} suspensions, {} refused, \
         {} errors, in {:.2?}",
        report.tweets.len(),
        report.followers.len() - 1,
        config.user,
        report.followers.get(&config.user).copied().unwrap_or(0),
        usage.calls.values().sum::<u32>(),
        suspensions.load(Ordering::Relaxed),
        usage.refused,
        journal.entries().len(),
        elapsed,
    );
    if report != api.model() {
        return Err("the pipeline's report differs from the model".into());
    }
    println!("The report matches the model computed from the fake data.");
    Ok(())
}

/// Serves the observer page on `addr` and waits for Enter, so that the
/// page is open before the pipeline starts.
#[cfg(feature = "observer")]
async fn observe(addr: &str) -> std::io::Result<patchboard::observer::Observer> {
    use patchboard::observer::{self, Options};

    let page = observer::serve_with(
        addr,
        Options::default().interval(std::time::Duration::from_millis(200)),
    )
    .await?;
    println!(
        "the observer is at {}: open it, then press Enter",
        page.url()
    );
    tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new()))
        .await
        .expect("reading a line does not panic")?;
    Ok(page)
}
