use patchboard::protocol;

#[protocol]
pub trait Store {
    fn get(&self, key: String) -> Option<String> {
        let _ = key;
        None
    }
}

fn main() {}
