//! The weather service of the essay *Channels are not enough*, over HTTP:
//! two servers behind an axum router.
//!
//! - [`Cache`]: the weather of a city, from one upstream fetch shared by
//!   every concurrent caller (deferred replies), kept while fresh, and
//!   published to the subscribers of its state; a timer refreshes what is
//!   subscribed to.
//! - [`Limiter`]: a daily request limit per client address, with a
//!   `#[priority]` stats dump that overtakes a queue of checks.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use patchboard::{
    Builder, CallError, Context, Reply, Subscriber, Subscription, bounded_map, server, subscription,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

/// The states the service knows, with their cities.
pub const STATES: &[(&str, &[&str])] = &[
    (
        "CA",
        &["Los Angeles", "San Francisco", "San Diego", "Sacramento"],
    ),
    ("NY", &["New York", "Buffalo", "Albany"]),
    ("TX", &["Houston", "Austin", "Dallas"]),
    ("WA", &["Seattle", "Spokane"]),
];

fn cities(state: &str) -> Option<&'static [&'static str]> {
    STATES
        .iter()
        .find(|(code, _)| code.eq_ignore_ascii_case(state))
        .map(|(_, cities)| *cities)
}

fn state_of(city: &str) -> Option<&'static str> {
    STATES
        .iter()
        .find(|(_, cities)| cities.contains(&city))
        .map(|(code, _)| *code)
}

/// One city's weather, as the API answers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Weather {
    pub name: String,
    pub temp: f64,
    pub clouds: u64,
    pub description: String,
}

/// What the upstream answers (the part of OpenWeatherMap's shape we read).
#[derive(Deserialize)]
struct Upstream {
    name: String,
    main: UpstreamMain,
    clouds: UpstreamClouds,
    weather: Vec<UpstreamDescription>,
}

#[derive(Deserialize)]
struct UpstreamMain {
    temp: f64,
}

#[derive(Deserialize)]
struct UpstreamClouds {
    all: u64,
}

#[derive(Deserialize)]
struct UpstreamDescription {
    description: String,
}

/// The weather of cities: one upstream fetch per city however many ask at
/// once, fresh for `fresh_for`, published to the subscribers of its state.
pub struct Cache {
    client: reqwest::Client,
    upstream: String,
    fresh_for: Duration,
    refresh: Duration,
    entries: HashMap<String, (Weather, Instant)>,
    /// Callers waiting for a fetch in flight, by city (empty for a refresh
    /// that nobody waits for).
    waiting: HashMap<String, Vec<Reply<Result<Weather, String>>>>,
    subscribers: HashMap<&'static str, Vec<Subscriber<Weather>>>,
}

#[server(capacity = 256)]
impl Cache {
    /// The weather of `city`: from the cache while fresh, else from the one
    /// upstream fetch that every caller asking meanwhile shares.
    fn city(&mut self, city: String, reply: Reply<Result<Weather, String>>, ctx: &Context<Self>) {
        if let Some((weather, at)) = self.entries.get(&city)
            && at.elapsed() < self.fresh_for
        {
            let _ = reply.send(Ok(weather.clone()));
            return;
        }
        let in_flight = self.waiting.contains_key(&city);
        self.waiting.entry(city.clone()).or_default().push(reply);
        if !in_flight {
            self.fetch(city, ctx);
        }
    }

    /// A fetch finished: answer everyone who waited, keep and publish it.
    #[cast]
    fn fetched(&mut self, city: String, result: Result<Weather, String>) {
        if let Ok(weather) = &result {
            self.entries
                .insert(city.clone(), (weather.clone(), Instant::now()));
            if let Some(subscribers) = state_of(&city).and_then(|s| self.subscribers.get_mut(s)) {
                // A slow subscriber misses updates; it never slows this.
                subscribers.retain(|s| s.send(weather.clone()).is_connected());
            }
        }
        for reply in self.waiting.remove(&city).unwrap_or_default() {
            let _ = reply.send(result.clone());
        }
    }

    /// Updates of the cities of `state`, as they are fetched.
    fn subscribe(&mut self, state: &'static str) -> Subscription<Weather> {
        let (subscriber, subscription) = subscription(16);
        self.subscribers.entry(state).or_default().push(subscriber);
        subscription
    }

    /// Fetches again every city that someone is subscribed to.
    #[every(self.refresh)]
    fn refresh(&mut self, ctx: &Context<Self>) {
        self.subscribers
            .retain(|_, subscribers| subscribers.iter().any(|s| !s.is_closed()));
        let states: Vec<&'static str> = self.subscribers.keys().copied().collect();
        for state in states {
            for city in cities(state).unwrap_or_default() {
                if !self.waiting.contains_key(*city) {
                    self.waiting.insert((*city).to_owned(), Vec::new());
                    self.fetch((*city).to_owned(), ctx);
                }
            }
        }
    }
}

impl Cache {
    pub fn new(upstream: SocketAddr, fresh_for: Duration, refresh: Duration) -> Self {
        Cache {
            client: reqwest::Client::new(),
            upstream: format!("http://{upstream}/data/2.5/weather"),
            fresh_for,
            refresh,
            entries: HashMap::new(),
            waiting: HashMap::new(),
            subscribers: HashMap::new(),
        }
    }

    /// Fetches `city` in a task of its own, which reports back with
    /// `fetched`: the server goes on serving meanwhile.
    fn fetch(&self, city: String, ctx: &Context<Self>) {
        let me = ctx.weak();
        let request = self.client.get(&self.upstream).query(&[("q", &city)]);
        tokio::spawn(async move {
            let result = lookup(request).await;
            if let Some(me) = me.upgrade() {
                let _ = me.fetched(city, result).await;
            }
        });
    }
}

async fn lookup(request: reqwest::RequestBuilder) -> Result<Weather, String> {
    let response = request
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|error| format!("upstream unreachable: {error}"))?;
    if !response.status().is_success() {
        return Err(format!("upstream answered {}", response.status()));
    }
    let body: Upstream = response
        .json()
        .await
        .map_err(|error| format!("upstream sent something else: {error}"))?;
    Ok(Weather {
        name: body.name,
        temp: body.main.temp,
        clouds: body.clouds.all,
        description: body
            .weather
            .into_iter()
            .next()
            .map(|w| w.description)
            .unwrap_or_default(),
    })
}

/// What `GET /admin/stats` shows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stats {
    pub limit: u32,
    pub served: u64,
    pub refused: u64,
    pub clients: usize,
    /// Requests today of the busiest clients, busiest first.
    pub busiest: Vec<(IpAddr, u32)>,
}

/// A daily limit of requests per client address.
pub struct Limiter {
    limit: u32,
    day: Duration,
    started: Instant,
    counts: HashMap<IpAddr, u32>,
    served: u64,
    refused: u64,
}

#[server(capacity = 1024)]
impl Limiter {
    /// Counts a request from `client`: the requests it has left today, or
    /// how long until it may ask again.
    pub fn check(&mut self, client: IpAddr) -> Result<u32, Duration> {
        if self.started.elapsed() >= self.day {
            self.started = Instant::now();
            self.counts.clear();
        }
        let count = self.counts.entry(client).or_default();
        if *count >= self.limit {
            self.refused += 1;
            return Err(self.day.saturating_sub(self.started.elapsed()));
        }
        *count += 1;
        self.served += 1;
        Ok(self.limit - *count)
    }

    /// The day so far: served before every check still queued.
    #[priority]
    pub fn stats(&self) -> Stats {
        let mut busiest: Vec<(IpAddr, u32)> = self.counts.iter().map(|(ip, n)| (*ip, *n)).collect();
        busiest.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        busiest.truncate(10);
        Stats {
            limit: self.limit,
            served: self.served,
            refused: self.refused,
            clients: self.counts.len(),
            busiest,
        }
    }
}

/// How to run the service.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub upstream: SocketAddr,
    /// Requests per client address per day.
    pub limit: u32,
    pub fresh_for: Duration,
    pub refresh: Duration,
}

#[derive(Clone)]
struct App {
    cache: CacheHandle,
    limiter: LimiterHandle,
    /// Becomes `true` when the service shuts down: open update streams end
    /// on it, so that the graceful shutdown does not wait for their clients.
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// The running service.
pub struct Running {
    pub addr: SocketAddr,
    cache: CacheHandle,
    limiter: LimiterHandle,
    shutdown: tokio::sync::watch::Sender<bool>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops taking connections, ends the open update streams (which would
    /// otherwise last as long as their clients), lets the other requests in
    /// flight finish, then drains both servers.
    pub async fn shut_down(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        let served = self.served.await.unwrap_or(Ok(()));
        self.cache.drain().await;
        self.limiter.drain().await;
        served
    }
}

/// Starts the servers and the HTTP API on `config.addr` (port 0: any free
/// one).
pub async fn start(config: Config) -> std::io::Result<Running> {
    let cache = Cache::new(config.upstream, config.fresh_for, config.refresh);
    let cache = Builder::new(cache).name("weather-cache").spawn();
    let limiter = Limiter {
        limit: config.limit,
        day: Duration::from_secs(24 * 60 * 60),
        started: Instant::now(),
        counts: HashMap::new(),
        served: 0,
        refused: 0,
    };
    let limiter = Builder::new(limiter).name("limiter").spawn();
    let (shutdown, stopping) = tokio::sync::watch::channel(false);
    let app = App {
        cache: cache.clone(),
        limiter: limiter.clone(),
        stopping: stopping.clone(),
    };
    // The API's routes count against the daily limit; the page and the
    // operator's stats do not (see the README's table).
    let counted = Router::new()
        .route("/weather", get(weather))
        .route("/updates", get(updates))
        .route_layer(middleware::from_fn_with_state(app.clone(), limit));
    let router = Router::new()
        .route("/", get(page))
        .route("/admin/stats", get(stats))
        .merge(counted)
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let mut stop = stopping;
    let served = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        })
        .await
    });
    Ok(Running {
        addr,
        cache,
        limiter,
        shutdown,
        served,
    })
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

#[derive(Deserialize)]
struct WeatherQuery {
    q: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The state's cities, or what to ask for instead (a 400).
fn state(q: Option<&str>) -> Result<(&'static str, &'static [&'static str]), String> {
    let known: Vec<&str> = STATES.iter().map(|(code, _)| *code).collect();
    let Some(q) = q.filter(|q| !q.trim().is_empty()) else {
        return Err(format!(
            "missing `q`: ask for a state, like /weather?q=CA (one of {})",
            known.join(", ")
        ));
    };
    STATES
        .iter()
        .find(|(code, _)| code.eq_ignore_ascii_case(q.trim()))
        .map(|(code, cities)| (*code, *cities))
        .ok_or_else(|| format!("unknown state `{q}`: one of {}", known.join(", ")))
}

fn unavailable(error_: CallError) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("service stopping: {error_}"),
    )
}

/// Counts a request against its client's daily limit: 429 with
/// `Retry-After` past it, else on to the route.
async fn limit(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match app.limiter.check(peer.ip()).await {
        Err(call) => return unavailable(call),
        Ok(Err(retry_after)) => {
            let seconds = retry_after.as_secs() + 1;
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("daily limit reached: try again in {seconds} s"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
            return response;
        }
        Ok(Ok(_left)) => {}
    }
    next.run(request).await
}

async fn weather(State(app): State<App>, Query(query): Query<WeatherQuery>) -> Response {
    let (_, cities) = match state(query.q.as_deref()) {
        Ok(state) => state,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let answers = bounded_map(cities.iter(), 8, |city| app.cache.city((*city).to_owned()))
        .collect()
        .await;
    let mut found = Vec::new();
    for answer in answers {
        match answer {
            Ok(Ok(weather)) => found.push(weather),
            Ok(Err(why)) => return error(StatusCode::BAD_GATEWAY, why),
            Err(call) => return unavailable(call),
        }
    }
    Json(found).into_response()
}

async fn stats(State(app): State<App>) -> Response {
    match app.limiter.stats().await {
        Ok(stats) => Json(stats).into_response(),
        Err(call) => unavailable(call),
    }
}

#[derive(Deserialize)]
struct UpdatesQuery {
    q: Option<String>,
    show: Option<String>,
}

/// The subscription's updates as Server-Sent Events, mapped to the view
/// asked for (`show=temp`: name and temperature only), until the service
/// shuts down.
struct Updates {
    subscription: Subscription<Weather>,
    temp_only: bool,
    stopping: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl futures_core::Stream for Updates {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        if self.stopping.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        let temp_only = self.temp_only;
        Pin::new(&mut self.subscription)
            .poll_next(cx)
            .map(|update| {
                update.map(|weather| {
                    let view = if temp_only {
                        json!({ "name": weather.name, "temp": weather.temp })
                    } else {
                        json!(weather)
                    };
                    Ok(Event::default().event("weather").data(view.to_string()))
                })
            })
    }
}

async fn updates(State(app): State<App>, Query(query): Query<UpdatesQuery>) -> Response {
    let (code, _) = match state(query.q.as_deref()) {
        Ok(state) => state,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let subscription = match app.cache.subscribe(code).await {
        Ok(subscription) => subscription,
        Err(call) => return unavailable(call),
    };
    let mut stopping = app.stopping.clone();
    let updates = Updates {
        subscription,
        temp_only: query.show.as_deref() == Some("temp"),
        stopping: Box::pin(async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        }),
    };
    Sse::new(updates)
        .keep_alive(KeepAlive::default())
        .into_response()
}
