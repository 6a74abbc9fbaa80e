struct Worker;

impl Worker {
    #[on_start]
    fn connect(&mut self) {}
}

fn main() {}
