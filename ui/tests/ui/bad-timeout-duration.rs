use patchboard::server;

struct Counter;

#[server(timeout = "5 seconds")]
impl Counter {
    fn bump(&mut self) {}
}

fn main() {}
