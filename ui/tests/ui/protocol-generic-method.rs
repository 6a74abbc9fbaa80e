use patchboard::protocol;

#[protocol]
pub trait Store {
    fn get<K: ToString>(&self, key: K) -> Option<String>;
}

fn main() {}
