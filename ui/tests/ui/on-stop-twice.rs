use patchboard::server;

struct Worker;

#[server]
impl Worker {
    #[on_stop]
    fn flush(&mut self) {}

    #[on_stop]
    fn close(&mut self) {}
}

fn main() {}
