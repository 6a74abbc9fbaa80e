//! A live page of the servers running in this process, as Erlang's
//! `observer` shows processes: the tree of servers (supervisors and their
//! children, links and monitors), each one's state, mailbox depth,
//! throughput and p50/p99 handler time updating live, the slowest
//! handlers, servers restarting, handlers running longer than a threshold
//! ("stuck"), and the calls refused because they would have deadlocked.
//!
//! Needs the `observer` feature (which turns on `inventory`). [`router`]
//! is an axum `Router` a program mounts where it likes
//! (`app.nest("/observer", observer::router())`); [`serve`] serves it on an
//! address of its own in one line. The page is plain HTML and a small
//! script fed by Server-Sent Events (`/events`); `/snapshot.json` is the
//! same data for other tools.
//!
//! ```
//! use patchboard::{server, Builder};
//! use patchboard_runtime::observer; // `patchboard::observer`
//!
//! struct Worker;
//!
//! #[server]
//! impl Worker {
//!     fn work(&mut self) {}
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let worker = Builder::new(Worker).name("worker").spawn();
//! worker.work().await.unwrap();
//! // Port 0: the system picks a free one.
//! let page = observer::serve("127.0.0.1:0").await?;
//! println!("the observer is at {}", page.url());
//! # Ok(())
//! # }
//! ```
//!
//! Throughput and percentiles are measured over each interval (half a
//! second by default) from the servers' own counts: a request's handler
//! time is counted in power-of-two buckets of microseconds when it ends, so
//! a percentile is shown as the bucket's upper bound (a handler of 700 µs
//! shows as ≤ 1.02 ms). A handler that never ends shows as stuck, not in
//! the percentiles.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::id::ServerId;
use crate::inventory::{self, ServerInfo, State as ServerState, WatchKind};
use crate::stats::LATENCY_BUCKETS;

/// The page: HTML, its style and its script in one file.
const PAGE: &str = include_str!("page.html");

/// How the observer samples and what it calls stuck.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    interval: Duration,
    stuck_after: Duration,
    restart_shown: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interval: Duration::from_millis(500),
            stuck_after: Duration::from_secs(1),
            restart_shown: Duration::from_secs(10),
        }
    }
}

impl Options {
    /// Sample the servers every `interval` (at least 10 ms; half a second
    /// by default): the page updates as often, and throughput and
    /// percentiles are measured over it.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(10));
        self
    }

    /// A handler running longer than `threshold` is shown as stuck (one
    /// second by default).
    pub fn stuck_after(mut self, threshold: Duration) -> Self {
        self.stuck_after = threshold;
        self
    }

    /// A server that restarted is listed as restarting for `period` after
    /// (ten seconds by default).
    pub fn restart_shown(mut self, period: Duration) -> Self {
        self.restart_shown = period;
        self
    }
}

/// The observer's routes with default [`Options`]: `/` (the page),
/// `/events` (Server-Sent Events, one JSON sample each) and
/// `/snapshot.json` (the latest sample).
///
/// # Panics
///
/// Outside a tokio runtime: it starts the task that samples the servers
/// (which ends when the router and every copy of it are dropped).
pub fn router() -> Router {
    router_with(Options::default())
}

/// [`router`] with `options`.
///
/// # Panics
///
/// Outside a tokio runtime, like [`router`].
pub fn router_with(options: Options) -> Router {
    let (tx, rx) = watch::channel(Sampler::new(options).sample());
    tokio::spawn(sample(tx, options));
    Router::new()
        .route("/", get(page))
        .route("/events", get(events))
        .route("/snapshot.json", get(snapshot))
        .with_state(rx)
}

/// Serves the observer's [`router`] on `addr`, in a task of its own, until
/// the returned [`Observer`] is dropped.
pub async fn serve(addr: impl ToSocketAddrs) -> std::io::Result<Observer> {
    serve_with(addr, Options::default()).await
}

/// [`serve`] with `options`.
pub async fn serve_with(addr: impl ToSocketAddrs, options: Options) -> std::io::Result<Observer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = router_with(options);
    let task = tokio::spawn(async move {
        // Only a failure to accept ends it; the page is then gone, which
        // the program sees as its address no longer answering.
        let _ = axum::serve(listener, app).await;
    });
    Ok(Observer { addr, task })
}

/// The observer served on its own address; dropping it stops serving.
#[derive(Debug)]
pub struct Observer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Observer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL: `http://<address>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn snapshot(State(rx): State<watch::Receiver<String>>) -> impl IntoResponse {
    let json = rx.borrow().clone();
    ([(header::CONTENT_TYPE, "application/json")], json)
}

async fn events(
    State(mut rx): State<watch::Receiver<String>>,
) -> Sse<impl futures_core::Stream<Item = Result<Event, Infallible>>> {
    // The latest sample at once, then each new one.
    rx.mark_changed();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let json = rx.borrow_and_update().clone();
        Some((Ok(Event::default().data(json)), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Samples the servers every interval until nobody reads the samples.
async fn sample(tx: watch::Sender<String>, options: Options) {
    let mut sampler = Sampler::new(options);
    loop {
        tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep(options.interval) => {}
        }
        tx.send_replace(sampler.sample());
    }
}

/// What one server looked like at the last sample.
struct Seen {
    served: u64,
    /// Served since the sample before (`None` for a server seen for the
    /// first time: its rate starts at the next sample).
    delta: Option<u64>,
    latency: [u64; LATENCY_BUCKETS],
    restarts: u64,
    restarted: Option<Instant>,
    p50: Option<f64>,
    p99: Option<f64>,
}

/// Turns counts into rates and percentiles between samples.
struct Sampler {
    options: Options,
    at: Instant,
    seen: HashMap<ServerId, Seen>,
}

impl Sampler {
    fn new(options: Options) -> Self {
        Sampler {
            options,
            at: Instant::now(),
            seen: HashMap::new(),
        }
    }

    /// The servers now, as JSON.
    fn sample(&mut self) -> String {
        let now = Instant::now();
        let seconds = now.duration_since(self.at).as_secs_f64().max(1e-3);
        self.at = now;
        let servers = inventory::snapshot_with(|control| control.stats().latency().read());
        let mut json = String::with_capacity(256 + servers.len() * 400);
        let _ = write!(
            json,
            r#"{{"interval_ms":{},"stuck_after_ms":{},"servers":["#,
            self.options.interval.as_millis(),
            self.options.stuck_after.as_millis()
        );
        let mut seen = HashMap::with_capacity(servers.len());
        for (index, (info, latency)) in servers.iter().enumerate() {
            let before = self.seen.remove(&info.id);
            let now_seen = self.measure(info, latency, before, now);
            if index > 0 {
                json.push(',');
            }
            self.write_server(&mut json, info, &now_seen, seconds, now);
            seen.insert(info.id, now_seen);
        }
        json.push_str("]}");
        self.seen = seen;
        json
    }

    /// This sample's view of `info`, against the last one's.
    fn measure(
        &self,
        info: &ServerInfo,
        latency: &[u64; LATENCY_BUCKETS],
        before: Option<Seen>,
        now: Instant,
    ) -> Seen {
        let Some(before) = before else {
            return Seen {
                served: info.served,
                delta: None,
                latency: *latency,
                restarts: info.restarts,
                restarted: None,
                p50: None,
                p99: None,
            };
        };
        let delta: [u64; LATENCY_BUCKETS] =
            std::array::from_fn(|bucket| latency[bucket].saturating_sub(before.latency[bucket]));
        let restarted = if info.restarts > before.restarts {
            Some(now)
        } else {
            before.restarted
        };
        Seen {
            served: info.served,
            delta: Some(info.served.saturating_sub(before.served)),
            latency: *latency,
            restarts: info.restarts,
            restarted,
            p50: percentile(&delta, 0.50).or(before.p50),
            p99: percentile(&delta, 0.99).or(before.p99),
        }
    }

    fn write_server(
        &self,
        json: &mut String,
        info: &ServerInfo,
        seen: &Seen,
        seconds: f64,
        now: Instant,
    ) {
        let (state, serving_ms) = match info.state {
            ServerState::Starting => ("starting", None),
            ServerState::Idle => ("idle", None),
            ServerState::Serving { since } => (
                "serving",
                Some(now.saturating_duration_since(since).as_secs_f64() * 1e3),
            ),
            ServerState::Draining => ("draining", None),
        };
        let _ = write!(json, r#"{{"id":{},"name":"#, info.id.get());
        match &info.name {
            Some(name) => json_string(json, name),
            None => json.push_str("null"),
        }
        json.push_str(r#","type":"#);
        json_string(json, info.server_type);
        let _ = write!(json, r#","state":"{state}","serving_ms":"#);
        json_number(json, serving_ms);
        let stuck = serving_ms.is_some_and(|ms| ms >= self.options.stuck_after.as_secs_f64() * 1e3);
        let _ = write!(json, r#","stuck":{stuck},"mailbox":["#);
        for (lane, depth) in info.mailbox.iter().enumerate() {
            if lane > 0 {
                json.push(',');
            }
            let _ = write!(json, "{depth}");
        }
        let rate = seen.delta.map_or(0.0, |served| served as f64 / seconds);
        let _ = write!(
            json,
            r#"],"queued":{},"served":{},"restarts":{},"replicas":{},"uptime_s":{:.1},"rate":{:.1},"p50_ms":"#,
            info.queued(),
            info.served,
            info.restarts,
            info.replicas,
            info.uptime.as_secs_f64(),
            rate,
        );
        json_number(json, seen.p50);
        json.push_str(r#","p99_ms":"#);
        json_number(json, seen.p99);
        let restarting = seen
            .restarted
            .is_some_and(|at| now.saturating_duration_since(at) <= self.options.restart_shown);
        let _ = write!(
            json,
            r#","restarting":{restarting},"deadlocks":{},"deadlock_from":"#,
            info.deadlocks_refused
        );
        match info.last_deadlock_from {
            Some(id) => {
                let _ = write!(json, "{}", id.get());
            }
            None => json.push_str("null"),
        }
        json.push_str(r#","supervisor":"#);
        match info.supervisor {
            Some(id) => {
                let _ = write!(json, "{}", id.get());
            }
            None => json.push_str("null"),
        }
        json.push_str(r#","watching":["#);
        for (index, watch) in info.watching.iter().enumerate() {
            if index > 0 {
                json.push(',');
            }
            let kind = match watch.kind {
                WatchKind::Monitor => "monitor",
                WatchKind::DrainAfter => "drain_after",
                WatchKind::StopWith => "stop_with",
            };
            let _ = write!(json, r#"{{"id":{},"kind":"{kind}"}}"#, watch.id.get());
        }
        json.push_str("]}");
    }
}

/// The upper bound, in milliseconds, of the bucket that holds the `p`th
/// run, or `None` without runs.
fn percentile(buckets: &[u64; LATENCY_BUCKETS], p: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * p).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (bucket, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            // Bucket `i` holds runs shorter than 2^i µs.
            return Some((1u64 << bucket) as f64 / 1e3);
        }
    }
    None
}

fn json_number(json: &mut String, value: Option<f64>) {
    match value {
        Some(value) if value.is_finite() => {
            let _ = write!(json, "{value:.3}");
        }
        _ => json.push_str("null"),
    }
}

/// `text` as a JSON string: quotes, backslashes and control characters
/// escaped, and `<` too (the page never parses it as HTML, but nothing in a
/// name should look like markup).
fn json_string(json: &mut String, text: &str) {
    json.push('"');
    for c in text.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            '<' => json.push_str("\\u003c"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(json, "\\u{:04x}", u32::from(c));
            }
            c => json.push(c),
        }
    }
    json.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentile_is_the_upper_bound_of_its_bucket() {
        let mut buckets = [0; LATENCY_BUCKETS];
        assert_eq!(percentile(&buckets, 0.5), None);
        // 98 runs under 1.024 ms, 2 under 131 ms.
        buckets[10] = 98;
        buckets[17] = 2;
        assert_eq!(percentile(&buckets, 0.50), Some(1.024));
        assert_eq!(percentile(&buckets, 0.98), Some(1.024));
        assert_eq!(percentile(&buckets, 0.99), Some(131.072));
    }

    #[test]
    fn names_are_escaped_as_json() {
        let mut json = String::new();
        json_string(&mut json, "a\"b\\c\n<script>");
        assert_eq!(json, r#""a\"b\\c\u000a\u003cscript>""#);
    }
}
