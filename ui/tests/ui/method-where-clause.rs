use patchboard::server;

struct Store;

#[server]
impl Store {
    fn size(&self) -> usize
    where
        Self: Sized,
    {
        0
    }
}

fn main() {}
