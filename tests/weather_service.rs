//! The weather service (`examples/weather_service`) over real HTTP: the
//! service and its fake upstream listen on free loopback ports, a real
//! HTTP client (reqwest) calls them, and headless Chromium loads the page.

mod common;

#[path = "../examples/weather_service/service.rs"]
#[allow(dead_code)]
mod service;
#[path = "../examples/weather_service/upstream.rs"]
#[allow(dead_code)]
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{LIMIT, within};
use service::Weather;

/// A service and its upstream on free loopback ports.
struct Fixture {
    base: String,
    upstream: String,
    running: service::Running,
    client: reqwest::Client,
}

async fn start(limit: u32, failing: &[&str], refresh: Duration) -> Fixture {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let behaviour = upstream::Behaviour {
        latency: Duration::from_millis(100),
        failing: failing.iter().map(|city| (*city).to_owned()).collect(),
    };
    let upstream = upstream::start(loopback, behaviour).await.unwrap();
    let config = service::Config {
        addr: loopback,
        upstream,
        limit,
        fresh_for: Duration::from_secs(60),
        refresh,
    };
    let running = service::start(config).await.unwrap();
    Fixture {
        base: format!("http://{}", running.addr),
        upstream: format!("http://{upstream}"),
        running,
        client: reqwest::Client::new(),
    }
}

impl Fixture {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn hits(&self) -> HashMap<String, u64> {
        let url = format!("{}/hits", self.upstream);
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weather_answers_the_cities_of_a_state_as_json() {
    within(LIMIT, async {
        let fixture = start(100, &[], 10 * SECOND).await;
        let response = fixture.get("/weather?q=CA").await;
        assert_eq!(response.status(), 200);
        let cities: Vec<Weather> = response.json().await.unwrap();
        let names: Vec<&str> = cities.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["Los Angeles", "San Francisco", "San Diego", "Sacramento"]
        );
        assert!(
            cities
                .iter()
                .all(|c| !c.description.is_empty() && c.clouds <= 100)
        );
        // The raw JSON has exactly the documented fields.
        let raw: serde_json::Value = fixture.get("/weather?q=ca").await.json().await.unwrap();
        let mut keys: Vec<&String> = raw[0].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["clouds", "description", "name", "temp"]);
        fixture.running.shut_down().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_share_one_upstream_fetch_per_city() {
    within(LIMIT, async {
        let fixture = start(1_000, &[], 10 * SECOND).await;
        let requests: Vec<_> = (0..100)
            .map(|_| {
                let request = fixture.client.get(format!("{}/weather?q=CA", fixture.base));
                tokio::spawn(async move { request.send().await.unwrap().status() })
            })
            .collect();
        for request in requests {
            assert_eq!(request.await.unwrap(), 200);
        }
        let hits = fixture.hits().await;
        for city in ["Los Angeles", "San Francisco", "San Diego", "Sacramento"] {
            assert_eq!(hits.get(city), Some(&1), "{city}: {hits:?}");
        }
        assert_eq!(hits.len(), 4);
        fixture.running.shut_down().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_daily_limit_gets_429_with_retry_after() {
    within(LIMIT, async {
        let fixture = start(3, &[], 10 * SECOND).await;
        for _ in 0..3 {
            assert_eq!(fixture.get("/weather?q=WA").await.status(), 200);
        }
        let refused = fixture.get("/weather?q=WA").await;
        assert_eq!(refused.status(), 429);
        let retry_after: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=86_400).contains(&retry_after), "{retry_after}");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("daily limit"));
        // The stats, a priority call, count both.
        let stats: serde_json::Value = fixture.get("/admin/stats").await.json().await.unwrap();
        assert_eq!(
            (stats["served"].as_u64(), stats["refused"].as_u64()),
            (Some(3), Some(1))
        );
        assert_eq!(stats["limit"], 3);
        fixture.running.shut_down().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_stream_as_server_sent_events_in_the_view_asked_for() {
    within(LIMIT, async {
        let fixture = start(100, &[], Duration::from_millis(100)).await;
        let mut response = fixture.get("/updates?q=WA&show=temp").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut text = String::new();
        let data = loop {
            let chunk = response.chunk().await.unwrap().expect("the stream goes on");
            text.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(line) = text.lines().find(|line| line.starts_with("data:")) {
                break line["data:".len()..].trim().to_owned();
            }
        };
        assert!(text.contains("event: weather"), "{text}");
        let update: serde_json::Value = serde_json::from_str(&data).unwrap();
        let mut keys: Vec<&String> = update.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["name", "temp"], "show=temp maps to the smaller view");
        assert!(["Seattle", "Spokane"].contains(&update["name"].as_str().unwrap()));
        drop(response);
        fixture.running.shut_down().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failure_is_a_clear_502_and_the_service_goes_on() {
    within(LIMIT, async {
        let fixture = start(100, &["Houston"], 10 * SECOND).await;
        let failed = fixture.get("/weather?q=TX").await;
        assert_eq!(failed.status(), 502);
        let body: serde_json::Value = failed.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("upstream answered 500"),
            "{body}"
        );
        assert_eq!(fixture.get("/weather?q=NY").await.status(), 200);
        fixture.running.shut_down().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_malformed_state_is_a_400_that_says_what_to_ask() {
    within(LIMIT, async {
        let fixture = start(100, &[], 10 * SECOND).await;
        for path in [
            "/weather",
            "/weather?q=",
            "/weather?q=ZZ",
            "/weather?q=%00",
            "/updates",
        ] {
            let response = fixture.get(path).await;
            assert_eq!(response.status(), 400, "{path}");
            let body: serde_json::Value = response.json().await.unwrap();
            let error = body["error"].as_str().unwrap();
            assert!(error.contains("CA, NY, TX, WA"), "{path}: {error}");
        }
        fixture.running.shut_down().await.unwrap();
    })
    .await;
}

/// Headless Chromium, if installed (CI installs it, and fails without it).
fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but Chromium is missing: .ci/run installs the `chromium` package"
        );
        eprintln!("SKIPPED: Chromium not found (apt-get install chromium to run this test)");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_cities_and_updates_live_in_a_browser() {
    let Some(chromium) = chromium() else { return };
    within(Duration::from_secs(60), async {
        let fixture = start(100, &[], Duration::from_millis(200)).await;
        let profile =
            std::env::temp_dir().join(format!("patchboard-chromium-{}", std::process::id()));
        let output = tokio::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=5000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            // `?once`: the page stops listening after its first update, so
            // that it falls idle and Chromium dumps it.
            .arg(format!("{}/?once", fixture.base))
            .kill_on_drop(true)
            .output()
            .await
            .expect("chromium runs");
        let _ = std::fs::remove_dir_all(&profile);
        let dom = String::from_utf8_lossy(&output.stdout);
        assert!(
            dom.contains("data-city=\"San Francisco\""),
            "the cities are shown: {dom}"
        );
        assert!(
            dom.contains("<p id=\"status\">live: 1 updates</p>"),
            "an update arrived over SSE: {dom}"
        );
        assert!(dom.contains("class=\"fresh\""), "and changed a row: {dom}");
        fixture.running.shut_down().await.unwrap();
    })
    .await;
}

/// Issue 26, item 19: the daily limit counts every request to the API,
/// `/updates` included; the operator's `/admin/stats` (and the page) are
/// not counted, so they answer past the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_limit_counts_update_streams_and_not_the_stats() {
    within(LIMIT, async {
        let fixture = start(2, &[], 10 * SECOND).await;
        assert_eq!(fixture.get("/weather?q=WA").await.status(), 200);
        let stream = fixture.get("/updates?q=WA").await;
        assert_eq!(stream.status(), 200);
        drop(stream);
        for _ in 0..3 {
            assert_eq!(fixture.get("/admin/stats").await.status(), 200);
        }
        let refused = fixture.get("/updates?q=WA").await;
        assert_eq!(refused.status(), 429, "a stream past the limit is refused");
        assert!(refused.headers().contains_key("retry-after"));
        assert_eq!(fixture.get("/weather?q=WA").await.status(), 429);
        assert_eq!(fixture.get("/").await.status(), 200);
        let stats: serde_json::Value = fixture.get("/admin/stats").await.json().await.unwrap();
        assert_eq!(
            (stats["served"].as_u64(), stats["refused"].as_u64()),
            (Some(2), Some(2)),
            "two API requests served, two refused, the stats not counted: {stats}"
        );
        fixture.running.shut_down().await.unwrap();
    })
    .await;
}

/// Reads an SSE response until the stream ends, returning how it ended.
async fn until_the_stream_ends(mut response: reqwest::Response) -> Result<(), reqwest::Error> {
    while response.chunk().await?.is_some() {}
    Ok(())
}

/// Issue 26, item 18: shutting down with a live-update stream open ends the
/// stream and returns promptly, instead of streaming until the client
/// disconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_ends_open_update_streams_promptly() {
    within(LIMIT, async {
        let fixture = start(100, &[], Duration::from_millis(100)).await;
        let response = fixture.get("/updates?q=WA").await;
        assert_eq!(response.status(), 200);
        let streaming = tokio::spawn(until_the_stream_ends(response));
        let shut_down = tokio::time::timeout(2 * SECOND, fixture.running.shut_down()).await;
        assert!(
            matches!(shut_down, Ok(Ok(()))),
            "shut down within 2 s with a stream open: {shut_down:?}"
        );
        let ended = tokio::time::timeout(2 * SECOND, streaming).await;
        assert!(
            matches!(ended, Ok(Ok(Ok(())))),
            "the open stream ended cleanly: {ended:?}"
        );
    })
    .await;
}

/// Issue 26, item 18, as a user meets it: the example's process, with a
/// live-update stream open, exits promptly and successfully on SIGINT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_stops_on_ctrl_c_with_a_stream_open() {
    within(Duration::from_secs(300), async {
        // The example's binary, built as `.ci/run` builds it (a no-op once
        // built; cargo does not hold its lock while tests run).
        let built = tokio::process::Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "weather_service"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .await
            .expect("cargo runs");
        assert!(built.success(), "the example builds");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        let binary = target.join("debug/examples/weather_service");
        let mut service = tokio::process::Command::new(&binary)
            .args([
                "--addr",
                "127.0.0.1:0",
                "--latency-ms",
                "10",
                "--refresh-ms",
                "100",
            ])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the example starts");
        // Its output, read on a blocking thread to the end (tokio's
        // `io-util` is not among the dev-dependency's features): the
        // address it listens on first, then the rest.
        let stdout = std::fs::File::from(service.stdout.take().unwrap().into_owned_fd().unwrap());
        let (listening, address) = tokio::sync::oneshot::channel();
        let output = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut listening = Some(listening);
            let mut rest = Vec::new();
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                match line.strip_prefix("listening on ") {
                    Some(addr) if listening.is_some() => {
                        let _ = listening.take().unwrap().send(addr.to_owned());
                    }
                    _ => rest.push(line),
                }
            }
            rest
        });
        let addr = tokio::time::timeout(LIMIT, address)
            .await
            .expect("it prints its address in time")
            .expect("it prints its address");
        let mut response = reqwest::get(format!("{addr}/updates?q=WA")).await.unwrap();
        assert_eq!(response.status(), 200);
        // An update arrived: the stream is live.
        within(LIMIT, async {
            let mut text = String::new();
            while !text.contains("data:") {
                let chunk = response.chunk().await.unwrap().expect("the stream goes on");
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await;
        let interrupted = tokio::process::Command::new("kill")
            .args(["-INT", &service.id().unwrap().to_string()])
            .status()
            .await
            .unwrap();
        assert!(interrupted.success());
        let exited = tokio::time::timeout(3 * SECOND, service.wait()).await;
        let status = exited.expect("the process exits within 3 s of SIGINT with a stream open");
        assert!(status.unwrap().success(), "and exits successfully");
        let output = output.await.unwrap();
        assert!(
            output.iter().any(|line| line == "shutting down"),
            "{output:?}"
        );
        let ended = tokio::time::timeout(2 * SECOND, until_the_stream_ends(response)).await;
        assert!(matches!(ended, Ok(Ok(()))), "the stream ended: {ended:?}");
    })
    .await;
}
