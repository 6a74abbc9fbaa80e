use patchboard::{Server, protocol, server};

#[protocol]
pub trait Store {
    fn get(&self, key: String) -> Option<String>;
    fn put(&mut self, key: String, value: String);
}

#[derive(Default)]
pub struct Memory {
    map: std::collections::HashMap<String, String>,
}

#[server(protocols(Store))]
impl Memory {}

#[server]
impl Store for Memory {
    fn get(&self, key: String) -> Option<String> {
        self.map.get(&key).cloned()
    }
}

fn main() {
    let _ = StoreClient::from(Memory::default().spawn());
}
