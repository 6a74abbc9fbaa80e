//! Compile-time behaviour of `#[server]`: every misuse the macro can see is
//! one clear error on the user's token (`tests/ui/*.rs` with the expected
//! `.stderr` beside each), and every supported shape compiles and runs.
//! `#[server(remote)]`'s cases depend on the `nats` feature: with it,
//! `tests/ui-nats/`; without it, `tests/ui-no-nats/`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
    if cfg!(feature = "nats") {
        t.compile_fail("tests/ui-nats/*.rs");
    } else {
        t.compile_fail("tests/ui-no-nats/*.rs");
    }
}
