use patchboard::server;

struct Plane;

#[server]
impl Plane {
    fn distance(&self, (x, y): (f64, f64)) -> f64 {
        (x * x + y * y).sqrt()
    }
}

fn main() {}
