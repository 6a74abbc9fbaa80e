use patchboard::server;

struct Slow;

#[server]
impl Slow {
    #[timeout("fast")]
    fn work(&self) {}
}

fn main() {}
