//! Multiplexing sources of different priority, from the essay: critical
//! alerts, user requests and metrics arrive at one server together; it
//! serves them by level (critical > user > metrics), in arrival order
//! within each level, and a flood of higher levels never starves the lower
//! ones for more than `PRIORITY_BURST` requests in a row.
//!
//! Run with `cargo run --example priority_mux`.

use std::sync::Arc;

use patchboard::{CallError, PRIORITY_BURST, Server, server};
use tokio::sync::Notify;

/// Handles every kind of event, one at a time.
#[derive(Default)]
pub struct Mux {
    handled: Vec<String>,
}

#[server(capacity = 128)]
impl Mux {
    /// Level 2: served before everything else.
    #[priority(2)]
    #[cast]
    pub fn critical(&mut self, alert: String) {
        self.handled.push(format!("critical {alert}"));
    }

    /// Level 1.
    #[priority(1)]
    #[cast]
    pub fn user(&mut self, request: String) {
        self.handled.push(format!("user     {request}"));
    }

    /// Level 0, the normal lane.
    #[cast]
    pub fn metric(&mut self, sample: String) {
        self.handled.push(format!("metrics  {sample}"));
    }

    /// Keeps the server busy until `go` is notified, so that the events
    /// below queue up together.
    pub async fn pause(&self, paused: Arc<Notify>, go: Arc<Notify>) {
        paused.notify_one();
        go.notified().await;
    }

    /// What was handled, in order (sent at level 0: after all the above).
    pub fn handled(&mut self) -> Vec<String> {
        std::mem::take(&mut self.handled)
    }
}

#[tokio::main]
async fn main() -> Result<(), CallError> {
    let mux = Mux::default().spawn();

    let (paused, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let pause = tokio::spawn(mux.pause(paused.clone(), go.clone()).owned());
    paused.notified().await;
    for i in 1..=3 {
        mux.metric(format!("cpu={}%", 40 + i)).await?;
        mux.user(format!("GET /page/{i}")).await?;
        mux.critical(format!("disk {i} failing")).await?;
    }
    go.notify_one();
    pause.await.expect("pause task")?;
    let handled = mux.handled().await?;
    println!("queued together, served by level:");
    for line in &handled {
        println!("  {line}");
    }
    assert!(handled[0].starts_with("critical") && handled[8].starts_with("metrics"));

    // A flood of critical alerts: the waiting metric still gets its turn.
    let pause = tokio::spawn(mux.pause(paused.clone(), go.clone()).owned());
    paused.notified().await;
    mux.metric("queue-depth=7".to_owned()).await?;
    for i in 0..40 {
        mux.critical(format!("flood {i}")).await?;
    }
    go.notify_one();
    pause.await.expect("pause task")?;
    let handled = mux.handled().await?;
    let at = handled
        .iter()
        .position(|line| line.starts_with("metrics"))
        .expect("served");
    println!("under a flood of 40 critical alerts, the metric was served after {at} of them");
    assert_eq!(at, PRIORITY_BURST);
    Ok(())
}
