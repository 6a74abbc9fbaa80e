use std::rc::Rc;

use patchboard::server;

struct Counter {
    count: u64,
}

#[server]
impl Counter {
    async fn bump(&mut self) -> u64 {
        let local = Rc::new(1);
        tokio::task::yield_now().await;
        self.count += *local;
        self.count
    }
}

fn main() {}
