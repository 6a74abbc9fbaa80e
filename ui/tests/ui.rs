//! Compile-time behaviour of `#[server]`: every misuse the macro can see is
//! one clear error on the user's token (`tests/ui/*.rs` with the expected
//! `.stderr` beside each), and every supported shape compiles and runs.
//!
//! `#[server(remote)]`'s cases need the `nats` feature
//! (`cargo test -p patchboard-ui --features nats` runs `tests/ui-nats/`). With it
//! on, only those run: its dependencies change how rustc names some
//! standard items in the other cases' errors (`std::marker::Send` for
//! `Send`), which the `.stderr` files record as users without the feature
//! see them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    if cfg!(feature = "nats") {
        t.compile_fail("tests/ui-nats/*.rs");
    } else {
        t.compile_fail("tests/ui/*.rs");
        t.pass("tests/ui/pass/*.rs");
        t.compile_fail("tests/ui-no-nats/*.rs");
    }
}
