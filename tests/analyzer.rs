//! The analyzer pipeline of `examples/analyzer` against a model computed
//! directly from the fake API's data, under paused time: exact results, no
//! token over its limit, nothing lost when every handle is dropped mid-run,
//! and nothing left behind when the whole pipeline is cancelled.

#[path = "../examples/analyzer/api.rs"]
#[allow(dead_code)]
mod api;
mod common;
#[path = "../examples/analyzer/pipeline.rs"]
mod pipeline;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use api::{Config, FakeApi};
use common::{PAUSED_LIMIT, until, within};
use patchboard::StopReason;
use pipeline::Pipeline;

fn api() -> Arc<FakeApi> {
    Arc::new(FakeApi::new(Config::default()))
}

#[tokio::test(start_paused = true)]
async fn the_pipeline_finds_exactly_what_the_model_does_within_every_limit() {
    within(PAUSED_LIMIT, async {
        let api = api();
        let pipeline = Pipeline::start(api.clone()).await.unwrap();
        let journal = pipeline.journal.clone();
        let suspensions = pipeline.suspensions.clone();
        let report = pipeline.finish().await;

        let model = api.model();
        assert_eq!(report.tweets.len(), 60);
        assert_eq!(report, model);
        assert!(journal.entries().is_empty(), "{:?}", journal.entries());

        let usage = api.usage();
        let limit = api.config().limit;
        assert_eq!(usage.refused, 0, "no call was over a token's limit");
        assert_eq!(usage.calls.len(), 5, "every token worked");
        for (token, busiest) in &usage.busiest_window {
            assert!(
                *busiest <= limit,
                "token {token} made {busiest} calls in one window"
            );
        }
        assert!(
            suspensions.load(Ordering::Relaxed) > 0,
            "the run needs more calls than one window allows: workers must suspend"
        );
        // One call per page of every list, and no user read twice.
        let pages = |items: u64, size: usize| items.div_ceil(size as u64).max(1) as u32;
        let expected: u32 = pages(60, api::TIMELINE_PAGE)
            + model
                .tweets
                .values()
                .map(|(retweets, _)| pages(*retweets as u64, api::RETWEETERS_PAGE))
                .sum::<u32>()
            + model
                .followers
                .values()
                .map(|followers| pages(*followers, api::FOLLOWERS_PAGE))
                .sum::<u32>();
        assert_eq!(usage.calls.values().sum::<u32>(), expected);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_mid_run_loses_nothing() {
    within(PAUSED_LIMIT, async {
        let api = api();
        let pipeline = Pipeline::start(api.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let calls_so_far: u32 = api.usage().calls.values().sum();
        assert!(calls_so_far > 20, "mid-run: {calls_so_far} calls");
        let Pipeline {
            timeline,
            retweeters,
            followers,
            reducer,
            workers,
            done,
            journal,
            ..
        } = pipeline;
        drop((timeline, retweeters, followers, reducer, workers));
        // Every handle is gone: each stage drains, in pipeline order.
        let exited = done.await;
        // Its last handles were in the followers stage's state, dropped as
        // that stage ended.
        assert_eq!(exited.reason, StopReason::HandlesDropped);
        assert_eq!(exited.state.unwrap().report(), api.model());
        assert!(journal.entries().is_empty(), "{:?}", journal.entries());
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_pipeline_leaves_no_task_and_no_caller_behind() {
    within(PAUSED_LIMIT, async {
        let api = api();
        let metrics = tokio::runtime::Handle::current().metrics();
        let pipeline = Pipeline::start(api.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            metrics.num_alive_tasks() >= 9,
            "five workers and four stages run"
        );
        // Every server stops at once, whatever it was doing; each `stop`
        // returns once its server has stopped.
        pipeline.cancel().await;
        let Pipeline { done, .. } = pipeline;
        let exited = done.await;
        assert_eq!(exited.reason, StopReason::Stopped);
        let partial = exited.state.unwrap().report();
        assert!(partial.tweets.len() < 60, "cancelled mid-run");
        // No serve loop, no task of the pipeline is left.
        until(|| metrics.num_alive_tasks() == 0).await;
    })
    .await;
}
