//! The essay's weather service, for real: `GET /weather?q=CA` answers with
//! the weather of the state's cities from an upstream HTTP server (a fake
//! OpenWeatherMap this example starts on its own port), concurrent requests
//! for the same city share one upstream fetch, each client address has a
//! daily limit, `GET /admin/stats` overtakes queued checks, `GET
//! /updates?q=CA` streams updates as Server-Sent Events, and `/` is a page
//! that shows them live.
//!
//! Run with `cargo run --example weather_service -- --addr 127.0.0.1:8080`
//! and open the address it prints. Options: `--addr` (port 0 picks a free
//! one), `--limit N` (API requests — `/weather`, `/updates` — per client
//! per day, default 100),
//! `--latency-ms N` (the upstream's, default 200), `--fail CITY` (the
//! upstream fails for it; repeatable), `--refresh-ms N` (how often
//! subscribed cities are fetched again, default 2000). Ctrl-C stops it,
//! ending open update streams.

mod service;
mod upstream;

use std::net::SocketAddr;
use std::time::Duration;

fn usage(problem: &str) -> ! {
    eprintln!("{problem}");
    eprintln!(
        "usage: weather_service [--addr 127.0.0.1:8080] [--limit 100] [--latency-ms 200] \
         [--fail CITY]... [--refresh-ms 2000]"
    );
    std::process::exit(2);
}

fn value<T: std::str::FromStr>(flag: &str, value: Option<String>) -> T {
    let Some(value) = value else {
        usage(&format!("`{flag}` needs a value"));
    };
    value
        .parse()
        .unwrap_or_else(|_| usage(&format!("`{flag} {value}` is not valid")))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut addr: SocketAddr = "127.0.0.1:8080".parse().expect("an address");
    let mut limit = 100;
    let mut latency = Duration::from_millis(200);
    let mut failing = Vec::new();
    let mut refresh = Duration::from_millis(2000);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--addr" => addr = value(&flag, args.next()),
            "--limit" => limit = value(&flag, args.next()),
            "--latency-ms" => latency = Duration::from_millis(value(&flag, args.next())),
            "--fail" => failing.push(value::<String>(&flag, args.next())),
            "--refresh-ms" => refresh = Duration::from_millis(value(&flag, args.next())),
            other => usage(&format!("unknown option `{other}`")),
        }
    }
    let behaviour = upstream::Behaviour { latency, failing };
    let upstream = upstream::start(SocketAddr::new(addr.ip(), 0), behaviour).await?;
    let config = service::Config {
        addr,
        upstream,
        limit,
        fresh_for: Duration::from_secs(60),
        refresh,
    };
    let running = service::start(config).await?;
    println!("fake upstream on http://{upstream}");
    println!("listening on http://{}", running.addr);
    tokio::signal::ctrl_c().await?;
    println!("shutting down");
    running.shut_down().await
}
