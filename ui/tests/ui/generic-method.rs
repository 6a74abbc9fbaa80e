use patchboard::server;

struct Store;

#[server]
impl Store {
    fn put<T: Send + 'static>(&mut self, value: T) {
        drop(value);
    }
}

fn main() {}
