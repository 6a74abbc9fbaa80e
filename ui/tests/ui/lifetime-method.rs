use patchboard::server;

struct Store;

#[server]
impl Store {
    fn first<'a>(&self, items: Vec<String>) -> usize {
        items.len()
    }
}

fn main() {}
