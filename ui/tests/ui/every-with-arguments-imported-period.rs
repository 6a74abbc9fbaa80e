use std::time::Duration;

use patchboard::server;

struct Worker;

#[server]
impl Worker {
    #[every(Duration::from_secs(1))]
    fn tick(&mut self, times: u32) {
        let _ = times;
    }
}

fn main() {}
