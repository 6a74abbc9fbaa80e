use patchboard::server;

struct View<'a> {
    data: &'a [u8],
}

#[server]
impl<'a> View<'a> {
    fn len(&self) -> usize {
        self.data.len()
    }
}

fn main() {}
