use std::rc::Rc;

use patchboard::{Child, Strategy, SupervisorBuilder, server};

/// A `#[server(local)]` server: its state is not `Send`.
#[derive(Default)]
struct Counter(Rc<u32>);

#[server(local)]
impl Counter {
    fn get(&self) -> u32 {
        *self.0
    }
}

fn main() {
    // A supervisor's children run on any thread: a local server cannot be one.
    let _ = SupervisorBuilder::new(Strategy::OneForOne).child(Child::new(Counter::default));
}
