use patchboard::protocol;

#[protocol]
pub trait Store {
    const LIMIT: usize;

    fn get(&self, key: String) -> Option<String>;
}

fn main() {}
