use patchboard::protocol;

#[protocol]
pub trait Store {
    type Value;

    fn get(&self, key: String) -> Option<String>;
}

fn main() {}
