use patchboard::server;

struct Numbers;

#[server]
impl Numbers {
    fn all(&self) -> impl Iterator<Item = u32> {
        0..10
    }
}

fn main() {}
