use patchboard::server;

struct Worker;

#[server]
impl Worker {
    #[on_start]
    #[priority]
    fn connect(&mut self) {}
}

fn main() {}
