use patchboard::protocol;

pub struct Session;

#[protocol(remote)]
pub trait Store {
    fn get(&self, key: String) -> Session;
}

fn main() {}
