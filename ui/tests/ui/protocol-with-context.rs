use patchboard::{Context, protocol};

#[protocol]
pub trait Store {
    fn get(&self, key: String, ctx: &Context<Self>) -> Option<String>;
}

fn main() {}
