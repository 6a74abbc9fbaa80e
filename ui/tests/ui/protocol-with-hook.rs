use patchboard::protocol;

#[protocol]
pub trait Store {
    #[on_start]
    fn connect(&mut self);

    fn get(&self, key: String) -> Option<String>;
}

fn main() {}
