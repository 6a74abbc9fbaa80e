use patchboard::server;

struct Door;

#[server]
impl Door {
    fn is_closed(&self) -> bool {
        true
    }
}

fn main() {}
