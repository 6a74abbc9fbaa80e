use patchboard::protocol;

#[protocol]
pub trait Store {
    fn into_map(self) -> Vec<String>;
}

fn main() {}
