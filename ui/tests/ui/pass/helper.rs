//! `#[helper]`: methods with a receiver that stay plain methods inside the
//! `#[server]` impl, in shapes a message could not have (borrowed and
//! `impl Trait` arguments, generics, a borrowed return, `Box<Self>`).

#![deny(warnings, missing_docs)]

use patchboard::{CallError, Server, server};

/// Paths waiting to be cleaned.
pub struct Cleaner {
    dirty: Vec<String>,
}

#[server]
impl Cleaner {
    /// Adds a path and returns how many distinct ones wait.
    pub fn add(&mut self, path: String) -> usize {
        self.push(&path);
        self.tidy();
        self.paths().len()
    }

    /// The paths, joined.
    pub fn list(&self) -> String {
        self.joined(", ")
    }

    #[helper]
    fn push(&mut self, path: &str) {
        self.dirty.push(path.to_owned());
    }

    #[helper]
    fn tidy(&mut self) {
        self.dirty.sort();
        self.dirty.dedup();
    }

    #[helper]
    fn paths(&self) -> &[String] {
        &self.dirty
    }

    #[helper]
    fn joined<S: AsRef<str>>(&self, separator: S) -> String {
        self.dirty.join(separator.as_ref())
    }

    /// Consumes a boxed cleaner, which a message could not.
    #[helper]
    pub fn into_paths(self: Box<Self>) -> Vec<String> {
        self.dirty
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), CallError> {
    let cleaner = Cleaner { dirty: Vec::new() }.spawn();
    assert_eq!(cleaner.add("b".to_owned()).await?, 1);
    assert_eq!(cleaner.add("a".to_owned()).await?, 2);
    assert_eq!(cleaner.add("b".to_owned()).await?, 2);
    assert_eq!(cleaner.list().await?, "a, b");
    let boxed = Box::new(Cleaner { dirty: vec!["x".to_owned()] });
    assert_eq!(boxed.into_paths(), ["x"]);
    Ok(())
}
