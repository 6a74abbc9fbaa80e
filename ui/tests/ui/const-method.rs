use patchboard::server;

struct Limits;

#[server]
impl Limits {
    const fn max(&self) -> u32 {
        10
    }
}

fn main() {}
