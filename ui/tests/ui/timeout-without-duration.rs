use patchboard::server;

struct Slow;

#[server]
impl Slow {
    #[timeout]
    fn work(&self) {}
}

fn main() {}
