use patchboard::server;

struct Store<V> {
    value: Option<V>,
}

#[server(remote)]
impl<V: Clone + Send + 'static> Store<V> {
    fn get(&self) -> Option<V> {
        self.value.clone()
    }
}

fn main() {}
