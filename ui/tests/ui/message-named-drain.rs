use patchboard::server;

struct Tank;

#[server]
impl Tank {
    fn drain(&mut self) -> u32 {
        0
    }
}

fn main() {}
