//! The `observer` feature: the live page of a running system, read by a
//! real HTTP client (the JSON and the Server-Sent Events) and by headless
//! Chromium (the page as a person sees it), before and after something
//! happens: a crash and restart, a handler stuck, a flooded mailbox. Run
//! with `cargo test --features observer --test observer`; without Chromium
//! installed the browser part says so and is skipped (with `CI=true` it
//! fails).
#![cfg(feature = "observer")]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{hold, until_queued, within};
use patchboard::observer::{self, Options};
use patchboard::{Builder, CallError, Restart, server};
use tokio::sync::Notify;

#[derive(Clone, Default)]
struct Worker;

#[server]
impl Worker {
    fn work(&mut self) {}

    fn crash(&mut self) {
        panic!("crash on purpose");
    }

    async fn hold(&self, entered: Arc<Notify>, release: Arc<Notify>) {
        entered.notify_one();
        release.notified().await;
    }

    /// Calls `me`, this very server: refused as a deadlock.
    async fn call_self(&self, me: WorkerHandle) -> Result<(), CallError> {
        me.work().await
    }
}

/// Headless Chromium, if installed (CI installs it, and fails without it).
fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| Path::new(path).exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but Chromium is missing: .ci/run installs the `chromium` package"
        );
        eprintln!("SKIPPED: Chromium not found (apt-get install chromium to run the browser part)");
    }
    found
}

/// Chromium loads `url` with `extra` arguments and exits; its stdout.
async fn chromium_run(chromium: &str, url: &str, extra: &[&str]) -> String {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile = std::env::temp_dir().join(format!(
        "patchboard-observer-chromium-{}-{n}",
        std::process::id()
    ));
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
        ])
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The page after its first live update, as Chromium renders it.
async fn dom(chromium: &str, base: &str) -> String {
    chromium_run(chromium, &format!("{base}?once"), &["--dump-dom"]).await
}

/// The row of server `id` in the DOM: `<tr id="server-{id}" ...>...</tr>`.
fn row(dom: &str, id: u64) -> &str {
    let start = dom
        .find(&format!("<tr id=\"server-{id}\""))
        .unwrap_or_else(|| panic!("a row for server {id}: {dom}"));
    let end = dom[start..].find("</tr>").unwrap() + start;
    &dom[start..end]
}

/// The `<ul id="{id}">` list in the DOM.
fn list<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<ul id=\"{id}\">"))
        .unwrap_or_else(|| panic!("a list {id}: {dom}"));
    let end = dom[start..].find("</ul>").unwrap() + start;
    &dom[start..end]
}

/// The latest sample, read with a real HTTP client.
async fn sample(client: &reqwest::Client, base: &str) -> serde_json::Value {
    let response = client
        .get(format!("{base}snapshot.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

fn server_in(sample: &serde_json::Value, id: u64) -> serde_json::Value {
    sample["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|server| server["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("server {id} in {sample}"))
}

/// Reads samples until `check` holds for one (each sample comes a 50 ms
/// interval after the one before: the page's own clock, not a sleep).
async fn until_sample(
    client: &reqwest::Client,
    base: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    loop {
        let sample = sample(client, base).await;
        if check(&sample) {
            return sample;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_a_running_system_and_what_happens_to_it() {
    within(Duration::from_secs(120), async {
        let steady = Builder::new(Worker).name("steady").spawn();
        for _ in 0..5 {
            steady.work().await.unwrap();
        }
        let crasher = Builder::new(Worker)
            .name("crasher")
            .restart(Restart::new(|| Worker))
            .spawn();
        let sleeper = Builder::new(Worker).name("sleeper").spawn();
        let flooded = Builder::new(Worker).name("flooded").capacity(64).spawn();
        let watcher = Builder::new(Worker).name("watcher").spawn();
        watcher.monitor(&steady);
        watcher.stop_with(&crasher);

        let page = observer::serve_with(
            "127.0.0.1:0",
            Options::default()
                .interval(Duration::from_millis(50))
                .stuck_after(Duration::from_millis(300)),
        )
        .await
        .unwrap();
        let base = page.url();
        assert!(page.local_addr().ip().is_loopback());
        let client = reqwest::Client::new();

        // The page itself, over HTTP.
        let html = client.get(&base).send().await.unwrap();
        assert_eq!(html.status(), 200);
        assert!(
            html.text()
                .await
                .unwrap()
                .contains("<title>patchboard observer</title>")
        );

        // The JSON: every server, with its figures.
        let first = until_sample(&client, &base, |s| {
            s["servers"].as_array().unwrap().len() >= 5
        })
        .await;
        let seen = server_in(&first, steady.id().get());
        assert_eq!(seen["name"], "steady");
        assert_eq!(seen["served"], 5);
        assert_eq!(seen["state"], "idle");
        assert_eq!(seen["mailbox"], serde_json::json!([0]));
        let seen = server_in(&first, watcher.id().get());
        assert_eq!(
            seen["watching"],
            serde_json::json!([
                {"id": steady.id().get(), "kind": "monitor"},
                {"id": crasher.id().get(), "kind": "stop_with"},
            ])
        );

        // The Server-Sent Events: one sample per event.
        let mut events = client.get(format!("{base}events")).send().await.unwrap();
        assert_eq!(events.headers()["content-type"], "text/event-stream");
        let mut text = String::new();
        while !text.contains("\n\n") {
            let chunk = events.chunk().await.unwrap().expect("the stream goes on");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let data = text
            .lines()
            .find_map(|line| line.strip_prefix("data: "))
            .expect("a data line");
        let event: serde_json::Value = serde_json::from_str(data).unwrap();
        assert!(event["servers"].as_array().unwrap().len() >= 5);
        drop(events);

        let Some(chromium) = chromium() else { return };

        // Before: the servers, their numbers and links, as shown.
        let before = dom(chromium, &base).await;
        assert!(
            before.contains("live: 1 updates"),
            "an update came over SSE: {before}"
        );
        let steady_row = row(&before, steady.id().get());
        assert!(
            steady_row.contains("<td class=\"name\">steady</td>"),
            "{steady_row}"
        );
        assert!(
            steady_row.contains("<td class=\"served\">5</td>"),
            "{steady_row}"
        );
        assert!(
            before.contains(&format!("monitor → steady #{}", steady.id().get())),
            "the watcher's links in the tree: {before}"
        );
        assert!(list(&before, "stuck").contains("none"));
        assert!(list(&before, "restarting").contains("none"));
        assert!(list(&before, "deadlocks").contains("none"));

        // Something happens: steady traffic, a crash (and restart), a
        // call refused as a deadlock, a handler stuck, a flood of 40
        // requests behind a held handler.
        let load = tokio::spawn({
            let steady = steady.clone();
            async move {
                // Paced at about a call a millisecond: a load, not a wait.
                while steady.work().await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        assert!(matches!(crasher.crash().await, Err(CallError::Panicked(_))));
        assert_eq!(
            watcher.call_self(watcher.clone()).await,
            Ok(Err(CallError::SelfCall))
        );
        let stuck = hold(|entered, release| sleeper.hold(entered, release).owned()).await;
        let unflood = hold(|entered, release| flooded.hold(entered, release).owned()).await;
        let flood: Vec<_> = (0..40)
            .map(|_| tokio::spawn(flooded.work().owned()))
            .collect();
        until_queued(|| flooded.queued(), 40).await;
        until_sample(&client, &base, |s| {
            server_in(s, sleeper.id().get())["stuck"] == true
                && server_in(s, flooded.id().get())["queued"] == 40
                && server_in(s, crasher.id().get())["restarting"] == true
                && server_in(s, watcher.id().get())["deadlocks"] == 1
                && server_in(s, steady.id().get())["rate"].as_f64().unwrap() > 0.0
                && !server_in(s, steady.id().get())["p99_ms"].is_null()
        })
        .await;

        // After: the page shows it.
        let after = dom(chromium, &base).await;
        let stuck_list = list(&after, "stuck");
        assert!(
            stuck_list.contains(&format!("sleeper #{} running for", sleeper.id().get())),
            "{stuck_list}"
        );
        let restarting = list(&after, "restarting");
        assert!(
            restarting.contains(&format!("crasher #{}: 1 restarts", crasher.id().get())),
            "{restarting}"
        );
        let deadlocks = list(&after, "deadlocks");
        assert!(
            deadlocks.contains(&format!(
                "watcher #{id}: 1 calls refused, last from watcher #{id}",
                id = watcher.id().get()
            )),
            "{deadlocks}"
        );
        let flooded_row = row(&after, flooded.id().get());
        assert!(
            flooded_row.contains("<td class=\"queued\">40<span"),
            "{flooded_row}"
        );
        assert!(flooded_row.contains("serving"), "{flooded_row}");
        assert!(row(&after, sleeper.id().get()).contains("class=\"stuck\""));
        let steady_row = row(&after, steady.id().get());
        assert!(
            !steady_row.contains("<td class=\"rate\">0.0</td>"),
            "calls/s shown: {steady_row}"
        );
        assert!(
            !steady_row.contains("<td class=\"p99\">–</td>"),
            "p99 shown: {steady_row}"
        );
        assert!(list(&after, "slowest").contains(&format!("steady #{}: p99", steady.id().get())));

        // A screenshot, for a person (and the README).
        let shot =
            std::env::temp_dir().join(format!("patchboard-observer-{}.png", std::process::id()));
        chromium_run(
            chromium,
            &format!("{base}?once"),
            &[
                &format!("--screenshot={}", shot.display()),
                "--window-size=1400,900",
            ],
        )
        .await;
        let png = std::fs::read(&shot).expect("a screenshot");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        if let Ok(keep) = std::env::var("OBSERVER_SCREENSHOT") {
            std::fs::copy(&shot, keep).unwrap();
        }
        let _ = std::fs::remove_file(&shot);

        stuck.notify_one();
        unflood.notify_one();
        steady.stop().await;
        load.await.unwrap();
        for call in flood {
            call.await.unwrap().unwrap();
        }
        drop(page);
    })
    .await;
}
