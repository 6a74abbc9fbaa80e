use patchboard::{protocol, server};

#[protocol]
pub trait Store {
    fn get(&self, key: String) -> Option<String>;
}

pub struct Memory;

#[server(protocols = Store)]
impl Memory {}

#[server]
impl Store for Memory {
    fn get(&self, key: String) -> Option<String> {
        Some(key)
    }
}

fn main() {}
