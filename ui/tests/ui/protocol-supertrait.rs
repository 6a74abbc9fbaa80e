use patchboard::protocol;

#[protocol]
pub trait Store: Send {
    fn get(&self, key: String) -> Option<String>;
}

fn main() {}
