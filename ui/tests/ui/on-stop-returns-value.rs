use patchboard::server;

struct Worker;

#[server]
impl Worker {
    #[on_stop]
    fn flush(&mut self) -> usize {
        0
    }
}

fn main() {}
