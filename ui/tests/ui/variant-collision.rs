use patchboard::server;

struct Counter;

#[server]
impl Counter {
    fn add_one(&mut self) {}

    fn add__one(&mut self) {}
}

fn main() {}
