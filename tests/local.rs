//! Local servers: a state that is not `Send` runs on the current thread's
//! `LocalSet`, while its handle stays `Send + Sync` and is called from
//! anywhere.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::{LIMIT, PAUSED_LIMIT, within};
use patchboard::{Builder, CallError, Server, StopReason, server};
use tokio::task::LocalSet;

/// A cache whose entries are shared through `Rc`, as a `!Send` client
/// library's handles would be.
#[derive(Clone, Default)]
struct Cache {
    entries: Rc<RefCell<Vec<String>>>,
    ticks: Rc<RefCell<u32>>,
    started: bool,
}

#[server(local)]
impl Cache {
    #[on_start]
    async fn start(&mut self) {
        tokio::task::yield_now().await;
        self.started = true;
    }

    async fn insert(&mut self, entry: String) -> usize {
        // Holding an `Rc` across an await: fine on a local server.
        let entries = self.entries.clone();
        tokio::task::yield_now().await;
        entries.borrow_mut().push(entry);
        entries.borrow().len()
    }

    fn entries(&self) -> Vec<String> {
        self.entries.borrow().clone()
    }

    fn started(&self) -> bool {
        self.started
    }

    #[priority]
    fn ticks(&self) -> u32 {
        *self.ticks.borrow()
    }

    #[every(Duration::from_millis(10))]
    fn tick(&mut self) {
        *self.ticks.borrow_mut() += 1;
    }

    fn into_entries(self) -> Vec<String> {
        self.entries.borrow().clone()
    }
}

fn assert_send_sync<T: Send + Sync + 'static>(_: &T) {}

#[test]
fn a_local_server_is_called_from_other_tasks_and_threads() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    LocalSet::new().block_on(&runtime, async {
        within(LIMIT, async {
            let cache = Cache::default().spawn();
            assert_send_sync(&cache);
            assert_eq!(cache.insert("local".to_owned()).await, Ok(1));
            assert_eq!(cache.started().await, Ok(true));

            // From a task that could run on any thread (`tokio::spawn`
            // requires `Send`)...
            let from_task = cache.clone();
            let task = tokio::spawn(async move { from_task.insert("task".to_owned()).await });
            assert_eq!(task.await.unwrap(), Ok(2));

            // ...and from plain threads, blocking, while the server serves
            // on this one.
            let threads: Vec<_> = (0..4)
                .map(|i| {
                    let cache = cache.clone();
                    std::thread::spawn(move || {
                        cache
                            .insert(format!("thread {i}"))
                            .timeout(LIMIT)
                            .blocking()
                    })
                })
                .collect();
            let waiting = tokio::task::spawn_blocking(move || {
                threads
                    .into_iter()
                    .map(|thread| thread.join().unwrap())
                    .collect::<Vec<_>>()
            });
            let answers = waiting.await.unwrap();
            assert!(answers.iter().all(Result::is_ok), "{answers:?}");
            let mut entries = cache.entries().await.unwrap();
            entries.sort();
            assert_eq!(
                entries,
                [
                    "local", "task", "thread 0", "thread 1", "thread 2", "thread 3"
                ]
            );
            assert_eq!(cache.into_entries().await.unwrap().len(), 6);
            assert_eq!(cache.closed().await, StopReason::Terminal);
        })
        .await;
    });
}

#[tokio::test(start_paused = true)]
async fn a_local_server_has_timers_pools_and_an_exit_like_any_other() {
    LocalSet::new()
        .run_until(within(PAUSED_LIMIT, async {
            let (cache, exit) = Builder::new(Cache::default()).spawn_with_exit();
            tokio::time::sleep(Duration::from_millis(35)).await;
            assert_eq!(cache.ticks().await, Ok(3));
            cache.stop().await;
            let exited = exit.await;
            assert_eq!(exited.reason, StopReason::Stopped);
            assert!(exited.state.unwrap().started);

            // A pool of local replicas, sharing their `Rc` entries.
            let pool = Builder::new(Cache::default()).pool(3).spawn();
            for i in 0..9 {
                pool.insert(format!("{i}")).await.unwrap();
            }
            assert_eq!(pool.entries().await.unwrap().len(), 9);
            pool.stop().await;
            assert_eq!(pool.entries().await, Err(CallError::Closed));
        }))
        .await;
}

#[tokio::test]
async fn spawning_a_local_server_outside_a_local_set_panics_and_says_so() {
    let spawned = std::panic::catch_unwind(|| Cache::default().spawn());
    let panic = spawned.expect_err("no LocalSet to run on");
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(message.contains("LocalSet"), "{message}");
}
