use patchboard::server;

struct Worker {
    period_ms: u64,
}

#[server]
impl Worker {
    #[every(self.period_ms)]
    fn tick(&mut self) {}
}

fn main() {}
