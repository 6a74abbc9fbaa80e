use patchboard::server;

struct Status;

#[server]
impl Status {
    #[priority(high)]
    fn status(&self) -> u32 {
        0
    }
}

fn main() {}
