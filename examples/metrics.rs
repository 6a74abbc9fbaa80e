//! Metrics of a small pipeline in the Prometheus text format: run with
//! `cargo run --example metrics --features metrics`.
//!
//! The `metrics` feature reports through the `metrics` facade, so any
//! exporter works; this one installs `metrics-exporter-prometheus`'s
//! recorder and prints what a Prometheus scrape would read (a program would
//! serve `handle.render()` on `/metrics`, or turn on the exporter's
//! `http-listener` feature).

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use patchboard::{Builder, server};

/// Parses lines; refuses empty ones.
struct Parser;

#[server]
impl Parser {
    fn parse(&mut self, line: String) -> Result<Vec<String>, String> {
        if line.is_empty() {
            return Err("empty line".into());
        }
        Ok(line.split_whitespace().map(str::to_owned).collect())
    }
}

/// Counts words, slowly.
#[derive(Default)]
struct Counter {
    words: u64,
}

#[server]
impl Counter {
    async fn add(&mut self, words: Vec<String>) -> u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.words += words.len() as u64;
        self.words
    }
}

#[tokio::main]
async fn main() {
    // Before any server is spawned: handles are taken from the recorder
    // installed when a server and a message are first seen.
    let prometheus = PrometheusBuilder::new()
        // Histograms as buckets (the default is a summary of quantiles).
        .set_buckets(&[0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1])
        .expect("buckets")
        .install_recorder()
        .expect("the only recorder");

    let parser = Builder::new(Parser).name("parser").spawn();
    let counter = Builder::new(Counter::default()).name("counter").spawn();
    let lines = ["the quick brown fox", "", "jumps over", "the lazy dog", ""];
    let mut pending = Vec::new();
    for line in lines.iter().cycle().take(50) {
        if let Ok(Ok(words)) = parser.parse(line.to_string()).await {
            // Queued behind each other: the counter's queue wait shows.
            pending.push(tokio::spawn(counter.add(words).owned()));
        }
    }
    for add in pending {
        add.await.expect("not cancelled").expect("served");
    }
    println!("{} words", counter.add(Vec::new()).await.expect("served"));

    // What a scrape of `/metrics` reads.
    let text = prometheus.render();
    print!("{text}");
    assert!(
        text.contains(
            r#"patchboard_calls_total{server="parser",message="parse",outcome="error"} 20"#
        )
    );
    parser.stop().await;
    counter.stop().await;
}
