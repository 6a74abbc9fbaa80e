use patchboard::server;

struct Worker;

#[server]
impl Worker {
    #[priority]
    fn new() -> Self {
        Worker
    }

    fn work(&mut self) {}
}

fn main() {}
