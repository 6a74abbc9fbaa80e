use patchboard::protocol;

#[protocol]
pub trait Store {
    fn get(&self, key: &str) -> Option<String>;
}

fn main() {}
