use patchboard::server;

struct Worker;

#[server]
impl Worker {
    #[on_start]
    fn connect(&mut self) -> u32 {
        7
    }
}

fn main() {}
