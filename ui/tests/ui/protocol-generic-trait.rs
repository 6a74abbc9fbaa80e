use patchboard::protocol;

#[protocol]
pub trait Store<V> {
    fn get(&self, key: String) -> Option<String>;
}

fn main() {}
