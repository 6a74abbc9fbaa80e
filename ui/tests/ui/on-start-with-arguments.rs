use patchboard::server;

struct Worker;

#[server]
impl Worker {
    #[on_start(fast)]
    fn connect(&mut self) {}
}

fn main() {}
