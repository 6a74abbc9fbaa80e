use patchboard::server;

struct Slow;

#[server(timeout = "0s")]
impl Slow {
    fn work(&self) {}
}

fn main() {}
