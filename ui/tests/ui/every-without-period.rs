use patchboard::server;

struct Worker;

#[server]
impl Worker {
    #[every]
    fn tick(&mut self) {}
}

fn main() {}
