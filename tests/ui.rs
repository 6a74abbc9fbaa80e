//! Compile-time behaviour of `#[server]`: every misuse the macro can see is
//! one clear error on the user's token (`tests/ui/*.rs` with the expected
//! `.stderr` beside each), and every supported shape compiles and runs.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
