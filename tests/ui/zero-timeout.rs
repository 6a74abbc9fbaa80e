use switchboard::server;

struct Slow;

#[server(timeout = "0s")]
impl Slow {
    fn work(&self) {}
}

fn main() {}
