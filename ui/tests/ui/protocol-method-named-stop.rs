use patchboard::protocol;

#[protocol]
pub trait Store {
    fn stop(&mut self) -> bool;
}

fn main() {}
