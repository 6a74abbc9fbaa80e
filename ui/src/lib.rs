//! Nothing to build: this crate holds the compile-error cases of
//! patchboard's `#[server]` and `#[protocol]` (`tests/ui.rs`).
