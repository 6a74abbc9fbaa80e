//! A fake OpenWeatherMap: a separate local HTTP server with the shape of
//! its `GET /data/2.5/weather?q=City` answer, configurable latency and
//! failures, and a count of the hits per city (`GET /hits`) so that tests
//! can see how many fetches the service really made. No internet.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

/// How the fake upstream behaves.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// Every answer takes this long.
    pub latency: Duration,
    /// Cities whose lookups fail with a 500.
    pub failing: Vec<String>,
}

#[derive(Default)]
struct Upstream {
    behaviour: Mutex<Option<Behaviour>>,
    hits: Mutex<HashMap<String, u64>>,
    /// Changes the readings over time, so that updates show.
    ticks: AtomicU64,
}

#[derive(Deserialize)]
struct Lookup {
    q: String,
}

/// Starts the fake upstream on `addr` (port 0: any free one); returns the
/// address it listens on.
pub async fn start(addr: SocketAddr, behaviour: Behaviour) -> std::io::Result<SocketAddr> {
    let upstream = Arc::new(Upstream::default());
    *upstream.behaviour.lock().unwrap() = Some(behaviour);
    let app = Router::new()
        .route("/data/2.5/weather", get(weather))
        .route("/hits", get(hits))
        .with_state(upstream);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(bound)
}

async fn weather(State(upstream): State<Arc<Upstream>>, Query(lookup): Query<Lookup>) -> Response {
    let behaviour = upstream
        .behaviour
        .lock()
        .unwrap()
        .clone()
        .expect("configured");
    *upstream
        .hits
        .lock()
        .unwrap()
        .entry(lookup.q.clone())
        .or_default() += 1;
    tokio::time::sleep(behaviour.latency).await;
    if behaviour.failing.contains(&lookup.q) {
        let body = Json(json!({"cod": 500, "message": "internal error"}));
        return (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
    }
    let tick = upstream.ticks.fetch_add(1, Ordering::Relaxed);
    let seed = lookup.q.bytes().map(u64::from).sum::<u64>() + tick;
    let temp = 10.0 + (seed % 250) as f64 / 10.0;
    let clouds = seed * 7 % 101;
    let description =
        ["clear sky", "few clouds", "scattered clouds", "light rain"][(seed % 4) as usize];
    Json(json!({
        "name": lookup.q,
        "main": {"temp": temp},
        "clouds": {"all": clouds},
        "weather": [{"description": description}],
    }))
    .into_response()
}

async fn hits(State(upstream): State<Arc<Upstream>>) -> Json<HashMap<String, u64>> {
    Json(upstream.hits.lock().unwrap().clone())
}
