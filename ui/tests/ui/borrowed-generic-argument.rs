use patchboard::server;

struct Store;

#[server]
impl Store {
    fn put(&mut self, items: Vec<&u32>) -> usize {
        items.len()
    }
}

fn main() {}
