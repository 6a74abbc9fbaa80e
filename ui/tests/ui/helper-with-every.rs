use std::time::Duration;

use patchboard::server;

struct Cleaner {
    dirty: Vec<String>,
}

#[server]
impl Cleaner {
    fn add(&mut self, path: String) {
        self.dirty.push(path);
        self.tidy();
    }

    #[every(Duration::from_secs(1))]
    #[helper]
    fn tidy(&mut self) {
        self.dirty.dedup();
    }
}

fn main() {}
