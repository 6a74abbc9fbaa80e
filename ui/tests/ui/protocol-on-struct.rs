use patchboard::protocol;

#[protocol]
pub struct Store {
    map: Vec<String>,
}

fn main() {}
