use patchboard::{Reply, server};

struct Weather;

#[server]
impl Weather {
    fn temperature(&mut self, city: String, first: Reply<f64>, second: Reply<f64>) {
        let _ = (city, first, second);
    }
}

fn main() {}
