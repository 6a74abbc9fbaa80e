use patchboard::protocol;

#[protocol(remote)]
pub trait Store {
    fn get(&self, key: String) -> Option<String>;
}

fn main() {}
