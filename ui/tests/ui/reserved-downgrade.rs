use patchboard::server;

struct Link;

#[server]
impl Link {
    fn downgrade(&mut self) -> u8 {
        0
    }
}

fn main() {}
