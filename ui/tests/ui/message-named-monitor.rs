use patchboard::{server, Server};

struct Watcher;

#[server]
impl Watcher {
    fn monitor(&mut self, target: u32) -> u32 {
        target
    }
}

// The user's own call to the message adds no knock-on error.
async fn watch(watcher: WatcherHandle) -> u32 {
    watcher.monitor(5).await.unwrap()
}

fn main() {
    let _ = watch;
    let _ = Watcher.spawn();
}
