use std::rc::Rc;

use patchboard::server;

struct Cache;

#[server]
impl Cache {
    async fn refresh(&mut self) {
        let local = Rc::new(1);
        tokio::task::yield_now().await;
        drop(local);
    }
}

fn main() {}
