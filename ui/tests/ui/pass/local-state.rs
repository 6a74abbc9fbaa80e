// A state that is not `Send` compiles as a `#[server(local)]` and runs on
// the current thread's `LocalSet`; its handle is `Send + Sync`.
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use patchboard::{CallError, Server, server};

struct Counter {
    count: Rc<RefCell<u64>>,
}

#[server(local)]
impl Counter {
    async fn bump(&mut self, by: u64) -> u64 {
        let count = self.count.clone();
        tokio::task::yield_now().await;
        *count.borrow_mut() += by;
        *count.borrow()
    }
}

fn send_sync<T: Send + Sync>(_: &T) {}

fn main() -> Result<(), CallError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        tokio::time::timeout(Duration::from_secs(10), async {
            let counter: CounterHandle = Counter { count: Rc::default() }.spawn();
            send_sync(&counter);
            assert_eq!(counter.bump(2).await?, 2);
            let elsewhere = counter.clone();
            let task = tokio::spawn(async move { elsewhere.bump(3).await });
            assert_eq!(task.await.expect("task")?, 5);
            Ok(())
        })
        .await
        .expect("no hang")
    })
}
