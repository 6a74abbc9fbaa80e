//! A supervision tree: a rate limiter, a cache and a pool of fetchers (a
//! nested supervisor) under one root supervisor, in OTP's words.
//!
//! ```text
//! root (one_for_one, at most 3 restarts in 5 s)
//! ├── limiter        permanent
//! ├── cache          permanent
//! └── fetchers       (one_for_all: a fetcher's failure restarts the pool)
//!     ├── fetcher-0  permanent
//!     └── fetcher-1  permanent
//! ```
//!
//! A timer kills the cache, then a fetcher, while requests keep flowing;
//! the tree's events are printed as they happen, and the handles taken at
//! the start keep working across every restart. Run with
//! `cargo run --example supervised`.

use std::collections::HashMap;
use std::time::Duration;

use patchboard::{
    Child, Strategy, Subscription, Supervisor, SupervisorBuilder, SupervisorEvent, server,
};

/// At most `capacity` fetches in flight per refill.
struct Limiter {
    tokens: u32,
    capacity: u32,
}

#[server]
impl Limiter {
    fn acquire(&mut self) -> bool {
        let allowed = self.tokens > 0;
        self.tokens = self.tokens.saturating_sub(1);
        allowed
    }

    #[every(Duration::from_millis(20))]
    fn refill(&mut self) {
        self.tokens = self.capacity;
    }
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, String>,
}

#[server]
impl Cache {
    fn get(&self, city: String) -> Option<String> {
        self.entries.get(&city).cloned()
    }

    fn put(&mut self, city: String, forecast: String) {
        self.entries.insert(city, forecast);
    }

    /// What the timer uses to kill it.
    fn crash(&self) {
        panic!("the cache was killed on purpose");
    }
}

struct Fetcher {
    number: usize,
}

#[server]
impl Fetcher {
    async fn fetch(&self, city: String) -> String {
        tokio::time::sleep(Duration::from_millis(5)).await;
        format!("sunny in {city} (fetcher {})", self.number)
    }

    fn crash(&self) {
        panic!("fetcher {} was killed on purpose", self.number);
    }
}

/// Prints one supervisor's events until it ends.
async fn print_events(label: &'static str, mut events: Subscription<SupervisorEvent>) {
    while let Some(event) = events.recv().await {
        let line = match event {
            SupervisorEvent::Started { child, name, .. } => {
                format!("started   {} {child}", name.as_deref().unwrap_or("?"))
            }
            SupervisorEvent::Restarted {
                child,
                name,
                reason,
                ..
            } => format!(
                "restarted {} {child}: {reason}",
                name.as_deref().unwrap_or("?")
            ),
            SupervisorEvent::Ended {
                child,
                name,
                reason,
                ..
            } => format!(
                "ended     {} {child}: {reason}",
                name.as_deref().unwrap_or("?")
            ),
            SupervisorEvent::GaveUp { down, .. } => format!("gave up   after {down}"),
            other => format!("{other:?}"),
        };
        println!("[{label:>8}] {line}");
    }
}

fn fetcher(number: usize) -> Child<Fetcher> {
    Child::new(move || Fetcher { number }).name(format!("fetcher-{number}"))
}

#[tokio::main]
async fn main() {
    // Handler panics are part of the show: keep their messages short.
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
        eprintln!("(panic: {})", message.unwrap_or("?"));
    }));

    let mut fetchers = SupervisorBuilder::new(Strategy::OneForAll)
        .name("fetchers")
        .intensity(3, Duration::from_secs(5))
        .child(fetcher(0))
        .child(fetcher(1));
    let fetcher_events = fetchers.subscribe(64);
    let mut root = SupervisorBuilder::new(Strategy::OneForOne)
        .name("root")
        .intensity(3, Duration::from_secs(5))
        .child(
            Child::new(|| Limiter {
                tokens: 4,
                capacity: 4,
            })
            .name("limiter"),
        )
        .child(Child::new(Cache::default).name("cache"))
        .supervisor(fetchers);
    let root_events = root.subscribe(64);
    let printers = [
        tokio::spawn(print_events("root", root_events)),
        tokio::spawn(print_events("fetchers", fetcher_events)),
    ];

    let root: Supervisor = root.start().await.expect("every child starts");
    // Handles taken once, used across every restart below.
    let limiter = root.child::<Limiter>("limiter").unwrap();
    let cache = root.child::<Cache>("cache").unwrap();
    let pool = root.supervisor("fetchers").unwrap();
    let fetchers = [
        pool.child::<Fetcher>("fetcher-0").unwrap(),
        pool.child::<Fetcher>("fetcher-1").unwrap(),
    ];

    let cities = ["Lisbon", "Oslo", "Quito", "Hanoi"];
    let mut ticks = tokio::time::interval(Duration::from_millis(30));
    for round in 0..8 {
        ticks.tick().await;
        match round {
            2 => {
                println!("-- killing the cache {}", cache.id());
                let _ = cache.crash().await;
            }
            5 => {
                println!("-- killing fetcher-1 {}", fetchers[1].id());
                let _ = fetchers[1].crash().await;
            }
            _ => {}
        }
        let city = cities[round % cities.len()].to_owned();
        let forecast = match cache.get(city.clone()).await {
            Ok(Some(hit)) => format!("{hit} (cached)"),
            _ if limiter.acquire().await == Ok(true) => {
                let fetched = fetchers[round % 2]
                    .fetch(city.clone())
                    .await
                    .expect("the fetcher answers");
                cache
                    .put(city, fetched.clone())
                    .await
                    .expect("the cache answers");
                fetched
            }
            _ => "rate limited".to_owned(),
        };
        println!("round {round}: {forecast}");
    }

    println!("-- shutting the tree down");
    root.shutdown().await;
    for printer in printers {
        printer.await.unwrap();
    }
    assert!(cache.is_closed() && fetchers.iter().all(|f| f.is_closed()));
    println!("-- done: {}", root.closed().await);
}
