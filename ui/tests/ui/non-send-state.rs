use std::rc::Rc;

use patchboard::server;

struct Cache {
    shared: Rc<Vec<u8>>,
}

#[server]
impl Cache {
    fn len(&self) -> usize {
        self.shared.len()
    }
}

fn main() {}
